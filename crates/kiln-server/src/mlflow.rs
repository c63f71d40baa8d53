//! The MLflow REST face: `/api/2.0/mlflow/*`, `/api/3.0/mlflow/*` (and their `/ajax-api`
//! twins). Each handler reads fields, calls one service method and writes MLflow's JSON.

use std::borrow::Cow;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use kiln_registry::NewVersionRequest;
use kiln_tracking::{
    Dataset, DatasetInput, Metric, ModelOutput, NewLoggedModelRequest, NewRun, SearchRequest, Tag, TraceInfo, ViewType,
};

use crate::error::{ApiError, ApiResult};
use crate::fields::{Fields, RawReq, Req, missing};
use crate::{Shared, artifacts, wire};

type JsonResult = ApiResult<Json<Value>>;

fn empty() -> JsonResult {
    Ok(Json(json!({})))
}

const VIEW_TYPES: &[(&str, i64)] = &[("ACTIVE_ONLY", 1), ("DELETED_ONLY", 2), ("ALL", 3)];
const RUN_STATUSES: &[(&str, i64)] = &[("RUNNING", 1), ("SCHEDULED", 2), ("FINISHED", 3), ("FAILED", 4), ("KILLED", 5)];
const LOGGED_MODEL_STATUSES: &[(&str, i64)] = &[
    ("LOGGED_MODEL_STATUS_UNSPECIFIED", 0),
    ("LOGGED_MODEL_PENDING", 1),
    ("LOGGED_MODEL_READY", 2),
    ("LOGGED_MODEL_UPLOAD_FAILED", 3),
];
const TRACE_STATES: &[(&str, i64)] = &[("STATE_UNSPECIFIED", 0), ("OK", 1), ("ERROR", 2), ("IN_PROGRESS", 3)];

fn view(f: &Fields, name: &str) -> ApiResult<ViewType> {
    Ok(match f.enum_name(name, VIEW_TYPES)? {
        Some("DELETED_ONLY") => ViewType::DeletedOnly,
        Some("ALL") => ViewType::All,
        _ => ViewType::ActiveOnly,
    })
}

fn paged(key: &str, items: Vec<Value>, token: Option<String>) -> Json<Value> {
    Json(wire::Obj::new().list(key, items).opt("next_page_token", token).build())
}

