//! `/api/v1` routes for jobs, compute targets and content-addressed uploads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use futures::TryStreamExt;
use kiln_api::*;
use kiln_blobs::snapshot;
use serde::Deserialize;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, body, query};
use crate::{Identity, Shared};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_job,
        list_jobs,
        get_job,
        update_job,
        cancel_job,
        pipeline_graph,
        sweep_trials,
        archive_job,
        restore_job,
        job_log,
        output_files,
        list_computes,
        get_compute,
        create_compute,
        missing_blobs,
        put_blob,
        create_snapshot
    ),
    components(schemas(
        JobCreate,
        Job,
        JobTransition,
        JobOutput,
        JobPage,
        JobUpdate,
        PipelineStep,
        PipelineGraph,
        SweepTrials,
        SweepParameter,
        SweepTrial,
        OutputFile,
        OutputFiles,
        ComputeTarget,
        ComputeCreate,
        ComputePage,
        BlobQuery,
        BlobsMissing,
        SnapshotFile,
        SnapshotCreate,
        Snapshot
    ))
)]
pub(crate) struct JobsDoc;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/jobs", post(create_job).get(list_jobs))
        .route("/jobs/{name}", get(get_job).patch(update_job))
        .route("/jobs/{name}/cancel", post(cancel_job))
        .route("/jobs/{name}/graph", get(pipeline_graph))
        .route("/jobs/{name}/trials", get(sweep_trials))
        .route("/jobs/{name}/archive", post(archive_job))
        .route("/jobs/{name}/restore", post(restore_job))
        .route("/jobs/{name}/log", get(job_log))
        .route("/jobs/{name}/outputs/{output}", get(output_files))
        .route("/computes", get(list_computes).post(create_compute))
        .route("/computes/{name}", get(get_compute))
        .route("/blobs/missing", post(missing_blobs))
        .route("/blobs/{digest}", put(put_blob))
        .route("/snapshots", post(create_snapshot))
}

pub(crate) fn job(j: kiln_orchestrator::Job) -> Job {
    Job {
        run_id: j.name.clone(),
        name: j.name,
        kind: j.kind,
        display_name: j.display_name,
        description: j.description,
        status: j.status.as_str().to_string(),
        failure: j.failure,
        experiment_id: j.experiment_id,
        experiment_name: j.experiment_name,
        compute: j.compute,
        command: j.command,
        environment: j.environment,
        created_at: j.created_at,
        updated_at: j.updated_at,
        transitions: j.transitions.into_iter().map(|(s, at)| JobTransition { status: s.as_str().into(), at }).collect(),
        tags: j.tags,
        properties: j.properties,
        archived: j.archived,
        outputs: j
            .outputs
            .into_iter()
            .map(|(k, o)| {
                (
                    k,
                    JobOutput {
                        uri: o.uri,
                        data_type: o.data_type,
                        asset_name: o.asset_name,
                        asset_version: o.asset_version,
                    },
                )
            })
            .collect(),
        spec: j.spec,
        warnings: j.warnings,
    }
}

#[utoipa::path(post, path = "/api/v1/jobs", request_body = JobCreate,
    responses((status = 200, body = Job), (status = 400, body = ErrorBody)))]
async fn create_job(
    State(s): State<Shared>,
    Extension(identity): Extension<Identity>,
    b: Result<Json<JobCreate>, JsonRejection>,
) -> ApiResult<Json<Job>> {
    let b = body(b)?;
    let sub = kiln_orchestrator::Submission { spec: b.spec, source: b.source.unwrap_or_default(), user: identity.user };
    Ok(Json(job(s.orchestrator.submit(sub).await?)))
}

