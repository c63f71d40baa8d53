//! Job statuses, as Azure ML's `JobStatus` names them, and the moves between them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    NotStarted,
    Queued,
    Preparing,
    Starting,
    Running,
    Finalizing,
    CancelRequested,
    Completed,
    Failed,
    Canceled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 10] = [
        JobStatus::NotStarted,
        JobStatus::Queued,
        JobStatus::Preparing,
        JobStatus::Starting,
        JobStatus::Running,
        JobStatus::Finalizing,
        JobStatus::CancelRequested,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Canceled,
    ];

    /// Statuses in which a job holds a slot of its compute target (a launcher is alive).
    pub const ACTIVE: [JobStatus; 5] = [
        JobStatus::Preparing,
        JobStatus::Starting,
        JobStatus::Running,
        JobStatus::Finalizing,
        JobStatus::CancelRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::NotStarted => "NotStarted",
            JobStatus::Queued => "Queued",
            JobStatus::Preparing => "Preparing",
            JobStatus::Starting => "Starting",
            JobStatus::Running => "Running",
            JobStatus::Finalizing => "Finalizing",
            JobStatus::CancelRequested => "CancelRequested",
            JobStatus::Completed => "Completed",
            JobStatus::Failed => "Failed",
            JobStatus::Canceled => "Canceled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|j| j.as_str().eq_ignore_ascii_case(s))
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Canceled)
    }

    /// The statuses a job may move to `self` from. Progress never goes backwards, and once
    /// a cancel is requested only an end can follow.
    pub fn reachable_from(self) -> &'static [&'static str] {
        match self {
            JobStatus::NotStarted => &[],
            // Preparing → Queued only after a restart, for a job whose launcher never started.
            JobStatus::Queued => &["NotStarted", "Preparing"],
            JobStatus::Preparing => &["Queued"],
            JobStatus::Starting => &["Preparing"],
            // A pipeline has no launcher: it runs as soon as it is recorded.
            JobStatus::Running => &["NotStarted", "Preparing", "Starting"],
            JobStatus::Finalizing => &["Preparing", "Starting", "Running"],
            JobStatus::CancelRequested => &["Preparing", "Starting", "Running", "Finalizing"],
            JobStatus::Completed | JobStatus::Failed => {
                &["Preparing", "Starting", "Running", "Finalizing", "CancelRequested"]
            }
            JobStatus::Canceled => {
                &["NotStarted", "Queued", "Preparing", "Starting", "Running", "Finalizing", "CancelRequested"]
            }
        }
    }

    /// The MLflow run status that mirrors the job's.
    pub fn run_status(self) -> &'static str {
        match self {
            JobStatus::NotStarted | JobStatus::Queued => "SCHEDULED",
            JobStatus::Completed => "FINISHED",
            JobStatus::Failed => "FAILED",
            JobStatus::Canceled => "KILLED",
            _ => "RUNNING",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
