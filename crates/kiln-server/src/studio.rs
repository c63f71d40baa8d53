//! The studio's routes under `/ui`: pages rendered by `kiln-studio`, its embedded assets, and
//! error pages in HTML with the status the error stands for.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kiln_studio::{ExperimentQuery, StudioError};
use kiln_tracking::ErrorKind;
use serde::Deserialize;

use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route("/ui/experiments", get(experiments))
        .route("/ui/experiments/{id}", get(experiment))
        .route("/ui/runs/{id}", get(run))
        .route("/ui/compare", get(compare))
        .route("/ui/endpoints", get(|State(s): State<Shared>| async move { page(s.studio.endpoints().await) }))
        .route("/ui/endpoints/{name}", get(endpoint))
        .route("/ui/models", get(|State(s): State<Shared>| async move { page(s.studio.models().await) }))
        .route("/ui/data", get(|State(s): State<Shared>| async move { page(s.studio.data().await) }))
        .route("/ui/environments", get(|State(s): State<Shared>| async move { page(s.studio.environments().await) }))
        .route("/ui/components", get(|State(s): State<Shared>| async move { page(s.studio.components().await) }))
        .route("/ui/schedules", get(|State(s): State<Shared>| async move { page(s.studio.schedules().await) }))
        .route("/ui/jobs", get(jobs))
        .route("/ui/jobs/{name}", get(job))
        .route("/ui/jobs/{name}/cancel", post(cancel_job))
        .route("/ui/static/{*path}", get(asset))
}

fn page(result: kiln_studio::Result<String>) -> Response {
    match result {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            let status = match &e {
                StudioError::Service(s) => match s.kind {
                    ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    ErrorKind::InvalidParameter | ErrorKind::AlreadyExists => StatusCode::BAD_REQUEST,
                    ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
                    ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                },
                StudioError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let message = e.to_string().replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            let body = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Kiln studio</title>\
                 <link rel=\"stylesheet\" href=\"/ui/static/studio.css\"></head><body><main><h1>{}</h1>\
                 <p class=\"error\" role=\"alert\">{message}</p><p><a href=\"/ui\">Back to the workspace</a></p></main></body></html>",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Error")
            );
            (status, Html(body)).into_response()
        }
    }
}

async fn home(State(s): State<Shared>) -> Response {
    page(s.studio.home().await)
}

async fn experiments(State(s): State<Shared>) -> Response {
    page(s.studio.experiments().await)
}

#[derive(Deserialize, Default)]
struct ExperimentParams {
    filter: Option<String>,
    order_by: Option<String>,
    page_token: Option<String>,
    columns: Option<String>,
}

async fn experiment(
    State(s): State<Shared>,
    Path(id): Path<String>,
    q: Result<Query<ExperimentParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let query =
        ExperimentQuery { filter: q.filter, order_by: q.order_by, page_token: q.page_token, columns: q.columns };
    page(s.studio.experiment(&id, &query).await)
}

#[derive(Deserialize, Default)]
struct RunParams {
    artifact: Option<String>,
    /// `step` (default) or `time`.
    x: Option<String>,
    /// Read leniently: an empty or odd box means no smoothing, not a lost request.
    smooth: Option<String>,
    /// `log` for a log scale.
    scale: Option<String>,
}

async fn run(
    State(s): State<Shared>,
    Path(id): Path<String>,
    q: Result<Query<RunParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let options = kiln_studio::chart::ChartOptions {
        by_time: q.x.as_deref() == Some("time"),
        smoothing: q
            .smooth
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .unwrap_or(0.0)
            .clamp(0.0, 0.99),
        log_scale: q.scale.as_deref() == Some("log"),
    };
    page(s.studio.run(&id, q.artifact.as_deref(), &options).await)
}

/// `/ui/compare?runs=a&runs=b` (the experiment page's checkboxes), or `runs=a,b`.
async fn compare(State(s): State<Shared>, uri: axum::http::Uri) -> Response {
    let runs: Vec<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "runs")
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect();
    page(s.studio.compare(&runs).await)
}

#[derive(Deserialize, Default)]
struct JobsParams {
    status: Option<String>,
}

async fn endpoint(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    page(s.studio.endpoint(&name).await)
}

async fn jobs(
    State(s): State<Shared>,
    q: Result<Query<JobsParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    page(s.studio.jobs(q.status.as_deref()).await)
}

async fn job(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    page(s.studio.job(&name).await)
}

/// Whether a form post came from the studio's own pages: the browser says so in
/// `Sec-Fetch-Site`, or (older browsers) in `Origin`, which must name this server. A page on
/// another site cannot cancel jobs on the user's behalf.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, h)| h) == Some(host),
        // No browser sent it (a script, curl): nothing to protect against.
        (None, _) => true,
        _ => false,
    }
}

/// The job page's cancel button: cancels, then shows the job again (303, so a reload does
/// not post twice).
async fn cancel_job(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, Html("<p>Cross-site requests cannot cancel jobs.</p>".to_string()))
            .into_response();
    }
    match s.studio.cancel_job(&name).await {
        Ok(()) => Redirect::to(&format!("/ui/jobs/{name}")).into_response(),
        Err(e) => page(Err(e)),
    }
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some((content_type, data, etag)) = kiln_studio::asset(&path) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "no-cache".into()),
        ],
        data,
    )
        .into_response()
}
