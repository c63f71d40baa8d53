//! The artifact proxy (`/api/2.0/mlflow-artifacts/*`) and the tracking API's listings.
//! Bodies stream straight between the socket and storage; nothing is held whole in memory.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
        .route("/mpu/create/{*path}", post(create_multipart))
        .route("/mpu/complete/{*path}", post(complete_multipart))
        .route("/mpu/abort/{*path}", post(abort_multipart))
        .route("/mpu/parts/{upload_id}/{part}", axum::routing::put(upload_part))
        .route("/presigned/{*path}", get(presigned_download))
}

/// The URL clients used to reach this server, for links handed back to them.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}")
}

/// A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range, as an exclusive range within `size`.
fn parse_range(value: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.saturating_add(1).min(size)),
    };
    (start < end && start < size).then_some(start..end)
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

async fn download(State(s): State<Shared>, Path(path): Path<String>, request: HeaderMap) -> ApiResult<Response> {
    let artifact = ArtifactPath::parse(&path)?;
    let missing = || ApiError::not_found(format!("No such artifact: '{path}'"));
    let blobs = s.tracking.blobs();
    let range = request.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (read, status, content_range) = match range {
        Some(range) => {
            let total = blobs.size(&artifact).await?.ok_or_else(missing)?;
            let Some(r) = parse_range(range, total) else {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(response);
            };
            let content_range = format!("bytes {}-{}/{total}", r.start, r.end - 1);
            let read = blobs.get_range(&artifact, r).await?.ok_or_else(missing)?;
            (read, StatusCode::PARTIAL_CONTENT, Some(content_range))
        }
        None => (blobs.get(&artifact).await?.ok_or_else(missing)?, StatusCode::OK, None),
    };
    let name = artifact.file_name().to_string();
    let mut response = Response::new(Body::from_stream(read.stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(v) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::CONTENT_RANGE, v);
    }
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

/// Where part `n` of an upload waits until the upload is completed.
fn staging(upload_id: &str, part: Option<u32>) -> ApiResult<ArtifactPath> {
    if upload_id.is_empty() || !upload_id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(format!("Invalid upload_id '{upload_id}'")));
    }
    let dir = format!("{}/{upload_id}", kiln_blobs::STAGING_DIR);
    Ok(ArtifactPath::parse(&match part {
        Some(n) => format!("{dir}/{n:06}"),
        None => dir,
    })?)
}

/// Starts a multipart upload: the client then PUTs each part to the URL it is given.
async fn create_multipart(Path(path): Path<String>, headers: HeaderMap, Req(f): Req) -> ApiResult<Json<Value>> {
    multipart_destination(&path, &f)?;
    let parts = f.i64("num_parts")?.unwrap_or(1);
    if !(1..=10_000).contains(&parts) {
        return Err(ApiError::invalid(format!("num_parts must be between 1 and 10000, got {parts}")));
    }
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    let base = base_url(&headers);
    let credentials: Vec<Value> = (1..=parts)
        .map(|n| {
            json!({
                "url": format!("{base}/api/2.0/mlflow-artifacts/mpu/parts/{upload_id}/{n}"),
                "part_number": n,
                "headers": {},
            })
        })
        .collect();
    Ok(Json(json!({"upload_id": upload_id, "credentials": credentials})))
}

async fn upload_part(
    State(s): State<Shared>,
    Path((upload_id, part)): Path<(String, u32)>,
    body: Body,
) -> ApiResult<Response> {
    if part == 0 {
        return Err(ApiError::invalid("part numbers start at 1"));
    }
    let staged = staging(&upload_id, Some(part))?;
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    let size = s.tracking.blobs().put_stream(&staged, stream).await?;
    let mut response = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{upload_id}-{part}-{size}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

/// As MLflow's server has it: the URL names the destination folder and the `path` field the
/// client's local file, whose base name the artifact takes.
fn multipart_destination(dir: &str, f: &crate::fields::Fields) -> ApiResult<ArtifactPath> {
    let local = f.req_str("path")?;
    let name = local.rsplit(['/', '\\']).next().unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err(ApiError::invalid(format!("Invalid path '{local}'")));
    }
    Ok(ArtifactPath::parse(dir)?.join(name)?)
}

async fn complete_multipart(State(s): State<Shared>, Path(path): Path<String>, Req(f): Req) -> ApiResult<Json<Value>> {
    let artifact = multipart_destination(&path, &f)?;
    let upload_id = f.req_str("upload_id")?;
    let mut numbers = Vec::new();
    for part in f.objects("parts")? {
        let n = part.i64("part_number")?.ok_or_else(|| crate::fields::missing("part_number"))?;
        numbers.push(u32::try_from(n).map_err(|_| ApiError::invalid(format!("Invalid part_number {n}")))?);
    }
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.is_empty() {
        return Err(ApiError::invalid("A multipart upload needs at least one part"));
    }
    let parts = numbers.iter().map(|n| staging(&upload_id, Some(*n))).collect::<ApiResult<Vec<_>>>()?;
    s.tracking.blobs().concat(&artifact, &parts).await?;
    s.tracking.blobs().delete(&staging(&upload_id, None)?).await?;
    Ok(Json(json!({})))
}

async fn abort_multipart(State(s): State<Shared>, Path(_path): Path<String>, Req(f): Req) -> ApiResult<Json<Value>> {
    let upload_id = f.req_str("upload_id")?;
    s.tracking.blobs().delete(&staging(&upload_id, None)?).await?;
    Ok(Json(json!({})))
}

/// The URL to fetch a file from, for clients that download large files in ranged chunks.
async fn presigned_download(
    State(s): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let artifact = ArtifactPath::parse(&path)?;
    let size = s
        .tracking
        .blobs()
        .size(&artifact)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No such artifact: '{path}'")))?;
    let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{}", base_url(&headers), artifact.as_str());
    Ok(Json(json!({"url": url, "headers": {}, "file_size": size})))
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
