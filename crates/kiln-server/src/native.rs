//! The native REST face, `/api/v1`: Kiln's own shapes for the CLI and the studio, over the
//! same services as the MLflow face. Its types are this crate's own serializable copies, so
//! the services never see a wire format. The OpenAPI document is at `/api/v1/openapi.json`.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use kiln_api::*;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use kiln_tracking::{SearchRequest, ViewType};

use crate::Shared;
use crate::error::{ApiError, ApiResult, query};

#[derive(OpenApi)]
#[openapi(
    info(title = "Kiln native API", description = "Experiments, runs and models of a Kiln workspace."),
    paths(health, list_experiments, get_experiment, list_runs, get_run, metric_history, list_models, get_model),
    components(schemas(
        Health,
        Experiment,
        ExperimentPage,
        Run,
        RunPage,
        Metric,
        MetricHistory,
        Model,
        ModelVersion,
        ModelPage,
        ErrorBody
    ))
)]
struct ApiDoc;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/experiments", get(list_experiments))
        .route("/experiments/{id}", get(get_experiment))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/metrics/{key}", get(metric_history))
        .route("/models", get(list_models).post(crate::assets::create_model))
        .route("/models/{name}", get(get_model))
}

fn metric(m: &kiln_tracking::Metric) -> Metric {
    Metric { key: m.key.clone(), value: m.value.is_finite().then_some(m.value), step: m.step, timestamp: m.timestamp }
}

fn map(tags: &[kiln_tracking::Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect()
}

fn experiment(e: &kiln_tracking::Experiment) -> Experiment {
    Experiment {
        id: e.experiment_id.to_string(),
        name: e.name.clone(),
        artifact_location: e.artifact_location.clone(),
        lifecycle_stage: e.lifecycle_stage.clone(),
        creation_time: e.creation_time,
        last_update_time: e.last_update_time,
        tags: map(&e.tags),
    }
}

fn run(r: &kiln_tracking::Run) -> Run {
    Run {
        id: r.info.run_id.clone(),
        name: r.info.run_name.clone(),
        experiment_id: r.info.experiment_id.to_string(),
        status: r.info.status.clone(),
        user_id: r.info.user_id.clone(),
        start_time: r.info.start_time,
        end_time: r.info.end_time,
        artifact_uri: r.info.artifact_uri.clone(),
        lifecycle_stage: r.info.lifecycle_stage.clone(),
        metrics: r.metrics.iter().map(metric).collect(),
        params: map(&r.params),
        tags: map(&r.tags),
    }
}

fn version(v: &kiln_registry::Version) -> ModelVersion {
    ModelVersion {
        version: v.version,
        stage: v.current_stage.clone(),
        status: v.status.clone(),
        source: v.source.clone(),
        run_id: v.run_id.clone(),
        model_id: v.model_id.clone(),
        description: v.description.clone(),
        aliases: v.aliases.clone(),
        creation_timestamp: v.creation_timestamp,
    }
}

fn model(m: &kiln_registry::Model, versions: Vec<ModelVersion>) -> Model {
    Model {
        name: m.name.clone(),
        description: m.description.clone(),
        creation_timestamp: m.creation_timestamp,
        last_updated_timestamp: m.last_updated_timestamp,
        tags: map(&m.tags),
        aliases: m.aliases.iter().cloned().collect(),
        versions,
    }
}

#[derive(Deserialize, IntoParams)]
struct ListQuery {
    /// An MLflow-style filter, e.g. `name LIKE 'iris%'`.
    filter: Option<String>,
    /// `active` (default), `deleted` or `all`.
    view: Option<String>,
    max_results: Option<i64>,
    page_token: Option<String>,
}

fn view(v: Option<&str>) -> ApiResult<ViewType> {
    match v.unwrap_or("active") {
        "active" => Ok(ViewType::ActiveOnly),
        "deleted" => Ok(ViewType::DeletedOnly),
        "all" => Ok(ViewType::All),
        other => Err(ApiError::invalid(format!("Invalid view '{other}': use active, deleted or all"))),
    }
}

#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::jobs::JobsDoc::openapi());
    doc.merge(crate::assets::AssetsDoc::openapi());
    doc.merge(crate::schedules::SchedulesDoc::openapi());
    doc.merge(crate::endpoints::EndpointsDoc::openapi());
    doc.merge(crate::batch::BatchDoc::openapi());
    Json(doc)
}

