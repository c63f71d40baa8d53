//! The local compute backend: each job is a `kiln launch` process on this machine, in a
//! process group of its own, so the server can stop it and can restart without stopping it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kiln_launcher::{Event, LaunchPlan, Outcome, OutcomeStatus, PLAN_FILE, RESULT_FILE};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// What the server keeps (in the job's row) to find a launcher again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    pub pid: i32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22): a pid
    /// alone may have been reused by an unrelated process.
    pub start_ticks: u64,
    pub job_dir: PathBuf,
    /// The job's own process group, once its processes run.
    pub pgid: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    Launcher(Event),
    /// The launcher is gone; this is how the job ended.
    Exited(Outcome),
}

#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// The `kiln` binary, whose `launch` command is the launcher.
    pub exe: PathBuf,
}

impl LocalBackend {
    /// Writes the plan into the job's folder and starts its launcher.
    pub fn start(&self, plan: &LaunchPlan, events: mpsc::UnboundedSender<BackendEvent>) -> std::io::Result<Runner> {
        let dir = &plan.job_dir;
        std::fs::create_dir_all(dir.join("system_logs"))?;
        std::fs::write(dir.join(PLAN_FILE), serde_json::to_vec_pretty(plan).map_err(std::io::Error::other)?)?;
        let _ = std::fs::remove_file(dir.join(RESULT_FILE));
        let stderr = std::fs::File::create(dir.join("system_logs/launcher.stderr.txt"))?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("launch").arg(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        // Its own group: a Ctrl-C meant for the server does not reach jobs.
        cmd.process_group(0);
        let mut child = cmd.spawn()?;
        let pid = child.id().map(|p| p as i32).ok_or_else(|| std::io::Error::other("the launcher exited at once"))?;
        let runner = Runner { pid, start_ticks: start_ticks(pid).unwrap_or(0), job_dir: dir.clone(), pgid: None };
        // Written at once, before the store hears of it: a server killed in between finds the
        // launcher here after a restart instead of losing the job.
        std::fs::write(dir.join(RUNNER_FILE), serde_json::to_vec(&runner).map_err(std::io::Error::other)?)?;
        let stdout = child.stdout.take();
        let job_dir = dir.clone();
        tokio::spawn(async move {
            let mut done: Option<Outcome> = None;
            if let Some(stdout) = stdout {
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Event>(&line) {
                        Ok(Event::Done(outcome)) => done = Some(outcome),
                        Ok(event) => {
                            let _ = events.send(BackendEvent::Launcher(event));
                        }
                        Err(_) => tracing::debug!(line, "unreadable launcher event"),
                    }
                }
            }
            let status = child.wait().await;
            let outcome = done.or_else(|| read_result(&job_dir)).unwrap_or_else(|| {
                lost(format!("the launcher ended without reporting an outcome ({})", describe(status)))
            });
            let _ = events.send(BackendEvent::Exited(outcome));
        });
        Ok(runner)
    }

    /// Follows a launcher started by an earlier server process: it is not our child, so its
    /// end is noticed by polling, and its outcome read from `result.json`.
    pub fn reattach(&self, runner: &Runner, events: mpsc::UnboundedSender<BackendEvent>) -> bool {
        let alive = is_alive(runner);
        let runner = runner.clone();
        tokio::spawn(async move {
            let log = runner.job_dir.join(kiln_launcher::USER_LOG);
            let mut last_len = 0;
            while is_alive(&runner) {
                let len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
                if len != last_len {
                    last_len = len;
                    let _ = events.send(BackendEvent::Launcher(Event::Log));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // A launcher that died (or was killed) may have left the job's processes behind.
            if let Some(pgid) = runner.pgid.filter(|p| *p > 0) {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let outcome = read_result(&runner.job_dir).unwrap_or_else(|| {
                lost(format!(
                    "the job's launcher (pid {}) was gone without an outcome when the server checked after a restart",
                    runner.pid
                ))
            });
            let _ = events.send(BackendEvent::Exited(outcome));
        });
        alive
    }

    /// Asks the launcher to stop the job (it stops the job's processes and saves the logs).
    pub fn cancel(&self, runner: &Runner) {
        if is_alive(runner) {
            let _ = kill(Pid::from_raw(runner.pid), Signal::SIGTERM);
        }
    }

    /// Kills the launcher and the job's processes outright: for a launcher that did not stop.
    pub fn force_stop(&self, runner: &Runner) {
        if is_alive(runner) {
            let _ = killpg(Pid::from_raw(runner.pid), Signal::SIGKILL);
        }
        if let Some(pgid) = runner.pgid.filter(|p| *p > 0) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

fn lost(message: String) -> Outcome {
    Outcome { status: OutcomeStatus::Failed, exit_code: None, message: Some(message) }
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

/// Where `start` records the launcher it started, in the job's folder.
const RUNNER_FILE: &str = "runner.json";

/// The launcher `start` recorded in a job's folder, if it got that far.
pub fn recorded_runner(job_dir: &Path) -> Option<Runner> {
    serde_json::from_slice(&std::fs::read(job_dir.join(RUNNER_FILE)).ok()?).ok()
}

pub fn read_result(job_dir: &Path) -> Option<Outcome> {
    serde_json::from_slice(&std::fs::read(job_dir.join(RESULT_FILE)).ok()?).ok()
}

fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The launcher is still the process we started (not a zombie, not a reused pid).
fn is_alive(runner: &Runner) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", runner.pid)) else { return false };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return false };
    let state = rest.split_whitespace().next().unwrap_or("");
    if state == "Z" || state == "X" {
        return false;
    }
    runner.start_ticks == 0 || start_ticks(runner.pid) == Some(runner.start_ticks)
}
