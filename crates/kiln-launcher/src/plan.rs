//! What a launcher is told to do: everything a job needs, as URIs and plain values, so the
//! same plan runs on this machine or on a remote node.
//!
//! URIs a plan uses:
//! - `cas:<snapshot id>` a content-addressed snapshot (a folder), `cas:<id>/<path>` a file in it;
//! - `blob:<path>` a path in the workspace's artifact store;
//! - `http://…`, `https://…` a download (cached by URL and validators);
//! - anything else is only ever passed through (`direct` mode).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub job_name: String,
    /// The job's own folder on the node: working directory, logs, result.
    pub job_dir: PathBuf,
    /// A cache shared by jobs on the node: snapshots, environments, downloads, tools.
    pub cache_dir: PathBuf,
    /// The artifact store's location (a folder or `s3://…`).
    pub artifact_store: String,
    /// The command, with `${{inputs.x}}` and `${{outputs.y}}` still to bind.
    pub command: String,
    pub code: Option<String>,
    pub environment: EnvironmentPlan,
    /// Variables for the process (tracking, `AZUREML_*`, the user's own).
    pub env: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, InputPlan>,
    pub outputs: BTreeMap<String, OutputPlan>,
    /// The artifact-store folder of the implicit `artifacts` output (the run's artifacts).
    pub artifacts_dest: String,
    pub processes: ProcessPlan,
    pub timeout_s: Option<u64>,
    /// A process whose end stops the launcher as a cancel would (the server, for a model
    /// worker); `None` for jobs, which outlive the server that started them.
    #[serde(default)]
    pub stop_with_parent: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentPlan {
    /// How the job log names the environment (`azureml:sklearn:3`, `inline`, …).
    pub label: String,
    /// A container image the spec names; recorded, not run (no container runtime is used).
    pub image: Option<String>,
    /// Pip requirements of an isolated environment; `None` runs with the host's Python.
    pub requirements: Option<Vec<String>>,
    /// A Python version the spec asks for (`3.10`), when it does.
    pub python: Option<String>,
    /// The environment's content hash: its cache key.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputPlan {
    Literal { value: String },
    Data { uri: String, data_type: String, mode: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputPlan {
    /// `blob:<path>`: where the output is kept.
    pub uri: String,
    pub data_type: String,
    pub mode: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProcessPlan {
    Single,
    /// `instance_count` × `per_instance` processes with PyTorch's rendezvous variables.
    PyTorch {
        instance_count: u64,
        per_instance: u64,
    },
    /// One process per worker with `TF_CONFIG`.
    TensorFlow {
        workers: u64,
    },
}

impl ProcessPlan {
    pub fn count(&self) -> u64 {
        match *self {
            ProcessPlan::Single => 1,
            ProcessPlan::PyTorch { instance_count, per_instance } => instance_count * per_instance,
            ProcessPlan::TensorFlow { workers } => workers,
        }
    }
}

/// How a launch ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: OutcomeStatus,
    /// The exit code of the first process that failed (or of rank 0).
    pub exit_code: Option<i32>,
    /// Why it failed, for the job's failure reason.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    Completed,
    Failed,
    Canceled,
}

/// What the launcher reports on its stdout, one JSON object per line, as it goes. The same
/// outcome is also written to `result.json` in the job folder, for whoever was not listening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Materializing code, data and the environment.
    Preparing,
    /// The user's processes are being started.
    Starting,
    /// They run; `pgid` is their process group.
    Running {
        pgid: i32,
    },
    /// Bytes were appended to the job log.
    Log,
    /// The processes ended; outputs are being saved.
    Finalizing,
    Done(Outcome),
}

pub const RESULT_FILE: &str = "result.json";
pub const PLAN_FILE: &str = "launch.json";
/// The merged stdout and stderr of the job's processes, as Azure ML names it.
pub const USER_LOG: &str = "user_logs/std_log.txt";
pub const SYSTEM_LOG: &str = "system_logs/launcher.log";
