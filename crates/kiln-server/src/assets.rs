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
        restore_environment,
        create_component,
        list_components,
        get_component,
        archive_component,
        restore_component,
        create_model,
        list_model_versions,
        get_model_version,
        archive_model,
        restore_model
    ),
    components(schemas(
        DataAsset,
        DataCreate,
        DataPage,
        EnvironmentAsset,
        EnvironmentCreate,
        EnvironmentPage,
        ModelAsset,
        ModelCreate,
        ModelAssetPage,
        ComponentAsset,
        ComponentCreate,
        ComponentPage
    ))
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
        .route("/components", post(create_component).get(list_components))
        .route("/components/{name}/versions/{version}", get(get_component))
        .route("/components/{name}/archive", post(archive_component))
        .route("/components/{name}/restore", post(restore_component))
        // `GET /models` (registered models) is the native API's; `POST` creates a version.
        .route("/models/{name}/versions", get(list_model_versions))
        .route("/models/{name}/versions/{version}", get(get_model_version))
        .route("/models/{name}/archive", post(archive_model))
        .route("/models/{name}/restore", post(restore_model))
}

#[derive(Deserialize, IntoParams)]
struct AssetListQuery {
    /// Only this name's versions.
    name: Option<String>,
    /// `include` or `only`; archived versions are left out by default.
    archived: Option<String>,
}

#[derive(Deserialize, IntoParams)]
struct ArchivedQuery {
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
    if kind == "model" {
        s.orchestrator.set_model_archived(name, q.version.as_deref(), archived).await?;
    } else {
        s.orchestrator.set_asset_archived(kind, name, q.version.as_deref(), archived).await?;
    }
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

fn model(m: kiln_orchestrator::ModelAsset) -> ModelAsset {
    ModelAsset {
        name: m.name,
        version: m.version,
        model_type: m.model_type,
        source: m.source,
        run_id: m.run_id,
        stage: m.stage,
        description: m.description,
        tags: m.tags,
        created_at: m.created_at,
        archived: m.archived,
    }
}

/// Registers a model version: a version of the MLflow registry's registered model of that name
/// (created when missing). Uploaded files are copied to an artifact folder the MLflow clients
/// download from.
#[utoipa::path(post, path = "/api/v1/models", request_body = ModelCreate,
    responses((status = 200, body = ModelAsset), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_model(
    State(s): State<Shared>,
    b: Result<Json<ModelCreate>, JsonRejection>,
) -> ApiResult<Json<ModelAsset>> {
    let b = body(b)?;
    let new = kiln_orchestrator::NewModel {
        name: b.name,
        version: b.version,
        model_type: b.model_type,
        path: b.path,
        run_id: None,
        description: b.description,
        tags: b.tags,
    };
    Ok(Json(model(s.orchestrator.create_model(new).await?)))
}

/// A model's versions, newest first.
#[utoipa::path(get, path = "/api/v1/models/{name}/versions", params(ArchivedQuery),
    responses((status = 200, body = ModelAssetPage)))]
async fn list_model_versions(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<ArchivedQuery>, QueryRejection>,
) -> ApiResult<Json<ModelAssetPage>> {
    let q = query(q)?;
    let items = s.orchestrator.list_models(Some(&name), archived(q.archived.as_deref())?).await?;
    Ok(Json(ModelAssetPage { models: items.into_iter().map(model).collect() }))
}

/// One version; `latest` is the highest version that is not archived.
#[utoipa::path(get, path = "/api/v1/models/{name}/versions/{version}",
    responses((status = 200, body = ModelAsset), (status = 404, body = ErrorBody)))]
async fn get_model_version(
    State(s): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ModelAsset>> {
    Ok(Json(model(s.orchestrator.get_model(&name, Some(&version)).await?)))
}

/// Moves a version (or every version) to MLflow's `Archived` stage.
#[utoipa::path(post, path = "/api/v1/models/{name}/archive", params(VersionQuery), responses((status = 200), (status = 404, body = ErrorBody)))]
async fn archive_model(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    set_archived(&s, "model", &name, q, true).await
}

/// Moves archived versions back to the `None` stage.
#[utoipa::path(post, path = "/api/v1/models/{name}/restore", params(VersionQuery), responses((status = 200), (status = 404, body = ErrorBody)))]
async fn restore_model(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    set_archived(&s, "model", &name, q, false).await
}

fn component(c: kiln_orchestrator::ComponentAsset) -> ComponentAsset {
    ComponentAsset {
        name: c.name,
        version: c.version,
        kind: c.kind,
        display_name: c.display_name,
        description: c.description,
        inputs: c.inputs,
        outputs: c.outputs,
        is_deterministic: c.is_deterministic,
        spec: c.spec,
        created_at: c.created_at,
        archived: c.archived,
    }
}

/// Registers a component version (the next integer unless the spec has `version:`).
#[utoipa::path(post, path = "/api/v1/components", request_body = ComponentCreate,
    responses((status = 200, body = ComponentAsset), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_component(
    State(s): State<Shared>,
    b: Result<Json<ComponentCreate>, JsonRejection>,
) -> ApiResult<Json<ComponentAsset>> {
    let b = body(b)?;
    let source = b.source.unwrap_or_else(|| "request".into());
    Ok(Json(component(s.orchestrator.create_component(&b.spec, &source).await?)))
}

#[utoipa::path(get, path = "/api/v1/components", params(AssetListQuery), responses((status = 200, body = ComponentPage)))]
async fn list_components(
    State(s): State<Shared>,
    q: Result<Query<AssetListQuery>, QueryRejection>,
) -> ApiResult<Json<ComponentPage>> {
    let q = query(q)?;
    let items = s.orchestrator.list_components(q.name.as_deref(), archived(q.archived.as_deref())?).await?;
    Ok(Json(ComponentPage { components: items.into_iter().map(component).collect() }))
}

/// One version; `latest` is the most recently created version that is not archived.
#[utoipa::path(get, path = "/api/v1/components/{name}/versions/{version}",
    responses((status = 200, body = ComponentAsset), (status = 404, body = ErrorBody)))]
async fn get_component(
    State(s): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ComponentAsset>> {
    Ok(Json(component(s.orchestrator.get_component(&name, Some(&version)).await?)))
}

#[utoipa::path(post, path = "/api/v1/components/{name}/archive", params(VersionQuery), responses((status = 200), (status = 404, body = ErrorBody)))]
async fn archive_component(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    set_archived(&s, "component", &name, q, true).await
}

#[utoipa::path(post, path = "/api/v1/components/{name}/restore", params(VersionQuery), responses((status = 200), (status = 404, body = ErrorBody)))]
async fn restore_component(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    set_archived(&s, "component", &name, q, false).await
}
