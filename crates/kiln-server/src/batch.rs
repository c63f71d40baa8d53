//! Batch endpoints under `/api/v1/batch-endpoints`: endpoints, deployments, invocations (each
//! a command job) and the jobs an endpoint created.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use kiln_api::*;
use kiln_serving::batch::{BatchDeploymentView, BatchEndpointView, BatchInvocation};

use crate::endpoints::spec;
use crate::error::{ApiResult, body};
use crate::jobs::job;
use crate::{Identity, Shared};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_endpoint,
        list_endpoints,
        get_endpoint,
        update_endpoint,
        delete_endpoint,
        invoke,
        list_jobs,
        create_deployment,
        list_deployments,
        get_deployment,
        update_deployment,
        delete_deployment
    ),
    components(schemas(
        BatchEndpoint,
        BatchEndpointList,
        BatchEndpointUpdate,
        BatchDeploymentCreate,
        BatchDeployment,
        BatchDeploymentList,
        BatchSettings,
        BatchInvoke
    ))
)]
pub(crate) struct BatchDoc;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/batch-endpoints", post(create_endpoint).get(list_endpoints))
        .route("/batch-endpoints/{name}", get(get_endpoint).patch(update_endpoint).delete(delete_endpoint))
        .route("/batch-endpoints/{name}/invoke", post(invoke))
        .route("/batch-endpoints/{name}/jobs", get(list_jobs))
        .route("/batch-endpoints/{name}/deployments", post(create_deployment).get(list_deployments))
        .route(
            "/batch-endpoints/{name}/deployments/{deployment}",
            get(get_deployment).put(update_deployment).delete(delete_deployment),
        )
}

fn endpoint(e: BatchEndpointView) -> BatchEndpoint {
    BatchEndpoint {
        name: e.name,
        description: e.description,
        tags: e.tags,
        default_deployment: e.default_deployment,
        deployments: e.deployments,
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

fn deployment(d: BatchDeploymentView) -> BatchDeployment {
    let s = d.settings;
    BatchDeployment {
        name: d.name,
        endpoint_name: d.endpoint_name,
        description: d.description,
        tags: d.tags,
        model: DeploymentModel { label: d.model.label, name: d.model.name, version: d.model.version, uri: d.model.uri },
        scoring_script: d.scoring_script,
        environment: d.environment,
        instance_count: d.instance_count,
        settings: BatchSettings {
            max_concurrency_per_instance: s.max_concurrency_per_instance,
            mini_batch_size: s.mini_batch_size,
            output_action: s.output_action,
            output_file_name: s.output_file_name,
            max_retries: s.max_retries,
            retry_timeout_s: s.retry_timeout_s,
            error_threshold: s.error_threshold,
            logging_level: s.logging_level,
            environment_variables: s.environment_variables,
        },
        provisioning_state: d.provisioning_state,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

#[utoipa::path(post, path = "/api/v1/batch-endpoints", request_body = EndpointSpec,
    responses((status = 200, body = BatchEndpoint), (status = 400, body = ErrorBody)))]
async fn create_endpoint(
    State(s): State<Shared>,
    b: Result<Json<EndpointSpec>, JsonRejection>,
) -> ApiResult<Json<BatchEndpoint>> {
    let b = body(b)?;
    Ok(Json(endpoint(s.serving.create_batch_endpoint(spec(b.spec, b.source, b.overrides)).await?)))
}

#[utoipa::path(get, path = "/api/v1/batch-endpoints", responses((status = 200, body = BatchEndpointList)))]
async fn list_endpoints(State(s): State<Shared>) -> ApiResult<Json<BatchEndpointList>> {
    let endpoints = s.serving.list_batch_endpoints().await?.into_iter().map(endpoint).collect();
    Ok(Json(BatchEndpointList { endpoints }))
}

#[utoipa::path(get, path = "/api/v1/batch-endpoints/{name}",
    responses((status = 200, body = BatchEndpoint), (status = 404, body = ErrorBody)))]