/// Routes served under `/api/2.0/mlflow` and `/ajax-api/2.0/mlflow`.
pub fn v2_routes() -> Router<Shared> {
    Router::new()
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/search", post(search_experiments).get(search_experiments))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/update", post(update_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route("/experiments/delete-experiment-tag", post(delete_experiment_tag))
        .route("/runs/create", post(create_run))
        .route("/runs/update", post(update_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/get", get(get_run))
        .route("/runs/search", post(search_runs))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-model", post(log_model_legacy))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/outputs", post(log_outputs))
        .route("/metrics/get-history", get(get_metric_history))
        .route("/metrics/get-history-bulk-interval", get(get_metric_history_bulk_interval))
        .route("/artifacts/list", get(artifacts::list_run_artifacts))
        .route("/logged-models", post(create_logged_model))
        .route("/logged-models/search", post(search_logged_models))
        .route(
            "/logged-models/{model_id}",
            get(get_logged_model).patch(finalize_logged_model).delete(delete_logged_model),
        )
        .route("/logged-models/{model_id}/tags", axum::routing::patch(set_logged_model_tags))
        .route("/logged-models/{model_id}/tags/{tag_key}", axum::routing::delete(delete_logged_model_tag))
        .route("/logged-models/{model_id}/params", post(log_logged_model_params))
        .route("/logged-models/{model_id}/artifacts/directories", get(artifacts::list_logged_model_artifacts))
        .route("/registered-models/create", post(create_registered_model))
        .route("/registered-models/rename", post(rename_registered_model))
        .route("/registered-models/update", axum::routing::patch(update_registered_model))
        .route("/registered-models/delete", axum::routing::delete(delete_registered_model))
        .route("/registered-models/get", get(get_registered_model))
        .route("/registered-models/search", get(search_registered_models))
        .route("/registered-models/get-latest-versions", post(get_latest_versions).get(get_latest_versions))
        .route("/registered-models/set-tag", post(set_registered_model_tag))
        .route("/registered-models/delete-tag", axum::routing::delete(delete_registered_model_tag))
        .route("/registered-models/alias", post(set_alias).delete(delete_alias).get(get_by_alias))
        .route("/model-versions/create", post(create_model_version))
        .route("/model-versions/update", axum::routing::patch(update_model_version))
        .route("/model-versions/transition-stage", post(transition_stage))
        .route("/model-versions/delete", axum::routing::delete(delete_model_version))
        .route("/model-versions/get", get(get_model_version))
        .route("/model-versions/search", get(search_model_versions))
        .route("/model-versions/get-download-uri", get(get_download_uri))
        .route("/model-versions/set-tag", post(set_model_version_tag))
        .route("/model-versions/delete-tag", axum::routing::delete(delete_model_version_tag))
        .route("/traces", get(search_traces_v2))
        .route("/traces/{id}/tags", axum::routing::patch(set_trace_tag).delete(delete_trace_tag))
        .route("/traces/{id}/info", get(get_trace_info_v2))
        .route("/traces/delete-traces", post(delete_traces))
}

/// Routes served under `/api/3.0/mlflow` and `/ajax-api/3.0/mlflow`.
pub fn v3_routes() -> Router<Shared> {
    Router::new()
        .route("/traces", post(start_trace_v3))
        .route("/traces/search", post(search_traces_v3))
        .route("/traces/batchGetInfos", post(batch_get_trace_infos))
        .route("/traces/delete-traces", post(delete_traces))
        .route("/traces/{id}", get(get_trace_info_v3))
        .route("/traces/{id}/tags", axum::routing::patch(set_trace_tag).delete(delete_trace_tag))
        .route("/server-info", get(server_info))
}

// ---- experiments ----------------------------------------------------------------------

async fn create_experiment(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let name = f.req_str("name")?;
    let id = s.tracking.create_experiment(&name, f.str("artifact_location")?.as_deref(), f.tags("tags")?).await?;
    Ok(Json(json!({"experiment_id": id})))
}

async fn get_experiment(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let e = s.tracking.get_experiment(&f.req_str("experiment_id")?).await?;
    Ok(Json(json!({"experiment": wire::experiment(&e)})))
}

async fn get_experiment_by_name(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let e = s.tracking.get_experiment_by_name(&f.req_str("experiment_name")?).await?;
    Ok(Json(json!({"experiment": wire::experiment(&e)})))
}

async fn search_experiments(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let req = SearchRequest {
        filter: f.str("filter")?,
        order_by: f.str_list("order_by")?,
        view: view(&f, "view_type")?,
        max_results: f.i64("max_results")?,
        page_token: f.str("page_token")?,
    };
    let page = s.tracking.search_experiments(&req).await?;
    Ok(paged("experiments", page.items.iter().map(wire::experiment).collect(), page.next_page_token))
}

async fn delete_experiment(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.tracking.delete_experiment(&f.req_str("experiment_id")?).await?;
    empty()
}

async fn restore_experiment(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.tracking.restore_experiment(&f.req_str("experiment_id")?).await?;
    empty()
}

async fn update_experiment(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let id = f.req_str("experiment_id")?;
    s.tracking.rename_experiment(&id, &f.req_str("new_name")?).await?;
    empty()
}

async fn set_experiment_tag(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let value = f.str("value")?.ok_or_else(|| missing("value"))?;
    s.tracking.set_experiment_tag(&f.req_str("experiment_id")?, &f.req_str("key")?, &value).await?;
    empty()
}

async fn delete_experiment_tag(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.tracking.delete_experiment_tag(&f.req_str("experiment_id")?, &f.req_str("key")?).await?;
    empty()
}

// ---- runs -----------------------------------------------------------------------------

async fn create_run(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run = s
        .tracking
        .create_run(NewRun {
            experiment_id: f.str("experiment_id")?,
            user_id: f.str("user_id")?,
            run_name: f.str("run_name")?,
            start_time: f.i64("start_time")?,
            tags: f.tags("tags")?,
            run_id: None,
        })
        .await?;
    Ok(Json(json!({"run": wire::RunOut::new(&run, false)})))
}

async fn get_run(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run = s.tracking.get_run(&f.run_id()?).await?;
    Ok(Json(json!({"run": wire::run(&run)})))
}

async fn update_run(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run_id = f.run_id()?;
    let status = f.enum_name("status", RUN_STATUSES)?;
    let info = s.tracking.update_run(&run_id, status, f.i64("end_time")?, f.str("run_name")?.as_deref()).await?;
    Ok(Json(json!({"run_info": wire::run_info(&info)})))
}

async fn delete_run(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.tracking.delete_run(&f.req_str("run_id")?).await?;
    empty()
}

async fn restore_run(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.tracking.restore_run(&f.req_str("run_id")?).await?;
    empty()
}

fn read_metric(f: &Fields) -> ApiResult<Metric> {
    let key = f.req_str("key")?;
    let value = f.f64("value")?.ok_or_else(|| missing("value"))?;
    if let Some(Value::Bool(_)) = f.raw("value")? {
        return Err(ApiError::invalid("Invalid value for parameter 'value': a metric value must be a number"));
    }
    let timestamp = f.i64("timestamp")?.ok_or_else(|| missing("timestamp"))?;
    Ok(Metric {
        key,
        value,
        timestamp,
        step: f.i64("step")?.unwrap_or(0),
        model_id: f.str("model_id")?.filter(|s| !s.is_empty()),
        dataset_name: f.str("dataset_name")?.filter(|s| !s.is_empty()),
        dataset_digest: f.str("dataset_digest")?.filter(|s| !s.is_empty()),
    })
}

async fn log_metric(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run_id = f.run_id()?;
    s.tracking.log_metric(&run_id, read_metric(&f)?).await?;
    empty()
}

async fn log_param(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run_id = f.run_id()?;
    let value = f.str("value")?.ok_or_else(|| missing("value"))?;
    s.tracking.log_param(&run_id, &f.req_str("key")?, &value).await?;
    empty()
}

async fn set_tag(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run_id = f.run_id()?;
    let value = f.str("value")?.ok_or_else(|| missing("value"))?;
    s.tracking.set_tag(&run_id, &f.req_str("key")?, &value).await?;
    empty()
}

async fn delete_tag(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.tracking.delete_tag(&f.run_id()?, &f.req_str("key")?).await?;
    empty()
}

async fn log_batch(State(s): State<Shared>, raw: RawReq) -> JsonResult {
    let (run_id, metrics, params, tags) = match PlainBatch::read(&raw) {
        Some(batch) => batch,
        None => {
            let f = raw.fields()?;
            let metrics = f.objects("metrics")?.iter().map(read_metric).collect::<ApiResult<Vec<_>>>()?;
            (f.run_id()?, metrics, f.tags("params")?, f.tags("tags")?)
        }
    };
    s.tracking.log_batch(&run_id, metrics, params, tags).await?;
    empty()
}

/// A batch as the handler needs it: run id, metrics, params, tags.
type BatchFields = (String, Vec<Metric>, Vec<Tag>, Vec<Tag>);

/// A log-batch body in the plain form clients send (snake_case names, numbers as numbers, no
/// query fields), decoded straight into typed values.
///
/// Why: the general reader ([`Fields`]) builds a JSON tree first, a map per metric, which was a
/// fifth of a 1000-metric batch. Anything this form does not cover exactly, including every
/// malformed body, goes to the general reader instead, so answers and errors stay the same.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainBatch<'a> {
    #[serde(borrow)]
    run_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    run_uuid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metrics: Option<Vec<PlainMetric<'a>>>,
    #[serde(borrow)]
    params: Option<Vec<PlainTag<'a>>>,
    #[serde(borrow)]
    tags: Option<Vec<PlainTag<'a>>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainMetric<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    value: f64,
    timestamp: i64,
    step: Option<i64>,
    #[serde(borrow)]
    model_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dataset_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dataset_digest: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainTag<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
}

impl PlainBatch<'_> {
    /// The run id, metrics, params and tags, when the body has the plain form and every value
    /// in it is one the general reader accepts as is.
    fn read(raw: &RawReq) -> Option<BatchFields> {
        if !raw.query.is_empty() {
            return None;
        }
        let batch: PlainBatch = serde_json::from_slice(&raw.body).ok()?;
        let text = |s: &Cow<str>| (!s.contains('\0')).then(|| s.to_string());
        // Empty optional strings are absent, as in `read_metric`.
        let optional = |s: &Option<Cow<str>>| match s.as_deref() {
            None | Some("") => Some(None),
            Some(s) => text(&Cow::Borrowed(s)).map(Some),
        };
        let run_id = [&batch.run_id, &batch.run_uuid].into_iter().flatten().find(|id| !id.is_empty())?;
        let mut metrics = Vec::with_capacity(batch.metrics.as_ref().map_or(0, Vec::len));
        for m in batch.metrics.iter().flatten() {
            if m.key.is_empty() {
                return None;
            }
            metrics.push(Metric {
                key: text(&m.key)?,
                value: m.value,
                timestamp: m.timestamp,
                step: m.step.unwrap_or(0),
                model_id: optional(&m.model_id)?,
                dataset_name: optional(&m.dataset_name)?,
                dataset_digest: optional(&m.dataset_digest)?,
            });
        }
        let tags = |list: &Option<Vec<PlainTag>>| {
            list.iter()
                .flatten()
                .map(|t| {
                    if t.key.is_empty() {
                        return None;
                    }
                    let value = match &t.value {
                        Some(v) => text(v)?,
                        None => String::new(),
                    };
                    Some(Tag::new(text(&t.key)?, value))
                })
                .collect::<Option<Vec<_>>>()
        };
        Some((text(run_id)?, metrics, tags(&batch.params)?, tags(&batch.tags)?))
    }
}

