//! Kiln's orchestrator: jobs from submission to their end.
//!
//! A submitted command job is checked and resolved into a [`kiln_launcher::LaunchPlan`] (code
//! snapshot, environment, inputs and outputs as URIs), recorded with an MLflow run of the same
//! name, and queued on its compute target. A scheduler starts queued jobs while their target
//! has free slots; the compute backend runs each job's launcher and reports its progress,
//! which moves the job through its statuses (compare-and-set in the store, so a cancel racing
//! an end cannot both win). After a restart, jobs whose launcher still runs are followed
//! again, and the others are failed with the reason.

mod assets;
mod components;
mod environments;
mod local;
mod models;
mod pipeline;
mod resolve;
mod schedules;
mod status;
mod sweep;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kiln_blobs::ArtifactStore;
use kiln_launcher::{Event, Outcome, OutcomeStatus};
use kiln_store::{ComputeTarget, JobFilter, JobRecord, Store, now_ms};
use kiln_tracking::{ServiceError, Tracking};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

pub use assets::{DataAsset, EnvironmentAsset, NewData, NewEnvironment};
pub use components::ComponentAsset;
pub use environments::{EnvironmentDefinition, curated, curated_names};
pub use local::Runner;
pub use models::{MODEL_TYPES, ModelAsset, NewModel};
pub use pipeline::PipelineStep;
pub use schedules::{Fire, LATE_GRACE_MS, ScheduleView};
pub use status::JobStatus;
pub use sweep::{BestTrial, SweepParameter, SweepTrial, SweepView};

use local::{BackendEvent, LocalBackend};

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The compute target every workspace has.
pub const DEFAULT_COMPUTE: &str = "local";
/// How long a canceled job's launcher gets to stop its processes before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// Job folders live under `<data_dir>/jobs`.
    pub data_dir: PathBuf,
    /// Snapshots, environments, downloads and tools shared by all jobs on this machine.
    pub cache_dir: PathBuf,
    /// The `kiln` binary (its `launch` command runs a job).
    pub exe: PathBuf,
    /// The artifact store's location, as launchers open it.
    pub artifact_store: String,
}

/// A job as users see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub name: String,
    pub kind: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub experiment_id: String,
    pub experiment_name: String,
    pub status: JobStatus,
    pub failure: Option<String>,
    pub compute: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Each status the job passed through, with when.
    pub transitions: Vec<(JobStatus, i64)>,
    pub tags: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
    pub archived: bool,
    pub command: String,
    pub environment: String,
    /// Named outputs and the implicit `artifacts`: where each is kept.
    pub outputs: BTreeMap<String, JobOutput>,
    /// The spec as submitted, as JSON.
    pub spec: serde_json::Value,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutput {
    /// `blob:<path>` in the artifact store.
    pub uri: String,
    pub data_type: String,
    /// Registered as this asset when the job completes.
    pub asset_name: Option<String>,
    pub asset_version: Option<String>,
}

/// What the `spec` column of a job holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobDocument {
    spec: String,
    experiment_name: String,
    command: String,
    environment: String,
    /// Always there for command jobs (a pipeline's document is shown without one).
    plan: Option<kiln_launcher::LaunchPlan>,
    outputs: BTreeMap<String, JobOutput>,
    warnings: Vec<String>,
    /// A pipeline step's reuse key, part by part (what changed is said from these).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    reuse_parts: BTreeMap<String, String>,
}

/// A command job checked and resolved, not yet recorded.
struct PreparedJob {
    name: String,
    compute: String,
    experiment: kiln_store::Experiment,
    resolved: resolve::Resolved,
}

/// What a pipeline step's record carries besides its command job.
struct StepRecord {
    parent: String,
    lineage: String,
    reuse_key: Option<String>,
    reuse_parts: BTreeMap<String, String>,
    properties: BTreeMap<String, String>,
    /// Logged as the run's params before the job is queued (a sweep trial's values).
    params: Vec<(String, String)>,
}

/// A submission: a command job spec (YAML or JSON text) whose local paths the client has
/// already uploaded (`cas:` URIs).
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub spec: String,
    /// How messages name the spec (the client's file name).
    pub source: String,
    pub user: Option<String>,
}

