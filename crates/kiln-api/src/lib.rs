//! The types of Kiln's native REST API (`/api/v1`).
//!
//! **API boundary**: plain data designed for clients (the `kiln` CLI, the studio, scripts),
//! changed slowly and only compatibly. The server converts its service types into these at
//! the edge; the client deserializes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ErrorBody {
    pub error_code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Health {
    pub status: String,
    pub version: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ExperimentPage {
    pub experiments: Vec<Experiment>,
    pub next_page_token: Option<String>,
}

/// A metric value; `null` stands for NaN, which JSON cannot carry.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Metric {
    pub key: String,
    pub value: Option<f64>,
    pub step: i64,
    pub timestamp: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Run {
    pub id: String,
    pub name: String,
    pub experiment_id: String,
    pub status: String,
    pub user_id: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    /// The latest value of each metric.
    pub metrics: Vec<Metric>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next_page_token: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct MetricHistory {
    pub metrics: Vec<Metric>,
    pub next_page_token: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ModelVersion {
    pub version: i64,
    pub stage: String,
    pub status: String,
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub description: Option<String>,
    pub aliases: Vec<String>,
    pub creation_timestamp: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Model {
    pub name: String,
    pub description: Option<String>,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub tags: BTreeMap<String, String>,
    pub aliases: BTreeMap<String, i64>,
    /// All versions for `GET /models/{name}`; the latest per stage in listings.
    pub versions: Vec<ModelVersion>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ModelPage {
    pub models: Vec<Model>,
    pub next_page_token: Option<String>,
}

// ---- jobs ------------------------------------------------------------------------------

/// A command job to run: an Azure ML v2 command-job spec (YAML or JSON text) whose local
/// paths were uploaded as snapshots (`cas:` URIs) first.
/// A step of a pipeline job and the job that ran it (or was reused for it).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct PipelineStep {
    /// `train`, or `outer/inner` for a step inside a pipeline component.
    pub name: String,
    /// How the spec names its component (`./train.yml`, `azureml:train@latest`, `inline`).
    pub component: String,
    pub job: Option<String>,
    pub status: Option<String>,
    /// The earlier job whose outputs the step took instead of running.
    pub reused_from: Option<String>,
    /// Why the step ran or was reused.
    pub reuse: Option<String>,
    pub attempts: u32,
}

/// A pipeline as a graph: its steps (nodes) and which step reads from which (edges).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct PipelineGraph {
    pub nodes: Vec<PipelineStep>,
    /// `[from, to]` step names.
    pub edges: Vec<[String; 2]>,
}

/// A sweep's search and its trials: what `job show` lists and what a parallel-coordinates
/// view draws (one axis per parameter, one for the objective, one line per trial).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct SweepTrials {
    pub primary_metric: String,
    /// `maximize` or `minimize`.
    pub goal: String,
    /// `random`, `grid` or `bayesian`.
    pub sampling_algorithm: String,
    pub parameters: Vec<SweepParameter>,
    pub max_total_trials: u32,
    pub max_concurrent_trials: u32,
    /// The trial job with the best score, once the sweep has ended.
    pub best_trial: Option<String>,
    pub best_metric: Option<f64>,
    pub trials: Vec<SweepTrial>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct SweepParameter {
    pub name: String,
    /// `choice`, `randint`, `uniform`, `loguniform`, `quniform`, `qloguniform`, `normal`,
    /// `lognormal`, `qnormal` or `qlognormal`.
    pub distribution: String,
    /// The distribution's parameters as the spec names them (`values`, `min_value`, `mu`, …).
    #[schema(value_type = Object)]
    pub arguments: serde_json::Value,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct SweepTrial {
    /// 0-based, in the order trials started.
    pub index: usize,
    pub job: String,
    pub status: String,
    /// Parameter name → the trial's value (number, string or boolean).
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// The best value of the primary metric the trial logged.
    pub metric: Option<f64>,
    /// How many times it logged the primary metric.
    pub reports: usize,
    /// Why the early-termination policy stopped it, when it did.
    pub early_terminated: Option<String>,
    pub failure: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct JobCreate {
    pub spec: String,
    /// How error messages name the spec (the client's file name).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct JobTransition {
    pub status: String,
    pub at: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct JobOutput {
    /// Where the output is kept: `blob:<path>` in the workspace's artifact store.
    pub uri: String,
    pub data_type: String,
    pub asset_name: Option<String>,
    pub asset_version: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Job {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub status: String,
    /// Why the job failed or was canceled.
    pub failure: Option<String>,
    pub experiment_id: String,
    pub experiment_name: String,
    /// The job's MLflow run (the same as its name).
    pub run_id: String,
    pub compute: String,
    pub command: String,
    pub environment: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub transitions: Vec<JobTransition>,
    pub tags: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
    pub archived: bool,
    pub outputs: BTreeMap<String, JobOutput>,
    /// The spec as submitted.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// Things the spec had that were accepted but not used.
    pub warnings: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
}

/// What `job update` may change.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
pub struct JobUpdate {
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// One file of an output.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct OutputFile {
    /// Relative to the output's folder.
    pub path: String,
    pub size: u64,
    /// Its path in the artifact store (readable through `/api/2.0/mlflow-artifacts/artifacts/`).
    pub store_path: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct OutputFiles {
    pub output: String,
    pub files: Vec<OutputFile>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ComputeTarget {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub max_concurrent_jobs: i64,
    pub description: Option<String>,
    pub created_at: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ComputeCreate {
    pub name: String,
    /// `local` (also accepted: `amlcompute`, `computeinstance`, which run locally).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub max_concurrent_jobs: Option<i64>,
    pub description: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ComputePage {
    pub computes: Vec<ComputeTarget>,
}

// ---- snapshots ---------------------------------------------------------------------------

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BlobQuery {
    /// SHA-256 digests (lowercase hex).
    pub digests: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BlobsMissing {
    pub missing: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct SnapshotFile {
    pub path: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub executable: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct SnapshotCreate {
    pub files: Vec<SnapshotFile>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    /// `cas:<id>`, for a spec's `code:` or an input's `path:`.
    pub uri: String,
    pub files: usize,
}

// ---- data and environment assets ---------------------------------------------------------

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DataAsset {
    pub name: String,
    pub version: String,
    #[serde(rename = "type")]
    pub data_type: String,
    /// `cas:<snapshot>` (an upload), `blob:<path>` (the artifact store) or a URL.
    pub uri: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: i64,
    pub archived: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DataCreate {
    pub name: String,
    pub version: Option<String>,
    #[serde(rename = "type", default)]
    pub data_type: Option<String>,
    /// An uploaded snapshot (`cas:…`), `azureml://datastores/<ds>/paths/<p>` or a URL.
    pub path: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DataPage {
    pub data: Vec<DataAsset>,
}

/// A registered component version.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ComponentAsset {
    pub name: String,
    pub version: String,
    /// `command` or `pipeline`.
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub is_deterministic: bool,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    pub created_at: i64,
    pub archived: bool,
}

/// A component spec (YAML or JSON text) whose component files are inlined and local paths
/// uploaded (`kiln component create` does both).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ComponentCreate {
    pub spec: String,
    /// How error messages name the spec.
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ComponentPage {
    pub components: Vec<ComponentAsset>,
}

/// A version of a registered model, as an asset: the same object the MLflow registry shows.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ModelAsset {
    pub name: String,
    pub version: String,
    /// custom_model, mlflow_model or triton_model.
    #[serde(rename = "type")]
    pub model_type: String,
    /// Where the files are, as the registry records it (`mlflow-artifacts:/…`, `runs:/…`).
    pub source: String,
    pub run_id: Option<String>,
    /// The MLflow stage; archived versions are in `Archived`.
    pub stage: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: i64,
    pub archived: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ModelCreate {
    pub name: String,
    /// The next number when left out; an existing one only with the same files.
    pub version: Option<String>,
    #[serde(rename = "type", default)]
    pub model_type: Option<String>,
    /// An uploaded snapshot (`cas:<id>[/<file or folder>]`), `runs:/<run>/<path>`,
    /// `azureml://jobs/<job>/outputs/<output>[/paths/<p>]`, `azureml://datastores/<ds>/paths/<p>`
    /// or a URL.
    pub path: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ModelAssetPage {
    pub models: Vec<ModelAsset>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct EnvironmentAsset {
    pub name: String,
    pub version: String,
    pub image: Option<String>,
    /// The pip requirements of its isolated Python environment; none: the host's Python.
    pub requirements: Option<Vec<String>>,
    pub python: Option<String>,
    #[schema(value_type = Object)]
    pub conda_file: Option<serde_json::Value>,
    /// The content hash environments are cached by.
    pub hash: String,
    pub notes: Vec<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: i64,
    pub archived: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct EnvironmentCreate {
    pub name: String,
    pub version: Option<String>,
    pub image: Option<String>,
    /// The conda file's text.
    pub conda_file: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct EnvironmentPage {
    pub environments: Vec<EnvironmentAsset>,
}

/// A schedule spec (YAML or JSON text) whose job file is inlined and local paths uploaded
/// (`kiln schedule create` does both). A schedule of an existing name is replaced.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ScheduleCreate {
    pub spec: String,
    /// How error messages name the spec.
    #[serde(default)]
    pub source: Option<String>,
}

/// A schedule and its recent fires. Times are epoch milliseconds.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub is_enabled: bool,
    /// `cron` or `recurrence`.
    pub trigger_type: String,
    /// The trigger in words: `cron 0 9 * * 1-5 (Pacific Standard Time)`.
    pub trigger: String,
    pub time_zone: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    /// The job it creates: the job file as the schedule named it, `azureml:<job>` or `inline`.
    pub create_job: String,
    /// When it fires next; absent when disabled or past its end time.
    pub next_fire_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The most recent fires, newest first.
    #[serde(default)]
    pub fires: Vec<ScheduleFire>,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A time a schedule was due.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ScheduleFire {
    pub at: i64,
    /// `started` (its job was created), `skipped` (missed while no server ran) or `failed`
    /// (the job could not be submitted; `message` says why).
    pub status: String,
    pub job_name: Option<String>,
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct SchedulePage {
    pub schedules: Vec<Schedule>,
}

/// A spec sent to create an endpoint or a deployment: its YAML text, the file name errors
/// should name, and `--set path=value` overrides.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
pub struct EndpointSpec {
    pub spec: String,
    pub source: Option<String>,
    #[serde(default)]
    pub overrides: Vec<String>,
}

/// `online-endpoint update`: a new spec, and/or a traffic split or mirror.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
pub struct OnlineEndpointUpdate {
    pub spec: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Deployment → percent of live traffic (adds up to 100, or 0).
    pub traffic: Option<BTreeMap<String, u32>>,
    /// One deployment → percent of requests copied to it.
    pub mirror_traffic: Option<BTreeMap<String, u32>>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct OnlineEndpoint {
    pub name: String,
    pub auth_mode: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub traffic: BTreeMap<String, u32>,
    pub mirror_traffic: BTreeMap<String, u32>,
    pub scoring_uri: String,
    pub provisioning_state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct OnlineEndpointList {
    pub endpoints: Vec<OnlineEndpoint>,
}

/// The keys of a `key` endpoint, or a token of an `aml_token` one (the original service's
/// field names).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
pub struct EndpointCredentials {
    #[serde(rename = "primaryKey", skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    #[serde(rename = "secondaryKey", skip_serializing_if = "Option::is_none")]
    pub secondary_key: Option<String>,
    #[serde(rename = "accessToken", skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(rename = "tokenType", skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Epoch seconds.
    #[serde(rename = "expiryTimeUtc", skip_serializing_if = "Option::is_none")]
    pub expiry_time_utc: Option<i64>,
    #[serde(rename = "refreshAfterTimeUtc", skip_serializing_if = "Option::is_none")]
    pub refresh_after_time_utc: Option<i64>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RegenerateKeys {
    /// `primary` or `secondary`.
    pub key_type: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
pub struct OnlineDeploymentCreate {
    pub spec: String,
    pub source: Option<String>,
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Once ready, the deployment takes all of the endpoint's traffic.
    #[serde(default)]
    pub all_traffic: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DeploymentModel {
    /// As the spec names it (`azureml:iris:1`), or `inline`.
    pub label: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub uri: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RequestSettings {
    pub request_timeout_ms: u64,
    pub max_concurrent_requests_per_instance: u64,
    pub max_queue_wait_ms: u64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Probe {
    pub initial_delay: u64,
    pub period: u64,
    pub timeout: u64,
    pub success_threshold: u64,
    pub failure_threshold: u64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: String,
    /// `null` for a dimension the model leaves open (the batch).
    pub shape: Vec<Option<usize>>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct OnlineDeployment {
    pub name: String,
    pub endpoint_name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model: Option<DeploymentModel>,
    pub scoring_script: Option<String>,
    pub environment: Option<String>,
    /// `onnx`, `mlflow` or `scoring_script`.
    pub runtime: String,
    pub instance_count: u64,
    pub ready_instances: u64,
    pub request_settings: RequestSettings,
    pub liveness_probe: Probe,
    pub readiness_probe: Probe,
    /// `Creating`, `Updating`, `Succeeded` or `Failed`.
    pub provisioning_state: String,
    pub message: Option<String>,
    pub inputs: Vec<TensorSpec>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct OnlineDeploymentList {
    pub deployments: Vec<OnlineDeployment>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DeploymentLogs {
    pub content: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BatchEndpoint {
    pub name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The deployment an invocation without `deployment_name` runs.
    pub default_deployment: Option<String>,
    pub deployments: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BatchEndpointList {
    pub endpoints: Vec<BatchEndpoint>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
pub struct BatchEndpointUpdate {
    pub spec: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub overrides: Vec<String>,
    pub default_deployment: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
pub struct BatchDeploymentCreate {
    pub spec: String,
    pub source: Option<String>,
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Make it the endpoint's default deployment.
    #[serde(default)]
    pub set_default: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BatchSettings {
    pub max_concurrency_per_instance: u64,
    pub mini_batch_size: u64,
    pub output_action: String,
    pub output_file_name: String,
    pub max_retries: u64,
    pub retry_timeout_s: u64,
    pub error_threshold: i64,
    pub logging_level: String,
    pub environment_variables: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BatchDeployment {
    pub name: String,
    pub endpoint_name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model: DeploymentModel,
    pub scoring_script: Option<String>,
    pub environment: String,
    pub instance_count: u64,
    pub settings: BatchSettings,
    pub provisioning_state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BatchDeploymentList {
    pub deployments: Vec<BatchDeployment>,
}

/// `batch-endpoint invoke`: what to score, and overrides of the deployment's settings.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
pub struct BatchInvoke {
    pub deployment_name: Option<String>,
    /// An uploaded snapshot (`cas:…`), a URL, a data asset (`azureml:name:version`) or a
    /// datastore path.
    pub input: String,
    /// `uri_folder` (default) or `uri_file`.
    pub input_type: Option<String>,
    pub mini_batch_size: Option<u64>,
    pub instance_count: Option<u64>,
    pub output_file_name: Option<String>,
    pub job_name: Option<String>,
}
