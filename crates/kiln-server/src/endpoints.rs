//! Online endpoints: the control plane under `/api/v1/online-endpoints` and the data plane,
//! `POST /endpoints/{name}/score` (each endpoint's scoring URI) and `GET /metrics`.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::*;
use kiln_serving::{Credentials, DeploymentView, EndpointView};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::Shared;
use crate::error::{ApiResult, body, query};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_endpoint,
        list_endpoints,
        get_endpoint,
        update_endpoint,
        delete_endpoint,
        endpoint_credentials,
        regenerate_keys,
        create_deployment,
        list_deployments,
        get_deployment,
        update_deployment,
        delete_deployment,
        deployment_logs
    ),
    components(schemas(
        EndpointSpec,
        OnlineEndpointUpdate,
        OnlineEndpoint,
        OnlineEndpointList,
        EndpointCredentials,
        RegenerateKeys,
        OnlineDeploymentCreate,
        OnlineDeployment,
        OnlineDeploymentList,
        DeploymentModel,
        RequestSettings,
        Probe,
        TensorSpec,
        DeploymentLogs
    ))
)]
pub(crate) struct EndpointsDoc;

/// The largest scoring request read.
const SCORE_BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/online-endpoints", post(create_endpoint).get(list_endpoints))
        .route("/online-endpoints/{name}", get(get_endpoint).patch(update_endpoint).delete(delete_endpoint))
        .route("/online-endpoints/{name}/credentials", get(endpoint_credentials))
        .route("/online-endpoints/{name}/regenerate-keys", post(regenerate_keys))
        .route("/online-endpoints/{name}/deployments", post(create_deployment).get(list_deployments))
        .route(
            "/online-endpoints/{name}/deployments/{deployment}",
            get(get_deployment).put(update_deployment).delete(delete_deployment),
        )
        .route("/online-endpoints/{name}/deployments/{deployment}/logs", get(deployment_logs))
}

/// Routes outside `/api/v1`: scoring URIs and the metrics scrape.
pub fn data_plane() -> Router<Shared> {
    Router::new()
        .route("/endpoints/{name}/score", post(score).layer(DefaultBodyLimit::max(SCORE_BODY_LIMIT)))
        .route("/metrics", get(metrics))
}

/// The server's own address as the client reached it, for absolute scoring URIs.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn endpoint(e: EndpointView, base: &str) -> OnlineEndpoint {
    OnlineEndpoint {
        scoring_uri: format!("{base}{}", e.scoring_path),
        name: e.name,
        auth_mode: e.auth_mode,
        description: e.description,
        tags: e.tags,
        traffic: e.traffic,
        mirror_traffic: e.mirror_traffic,
        provisioning_state: e.provisioning_state,
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

fn probe(p: kiln_serving::Probe) -> Probe {
    Probe {
        initial_delay: p.initial_delay,
        period: p.period,
        timeout: p.timeout,
        success_threshold: p.success_threshold,
        failure_threshold: p.failure_threshold,
    }
}

fn deployment(d: DeploymentView) -> OnlineDeployment {
    let s = d.request_settings;
    OnlineDeployment {
        name: d.name,
        endpoint_name: d.endpoint_name,
        description: d.description,
        tags: d.tags,
        model: d.model.map(|m| DeploymentModel { label: m.label, name: m.name, version: m.version, uri: m.uri }),
        scoring_script: d.scoring_script,
        environment: d.environment,
        runtime: d.runtime,
        instance_count: d.instance_count,
        ready_instances: d.ready_instances,
        request_settings: RequestSettings {
            request_timeout_ms: s.request_timeout_ms,
            max_concurrent_requests_per_instance: s.max_concurrent_requests_per_instance,
            max_queue_wait_ms: s.max_queue_wait_ms,
        },
        liveness_probe: probe(d.liveness_probe),
        readiness_probe: probe(d.readiness_probe),
        provisioning_state: d.provisioning_state,
        message: d.message,
        inputs: d.inputs.into_iter().map(|i| TensorSpec { name: i.name, dtype: i.dtype, shape: i.shape }).collect(),
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

/// A spec sent by a client, for the serving service (errors name `endpoint.yml` when the
/// client named no file).
pub(crate) fn spec(spec: String, source: Option<String>, overrides: Vec<String>) -> kiln_serving::EndpointCreate {
    kiln_serving::EndpointCreate { spec, source: source.unwrap_or_else(|| "endpoint.yml".into()), overrides }
}

#[utoipa::path(post, path = "/api/v1/online-endpoints", request_body = EndpointSpec,
    responses((status = 200, body = OnlineEndpoint), (status = 400, body = ErrorBody)))]
async fn create_endpoint(
    State(s): State<Shared>,
    headers: HeaderMap,
    b: Result<Json<EndpointSpec>, JsonRejection>,
) -> ApiResult<Json<OnlineEndpoint>> {
    let b = body(b)?;
    let e = s.serving.create_endpoint(spec(b.spec, b.source, b.overrides)).await?;
    Ok(Json(endpoint(e, &base_url(&headers))))
}

#[utoipa::path(get, path = "/api/v1/online-endpoints", responses((status = 200, body = OnlineEndpointList)))]
async fn list_endpoints(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Json<OnlineEndpointList>> {
    let base = base_url(&headers);
    let endpoints = s.serving.list_endpoints().await?.into_iter().map(|e| endpoint(e, &base)).collect();
    Ok(Json(OnlineEndpointList { endpoints }))
}

#[utoipa::path(get, path = "/api/v1/online-endpoints/{name}",
    responses((status = 200, body = OnlineEndpoint), (status = 404, body = ErrorBody)))]
