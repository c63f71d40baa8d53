//! Model serving: online endpoints and their deployments.
//!
//! An endpoint is a name, an auth mode with its keys, and a traffic split over its
//! deployments; a deployment is a model (and optionally a scoring script) with a runtime:
//! ONNX models run in this process with tract ([`onnx`]), everything else in Python
//! workers. The settings live in the store as JSON documents (so they survive restarts and
//! are restored at start-up); what serves requests is the *live* state: one immutable
//! [`live::LiveEndpoint`] per endpoint, replaced whole on every change, so a request reads
//! one consistent routing table and a deployment being replaced keeps serving the requests
//! it already holds.
//!
//! Nothing here knows HTTP: a scoring request is a body, a content type and two header
//! values; the answer is a status number, a content type and a body.

pub mod auth;
pub mod batch;
mod control;
mod live;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod protocol;
mod workers;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use kiln_orchestrator::Orchestrator;
use kiln_tracking::{ServiceError, Tracking};
use serde::{Deserialize, Serialize};

pub use control::{DeploymentCreate, EndpointCreate, EndpointUpdate};
pub use live::{ScoreRequest, ScoreResponse};
pub use model::RuntimeKind;

pub type Result<T> = std::result::Result<T, ServiceError>;

/// Where serving keeps its files: `<data_dir>/endpoints/<endpoint>/<deployment>/` holds a
/// deployment's log.
#[derive(Debug, Clone)]
pub struct ServingConfig {
    pub data_dir: PathBuf,
    /// Environments and snapshots shared with jobs on this machine.
    pub cache_dir: PathBuf,
    /// The `kiln` binary, whose `launch` command starts Python workers.
    pub exe: PathBuf,
    /// The artifact store's location, for the workers' launcher.
    pub artifact_store: String,
}

/// The serving service. Cheap to clone.
#[derive(Clone)]
pub struct Serving {
    inner: Arc<Inner>,
}

struct Inner {
    tracking: Tracking,
    orchestrator: Orchestrator,
    config: ServingConfig,
    live: RwLock<HashMap<String, Arc<live::LiveEndpoint>>>,
    runtimes: RwLock<Runtimes>,
    /// Changes to endpoints and deployments happen one at a time.
    control: tokio::sync::Mutex<()>,
    metrics: metrics::Metrics,
}

/// Deployment runtimes by (endpoint, deployment), with the revision they were built from.
type Runtimes = HashMap<(String, String), (u64, Arc<live::LiveDeployment>)>;

/// An endpoint as Kiln keeps it (the store's document).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointDocument {
    pub auth_mode: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub traffic: BTreeMap<String, u32>,
    #[serde(default)]
    pub mirror_traffic: BTreeMap<String, u32>,
    pub keys: auth::Keys,
}

/// The model a deployment serves, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelBinding {
    /// As the spec names it (`azureml:iris:1`), or `inline` for files that came with it.
    pub label: String,
    pub name: Option<String>,
    pub version: Option<String>,
    /// `blob:<path>` or `cas:<snapshot>/<name>`.
    pub uri: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSettings {
    pub request_timeout_ms: u64,
    pub max_concurrent_requests_per_instance: u64,
    pub max_queue_wait_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub initial_delay: u64,
    pub period: u64,
    pub timeout: u64,
    pub success_threshold: u64,
    pub failure_threshold: u64,
}

impl From<kiln_spec::endpoint::Probe> for Probe {
    fn from(p: kiln_spec::endpoint::Probe) -> Self {
        Probe {
            initial_delay: p.initial_delay,
            period: p.period,
            timeout: p.timeout,
            success_threshold: p.success_threshold,
            failure_threshold: p.failure_threshold,
        }
    }
}