/// What `update` may change.
#[derive(Debug, Clone, Default)]
pub struct JobUpdate {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListJobs {
    /// `None`: not archived; `Some(true)`: archived only; `Some(false)`: both.
    pub archived_only: Option<bool>,
    pub limit: Option<i64>,
    /// The steps of this pipeline job; top-level jobs only when `None`.
    pub parent: Option<String>,
}

#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    tracking: Tracking,
    registry: kiln_registry::Registry,
    blobs: ArtifactStore,
    config: OrchestratorConfig,
    backend: LocalBackend,
    tracking_uri: OnceLock<String>,
    live: Mutex<HashMap<String, Live>>,
    wake: Notify,
    /// Pipelines and sweeps advance one at a time, so two steps (or trials) ending together
    /// cannot both start the one after them.
    pipelines: tokio::sync::Mutex<()>,
    /// Running pipelines' flattened graphs (see `running_pipeline_graph`).
    pipeline_graphs: Mutex<HashMap<String, Arc<(kiln_spec::pipeline::PipelineJob, kiln_spec::graph::Graph)>>>,
    /// Rung when a schedule is made, changed or deleted: the schedule ticker looks again.
    schedules_changed: Notify,
    /// Finished sweep trials' reports of the primary metric (they no longer change).
    trial_curves: Mutex<HashMap<String, Vec<f64>>>,
    /// Pipelines and sweeps to advance soon, in order (see `advance_later`).
    advance_queue: mpsc::UnboundedSender<String>,
    advance_rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

/// A job whose launcher is running.
struct Live {
    runner: Runner,
    /// Bumped whenever the job's log grows; dropped when the job ends.
    log_bell: watch::Sender<u64>,
}

impl Orchestrator {
    pub fn new(tracking: Tracking, config: OrchestratorConfig) -> Orchestrator {
        let blobs = tracking.blobs().clone();
        let backend = LocalBackend { exe: config.exe.clone() };
        let (advance_queue, advance_rx) = mpsc::unbounded_channel();
        Orchestrator {
            inner: Arc::new(Inner {
                registry: kiln_registry::Registry::new(tracking.clone()),
                tracking,
                blobs,
                config,
                backend,
                tracking_uri: OnceLock::new(),
                live: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                pipelines: tokio::sync::Mutex::new(()),
                schedules_changed: Notify::new(),
                pipeline_graphs: Mutex::new(HashMap::new()),
                trial_curves: Mutex::new(HashMap::new()),
                advance_queue,
                advance_rx: Mutex::new(Some(advance_rx)),
            }),
        }
    }

    fn store(&self) -> &Store {
        self.inner.tracking.store()
    }

