//! `/api/v1/schedules`: schedules that submit jobs on a cron or recurrence trigger.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::*;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::Shared;
use crate::error::{ApiError, ApiResult, body, query};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create_schedule, list_schedules, get_schedule, enable_schedule, disable_schedule, delete_schedule),
    components(schemas(ScheduleCreate, Schedule, ScheduleFire, SchedulePage))
)]
pub(crate) struct SchedulesDoc;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/schedules", post(create_schedule).get(list_schedules))
        .route("/schedules/{name}", get(get_schedule).delete(delete_schedule))
        .route("/schedules/{name}/enable", post(enable_schedule))
        .route("/schedules/{name}/disable", post(disable_schedule))
}

fn schedule(s: kiln_orchestrator::ScheduleView) -> Schedule {
    Schedule {
        name: s.name,
        display_name: s.display_name,
        description: s.description,
        tags: s.tags,
        is_enabled: s.enabled,
        trigger_type: s.trigger_type,
        trigger: s.trigger,
        time_zone: s.time_zone,
        start_time: s.start_time,
        end_time: s.end_time,
        create_job: s.create_job,
        next_fire_at: s.next_fire_at,
        created_at: s.created_at,
        updated_at: s.updated_at,
        fires: s
            .fires
            .into_iter()
            .map(|f| ScheduleFire { at: f.at, status: f.status, job_name: f.job_name, message: f.message })
            .collect(),
        spec: s.spec,
        warnings: s.warnings,
    }
}

#[utoipa::path(post, path = "/api/v1/schedules", request_body = ScheduleCreate,
    responses((status = 200, body = Schedule), (status = 400, body = ErrorBody)))]
async fn create_schedule(
    State(s): State<Shared>,
    b: Result<Json<ScheduleCreate>, JsonRejection>,
) -> ApiResult<Json<Schedule>> {
    let b = body(b)?;
    let view = s.orchestrator.put_schedule(&b.spec, b.source.as_deref().unwrap_or_default()).await?;
    Ok(Json(schedule(view)))
}

#[derive(Deserialize, IntoParams)]
struct ScheduleListQuery {
    /// `exclude` (the default: enabled schedules only), `include` (all) or `only` (disabled
    /// schedules only).
    disabled: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/schedules", params(ScheduleListQuery), responses((status = 200, body = SchedulePage)))]
async fn list_schedules(
    State(s): State<Shared>,
    q: Result<Query<ScheduleListQuery>, QueryRejection>,
) -> ApiResult<Json<SchedulePage>> {
    let q = query(q)?;
    let enabled = match q.disabled.as_deref() {
        None | Some("") | Some("exclude") => Some(true),
        Some("include") => None,
        Some("only") => Some(false),
        Some(other) => return Err(ApiError::invalid(format!("disabled: '{other}': use exclude, include or only"))),
    };
    let list = s.orchestrator.list_schedules(enabled).await?;
    Ok(Json(SchedulePage { schedules: list.into_iter().map(schedule).collect() }))
}

#[utoipa::path(get, path = "/api/v1/schedules/{name}", responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
async fn get_schedule(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Schedule>> {
    Ok(Json(schedule(s.orchestrator.get_schedule(&name).await?)))
}

#[utoipa::path(post, path = "/api/v1/schedules/{name}/enable", responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
async fn enable_schedule(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Schedule>> {
    Ok(Json(schedule(s.orchestrator.set_schedule_enabled(&name, true).await?)))
}

#[utoipa::path(post, path = "/api/v1/schedules/{name}/disable", responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
async fn disable_schedule(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Schedule>> {
    Ok(Json(schedule(s.orchestrator.set_schedule_enabled(&name, false).await?)))
}

/// Deletes a schedule; the jobs it created are kept.
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_schedule(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    s.orchestrator.delete_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