#[derive(Deserialize, IntoParams)]
struct JobListQuery {
    /// `include` to list archived jobs too, `only` for archived jobs alone.
    archived: Option<String>,
    max_results: Option<i64>,
    /// The steps of this pipeline job (top-level jobs when left out).
    parent_job_name: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/jobs", params(JobListQuery), responses((status = 200, body = JobPage)))]
async fn list_jobs(
    State(s): State<Shared>,
    q: Result<Query<JobListQuery>, QueryRejection>,
) -> ApiResult<Json<JobPage>> {
    let q = query(q)?;
    let archived_only = match q.archived.as_deref() {
        None | Some("") | Some("exclude") => None,
        Some("include") => Some(false),
        Some("only") => Some(true),
        Some(other) => return Err(ApiError::invalid(format!("archived: '{other}': use exclude, include or only"))),
    };
    if let Some(m) = q.max_results
        && m < 1
    {
        return Err(ApiError::invalid("max_results must be at least 1"));
    }
    let list = kiln_orchestrator::ListJobs { archived_only, limit: q.max_results, parent: q.parent_job_name };
    let jobs = s.orchestrator.list(&list).await?;
    Ok(Json(JobPage { jobs: jobs.into_iter().map(job).collect() }))
}

#[utoipa::path(get, path = "/api/v1/jobs/{name}", params(("name" = String, Path, description = "Job name")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
async fn get_job(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    Ok(Json(job(s.orchestrator.get(&name).await?)))
}

/// A pipeline job's steps (with their jobs, statuses and reuse) and edges.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/graph", params(("name" = String, Path, description = "Pipeline job name")),
    responses((status = 200, body = PipelineGraph), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn pipeline_graph(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<PipelineGraph>> {
    let steps = s.orchestrator.pipeline_steps(&name).await?;
    let edges =
        steps.iter().flat_map(|st| st.after.iter().map(|a| [a.clone(), st.name.clone()]).collect::<Vec<_>>()).collect();
    let nodes = steps
        .into_iter()
        .map(|st| PipelineStep {
            name: st.name,
            component: st.component,
            job: st.job,
            status: st.status.map(|x| x.as_str().to_string()),
            reused_from: st.reused_from,
            reuse: st.reuse,
            attempts: st.attempts,
        })
        .collect();
    Ok(Json(PipelineGraph { nodes, edges }))
}

/// A sweep job's search space, trials (values, best metric, status) and best trial.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/trials", params(("name" = String, Path, description = "Sweep job name")),
    responses((status = 200, body = SweepTrials), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn sweep_trials(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<SweepTrials>> {
    let v = s.orchestrator.sweep_view(&name).await?;
    Ok(Json(SweepTrials {
        primary_metric: v.primary_metric,
        goal: v.goal,
        sampling_algorithm: v.sampling_algorithm,
        parameters: v
            .parameters
            .into_iter()
            .map(|p| SweepParameter { name: p.name, distribution: p.distribution, arguments: p.arguments })
            .collect(),
        max_total_trials: v.max_total_trials,
        max_concurrent_trials: v.max_concurrent_trials,
        best_trial: v.best.as_ref().map(|b| b.job.clone()),
        best_metric: v.best.as_ref().map(|b| b.metric),
        trials: v
            .trials
            .into_iter()
            .map(|t| SweepTrial {
                index: t.index,
                job: t.job,
                status: t.status.as_str().to_string(),
                values: t.values.into_iter().collect(),
                metric: t.metric,
                reports: t.reports,
                early_terminated: t.early_terminated,
                failure: t.failure,
            })
            .collect(),
    }))
}

#[utoipa::path(patch, path = "/api/v1/jobs/{name}", request_body = JobUpdate,
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
async fn update_job(
    State(s): State<Shared>,
    Path(name): Path<String>,
    b: Result<Json<JobUpdate>, JsonRejection>,
) -> ApiResult<Json<Job>> {
    let b = body(b)?;
    let update = kiln_orchestrator::JobUpdate {
        display_name: b.display_name,
        description: b.description,
        tags: b.tags,
        properties: b.properties,
    };
    Ok(Json(job(s.orchestrator.update(&name, update).await?)))
}

#[utoipa::path(post, path = "/api/v1/jobs/{name}/cancel", responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
async fn cancel_job(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    Ok(Json(job(s.orchestrator.cancel(&name).await?)))
}

#[utoipa::path(post, path = "/api/v1/jobs/{name}/archive", responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
async fn archive_job(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    Ok(Json(job(s.orchestrator.set_archived(&name, true).await?)))
}

#[utoipa::path(post, path = "/api/v1/jobs/{name}/restore", responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
async fn restore_job(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    Ok(Json(job(s.orchestrator.set_archived(&name, false).await?)))
}

#[derive(Deserialize, IntoParams)]
struct LogQuery {
    /// Keep the answer open and send output as it is written, until the job ends.
    follow: Option<bool>,
    /// Start at this byte of the log.
    offset: Option<u64>,
}

/// The job's merged stdout and stderr as plain text; with `follow=true`, streamed live until
/// the job ends (a write to the log wakes the stream at once; no polling interval).
#[utoipa::path(get, path = "/api/v1/jobs/{name}/log", params(("name" = String, Path, description = "Job name"), LogQuery),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
async fn job_log(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    s.orchestrator.get(&name).await?; // 404 for an unknown job
    let follower = LogFollower {
        state: s.clone(),
        name,
        path: None,
        file: None,
        offset: q.offset.unwrap_or(0),
        follow: q.follow.unwrap_or(false),
        ending: false,
    };
    let stream = futures::stream::unfold(follower, |mut f| async move {
        f.next_chunk().await.map(|chunk| (Ok::<_, std::io::Error>(chunk), f))
    });
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(stream)).into_response())
}

struct LogFollower {
    state: Shared,
    name: String,
    path: Option<std::path::PathBuf>,
    file: Option<tokio::fs::File>,
    offset: u64,
    follow: bool,
    /// The job has ended: send what is left, then stop.
    ending: bool,
}

impl LogFollower {
    async fn read_some(&mut self) -> Option<Vec<u8>> {
        if self.file.is_none() {
            let path = self.path.get_or_insert_with(|| self.state.orchestrator.log_path(&self.name)).clone();
            let mut f = tokio::fs::File::open(&path).await.ok()?;
            f.seek(std::io::SeekFrom::Start(self.offset)).await.ok()?;
            self.file = Some(f);
        }
        let f = self.file.as_mut()?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                self.offset += n as u64;
                Some(buf)
            }
        }
    }

    async fn next_chunk(&mut self) -> Option<bytes::Bytes> {
        loop {
            let bell = self.state.orchestrator.log_bell(&self.name);
            if let Some(bytes) = self.read_some().await {
                return Some(bytes.into());
            }
            if !self.follow || self.ending {
                return None;
            }
            match bell {
                // Running here: wait for the next write, or for the job's end (the bell is
                // dropped), whichever comes first.
                Some(mut bell) => {
                    if tokio::time::timeout(Duration::from_secs(5), bell.changed()).await.is_ok_and(|r| r.is_err()) {
                        self.ending = true;
                    }
                }
                // Queued, or ended: look at the status.
                None => match self.state.orchestrator.get(&self.name).await {
                    Ok(j) if j.status.is_terminal() => self.ending = true,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(_) => return None,
                },
            }
        }
    }
}

#[utoipa::path(get, path = "/api/v1/jobs/{name}/outputs/{output}",
    params(("name" = String, Path, description = "Job name"), ("output" = String, Path, description = "Output name (`artifacts` for the implicit one)")),
    responses((status = 200, body = OutputFiles), (status = 404, body = ErrorBody)))]