#[utoipa::path(get, path = "/api/v1/experiments", params(ListQuery),
    responses((status = 200, body = ExperimentPage), (status = 400, body = ErrorBody)))]
async fn list_experiments(
    State(s): State<Shared>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<ExperimentPage>> {
    let q = query(q)?;
    let req = SearchRequest {
        filter: q.filter,
        order_by: Vec::new(),
        view: view(q.view.as_deref())?,
        max_results: q.max_results,
        page_token: q.page_token,
    };
    let page = s.tracking.search_experiments(&req).await?;
    Ok(Json(ExperimentPage {
        experiments: page.items.iter().map(experiment).collect(),
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(get, path = "/api/v1/experiments/{id}", params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, body = Experiment), (status = 404, body = ErrorBody)))]
async fn get_experiment(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Experiment>> {
    Ok(Json(experiment(&s.tracking.get_experiment(&id).await?)))
}

#[derive(Deserialize, IntoParams)]
struct RunQuery {
    /// Experiment ids, comma-separated; all active experiments when left out.
    experiment_id: Option<String>,
    filter: Option<String>,
    /// Order-by terms, comma-separated, e.g. `metrics.rmse ASC`.
    order_by: Option<String>,
    view: Option<String>,
    max_results: Option<i64>,
    page_token: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/runs", params(RunQuery),
    responses((status = 200, body = RunPage), (status = 400, body = ErrorBody)))]
async fn list_runs(State(s): State<Shared>, q: Result<Query<RunQuery>, QueryRejection>) -> ApiResult<Json<RunPage>> {
    let q = query(q)?;
    let experiment_ids: Vec<String> = match q.experiment_id.as_deref().filter(|e| !e.is_empty()) {
        Some(ids) => ids.split(',').map(|s| s.trim().to_string()).collect(),
        None => {
            let all = SearchRequest { max_results: Some(50_000), ..Default::default() };
            s.tracking.search_experiments(&all).await?.items.iter().map(|e| e.experiment_id.to_string()).collect()
        }
    };
    let req = SearchRequest {
        filter: q.filter,
        order_by: q.order_by.map(|o| o.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default(),
        view: view(q.view.as_deref())?,
        max_results: q.max_results,
        page_token: q.page_token,
    };
    let page = s.tracking.search_runs(&experiment_ids, &req).await?;
    Ok(Json(RunPage { runs: page.items.iter().map(run).collect(), next_page_token: page.next_page_token }))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody)))]
async fn get_run(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Run>> {
    Ok(Json(run(&s.tracking.get_run(&id).await?)))
}

#[derive(Deserialize, IntoParams)]
struct HistoryQuery {
    max_results: Option<i64>,
    page_token: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/metrics/{key}",
    params(("id" = String, Path, description = "Run id"), ("key" = String, Path, description = "Metric key"), HistoryQuery),
    responses((status = 200, body = MetricHistory), (status = 404, body = ErrorBody)))]
async fn metric_history(
    State(s): State<Shared>,
    Path((id, key)): Path<(String, String)>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<MetricHistory>> {
    let q = query(q)?;
    let page = s.tracking.metric_history(&id, &key, q.max_results, q.page_token.as_deref()).await?;
    Ok(Json(MetricHistory { metrics: page.items.iter().map(metric).collect(), next_page_token: page.next_page_token }))
}

#[utoipa::path(get, path = "/api/v1/models", params(ListQuery),
    responses((status = 200, body = ModelPage), (status = 400, body = ErrorBody)))]
async fn list_models(
    State(s): State<Shared>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<ModelPage>> {
    let q = query(q)?;
    let page =
        s.registry.search_registered_models(q.filter.as_deref(), &[], q.max_results, q.page_token.as_deref()).await?;
    Ok(Json(ModelPage {
        models: page.items.iter().map(|m| model(m, m.latest_versions.iter().map(version).collect())).collect(),
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(get, path = "/api/v1/models/{name}", params(("name" = String, Path, description = "Registered model name")),
    responses((status = 200, body = Model), (status = 404, body = ErrorBody)))]
async fn get_model(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Model>> {
    let m = s.registry.get_registered_model(&name).await?;
    let filter = format!("name = '{}'", name.replace('\'', "''"));
    let versions =
        s.registry.search_model_versions(Some(&filter), &["version_number DESC".to_string()], None, None).await?;
    Ok(Json(model(&m, versions.items.iter().map(version).collect())))
}
