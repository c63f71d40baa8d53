//! Plain entity types the store reads and writes. They carry no wire format: the server's
//! MLflow face and native face each convert them at the edge.

use serde::{Deserialize, Serialize};

/// Lifecycle of experiments, runs and logged models: soft deletion keeps the row.
pub const ACTIVE: &str = "active";
pub const DELETED: &str = "deleted";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Tag {
        Tag { key: key.into(), value: value.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: i64,
    pub run_name: String,
    pub user_id: String,
    pub status: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

/// One metric point. `value` may be NaN or infinite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    pub model_id: Option<String>,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

/// A metric point with the run it belongs to (bulk history reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetric {
    pub run_id: String,
    pub metric: Metric,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInput {
    pub dataset: Dataset,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub model_id: String,
    pub step: i64,
}

/// A run with everything MLflow returns for it: latest metrics, params, tags, inputs, outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    pub metrics: Vec<Metric>,
    pub params: Vec<Tag>,
    pub tags: Vec<Tag>,
    pub dataset_inputs: Vec<DatasetInput>,
    pub model_inputs: Vec<String>,
    pub model_outputs: Vec<ModelOutput>,
}

/// What a log-batch writes, already validated by the tracking service.
#[derive(Debug, Clone, Default)]
pub struct RunBatch {
    pub metrics: Vec<Metric>,
    pub params: Vec<Tag>,
    pub tags: Vec<Tag>,
}

/// Why the store refused a batch (nothing of it was written).
#[derive(Debug, Clone, PartialEq)]
pub enum BatchRefused {
    /// A param was logged before with another value.
    ParamChanged(ParamConflict),
    /// The run is not active; its lifecycle stage.
    RunNotActive(String),
}

/// A param that was logged before with another value.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamConflict {
    pub key: String,
    pub old_value: String,
    pub new_value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub artifact_uri: String,
    pub status: String,
    pub status_message: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub lifecycle_stage: String,
    pub tags: Vec<Tag>,
    pub params: Vec<Tag>,
    /// Run metrics logged with this model's id.
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub user_id: Option<String>,
    pub tags: Vec<Tag>,
    /// `(alias, version)` pairs.
    pub aliases: Vec<(String, i64)>,
    /// The latest version in each stage.
    pub latest_versions: Vec<ModelVersion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub user_id: Option<String>,
    pub current_stage: String,
    pub description: Option<String>,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub model_id: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceInfo {
    pub trace_id: String,
    pub experiment_id: i64,
    pub client_request_id: Option<String>,
    /// Milliseconds since the epoch.
    pub request_time: i64,
    /// Milliseconds.
    pub execution_duration: Option<i64>,
    pub state: String,
    pub request_preview: Option<String>,
    pub response_preview: Option<String>,
    pub metadata: Vec<Tag>,
    pub tags: Vec<Tag>,
}

/// A page of results and the offset of the next page, if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_offset: Option<i64>,
}

/// Where a point sits in a metric's history: the order history pages are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricPosition {
    pub step: i64,
    pub timestamp: i64,
    /// The IEEE bits of the stored value, as a signed integer (the column's order).
    pub value_bits: i64,
}

/// A page of a metric's history and where the next page starts, if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub items: Vec<Metric>,
    pub next: Option<MetricPosition>,
}

/// A job as stored. Statuses are plain strings here; the orchestrator owns their meaning.
/// `spec`, `tags` and `properties` are JSON texts.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub name: String,
    pub kind: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub experiment_id: i64,
    pub compute: String,
    pub status: String,
    pub failure: Option<String>,
    pub spec: String,
    pub tags: String,
    pub properties: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived: bool,
    pub runner: Option<String>,
    /// The pipeline job a step belongs to.
    pub parent: Option<String>,
    /// What a step's reuse is decided by: a completed job with the same key is reused.
    pub reuse_key: Option<String>,
    /// The same step across submissions (experiment and step path), to say why a step ran.
    pub lineage: Option<String>,
    /// `(status, at)`, oldest first; filled by `get_job` only.
    pub transitions: Vec<(String, i64)>,
}

/// Which jobs `list_jobs` returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// `Some(false)`: only jobs not archived; `Some(true)`: only archived; `None`: both.
    pub archived: Option<bool>,
    pub statuses: Vec<String>,
    pub compute: Option<String>,
    /// Only jobs of this kind (`command`, `pipeline`).
    pub kind: Option<String>,
    /// Only the steps of this pipeline job.
    pub parent: Option<String>,
    /// Leave pipeline steps out (when `parent` is not set).
    pub top_level_only: bool,
    pub oldest_first: bool,
    pub limit: Option<i64>,
    /// Leave the `spec` column out (returned empty): for listings that only need the status,
    /// since a command job's spec holds its whole launch plan.
    pub without_spec: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComputeTarget {
    pub name: String,
    pub kind: String,
    pub max_concurrent_jobs: i64,
    pub description: Option<String>,
    pub created_at: i64,
}

/// One version of a data or environment asset. `spec` is JSON; `content_hash` identifies what
/// the version holds, so re-registering the same content is idempotent and different content
/// under an existing version is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRecord {
    pub kind: String,
    pub name: String,
    pub version: String,
    pub content_hash: String,
    pub spec: String,
    pub created_at: i64,
    pub archived: bool,
}

/// A schedule: its bundled spec (JSON text) and its firing state. Times are epoch ms.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub name: String,
    pub spec: String,
    pub source: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub anchor_at: i64,
    /// `None` once the schedule has no more times (past its end).
    pub next_fire_at: Option<i64>,
}

/// One time a schedule was due.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleFire {
    pub schedule: String,
    pub fire_at: i64,
    /// `started` (a job was created), `skipped` (missed while no server ran) or `failed`
    /// (the job could not be submitted).
    pub status: String,
    pub job_name: Option<String>,
    pub message: Option<String>,
    pub recorded_at: i64,
}

/// An online or batch endpoint: its settings as a JSON document. Times are epoch ms.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRecord {
    pub name: String,
    /// `online` or `batch`.
    pub kind: String,
    pub document: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A deployment of an endpoint: its resolved settings and its provisioning state.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRecord {
    pub endpoint: String,
    pub name: String,
    pub document: String,
    pub state: String,
    /// Why it failed, when it did.
    pub message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}