async fn output_files(
    State(s): State<Shared>,
    Path((name, output)): Path<(String, String)>,
) -> ApiResult<Json<OutputFiles>> {
    let j = s.orchestrator.get(&name).await?;
    let Some(out) = j.outputs.get(&output) else {
        let known: Vec<&str> = j.outputs.keys().map(String::as_str).collect();
        return Err(ApiError::not_found(format!(
            "job '{name}' has no output '{output}' (outputs: {})",
            known.join(", ")
        )));
    };
    let base = kiln_blobs::ArtifactPath::parse(out.uri.trim_start_matches("blob:"))?;
    let blobs = s.tracking.blobs();
    let mut files: Vec<OutputFile> = blobs
        .list_files(&base)
        .await?
        .into_iter()
        .map(|(path, size)| OutputFile { store_path: format!("{}/{path}", base.as_str()), path, size })
        .collect();
    if files.is_empty()
        && let Some(size) = blobs.size(&base).await?
    {
        files.push(OutputFile { path: base.file_name().to_string(), size, store_path: base.as_str().to_string() });
    }
    Ok(Json(OutputFiles { output, files }))
}

fn compute(c: kiln_store::ComputeTarget) -> ComputeTarget {
    ComputeTarget {
        name: c.name,
        kind: c.kind,
        max_concurrent_jobs: c.max_concurrent_jobs,
        description: c.description,
        created_at: c.created_at,
    }
}

#[utoipa::path(get, path = "/api/v1/computes", responses((status = 200, body = ComputePage)))]
async fn list_computes(State(s): State<Shared>) -> ApiResult<Json<ComputePage>> {
    Ok(Json(ComputePage { computes: s.orchestrator.list_compute().await?.into_iter().map(compute).collect() }))
}

#[utoipa::path(get, path = "/api/v1/computes/{name}", responses((status = 200, body = ComputeTarget), (status = 404, body = ErrorBody)))]
async fn get_compute(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<ComputeTarget>> {
    let all = s.orchestrator.list_compute().await?;
    let found = all.into_iter().find(|c| c.name == name);
    found
        .map(|c| Json(compute(c)))
        .ok_or_else(|| ApiError::not_found(format!("compute target '{name}' does not exist")))
}

/// Creates or replaces a compute target. Azure ML's cluster types run on this machine; a
/// cluster's `max_instances` becomes how many jobs it runs at once.
#[utoipa::path(post, path = "/api/v1/computes", request_body = ComputeCreate,
    responses((status = 200, body = ComputeTarget), (status = 400, body = ErrorBody)))]