/// MLflow 2.x's `log-model`: appends the model's JSON to the `mlflow.log-model.history` tag.
async fn log_model_legacy(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run_id = f.run_id()?;
    let model_json = f.req_str("model_json")?;
    let model: Value = serde_json::from_str(&model_json)
        .map_err(|_| ApiError::invalid(format!("Malformed model info. \n {model_json} \n is not a valid JSON.")))?;
    let run = s.tracking.get_run(&run_id).await?;
    let mut history: Vec<Value> = run
        .tags
        .iter()
        .find(|t| t.key == "mlflow.log-model.history")
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    history.push(model);
    s.tracking.set_tag(&run_id, "mlflow.log-model.history", &Value::Array(history).to_string()).await?;
    empty()
}

async fn log_inputs(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run_id = f.req_str("run_id")?;
    let mut datasets = Vec::new();
    for input in f.objects("datasets")? {
        let d = input.object("dataset")?.ok_or_else(|| missing("dataset"))?;
        datasets.push(DatasetInput {
            dataset: Dataset {
                name: d.req_str("name")?,
                digest: d.req_str("digest")?,
                source_type: d.req_str("source_type")?,
                source: d.req_str("source")?,
                schema: d.str("schema")?,
                profile: d.str("profile")?,
            },
            tags: input.tags("tags")?,
        });
    }
    let models = f.objects("models")?.iter().map(|m| m.req_str("model_id")).collect::<ApiResult<Vec<_>>>()?;
    s.tracking.log_inputs(&run_id, datasets, models).await?;
    empty()
}

