//! `/api/v1/data` and `/api/v1/environments`: versioned assets.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::*;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::Shared;
use crate::error::{ApiError, ApiResult, body, query};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_data,
        list_data,
        get_data,
        archive_data,
        restore_data,
        create_environment,
        list_environments,
        get_environment,
        archive_environment,
        restore_environment
    ),
    components(schemas(DataAsset, DataCreate, DataPage, EnvironmentAsset, EnvironmentCreate, EnvironmentPage))
)]
pub(crate) struct AssetsDoc;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/data", post(create_data).get(list_data))
        .route("/data/{name}/versions/{version}", get(get_data))
        .route("/data/{name}/archive", post(archive_data))
        .route("/data/{name}/restore", post(restore_data))
        .route("/environments", post(create_environment).get(list_environments))
        .route("/environments/{name}/versions/{version}", get(get_environment))
        .route("/environments/{name}/archive", post(archive_environment))
        .route("/environments/{name}/restore", post(restore_environment))
}

#[derive(Deserialize, IntoParams)]
struct AssetListQuery {
    /// Only this name's versions.
    name: Option<String>,
    /// `include` or `only`; archived versions are left out by default.
    archived: Option<String>,
}

#[derive(Deserialize, IntoParams)]
struct VersionQuery {
    /// One version; every version of the name when left out.
    version: Option<String>,
}

fn archived(q: Option<&str>) -> ApiResult<Option<bool>> {
    match q {
        None | Some("") | Some("exclude") => Ok(Some(false)),
        Some("include") => Ok(None),
        Some("only") => Ok(Some(true)),
        Some(other) => Err(ApiError::invalid(format!("archived: '{other}': use exclude, include or only"))),
    }
}

async fn set_archived(
    s: &Shared,
    kind: &str,
    name: &str,
    q: Result<Query<VersionQuery>, QueryRejection>,
    archived: bool,
) -> ApiResult<Json<serde_json::Value>> {
    let q = query(q)?;
    s.orchestrator.set_asset_archived(kind, name, q.version.as_deref(), archived).await?;
    Ok(Json(serde_json::json!({})))
}

fn data(d: kiln_orchestrator::DataAsset) -> DataAsset {
    DataAsset {
        name: d.name,
        version: d.version,
        data_type: d.data_type,
        uri: d.uri,
        description: d.description,
        tags: d.tags,
        created_at: d.created_at,
        archived: d.archived,
    }
}

fn environment(e: kiln_orchestrator::EnvironmentAsset) -> EnvironmentAsset {
    EnvironmentAsset {
        hash: e.definition.hash(),
        name: e.name,
        version: e.version,
        image: e.definition.image,
        requirements: e.definition.requirements,
        python: e.definition.python,
        conda_file: e.definition.conda_file,
        notes: e.definition.notes,
        description: e.description,
        tags: e.tags,
        created_at: e.created_at,
        archived: e.archived,
    }
}

/// Registers a data version (the next integer when `version` is left out). The same content
/// under an existing version is accepted; other content is refused.
#[utoipa::path(post, path = "/api/v1/data", request_body = DataCreate,
    responses((status = 200, body = DataAsset), (status = 400, body = ErrorBody)))]
async fn create_data(
    State(s): State<Shared>,
    b: Result<Json<DataCreate>, JsonRejection>,
) -> ApiResult<Json<DataAsset>> {
    let b = body(b)?;
    let new = kiln_orchestrator::NewData {
        name: b.name,
        version: b.version,
        data_type: b.data_type.unwrap_or_else(|| "uri_folder".into()),
        path: b.path,
        description: b.description,
        tags: b.tags,
    };
    Ok(Json(data(s.orchestrator.create_data(new).await?)))
}

#[utoipa::path(get, path = "/api/v1/data", params(AssetListQuery), responses((status = 200, body = DataPage)))]
async fn list_data(
    State(s): State<Shared>,
    q: Result<Query<AssetListQuery>, QueryRejection>,
) -> ApiResult<Json<DataPage>> {
    let q = query(q)?;
    let items = s.orchestrator.list_data(q.name.as_deref(), archived(q.archived.as_deref())?).await?;
    Ok(Json(DataPage { data: items.into_iter().map(data).collect() }))
}

/// One version; `latest` is the most recently created version that is not archived.
#[utoipa::path(get, path = "/api/v1/data/{name}/versions/{version}",
    responses((status = 200, body = DataAsset), (status = 404, body = ErrorBody)))]
async fn get_data(
    State(s): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<DataAsset>> {
    Ok(Json(data(s.orchestrator.get_data(&name, Some(&version)).await?)))
}

#[utoipa::path(post, path = "/api/v1/data/{name}/archive", params(VersionQuery), responses((status = 200), (status = 404, body = ErrorBody)))]
async fn archive_data(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    set_archived(&s, "data", &name, q, true).await
}

#[utoipa::path(post, path = "/api/v1/data/{name}/restore", params(VersionQuery), responses((status = 200), (status = 404, body = ErrorBody)))]
async fn restore_data(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    set_archived(&s, "data", &name, q, false).await
}

#[utoipa::path(post, path = "/api/v1/environments", request_body = EnvironmentCreate,
    responses((status = 200, body = EnvironmentAsset), (status = 400, body = ErrorBody)))]
async fn create_environment(
    State(s): State<Shared>,
    b: Result<Json<EnvironmentCreate>, JsonRejection>,
) -> ApiResult<Json<EnvironmentAsset>> {
    let b = body(b)?;
    let new = kiln_orchestrator::NewEnvironment {
        name: b.name,
        version: b.version,
        image: b.image,
        conda_file: b.conda_file,
        description: b.description,
        tags: b.tags,
    };
    Ok(Json(environment(s.orchestrator.create_environment(new).await?)))
}

#[utoipa::path(get, path = "/api/v1/environments", params(AssetListQuery), responses((status = 200, body = EnvironmentPage)))]
async fn list_environments(
    State(s): State<Shared>,
    q: Result<Query<AssetListQuery>, QueryRejection>,
) -> ApiResult<Json<EnvironmentPage>> {
    let q = query(q)?;
    let items = s.orchestrator.list_environments(q.name.as_deref(), archived(q.archived.as_deref())?).await?;
    Ok(Json(EnvironmentPage { environments: items.into_iter().map(environment).collect() }))
}

#[utoipa::path(get, path = "/api/v1/environments/{name}/versions/{version}",
    responses((status = 200, body = EnvironmentAsset), (status = 404, body = ErrorBody)))]
async fn get_environment(
    State(s): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<EnvironmentAsset>> {
    Ok(Json(environment(s.orchestrator.get_environment(&name, Some(&version)).await?)))
}

#[utoipa::path(post, path = "/api/v1/environments/{name}/archive", params(VersionQuery), responses((status = 200), (status = 404, body = ErrorBody)))]
async fn archive_environment(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    set_archived(&s, "environment", &name, q, true).await
}

#[utoipa::path(post, path = "/api/v1/environments/{name}/restore", params(VersionQuery), responses((status = 200), (status = 404, body = ErrorBody)))]
async fn restore_environment(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    set_archived(&s, "environment", &name, q, false).await
}