async fn create_compute(
    State(s): State<Shared>,
    b: Result<Json<ComputeCreate>, JsonRejection>,
) -> ApiResult<Json<ComputeTarget>> {
    let b = body(b)?;
    let kind = b.kind.unwrap_or_else(|| "local".into());
    if !["local", "amlcompute", "computeinstance", "virtualmachine"].contains(&kind.as_str()) {
        return Err(ApiError::invalid(format!(
            "type '{kind}': local compute targets are of type local (amlcompute, computeinstance and virtualmachine are accepted and run locally)"
        )));
    }
    let c = s.orchestrator.create_compute(&b.name, &kind, b.max_concurrent_jobs.unwrap_or(1), b.description).await?;
    Ok(Json(compute(c)))
}

#[utoipa::path(post, path = "/api/v1/blobs/missing", request_body = BlobQuery,
    responses((status = 200, body = BlobsMissing), (status = 400, body = ErrorBody)))]
async fn missing_blobs(
    State(s): State<Shared>,
    b: Result<Json<BlobQuery>, JsonRejection>,
) -> ApiResult<Json<BlobsMissing>> {
    let b = body(b)?;
    let mut missing = Vec::new();
    for d in b.digests {
        let path = snapshot::blob_path(&d).map_err(|_| ApiError::invalid(format!("'{d}' is not a SHA-256 digest")))?;
        if s.tracking.blobs().size(&path).await?.is_none() {
            missing.push(d);
        }
    }
    Ok(Json(BlobsMissing { missing }))
}

/// Stores a file's bytes under their SHA-256; a body whose hash differs is refused.
#[utoipa::path(put, path = "/api/v1/blobs/{digest}", request_body(content = String, content_type = "application/octet-stream"),
    responses((status = 204), (status = 400, body = ErrorBody)))]
async fn put_blob(State(s): State<Shared>, Path(digest): Path<String>, request: Body) -> ApiResult<StatusCode> {
    let path =
        snapshot::blob_path(&digest).map_err(|_| ApiError::invalid(format!("'{digest}' is not a SHA-256 digest")))?;
    let hasher = Arc::new(Mutex::new(sha2::Sha256::new()));
    let h = hasher.clone();
    let stream = request.into_data_stream().inspect_ok(move |chunk| {
        if let Ok(mut h) = h.lock() {
            h.update(chunk);
        }
    });
    s.tracking.blobs().put_stream(&path, stream).await?;
    let actual = hasher.lock().map(|h| hex::encode(h.clone().finalize())).unwrap_or_default();
    if actual != digest {
        s.tracking.blobs().delete(&path).await?;
        return Err(ApiError::invalid(format!("the body's SHA-256 is {actual}, not {digest}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/snapshots", request_body = SnapshotCreate,
    responses((status = 200, body = Snapshot), (status = 400, body = ErrorBody)))]
async fn create_snapshot(
    State(s): State<Shared>,
    b: Result<Json<SnapshotCreate>, JsonRejection>,
) -> ApiResult<Json<Snapshot>> {
    let b = body(b)?;
    let files: Vec<snapshot::SnapshotFile> = b
        .files
        .into_iter()
        .map(|f| snapshot::SnapshotFile { path: f.path, digest: f.digest, size: f.size, executable: f.executable })
        .collect();
    let snap = snapshot::Snapshot::normalized(files)
        .map_err(|e| ApiError::invalid(format!("snapshot: {e}: {}", e_detail(&e))))?;
    let blobs = s.tracking.blobs();
    for f in &snap.files {
        match blobs.size(&snapshot::blob_path(&f.digest)?).await? {
            Some(size) if size == f.size => {}
            Some(size) => {
                return Err(ApiError::invalid(format!("{}: stored content has {size} bytes, not {}", f.path, f.size)));
            }
            None => return Err(ApiError::invalid(format!("{}: content {} was not uploaded", f.path, f.digest))),
        }
    }
    let id = snap.id();
    let manifest = snapshot::manifest_path(&id)?;
    if blobs.size(&manifest).await?.is_none() {
        let text = serde_json::to_vec(&snap).map_err(|e| ApiError::invalid(e.to_string()))?;
        blobs.put_bytes(&manifest, text.into()).await?;
    }
    Ok(Json(Snapshot { uri: format!("cas:{id}"), files: snap.files.len(), id }))
}

fn e_detail(e: &kiln_blobs::BlobError) -> String {
    match e {
        kiln_blobs::BlobError::InvalidPath(p) => p.clone(),
        other => other.to_string(),
    }
}