async fn log_outputs(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let run_id = f.req_str("run_id")?;
    let models = f
        .objects("models")?
        .iter()
        .map(|m| Ok(ModelOutput { model_id: m.req_str("model_id")?, step: m.i64("step")?.unwrap_or(0) }))
        .collect::<ApiResult<Vec<_>>>()?;
    s.tracking.log_outputs(&run_id, models).await?;
    empty()
}

async fn search_runs(State(s): State<Shared>, Req(f): Req) -> ApiResult<axum::response::Response> {
    let req = SearchRequest {
        filter: f.str("filter")?,
        order_by: f.str_list("order_by")?,
        view: view(&f, "run_view_type")?,
        max_results: f.i64("max_results")?,
        page_token: f.str("page_token")?,
    };
    let page = s.tracking.search_runs(&f.str_list("experiment_ids")?, &req).await?;
    // About 1 KB per run with a few params, tags and metrics.
    let size_hint = page.items.len() * 1024;
    let body = wire::RunPage {
        runs: page.items.iter().map(|r| wire::RunOut::new(r, true)).collect(),
        next_page_token: page.next_page_token,
    };
    Ok(wire::json_response(&body, size_hint))
}

async fn get_metric_history(State(s): State<Shared>, Req(f): Req) -> ApiResult<axum::response::Response> {
    let run_id = f.run_id()?;
    let key = f.req_str("metric_key")?;
    let page = s.tracking.metric_history(&run_id, &key, f.i64("max_results")?, f.str("page_token")?.as_deref()).await?;
    let body = wire::metric_page_json(&page.items, Some(&run_id), page.next_page_token.as_deref());
    Ok(axum::response::IntoResponse::into_response(([(axum::http::header::CONTENT_TYPE, "application/json")], body)))
}