async fn get_endpoint(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<BatchEndpoint>> {
    Ok(Json(endpoint(s.serving.get_batch_endpoint(&name).await?)))
}

#[utoipa::path(patch, path = "/api/v1/batch-endpoints/{name}", request_body = BatchEndpointUpdate,
    responses((status = 200, body = BatchEndpoint), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_endpoint(
    State(s): State<Shared>,
    Path(name): Path<String>,
    b: Result<Json<BatchEndpointUpdate>, JsonRejection>,
) -> ApiResult<Json<BatchEndpoint>> {
    let b = body(b)?;
    let spec_req = b.spec.map(|text| spec(text, b.source, b.overrides));
    Ok(Json(endpoint(s.serving.update_batch_endpoint(&name, spec_req, b.default_deployment).await?)))
}

#[utoipa::path(delete, path = "/api/v1/batch-endpoints/{name}",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_endpoint(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    s.serving.delete_batch_endpoint(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/batch-endpoints/{name}/invoke", request_body = BatchInvoke,
    responses((status = 200, body = Job), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn invoke(
    State(s): State<Shared>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    b: Result<Json<BatchInvoke>, JsonRejection>,
) -> ApiResult<Json<Job>> {
    let b = body(b)?;
    let inv = BatchInvocation {
        deployment: b.deployment_name,
        input: b.input,
        input_type: b.input_type,
        mini_batch_size: b.mini_batch_size,
        instance_count: b.instance_count,
        output_file_name: b.output_file_name,
        job_name: b.job_name,
        user: identity.user,
    };
    Ok(Json(job(s.serving.invoke_batch(&name, inv).await?)))
}

#[utoipa::path(get, path = "/api/v1/batch-endpoints/{name}/jobs",
    responses((status = 200, body = JobPage), (status = 404, body = ErrorBody)))]
async fn list_jobs(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<JobPage>> {
    Ok(Json(JobPage { jobs: s.serving.batch_jobs(&name).await?.into_iter().map(job).collect() }))
}

#[utoipa::path(post, path = "/api/v1/batch-endpoints/{name}/deployments", request_body = BatchDeploymentCreate,
    responses((status = 200, body = BatchDeployment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_deployment(
    State(s): State<Shared>,
    Path(name): Path<String>,
    b: Result<Json<BatchDeploymentCreate>, JsonRejection>,
) -> ApiResult<Json<BatchDeployment>> {
    let b = body(b)?;
    let req = spec(b.spec, b.source, b.overrides);
    Ok(Json(deployment(s.serving.put_batch_deployment(&name, req, b.set_default, false).await?)))
}

#[utoipa::path(get, path = "/api/v1/batch-endpoints/{name}/deployments",
    responses((status = 200, body = BatchDeploymentList), (status = 404, body = ErrorBody)))]
async fn list_deployments(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<BatchDeploymentList>> {
    let deployments = s.serving.list_batch_deployments(&name).await?.into_iter().map(deployment).collect();
    Ok(Json(BatchDeploymentList { deployments }))
}

#[utoipa::path(get, path = "/api/v1/batch-endpoints/{name}/deployments/{deployment}",
    responses((status = 200, body = BatchDeployment), (status = 404, body = ErrorBody)))]
async fn get_deployment(
    State(s): State<Shared>,
    Path((name, dep)): Path<(String, String)>,
) -> ApiResult<Json<BatchDeployment>> {
    Ok(Json(deployment(s.serving.get_batch_deployment(&name, &dep).await?)))
}

#[utoipa::path(put, path = "/api/v1/batch-endpoints/{name}/deployments/{deployment}", request_body = BatchDeploymentCreate,
    responses((status = 200, body = BatchDeployment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_deployment(
    State(s): State<Shared>,
    Path((name, dep)): Path<(String, String)>,
    b: Result<Json<BatchDeploymentCreate>, JsonRejection>,
) -> ApiResult<Json<BatchDeployment>> {
    let mut b = body(b)?;
    b.overrides.push(format!("name={dep}"));
    let req = spec(b.spec, b.source, b.overrides);
    Ok(Json(deployment(s.serving.put_batch_deployment(&name, req, b.set_default, true).await?)))
}

#[utoipa::path(delete, path = "/api/v1/batch-endpoints/{name}/deployments/{deployment}",
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_deployment(
    State(s): State<Shared>,
    Path((name, dep)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.serving.delete_batch_deployment(&name, &dep).await?;
    Ok(StatusCode::NO_CONTENT)
}