    /// Starts scheduling, once the server knows the URL jobs reach it at: recovers jobs a
    /// previous server left, then runs queued jobs as slots free up.
    pub async fn start(&self, tracking_uri: &str) -> Result<()> {
        let _ = self.inner.tracking_uri.set(tracking_uri.to_string());
        if self.store().list_compute_targets().await?.iter().all(|c| c.name != DEFAULT_COMPUTE) {
            let slots = std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(2).max(2);
            self.store()
                .put_compute_target(&ComputeTarget {
                    name: DEFAULT_COMPUTE.into(),
                    kind: "local".into(),
                    max_concurrent_jobs: slots,
                    description: Some("This machine".into()),
                    created_at: now_ms(),
                })
                .await?;
        }
        if let Some(mut rx) = self.inner.advance_rx.lock().ok().and_then(|mut r| r.take()) {
            let this = self.clone();
            tokio::spawn(async move {
                while let Some(name) = rx.recv().await {
                    if let Err(e) = this.advance_parent(&name).await {
                        tracing::warn!(job = %name, error = %e, "cannot advance the job");
                    }
                }
            });
        }
        self.recover().await?;
        self.start_schedules();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.schedule().await {
                    tracing::warn!(error = %e, "scheduling failed; will retry");
                }
                tokio::select! {
                    _ = this.inner.wake.notified() => {},
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {},
                }
            }
        });
        Ok(())
    }

    // ---- submission --------------------------------------------------------------------

    pub async fn submit(&self, sub: Submission) -> Result<Job> {
        let source = if sub.source.is_empty() { "request".to_string() } else { sub.source.clone() };
        let invalid = |e: kiln_spec::SpecError| ServiceError::invalid(e.to_string());
        let root = kiln_spec::parse_with_overrides(&source, &sub.spec, &[]).map_err(invalid)?;
        let (spec, warnings) = kiln_spec::job_from_node(&source, &root).map_err(invalid)?;
        let warnings: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        match spec {
            kiln_spec::JobSpec::Command(spec) => {
                let prepared = self.prepare_command(&spec, &source, None, None).await?;
                let name = prepared.name.clone();
                self.record_command(&spec, sub.spec.clone(), prepared, warnings, sub.user.as_deref(), None).await?;
                self.get(&name).await
            }
            kiln_spec::JobSpec::Pipeline(p) => self.submit_pipeline(p, sub, source, warnings).await,
            kiln_spec::JobSpec::Sweep(s) => self.submit_sweep(s, sub, source, warnings).await,
        }
    }

    fn tracking_uri(&self) -> Result<String> {
        self.inner.tracking_uri.get().cloned().ok_or_else(|| ServiceError::internal("the orchestrator is not started"))
    }

    /// The experiment of this name, created when missing.
    async fn experiment(&self, name: &str) -> Result<kiln_store::Experiment> {
        match self.inner.tracking.get_experiment_by_name(name).await {
            Ok(e) => Ok(e),
            Err(e) if e.kind == kiln_tracking::ErrorKind::NotFound => {
                let id = self.inner.tracking.create_experiment(name, None, Vec::new()).await?;
                self.inner.tracking.get_experiment(&id).await
            }
            Err(e) => Err(e),
        }
    }

    /// Checks and resolves a command job: its name, compute target, experiment and plan.
    async fn prepare_command(
        &self,
        spec: &kiln_spec::CommandJob,
        source: &str,
        experiment: Option<kiln_store::Experiment>,
        default_compute: Option<&str>,
    ) -> Result<PreparedJob> {
        let tracking_uri = self.tracking_uri()?;
        let name = spec.name.clone().unwrap_or_else(kiln_tracking::names::random_job_name);
        if self.store().get_job(&name).await?.is_some() || self.store().get_run_info(&name).await?.is_some() {
            return Err(ServiceError::exists(format!("a job named '{name}' already exists")));
        }
        let compute = self.compute_for(spec.compute.as_deref().or(default_compute)).await?;
        let experiment = match experiment {
            Some(e) => e,
            None => self.experiment(spec.experiment_name.as_deref().unwrap_or("Default")).await?,
        };
        let resolved =
            resolve::Resolver { orchestrator: self, source }.resolve(spec, &name, &experiment, &tracking_uri).await?;
        Ok(PreparedJob { name, compute, experiment, resolved })
    }

    /// Records a prepared command job (its MLflow run and its row) and queues it; a step of a
    /// pipeline is recorded as the pipeline run's child.
    async fn record_command(
        &self,
        spec: &kiln_spec::CommandJob,
        spec_text: String,
        prepared: PreparedJob,
        warnings: Vec<String>,
        user: Option<&str>,
        step: Option<StepRecord>,
    ) -> Result<()> {
        let PreparedJob { name, compute, experiment, resolved } = prepared;
        let mut all_warnings = warnings;
        all_warnings.extend(resolved.notes.iter().cloned());
        let display_name = spec.display_name.clone().unwrap_or_else(|| name.clone());
        let mut tags = vec![
            kiln_tracking::Tag::new("mlflow.runName", display_name.clone()),
            kiln_tracking::Tag::new("mlflow.source.type", "JOB"),
            kiln_tracking::Tag::new("mlflow.source.name", spec.command.value.chars().take(500).collect::<String>()),
            kiln_tracking::Tag::new("kiln.job.compute", compute.clone()),
        ];
        if let Some(user) = user {
            tags.push(kiln_tracking::Tag::new("mlflow.user", user));
        }
        for (k, v) in &spec.tags {
            tags.push(kiln_tracking::Tag::new(k.clone(), v.clone()));
        }
        if let Some(d) = &spec.description {
            tags.push(kiln_tracking::Tag::new("mlflow.note.content", d.clone()));
        }
        let mut properties = spec.properties.clone();
        if let Some(s) = &step {
            tags.push(kiln_tracking::Tag::new("mlflow.parentRunId", s.parent.clone()));
            properties.extend(s.properties.clone());
        }
        let doc = JobDocument {
            spec: spec_text,
            experiment_name: experiment.name.clone(),
            command: spec.command.value.clone(),
            environment: resolved.plan.environment.label.clone(),
            plan: Some(resolved.plan),
            outputs: resolved.outputs,
            warnings: all_warnings,
            reuse_parts: step.as_ref().map(|s| s.reuse_parts.clone()).unwrap_or_default(),
        };
        self.inner
            .tracking
            .create_run(kiln_tracking::NewRun {
                run_id: Some(name.clone()),
                experiment_id: Some(experiment.experiment_id.to_string()),
                user_id: user.map(str::to_string),
                run_name: Some(display_name.clone()),
                start_time: None,
                tags,
            })
            .await?;
        if let Some(s) = step.as_ref().filter(|s| !s.params.is_empty()) {
            let params = s.params.iter().map(|(k, v)| kiln_tracking::Tag::new(k.clone(), v.clone())).collect();
            self.inner.tracking.log_batch(&name, Vec::new(), params, Vec::new()).await?;
        }
        self.inner.tracking.store().update_run(&name, Some("SCHEDULED"), None, None).await?;
        let now = now_ms();
        let record = JobRecord {
            name: name.clone(),
            kind: "command".into(),
            display_name: Some(display_name),
            description: spec.description.clone(),
            experiment_id: experiment.experiment_id,
            compute,
            status: JobStatus::NotStarted.as_str().into(),
            failure: None,
            spec: serde_json::to_string(&doc).map_err(|e| ServiceError::internal(e.to_string()))?,
            tags: serde_json::to_string(&spec.tags).unwrap_or_else(|_| "{}".into()),
            properties: serde_json::to_string(&properties).unwrap_or_else(|_| "{}".into()),
            created_at: now,
            updated_at: now,
            archived: false,
            runner: None,
            parent: step.as_ref().map(|s| s.parent.clone()),
            reuse_key: step.as_ref().and_then(|s| s.reuse_key.clone()),
            lineage: step.as_ref().map(|s| s.lineage.clone()),
            transitions: Vec::new(),
        };
        self.store().insert_job(&record).await.map_err(|e| match e {
            kiln_store::StoreError::AlreadyExists(_) => {
                ServiceError::exists(format!("a job named '{name}' already exists"))
            }
            e => e.into(),
        })?;
        self.move_to(&name, JobStatus::Queued, None).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// The target a job's `compute:` names (`azureml:` optional); none, `local` and
    /// `serverless` mean the default local target.
    async fn compute_for(&self, compute: Option<&str>) -> Result<String> {
        let name = compute.map(|c| c.strip_prefix("azureml:").unwrap_or(c)).unwrap_or(DEFAULT_COMPUTE);
        if name == DEFAULT_COMPUTE || name == "serverless" {
            return Ok(DEFAULT_COMPUTE.into());
        }
        let targets = self.store().list_compute_targets().await?;
        if targets.iter().any(|t| t.name == name) {
            return Ok(name.to_string());
        }
        Err(ServiceError::not_found(format!(
            "compute: there is no compute target '{name}'; create it with `kiln compute create --name {name}` \
             (targets: {})",
            targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        )))
    }

    async fn move_to(&self, name: &str, to: JobStatus, failure: Option<&str>) -> Result<bool> {
        Ok(self.store().set_job_status(name, to.reachable_from(), to.as_str(), failure).await?)
    }

    // ---- reading -----------------------------------------------------------------------

    pub async fn get(&self, name: &str) -> Result<Job> {
        Ok(view(self.record(name).await?))
    }

    async fn record(&self, name: &str) -> Result<JobRecord> {
        self.store().get_job(name).await?.ok_or_else(|| ServiceError::not_found(format!("job '{name}' does not exist")))
    }

    pub async fn list(&self, q: &ListJobs) -> Result<Vec<Job>> {
        let filter = JobFilter {
            archived: match q.archived_only {
                None => Some(false),
                Some(true) => Some(true),
                Some(false) => None,
            },
            limit: q.limit,
            top_level_only: q.parent.is_none(),
            parent: q.parent.clone(),
            ..Default::default()
        };
        Ok(self.store().list_jobs(&filter).await?.into_iter().map(view).collect())
    }

    /// The job's merged stdout and stderr, as it is written.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.job_dir(name).join(kiln_launcher::USER_LOG)
    }

    /// A bell that rings when the job's log grows; `None` when the job is not running here.
    /// The sender is dropped when the job ends.
    pub fn log_bell(&self, name: &str) -> Option<watch::Receiver<u64>> {
        self.inner.live.lock().ok()?.get(name).map(|l| l.log_bell.subscribe())
    }

    fn job_dir(&self, name: &str) -> PathBuf {
        self.inner.config.data_dir.join("jobs").join(name)
    }

    // ---- changes -----------------------------------------------------------------------

    pub async fn cancel(&self, name: &str) -> Result<Job> {
        let job = self.get(name).await?;
        match job.kind.as_str() {
            _ if job.status.is_terminal() => {}
            "pipeline" => self.cancel_pipeline(name).await?,
            "sweep" => self.cancel_sweep(name).await?,
            _ => self.cancel_command(name).await?,
        }
        self.get(name).await
    }

    /// Cancels a command job: before it starts, or by stopping its launcher.
    async fn cancel_command(&self, name: &str) -> Result<()> {
        let job = self.get(name).await?;
        match job.status {
            JobStatus::NotStarted | JobStatus::Queued => {
                if self.move_to(name, JobStatus::Canceled, Some("canceled before it started")).await? {
                    self.mirror_run_end(name, JobStatus::Canceled).await;
                }
            }
            s if s.is_terminal() => {}
            _ => {
                self.move_to(name, JobStatus::CancelRequested, None).await?;
                let runner = self.inner.live.lock().ok().and_then(|l| l.get(name).map(|l| l.runner.clone()));
                let runner = match runner {
                    Some(r) => Some(r),
                    None => self
                        .store()
                        .get_job(name)
                        .await?
                        .and_then(|r| r.runner)
                        .and_then(|r| serde_json::from_str(&r).ok()),
                };
                if let Some(runner) = runner {
                    self.inner.backend.cancel(&runner);
                    let this = self.clone();
                    let name = name.to_string();
                    tokio::spawn(async move {
                        tokio::time::sleep(CANCEL_GRACE).await;
                        let still = this.inner.live.lock().ok().and_then(|l| l.get(&name).map(|l| l.runner.clone()));
                        if let Some(runner) = still {
                            tracing::warn!(job = %name, "the launcher did not stop in time; killing it");
                            this.inner.backend.force_stop(&runner);
                        }
                    });
                }
            }
        }
        Ok(())
    }

    pub async fn update(&self, name: &str, update: JobUpdate) -> Result<Job> {
        let mut record = self.record(name).await?;
        if let Some(d) = update.display_name {
            record.display_name = Some(d);
        }
        if let Some(d) = update.description {
            record.description = Some(d);
        }
        let mut tags: BTreeMap<String, String> = serde_json::from_str(&record.tags).unwrap_or_default();
        for (k, v) in &update.tags {
            tags.insert(k.clone(), v.clone());
            self.inner.tracking.set_tag(name, k, v).await?;
        }
        let mut props: BTreeMap<String, String> = serde_json::from_str(&record.properties).unwrap_or_default();
        props.extend(update.properties);
        record.tags = serde_json::to_string(&tags).unwrap_or_default();
        record.properties = serde_json::to_string(&props).unwrap_or_default();
        self.store().update_job_meta(&record).await?;
        self.get(name).await
    }

    pub async fn set_archived(&self, name: &str, archived: bool) -> Result<Job> {
        let mut record = self.record(name).await?;
        record.archived = archived;
        self.store().update_job_meta(&record).await?;
        self.get(name).await
    }

    // ---- compute targets ---------------------------------------------------------------

    pub async fn create_compute(
        &self,
        name: &str,
        kind: &str,
        max_concurrent_jobs: i64,
        description: Option<String>,
    ) -> Result<ComputeTarget> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ServiceError::invalid(format!("compute name '{name}': use letters, digits, '-' and '_'")));
        }
        if max_concurrent_jobs < 1 {
            return Err(ServiceError::invalid("max_concurrent_jobs must be at least 1"));
        }
        let target = ComputeTarget {
            name: name.into(),
            kind: kind.into(),
            max_concurrent_jobs,
            description,
            created_at: now_ms(),
        };
        self.store().put_compute_target(&target).await?;
        self.inner.wake.notify_one();
        Ok(target)
    }

    pub async fn list_compute(&self) -> Result<Vec<ComputeTarget>> {
        Ok(self.store().list_compute_targets().await?)
    }

    // ---- running -----------------------------------------------------------------------

    /// Starts queued jobs on every target with free slots, oldest first.
    async fn schedule(&self) -> Result<()> {
        let active: Vec<String> = JobStatus::ACTIVE.iter().map(|s| s.as_str().to_string()).collect();
        for target in self.store().list_compute_targets().await? {
            let running = self
                .store()
                .list_jobs(&JobFilter {
                    statuses: active.clone(),
                    compute: Some(target.name.clone()),
                    // A pipeline takes no slot: its steps do.
                    kind: Some("command".into()),
                    without_spec: true,
                    ..Default::default()
                })
                .await?
                .len() as i64;
            let free = target.max_concurrent_jobs - running;
            if free <= 0 {
                continue;
            }
            let queued = self
                .store()
                .list_jobs(&JobFilter {
                    statuses: vec![JobStatus::Queued.as_str().into()],
                    compute: Some(target.name.clone()),
                    kind: Some("command".into()),
                    oldest_first: true,
                    limit: Some(free),
                    ..Default::default()
                })
                .await?;
            for job in queued {
                if let Err(e) = self.launch(job).await {
                    tracing::warn!(error = %e, "cannot start a job");
                }
            }
        }
        Ok(())
    }

    async fn launch(&self, record: JobRecord) -> Result<()> {
        // Another scheduler (another server on the same database) may have taken it.
        if !self.move_to(&record.name, JobStatus::Preparing, None).await? {
            return Ok(());
        }
        self.mirror_run_status(&record.name, "RUNNING").await;
        let plan = match serde_json::from_str::<JobDocument>(&record.spec).map(|d| d.plan) {
            Ok(Some(plan)) => plan,
            Ok(None) => {
                let outcome = failed_outcome("the stored job has no launch plan".into());
                return self.finish(&record.name, outcome).await;
            }
            Err(e) => {
                let outcome = failed_outcome(format!("the stored job cannot be read: {e}"));
                return self.finish(&record.name, outcome).await;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = match self.inner.backend.start(&plan, tx) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .finish(&record.name, failed_outcome(format!("cannot start the job's launcher: {e}")))
                    .await;
            }
        };
        self.track(&record.name, runner.clone(), rx).await?;
        // A cancel that came while the launcher was being started found nothing to stop.
        if self.store().get_job(&record.name).await?.is_some_and(|r| r.status == JobStatus::CancelRequested.as_str()) {
            self.inner.backend.cancel(&runner);
        }
        Ok(())
    }

    /// Records a running launcher and follows its events until the job ends.
    async fn track(&self, name: &str, runner: Runner, mut rx: mpsc::UnboundedReceiver<BackendEvent>) -> Result<()> {
        self.store().set_job_runner(name, serde_json::to_string(&runner).ok().as_deref()).await?;
        let (bell, _) = watch::channel(0u64);
        if let Ok(mut live) = self.inner.live.lock() {
            live.insert(name.to_string(), Live { runner, log_bell: bell });
        }
        let this = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let result = match event {
                    BackendEvent::Launcher(Event::Log) => {
                        if let Ok(live) = this.inner.live.lock()
                            && let Some(l) = live.get(&name)
                        {
                            l.log_bell.send_modify(|n| *n += 1);
                        }
                        Ok(())
                    }
                    BackendEvent::Launcher(Event::Starting) => {
                        this.move_to(&name, JobStatus::Starting, None).await.map(|_| ())
                    }
                    BackendEvent::Launcher(Event::Running { pgid }) => {
                        let runner = this.inner.live.lock().ok().and_then(|mut l| {
                            let live = l.get_mut(&name)?;
                            live.runner.pgid = Some(pgid);
                            Some(live.runner.clone())
                        });
                        if let Some(r) = runner {
                            let _ = this.store().set_job_runner(&name, serde_json::to_string(&r).ok().as_deref()).await;
                        }
                        this.move_to(&name, JobStatus::Running, None).await.map(|_| ())
                    }
                    BackendEvent::Launcher(Event::Finalizing) => {
                        this.move_to(&name, JobStatus::Finalizing, None).await.map(|_| ())
                    }
                    BackendEvent::Launcher(Event::Preparing | Event::Done(_)) => Ok(()),
                    BackendEvent::Exited(outcome) => {
                        if let Err(e) = this.finish(&name, outcome).await {
                            tracing::error!(job = %name, error = %e, "cannot record the end of a job");
                        }
                        break;
                    }
                };
                if let Err(e) = result {
                    tracing::warn!(job = %name, error = %e, "cannot record a job's progress");
                }
            }
        });
        Ok(())
    }

    /// Records how a job ended, mirrors it on its run, frees its slot.
    async fn finish(&self, name: &str, outcome: Outcome) -> Result<()> {
        let record = self.record(name).await?;
        let (status, reason) = match outcome.status {
            OutcomeStatus::Completed => match self.register_job_outputs(name, &view(record.clone()).outputs).await {
                Ok(()) => (JobStatus::Completed, None),
                Err(e) => (JobStatus::Failed, Some(format!("registering the outputs failed: {e}"))),
            },
            OutcomeStatus::Failed => (JobStatus::Failed, outcome.message),
            OutcomeStatus::Canceled => (JobStatus::Canceled, outcome.message),
        };
        // A launcher stopped by a cancel before it could say so ends canceled, not failed.
        let canceling = record.status == JobStatus::CancelRequested.as_str();
        let (status, reason) = if canceling && status == JobStatus::Failed {
            (JobStatus::Canceled, Some(format!("canceled ({})", reason.unwrap_or_default())))
        } else {
            (status, reason)
        };
        self.move_to(name, status, reason.as_deref()).await?;
        self.mirror_run_end(name, status).await;
        if let Ok(mut live) = self.inner.live.lock() {
            live.remove(name);
        }
        if let Some(parent) = record.parent {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.advance_parent(&parent).await {
                    tracing::warn!(parent = %parent, error = %e, "cannot advance the job after its child ended");
                }
            });
        }
        // The working copy of the code and downloaded inputs are not needed any more; the
        // logs, plan and result stay.
        let dir = self.job_dir(name);
        for sub in ["wd", "inputs", "outputs"] {
            let _ = tokio::fs::remove_dir_all(dir.join(sub)).await;
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    async fn mirror_run_status(&self, name: &str, status: &str) {
        if let Err(e) = self.store().update_run(name, Some(status), None, None).await {
            tracing::warn!(job = %name, error = %e, "cannot update the job's run");
        }
    }

    async fn mirror_run_end(&self, name: &str, status: JobStatus) {
        if let Err(e) = self.store().update_run(name, Some(status.run_status()), Some(now_ms()), None).await {
            tracing::warn!(job = %name, error = %e, "cannot update the job's run");
        }
    }

    /// After a restart: follows launchers that still run, ends jobs whose launcher is gone.
    async fn recover(&self) -> Result<()> {
        let active: Vec<String> = JobStatus::ACTIVE.iter().map(|s| s.as_str().to_string()).collect();
        let jobs = self.store().list_jobs(&JobFilter { statuses: active, ..Default::default() }).await?;
        let mut pipelines = Vec::new();
        let mut sweeps = Vec::new();
        for job in jobs {
            if job.kind == "pipeline" {
                pipelines.push(job.name);
                continue;
            }
            if job.kind == "sweep" {
                sweeps.push(job.name);
                continue;
            }
            let runner: Option<Runner> = job
                .runner
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .or_else(|| local::recorded_runner(&self.job_dir(&job.name)));
            if runner.is_none() && job.status == JobStatus::Preparing.as_str() {
                // The server stopped before it started the launcher: the job goes back to the queue.
                tracing::info!(job = %job.name, "queuing again a job whose launcher never started");
                self.move_to(&job.name, JobStatus::Queued, None).await?;
                continue;
            }
            match runner {
                Some(runner) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let alive = self.inner.backend.reattach(&runner, tx);
                    tracing::info!(job = %job.name, pid = runner.pid, alive, "following a job started before the restart");
                    self.track(&job.name, runner, rx).await?;
                }
                None => {
                    let outcome = failed_outcome("the server stopped before the job's launcher started".into());
                    self.finish(&job.name, outcome).await?;
                }
            }
        }
        // Jobs recorded but not yet queued when the server stopped.
        let unqueued = self
            .store()
            .list_jobs(&JobFilter { statuses: vec![JobStatus::NotStarted.as_str().into()], ..Default::default() })
            .await?;
        for job in unqueued {
            match job.kind.as_str() {
                // A pipeline or sweep recorded but not yet running: it runs now.
                "pipeline" | "sweep" => {
                    self.move_to(&job.name, JobStatus::Running, None).await?;
                    if job.kind == "pipeline" {
                        pipelines.push(job.name);
                    } else {
                        sweeps.push(job.name);
                    }
                }
                _ => {
                    self.move_to(&job.name, JobStatus::Queued, None).await?;
                }
            }
        }
        // Pipelines pick up where they were: finished steps are not run again.
        for name in pipelines {
            if let Err(e) = self.advance(&name).await {
                tracing::warn!(pipeline = %name, error = %e, "cannot resume the pipeline");
            }
        }
        // Sweeps too: finished trials stay, and the sampler draws the same values again.
        for name in sweeps {
            if let Err(e) = self.advance_sweep(&name).await {
                tracing::warn!(sweep = %name, error = %e, "cannot resume the sweep");
            }
            self.watch_sweep(&name);
        }
        Ok(())
    }

    /// Advances a pipeline or a sweep soon, outside the caller's turn. (Pipelines start sweeps
    /// and sweeps end into pipelines: a queue, not a spawned call, keeps those async fns from
    /// naming each other's futures.)
    fn advance_later(&self, name: &str) {
        let _ = self.inner.advance_queue.send(name.to_string());
    }

    /// Advances a pipeline or a sweep after one of its children ended.
    async fn advance_parent(&self, name: &str) -> Result<()> {
        match self.record(name).await?.kind.as_str() {
            "sweep" => self.advance_sweep(name).await,
            _ => self.advance(name).await,
        }
    }
}