async fn get_metric_history_bulk_interval(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let metrics = s
        .tracking
        .metric_history_bulk_interval(
            &f.str_list("run_ids")?,
            &f.req_str("metric_key")?,
            f.i64("start_step")?,
            f.i64("end_step")?,
            f.i64("max_results")?,
        )
        .await?;
    Ok(Json(wire::Obj::new().list("metrics", metrics.iter().map(wire::run_metric).collect()).build()))
}

// ---- logged models --------------------------------------------------------------------

async fn create_logged_model(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let model = s
        .tracking
        .create_logged_model(NewLoggedModelRequest {
            experiment_id: f.req_str("experiment_id")?,
            name: f.str("name")?,
            model_type: f.str("model_type")?,
            source_run_id: f.str("source_run_id")?,
            params: f.tags("params")?,
            tags: f.tags("tags")?,
        })
        .await?;
    Ok(Json(json!({"model": wire::logged_model(&model)})))
}

async fn get_logged_model(State(s): State<Shared>, Path(model_id): Path<String>) -> JsonResult {
    let model = s.tracking.get_logged_model(&model_id).await?;
    Ok(Json(json!({"model": wire::logged_model(&model)})))
}

async fn finalize_logged_model(State(s): State<Shared>, Path(model_id): Path<String>, Req(f): Req) -> JsonResult {
    let status = f.enum_name("status", LOGGED_MODEL_STATUSES)?.ok_or_else(|| missing("status"))?;
    let model = s.tracking.finalize_logged_model(&model_id, status).await?;
    Ok(Json(json!({"model": wire::logged_model(&model)})))
}

async fn delete_logged_model(State(s): State<Shared>, Path(model_id): Path<String>) -> JsonResult {
    s.tracking.delete_logged_model(&model_id).await?;
    empty()
}

async fn set_logged_model_tags(State(s): State<Shared>, Path(model_id): Path<String>, Req(f): Req) -> JsonResult {
    let model = s.tracking.set_logged_model_tags(&model_id, f.tags("tags")?).await?;
    Ok(Json(json!({"model": wire::logged_model(&model)})))
}

async fn delete_logged_model_tag(State(s): State<Shared>, Path((model_id, key)): Path<(String, String)>) -> JsonResult {
    s.tracking.delete_logged_model_tag(&model_id, &key).await?;
    empty()
}

async fn log_logged_model_params(State(s): State<Shared>, Path(model_id): Path<String>, Req(f): Req) -> JsonResult {
    s.tracking.log_logged_model_params(&model_id, f.tags("params")?).await?;
    empty()
}

async fn search_logged_models(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let mut order = Vec::new();
    for o in f.objects("order_by")? {
        order.push((o.req_str("field_name")?, o.bool("ascending")?.unwrap_or(true)));
    }
    let page = s
        .tracking
        .search_logged_models(
            &f.str_list("experiment_ids")?,
            f.str("filter")?.as_deref(),
            &order,
            f.i64("max_results")?,
            f.str("page_token")?.as_deref(),
        )
        .await?;
    Ok(paged("models", page.items.iter().map(wire::logged_model).collect(), page.next_page_token))
}

// ---- registry -------------------------------------------------------------------------