async fn get_endpoint(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<OnlineEndpoint>> {
    Ok(Json(endpoint(s.serving.get_endpoint(&name).await?, &base_url(&headers))))
}

#[utoipa::path(patch, path = "/api/v1/online-endpoints/{name}", request_body = OnlineEndpointUpdate,
    responses((status = 200, body = OnlineEndpoint), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_endpoint(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    b: Result<Json<OnlineEndpointUpdate>, JsonRejection>,
) -> ApiResult<Json<OnlineEndpoint>> {
    let b = body(b)?;
    let update = kiln_serving::EndpointUpdate {
        spec: b.spec.map(|text| spec(text, b.source, b.overrides)),
        traffic: b.traffic,
        mirror_traffic: b.mirror_traffic,
    };
    Ok(Json(endpoint(s.serving.update_endpoint(&name, update).await?, &base_url(&headers))))
}

#[utoipa::path(delete, path = "/api/v1/online-endpoints/{name}",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_endpoint(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    s.serving.delete_endpoint(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/online-endpoints/{name}/credentials",
    responses((status = 200, body = EndpointCredentials), (status = 404, body = ErrorBody)))]
async fn endpoint_credentials(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult<Json<EndpointCredentials>> {
    Ok(Json(match s.serving.credentials(&name).await? {
        Credentials::Keys { primary_key, secondary_key } => EndpointCredentials {
            primary_key: Some(primary_key),
            secondary_key: Some(secondary_key),
            ..Default::default()
        },
        Credentials::Token { access_token, token_type, expiry_time_utc, refresh_after_time_utc } => {
            EndpointCredentials {
                access_token: Some(access_token),
                token_type: Some(token_type),
                expiry_time_utc: Some(expiry_time_utc),
                refresh_after_time_utc: Some(refresh_after_time_utc),
                ..Default::default()
            }
        }
    }))
}

#[utoipa::path(post, path = "/api/v1/online-endpoints/{name}/regenerate-keys", request_body = RegenerateKeys,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn regenerate_keys(
    State(s): State<Shared>,
    Path(name): Path<String>,
    b: Result<Json<RegenerateKeys>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let b = body(b)?;
    s.serving.regenerate_key(&name, &b.key_type).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn deployment_request(b: OnlineDeploymentCreate) -> kiln_serving::DeploymentCreate {
    kiln_serving::DeploymentCreate { spec: spec(b.spec, b.source, b.overrides), all_traffic: b.all_traffic }
}

#[utoipa::path(post, path = "/api/v1/online-endpoints/{name}/deployments", request_body = OnlineDeploymentCreate,
    responses((status = 200, body = OnlineDeployment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_deployment(
    State(s): State<Shared>,
    Path(name): Path<String>,
    b: Result<Json<OnlineDeploymentCreate>, JsonRejection>,
) -> ApiResult<Json<OnlineDeployment>> {
    let b = body(b)?;
    Ok(Json(deployment(s.serving.put_deployment(&name, deployment_request(b), false).await?)))
}

#[utoipa::path(get, path = "/api/v1/online-endpoints/{name}/deployments",
    responses((status = 200, body = OnlineDeploymentList), (status = 404, body = ErrorBody)))]
async fn list_deployments(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<OnlineDeploymentList>> {
    let deployments = s.serving.list_deployments(&name).await?.into_iter().map(deployment).collect();
    Ok(Json(OnlineDeploymentList { deployments }))
}

#[utoipa::path(get, path = "/api/v1/online-endpoints/{name}/deployments/{deployment}",
    responses((status = 200, body = OnlineDeployment), (status = 404, body = ErrorBody)))]
