//! The artifact proxy (`/api/2.0/mlflow-artifacts/*`) and the tracking API's listings.
//! Bodies stream straight between the socket and storage; nothing is held whole in memory.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::TryStreamExt;
use kiln_blobs::ArtifactPath;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::fields::Req;
use crate::{Shared, wire};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/", get(list))
        .route("/artifacts/{*path}", get(download).put(upload).delete(delete))
        .route("/mpu/{*path}", post(multipart_unsupported))
        .route("/presigned/{*path}", get(multipart_unsupported))
}

fn content_type_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" | "py" | "yaml" | "yml" | "cfg" | "toml" => "text/plain",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

async fn download(State(s): State<Shared>, Path(path): Path<String>) -> ApiResult<Response> {
    let artifact = ArtifactPath::parse(&path)?;
    let Some(read) = s.tracking.blobs().get(&artifact).await? else {
        return Err(ApiError::not_found(format!("No such artifact: '{path}'")));
    };
    let name = artifact.file_name().to_string();
    let mut response = Response::new(Body::from_stream(read.stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type_for(&name)));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(read.size));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", name.replace('"', ""))) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

async fn upload(State(s): State<Shared>, Path(path): Path<String>, body: Body) -> ApiResult<Response> {
    let artifact = ArtifactPath::parse(&path)?;
    if artifact.is_root() {
        return Err(ApiError::invalid("Invalid path"));
    }
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    s.tracking.blobs().put_stream(&artifact, stream).await?;
    Ok(StatusCode::OK.into_response())
}

async fn delete(State(s): State<Shared>, Path(path): Path<String>) -> ApiResult<Json<Value>> {
    let artifact = ArtifactPath::parse(&path)?;
    if artifact.is_root() {
        return Err(ApiError::invalid("Invalid path"));
    }
    s.tracking.blobs().delete(&artifact).await?;
    Ok(Json(json!({})))
}

async fn list(State(s): State<Shared>, Req(f): Req) -> ApiResult<Json<Value>> {
    let path = ArtifactPath::parse(&f.str("path")?.unwrap_or_default())?;
    let entries = s.tracking.blobs().list_dir(&path).await?;
    let files = entries
        .iter()
        .map(|e| wire::Obj::new().set("path", e.name.clone()).set("is_dir", e.is_dir).opt("file_size", e.size).build())
        .collect();
    Ok(Json(wire::Obj::new().list("files", files).build()))
}

async fn multipart_unsupported() -> ApiError {
    ApiError::not_implemented("Multipart and presigned artifact transfers are not enabled on this server.")
}

/// Lists `rel` below an artifact root URI, with paths relative to that root.
async fn list_below(s: &Shared, root_uri: &str, rel: &str) -> ApiResult<Vec<Value>> {
    let Some(root) = kiln_tracking::proxy_path(root_uri) else { return Ok(Vec::new()) };
    let rel = ArtifactPath::parse(rel)?;
    let dir = root.join(rel.as_str())?;
    let entries = s.tracking.blobs().list_dir(&dir).await?;
    Ok(entries
        .iter()
        .map(|e| {
            let path = if rel.is_root() { e.name.clone() } else { format!("{}/{}", rel.as_str(), e.name) };
            wire::Obj::new().set("path", path).set("is_dir", e.is_dir).opt("file_size", e.size).build()
        })
        .collect())
}

pub async fn list_run_artifacts(State(s): State<Shared>, Req(f): Req) -> ApiResult<Json<Value>> {
    let run = s.tracking.get_run_info(&f.run_id()?).await?;
    let files = list_below(&s, &run.artifact_uri, &f.str("path")?.unwrap_or_default()).await?;
    Ok(Json(wire::Obj::new().set("root_uri", run.artifact_uri.clone()).list("files", files).build()))
}

pub async fn list_logged_model_artifacts(
    State(s): State<Shared>,
    Path(model_id): Path<String>,
    Req(f): Req,
) -> ApiResult<Json<Value>> {
    let model = s.tracking.get_logged_model(&model_id).await?;
    let rel = f.str("artifact_directory_path")?.unwrap_or_default();
    let files = list_below(&s, &model.artifact_uri, &rel).await?;
    Ok(Json(wire::Obj::new().set("root_uri", model.artifact_uri.clone()).list("files", files).build()))
}