async fn create_registered_model(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let m = s
        .registry
        .create_registered_model(&f.req_str("name")?, f.str("description")?.as_deref(), f.tags("tags")?, None)
        .await?;
    Ok(Json(json!({"registered_model": wire::registered_model(&m)})))
}

async fn rename_registered_model(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let new_name = f.req_str("new_name")?;
    let m = s.registry.rename_registered_model(&f.req_str("name")?, &new_name).await?;
    Ok(Json(json!({"registered_model": wire::registered_model(&m)})))
}

async fn update_registered_model(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let m = s.registry.update_registered_model(&f.req_str("name")?, f.str("description")?.as_deref()).await?;
    Ok(Json(json!({"registered_model": wire::registered_model(&m)})))
}

async fn delete_registered_model(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.registry.delete_registered_model(&f.req_str("name")?).await?;
    empty()
}

async fn get_registered_model(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let m = s.registry.get_registered_model(&f.req_str("name")?).await?;
    Ok(Json(json!({"registered_model": wire::registered_model(&m)})))
}

async fn search_registered_models(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let page = s
        .registry
        .search_registered_models(
            f.str("filter")?.as_deref(),
            &f.str_list("order_by")?,
            f.i64("max_results")?,
            f.str("page_token")?.as_deref(),
        )
        .await?;
    Ok(paged("registered_models", page.items.iter().map(wire::registered_model).collect(), page.next_page_token))
}

async fn get_latest_versions(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let versions = s.registry.get_latest_versions(&f.req_str("name")?, &f.str_list("stages")?).await?;
    Ok(Json(wire::Obj::new().list("model_versions", versions.iter().map(wire::model_version).collect()).build()))
}

async fn set_registered_model_tag(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let value = f.str("value")?.ok_or_else(|| missing("value"))?;
    s.registry.set_registered_model_tag(&f.req_str("name")?, &f.req_str("key")?, &value).await?;
    empty()
}

async fn delete_registered_model_tag(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.registry.delete_registered_model_tag(&f.req_str("name")?, &f.req_str("key")?).await?;
    empty()
}

async fn set_alias(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.registry.set_alias(&f.req_str("name")?, &f.req_str("alias")?, &f.req_str("version")?).await?;
    empty()
}

async fn delete_alias(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.registry.delete_alias(&f.req_str("name")?, &f.req_str("alias")?).await?;
    empty()
}