fn failed_outcome(message: String) -> Outcome {
    Outcome { status: OutcomeStatus::Failed, exit_code: None, message: Some(message) }
}

fn view(r: JobRecord) -> Job {
    let doc: Option<JobDocument> = serde_json::from_str(&r.spec).ok().or_else(|| {
        // A pipeline's document, shown through the same fields.
        let p: pipeline::PipelineDocument = serde_json::from_str(&r.spec).ok()?;
        Some(JobDocument {
            spec: p.spec,
            experiment_name: p.experiment_name,
            command: String::new(),
            environment: String::new(),
            plan: None,
            outputs: p.outputs,
            warnings: p.warnings,
            reuse_parts: BTreeMap::new(),
        })
    });
    let doc = doc.or_else(|| {
        let s: sweep::SweepDocument = serde_json::from_str(&r.spec).ok()?;
        Some(JobDocument {
            spec: s.spec,
            experiment_name: s.experiment_name,
            // The trials' command, read from the spec below.
            command: String::new(),
            environment: s.environment,
            plan: None,
            outputs: s.outputs,
            warnings: s.warnings,
            reuse_parts: BTreeMap::new(),
        })
    });
    let spec = doc
        .as_ref()
        .and_then(|d| kiln_spec::yaml::parse(&d.spec).ok().flatten())
        .map(|n| n.to_json())
        .unwrap_or(serde_json::Value::Null);
    let command = match doc.as_ref() {
        // A sweep's spec: a sweep job's (trial.command) or a sweep node's summary (command).
        Some(_) if r.kind == "sweep" => spec
            .pointer("/trial/command")
            .or_else(|| spec.get("command"))
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string(),
        Some(d) => d.command.clone(),
        None => String::new(),
    };
    let mut transitions: Vec<(JobStatus, i64)> =
        r.transitions.iter().filter_map(|(s, at)| Some((JobStatus::parse(s)?, *at))).collect();
    // Several moves can share a millisecond; the lifecycle orders them.
    transitions.sort_by_key(|(s, at)| (*at, JobStatus::ALL.iter().position(|x| x == s)));
    Job {
        transitions,
        status: JobStatus::parse(&r.status).unwrap_or(JobStatus::Failed),
        tags: serde_json::from_str(&r.tags).unwrap_or_default(),
        properties: serde_json::from_str(&r.properties).unwrap_or_default(),
        experiment_id: r.experiment_id.to_string(),
        experiment_name: doc.as_ref().map(|d| d.experiment_name.clone()).unwrap_or_default(),
        command,
        environment: doc.as_ref().map(|d| d.environment.clone()).unwrap_or_default(),
        outputs: doc.as_ref().map(|d| d.outputs.clone()).unwrap_or_default(),
        warnings: doc.map(|d| d.warnings).unwrap_or_default(),
        spec,
        name: r.name,
        kind: r.kind,
        display_name: r.display_name,
        description: r.description,
        failure: r.failure,
        compute: r.compute,
        created_at: r.created_at,
        updated_at: r.updated_at,
        archived: r.archived,
    }
}