async fn get_deployment(
    State(s): State<Shared>,
    Path((name, dep)): Path<(String, String)>,
) -> ApiResult<Json<OnlineDeployment>> {
    Ok(Json(deployment(s.serving.get_deployment(&name, &dep).await?)))
}

#[utoipa::path(put, path = "/api/v1/online-endpoints/{name}/deployments/{deployment}", request_body = OnlineDeploymentCreate,
    responses((status = 200, body = OnlineDeployment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_deployment(
    State(s): State<Shared>,
    Path((name, dep)): Path<(String, String)>,
    b: Result<Json<OnlineDeploymentCreate>, JsonRejection>,
) -> ApiResult<Json<OnlineDeployment>> {
    let mut b = body(b)?;
    // The path names the deployment, whatever the spec or its overrides say.
    b.overrides.push(format!("name={dep}"));
    Ok(Json(deployment(s.serving.put_deployment(&name, deployment_request(b), true).await?)))
}

#[utoipa::path(delete, path = "/api/v1/online-endpoints/{name}/deployments/{deployment}",
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_deployment(
    State(s): State<Shared>,
    Path((name, dep)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.serving.delete_deployment(&name, &dep).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
struct LogsQuery {
    /// The last this many lines (default 5000).
    lines: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/online-endpoints/{name}/deployments/{deployment}/logs", params(LogsQuery),
    responses((status = 200, body = DeploymentLogs), (status = 404, body = ErrorBody)))]
async fn deployment_logs(
    State(s): State<Shared>,
    Path((name, dep)): Path<(String, String)>,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> ApiResult<Json<DeploymentLogs>> {
    let q = query(q)?;
    let content = s.serving.deployment_logs(&name, &dep, q.lines.unwrap_or(5000)).await?;
    Ok(Json(DeploymentLogs { content }))
}

const DEPLOYMENT_HEADER: &str = "azureml-model-deployment";

async fn score(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
    let request = kiln_serving::ScoreRequest {
        body,
        content_type: text(header::CONTENT_TYPE.as_str()),
        authorization: text(header::AUTHORIZATION.as_str()),
        deployment: text(DEPLOYMENT_HEADER),
    };
    let answer = s.serving.score(&name, request).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response =
        (status, [(header::CONTENT_TYPE, answer.content_type.into_owned())], answer.body).into_response();
    if let Some(d) = answer.deployment.and_then(|d| HeaderValue::from_str(&d).ok()) {
        response.headers_mut().insert(HeaderName::from_static(DEPLOYMENT_HEADER), d);
    }
    response
}

async fn metrics(State(s): State<Shared>) -> Response {
    ([(header::CONTENT_TYPE, kiln_serving::metrics::CONTENT_TYPE)], s.serving.metrics_text()).into_response()
}