async fn get_by_alias(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let v = s.registry.get_version_by_alias(&f.req_str("name")?, &f.req_str("alias")?).await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

async fn create_model_version(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let v = s
        .registry
        .create_model_version(NewVersionRequest {
            name: f.req_str("name")?,
            source: f.req_str("source")?,
            run_id: f.str("run_id")?,
            run_link: f.str("run_link")?,
            description: f.str("description")?,
            model_id: f.str("model_id")?,
            tags: f.tags("tags")?,
            user_id: None,
        })
        .await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

async fn update_model_version(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let v = s
        .registry
        .update_model_version(&f.req_str("name")?, &f.req_str("version")?, f.str("description")?.as_deref())
        .await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

async fn transition_stage(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let v = s
        .registry
        .transition_stage(
            &f.req_str("name")?,
            &f.req_str("version")?,
            &f.req_str("stage")?,
            f.bool("archive_existing_versions")?.unwrap_or(false),
        )
        .await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

async fn delete_model_version(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.registry.delete_model_version(&f.req_str("name")?, &f.req_str("version")?).await?;
    empty()
}

async fn get_model_version(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let v = s.registry.get_model_version(&f.req_str("name")?, &f.req_str("version")?).await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

async fn search_model_versions(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let page = s
        .registry
        .search_model_versions(
            f.str("filter")?.as_deref(),
            &f.str_list("order_by")?,
            f.i64("max_results")?,
            f.str("page_token")?.as_deref(),
        )
        .await?;
    Ok(paged("model_versions", page.items.iter().map(wire::model_version).collect(), page.next_page_token))
}

async fn get_download_uri(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let uri = s.registry.download_uri(&f.req_str("name")?, &f.req_str("version")?).await?;
    Ok(Json(json!({"artifact_uri": uri})))
}

async fn set_model_version_tag(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let value = f.str("value")?.ok_or_else(|| missing("value"))?;
    s.registry.set_model_version_tag(&f.req_str("name")?, &f.req_str("version")?, &f.req_str("key")?, &value).await?;
    empty()
}

async fn delete_model_version_tag(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    s.registry.delete_model_version_tag(&f.req_str("name")?, &f.req_str("version")?, &f.req_str("key")?).await?;
    empty()
}

// ---- traces ---------------------------------------------------------------------------

async fn start_trace_v3(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let trace = f.object("trace")?.ok_or_else(|| missing("trace"))?;
    let info = trace.object("trace_info")?.ok_or_else(|| missing("trace_info"))?;
    let location = info.object("trace_location")?.ok_or_else(|| missing("trace_location"))?;
    let experiment_id = location
        .object("mlflow_experiment")?
        .ok_or_else(|| ApiError::invalid("Only MLFLOW_EXPERIMENT trace locations are supported"))?
        .req_str("experiment_id")?;
    let experiment_id = kiln_tracking::validate::parse_experiment_id(&experiment_id)?;
    let request_time = match info.str("request_time")? {
        Some(t) => wire::ms_from_rfc3339(&t)
            .ok_or_else(|| ApiError::invalid(format!("Invalid value '{t}' for parameter 'request_time'")))?,
        None => kiln_store::now_ms(),
    };
    let execution_duration = info.str("execution_duration")?.and_then(|d| wire::ms_from_duration(&d));
    let state = info.enum_name("state", TRACE_STATES)?.unwrap_or("STATE_UNSPECIFIED");
    let stored = s
        .tracking
        .start_trace(TraceInfo {
            trace_id: info.str("trace_id")?.unwrap_or_default(),
            experiment_id,
            client_request_id: info.str("client_request_id")?,
            request_time,
            execution_duration,
            state: state.to_string(),
            request_preview: info.str("request_preview")?,
            response_preview: info.str("response_preview")?,
            metadata: info.map("trace_metadata")?,
            tags: info.map("tags")?,
        })
        .await?;
    Ok(Json(json!({"trace": {"trace_info": wire::trace_info_v3(&stored)}})))
}

async fn get_trace_info_v3(State(s): State<Shared>, Path(id): Path<String>) -> JsonResult {
    let t = s.tracking.get_trace(&id).await?;
    Ok(Json(json!({"trace": {"trace_info": wire::trace_info_v3(&t)}})))
}

async fn get_trace_info_v2(State(s): State<Shared>, Path(id): Path<String>) -> JsonResult {
    let t = s.tracking.get_trace(&id).await?;
    Ok(Json(json!({"trace_info": wire::trace_info_v2(&t)})))
}

async fn batch_get_trace_infos(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let traces = s.tracking.get_traces(&f.str_list("trace_ids")?).await?;
    Ok(Json(wire::Obj::new().list("trace_infos", traces.iter().map(wire::trace_info_v3).collect()).build()))
}

async fn search_traces_v3(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let mut experiment_ids = Vec::new();
    for loc in f.objects("locations")? {
        if let Some(e) = loc.object("mlflow_experiment")? {
            experiment_ids.push(e.req_str("experiment_id")?);
        }
    }
    experiment_ids.extend(f.str_list("experiment_ids")?);
    let req = SearchRequest {
        filter: f.str("filter")?,
        order_by: f.str_list("order_by")?,
        view: ViewType::All,
        max_results: f.i64("max_results")?,
        page_token: f.str("page_token")?,
    };
    let page = s.tracking.search_traces(&experiment_ids, &req).await?;
    Ok(paged("traces", page.items.iter().map(wire::trace_info_v3).collect(), page.next_page_token))
}

async fn search_traces_v2(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let req = SearchRequest {
        filter: f.str("filter")?,
        order_by: f.str_list("order_by")?,
        view: ViewType::All,
        max_results: f.i64("max_results")?,
        page_token: f.str("page_token")?,
    };
    let page = s.tracking.search_traces(&f.str_list("experiment_ids")?, &req).await?;
    Ok(paged("traces", page.items.iter().map(wire::trace_info_v2).collect(), page.next_page_token))
}

async fn set_trace_tag(State(s): State<Shared>, Path(id): Path<String>, Req(f): Req) -> JsonResult {
    let value = f.str("value")?.ok_or_else(|| missing("value"))?;
    s.tracking.set_trace_tag(&id, &f.req_str("key")?, &value).await?;
    empty()
}

async fn delete_trace_tag(State(s): State<Shared>, Path(id): Path<String>, Req(f): Req) -> JsonResult {
    s.tracking.delete_trace_tag(&id, &f.req_str("key")?).await?;
    empty()
}

async fn delete_traces(State(s): State<Shared>, Req(f): Req) -> JsonResult {
    let n = s
        .tracking
        .delete_traces(
            &f.req_str("experiment_id")?,
            &f.str_list("request_ids")?,
            f.i64("max_timestamp_millis")?,
            f.i64("max_traces")?,
        )
        .await?;
    Ok(Json(json!({"traces_deleted": n})))
}

async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        // Clients upload files over their multipart threshold (500 MB by default) in parts.
        "multipart_uploads_enabled": true,
        // Ranged downloads work when a client asks (MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD),
        // but advertising them would make every small download take two requests.
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {},
    }))
}

#[cfg(test)]
mod tests {
    use super::{PlainBatch, read_metric};
    use crate::fields::RawReq;

    /// What the general reader makes of a log-batch body.
    fn general(raw: &RawReq) -> String {
        let f = raw.fields().unwrap();
        let metrics: Vec<_> = f.objects("metrics").unwrap().iter().map(|m| read_metric(m).unwrap()).collect();
        format!("{:?}", (f.run_id().unwrap(), metrics, f.tags("params").unwrap(), f.tags("tags").unwrap()))
    }

    fn raw(body: &str, query: &str) -> RawReq {
        RawReq { body: body.as_bytes().to_vec().into(), query: query.into() }
    }

    #[test]
    fn plain_batches_read_as_the_general_reader_reads_them() {
        let plain = [
            r#"{"run_id":"r1","metrics":[{"key":"loss","value":0.5,"timestamp":7,"step":3},{"key":"a\"b","value":2,"timestamp":-1}],
                "params":[{"key":"p","value":"x"}],"tags":[{"key":"t","value":null},{"key":"u"}]}"#,
            r#"{"run_uuid":"r2","run_id":"","metrics":[{"key":"m","value":1e308,"timestamp":0,"step":null,"model_id":"","dataset_name":"d","dataset_digest":null}]}"#,
            r#"{"run_id":"r3","metrics":null,"params":[],"tags":null}"#,
        ];
        for body in plain {
            let r = raw(body, "");
            let fast = PlainBatch::read(&r).unwrap_or_else(|| panic!("not plain: {body}"));
            assert_eq!(format!("{fast:?}"), general(&r), "{body}");
        }
        // Everything else goes to the general reader, which has the answers and the errors.
        let other = [
            (r#"{"runId":"r1","metrics":[]}"#, ""),
            (r#"{"run_id":"r1","metrics":[{"key":"m","value":"NaN","timestamp":1}]}"#, ""),
            (r#"{"run_id":"r1","metrics":[{"key":"m","value":1,"timestamp":1.0}]}"#, ""),
            (r#"{"run_id":"r1","metrics":[{"key":"m","value":true,"timestamp":1}]}"#, ""),
            (r#"{"run_id":"r1","metrics":[{"key":"","value":1,"timestamp":1}]}"#, ""),
            (r#"{"run_id":"r1","metrics":[{"key":"m","value":1}]}"#, ""),
            (r#"{"run_id":"r1","params":[{"key":"p","value":"a\u0000b"}]}"#, ""),
            (r#"{"run_id":"r1","params":[{"key":"","value":"v"}]}"#, ""),
            (r#"{"run_id":"","metrics":[]}"#, ""),
            (r#"{"run_id":"r1","extra":1}"#, ""),
            (r#""{\"run_id\":\"r1\"}""#, ""),
            (r#"{"run_id":"r1"}"#, "tags=x"),
            ("not json", ""),
        ];
        for (body, query) in other {
            assert!(PlainBatch::read(&raw(body, query)).is_none(), "{body} ?{query}");
        }
    }
}