/// A deployment as Kiln keeps it (the store's document).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeploymentDocument {
    /// Bumped by every update: a runtime built from an older revision is out of date.
    pub revision: u64,
    /// New with every create and update: what a finished build checks it is still wanted.
    pub generation: String,
    /// The spec as sent (local paths replaced by uploads) and its file name: what an update
    /// with `--set` alone starts from.
    pub spec: String,
    pub source: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub model: Option<ModelBinding>,
    /// `code_configuration`: the uploaded folder and the script in it.
    pub code: Option<(String, String)>,
    /// The environment as written (a reference, or `inline`).
    pub environment: Option<String>,
    /// What Python workers run in (none for the ONNX runtime).
    #[serde(default)]
    pub environment_plan: Option<kiln_launcher::EnvironmentPlan>,
    #[serde(default)]
    pub environment_variables: BTreeMap<String, String>,
    pub instance_count: u64,
    pub request_settings: RequestSettings,
    pub liveness_probe: Probe,
    pub readiness_probe: Probe,
    pub runtime: RuntimeKind,
}

/// Provisioning states, as the original service names them.
pub mod state {
    pub const CREATING: &str = "Creating";
    pub const UPDATING: &str = "Updating";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
}

/// An online endpoint as clients see it (no secrets).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointView {
    pub name: String,
    pub auth_mode: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub traffic: BTreeMap<String, u32>,
    pub mirror_traffic: BTreeMap<String, u32>,
    /// The scoring path on the server (`/endpoints/<name>/score`).
    pub scoring_path: String,
    pub provisioning_state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentView {
    pub name: String,
    pub endpoint_name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model: Option<ModelBinding>,
    pub scoring_script: Option<String>,
    pub environment: Option<String>,
    pub runtime: String,
    pub instance_count: u64,
    pub ready_instances: u64,
    pub request_settings: RequestSettings,
    pub liveness_probe: Probe,
    pub readiness_probe: Probe,
    pub provisioning_state: String,
    /// Why it failed, when it did.
    pub message: Option<String>,
    /// The model's inputs, when the runtime knows them (ONNX).
    pub inputs: Vec<onnx::TensorSpec>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `get-credentials`: the keys of a `key` endpoint, or a fresh token of an `aml_token` one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Credentials {
    Keys {
        #[serde(rename = "primaryKey")]
        primary_key: String,
        #[serde(rename = "secondaryKey")]
        secondary_key: String,
    },
    Token {
        #[serde(rename = "accessToken")]
        access_token: String,
        #[serde(rename = "tokenType")]
        token_type: String,
        /// Epoch seconds.
        #[serde(rename = "expiryTimeUtc")]
        expiry_time_utc: i64,
        #[serde(rename = "refreshAfterTimeUtc")]
        refresh_after_time_utc: i64,
    },
}

/// A shell word: single-quoted, with single quotes inside escaped (commands the launcher runs
/// with `bash -c`).
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Now, in epoch seconds.
pub(crate) fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn scoring_path(endpoint: &str) -> String {
    format!("/endpoints/{endpoint}/score")
}

impl Serving {
    pub fn new(tracking: Tracking, orchestrator: Orchestrator, config: ServingConfig) -> Serving {
        Serving {
            inner: Arc::new(Inner {
                tracking,
                orchestrator,
                config,
                live: RwLock::new(HashMap::new()),
                runtimes: RwLock::new(HashMap::new()),
                control: tokio::sync::Mutex::new(()),
                metrics: metrics::Metrics::new(),
            }),
        }
    }

    /// The traffic of each serving deployment of an endpoint: totals since it started
    /// serving and the last two minutes second by second.
    pub fn deployment_traffic(&self, endpoint: &str) -> Vec<(String, std::sync::Arc<metrics::RecentRequests>)> {
        let Ok(map) = self.inner.runtimes.read() else { return Vec::new() };
        let mut out: Vec<(String, std::sync::Arc<metrics::RecentRequests>)> = map
            .iter()
            .filter(|((ep, _), _)| ep == endpoint)
            .map(|((_, dep), (_, rt))| (dep.clone(), rt.metrics.recent.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The Prometheus exposition of every deployment's metrics.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.encode()
    }
}
