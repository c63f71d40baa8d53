//! Starting the job's processes, collecting their output, and stopping the whole tree.
//!
//! The launcher makes itself a child subreaper, so a process the job leaves behind (a daemon,
//! a double fork) is re-parented to the launcher instead of init, and the launcher can find
//! and stop every descendant when the job ends, times out or is canceled.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use crate::plan::{Event, LaunchPlan, Outcome, OutcomeStatus, ProcessPlan};
use crate::{SystemLog, emit};

/// How long processes get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

pub(crate) fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Whether the launcher was asked to stop (SIGTERM or SIGINT, or the end of the parent it was
/// told to stop with): the job was canceled.
///
/// Listening starts once, when the launcher starts, and the answer sticks: a signal that
/// arrives between preparing and running (when nobody is awaiting it) is not lost.
#[derive(Clone)]
pub(crate) struct CancelSignal(tokio::sync::watch::Receiver<bool>);

impl CancelSignal {
    pub(crate) fn listen(stop_with_parent: Option<u32>) -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = tokio::sync::watch::channel(false);
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                    _ = parent_ended(stop_with_parent) => {},
                }
                let _ = tx.send(true);
                // Keep the handlers installed: a second signal must not kill the launcher.
                std::future::pending::<()>().await
            });
        }
        CancelSignal(rx)
    }

    /// Resolves once the launcher has been asked to stop (at once if it already was).
    pub(crate) async fn requested(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await
        }
    }
}

/// Resolves once the launcher's parent is no longer `parent` (it ended and the launcher was
/// handed to init or a subreaper); never without one.
///
/// Watched from here rather than with `PR_SET_PDEATHSIG` in the parent: that signal follows
/// the parent *thread* that spawned the launcher, and a tokio worker thread can end (after
/// `block_in_place`, say) while the server lives on, which canceled healthy model workers.
async fn parent_ended(parent: Option<u32>) {
    let Some(parent) = parent else { return std::future::pending().await };
    let parent = nix::unistd::Pid::from_raw(parent as i32);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while nix::unistd::getppid() == parent {
        tick.tick().await;
    }
}

enum Ended {
    AllExited,
    TimedOut,
    Canceled,
}

/// Runs the job's processes to their end and says how it went.
pub(crate) async fn run(
    plan: &LaunchPlan,
    command: &str,
    env: &[(String, String)],
    wd: &Path,
    log: &SystemLog,
    cancel: &CancelSignal,
) -> Outcome {
    let count = plan.processes.count().max(1) as usize;
    let shell = if Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
    let rendezvous_port = free_port();
    let (tx, rx) = mpsc::channel::<(usize, Vec<u8>)>(256);
    let mut children = Vec::with_capacity(count);
    let mut pgid: Option<i32> = None;
    let mut readers = Vec::new();
    for rank in 0..count {
        let (reader, writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => return stop_after_spawn_failure(children, pgid, format!("cannot create a pipe: {e}")).await,
        };
        let mut cmd = tokio::process::Command::new(shell);
        cmd.arg("-c").arg(command).current_dir(wd).stdin(Stdio::null());
        match writer.try_clone() {
            Ok(w2) => {
                cmd.stdout(w2).stderr(writer);
            }
            Err(e) => return stop_after_spawn_failure(children, pgid, format!("cannot create a pipe: {e}")).await,
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.envs(rank_env(plan.processes, rank, rendezvous_port));
        cmd.process_group(pgid.unwrap_or(0));
        cmd.kill_on_drop(false);
        match cmd.spawn() {
            Ok(child) => {
                if pgid.is_none() {
                    pgid = child.id().map(|p| p as i32);
                }
                children.push(child);
            }
            Err(e) => {
                return stop_after_spawn_failure(children, pgid, format!("cannot start {shell}: {e}")).await;
            }
        }
        drop(cmd); // closes the launcher's copies of the pipe's write end
        readers.push(spawn_reader(rank, reader, tx.clone()));
    }
    drop(tx);
    let pgid = pgid.unwrap_or(0);
    emit(&Event::Running { pgid });
    log.line(&format!("started {count} process(es) in process group {pgid}"));

    let writer = tokio::spawn(write_logs(rx, count, plan.job_dir.clone()));
    let mut codes: Vec<Option<i32>> = vec![None; count];
    let ended = {
        let wait_all = async {
            let mut pending: futures::stream::FuturesUnordered<_> =
                children.iter_mut().enumerate().map(|(rank, c)| async move { (rank, c.wait().await) }).collect();
            use futures::StreamExt;
            while let Some((rank, status)) = pending.next().await {
                let code = status.ok().map(exit_code);
                codes[rank] = code;
                // One failed rank ends a distributed job: the others would wait for it forever.
                if code != Some(0) && count > 1 {
                    break;
                }
            }
        };
        let timeout = async {
            match plan.timeout_s {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait_all => Ended::AllExited,
            _ = timeout => Ended::TimedOut,
            _ = cancel.requested() => Ended::Canceled,
        }
    };
    // Whatever is left (other ranks, background processes the command started) is stopped:
    // a finished job leaves nothing running.
    stop_tree(pgid, &mut children).await;
    for (rank, child) in children.iter_mut().enumerate() {
        if codes[rank].is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            codes[rank] = Some(exit_code(status));
        }
    }
    for r in readers {
        let _ = tokio::task::spawn_blocking(move || r.join()).await;
    }
    let last_lines = writer.await.unwrap_or_default();
    let failed_rank = codes.iter().position(|c| *c != Some(0));
    let exit = failed_rank.map(|r| codes[r]).unwrap_or(Some(0));
    match ended {
        Ended::TimedOut => Outcome {
            status: OutcomeStatus::Failed,
            exit_code: exit,
            message: Some(format!(
                "the job ran past its limits.timeout of {} s and was stopped",
                plan.timeout_s.unwrap_or(0)
            )),
        },
        Ended::Canceled => {
            Outcome { status: OutcomeStatus::Canceled, exit_code: exit, message: Some("canceled".into()) }
        }
        Ended::AllExited => match failed_rank {
            None => Outcome { status: OutcomeStatus::Completed, exit_code: Some(0), message: None },
            Some(rank) => {
                let code = codes[rank].map(|c| c.to_string()).unwrap_or_else(|| "unknown".into());
                let who = if count > 1 { format!("process {rank}") } else { "the command".to_string() };
                let last = last_lines.get(rank).and_then(|l| l.clone());
                let message = match last {
                    Some(l) => format!("{who} exited with code {code}: {l}"),
                    None => format!("{who} exited with code {code}"),
                };
                Outcome { status: OutcomeStatus::Failed, exit_code: codes[rank], message: Some(message) }
            }
        },
    }
}

async fn stop_after_spawn_failure(
    mut children: Vec<tokio::process::Child>,
    pgid: Option<i32>,
    message: String,
) -> Outcome {
    stop_tree(pgid.unwrap_or(0), &mut children).await;
    Outcome { status: OutcomeStatus::Failed, exit_code: None, message: Some(message) }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The variables a process of a distributed job reads to find its peers.
fn rank_env(plan: ProcessPlan, rank: usize, port: u16) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    match plan {
        ProcessPlan::Single => set("AZUREML_CR_NODE_RANK", "0".into()),
        ProcessPlan::PyTorch { instance_count, per_instance } => {
            let per = per_instance.max(1) as usize;
            set("MASTER_ADDR", "127.0.0.1".into());
            set("MASTER_PORT", port.to_string());
            set("WORLD_SIZE", (instance_count.max(1) as usize * per).to_string());
            set("RANK", rank.to_string());
            set("LOCAL_RANK", (rank % per).to_string());
            set("LOCAL_WORLD_SIZE", per.to_string());
            set("NODE_RANK", (rank / per).to_string());
            set("GROUP_RANK", (rank / per).to_string());
            set("AZUREML_CR_NODE_RANK", (rank / per).to_string());
        }
        ProcessPlan::TensorFlow { workers } => {
            let hosts: Vec<String> = (0..workers).map(|i| format!("127.0.0.1:{}", port as u64 + i)).collect();
            let tf = serde_json::json!({
                "cluster": {"worker": hosts},
                "task": {"type": "worker", "index": rank},
                "environment": "cloud",
            });
            set("TF_CONFIG", tf.to_string());
            set("AZUREML_CR_NODE_RANK", rank.to_string());
        }
    }
    env
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(29500)
}

/// Reads one process's merged stdout/stderr on a thread of its own until every writer closed.
fn spawn_reader(
    rank: usize,
    mut reader: std::io::PipeReader,
    tx: mpsc::Sender<(usize, Vec<u8>)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.blocking_send((rank, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
}

/// Appends output to the job log as it arrives. One process: its bytes as they come. Several:
/// each one's bytes to `std_log_process_N.txt`, and whole lines prefixed by the rank to
/// `std_log.txt`. Returns each process's last non-empty line, for the failure reason.
async fn write_logs(
    mut rx: mpsc::Receiver<(usize, Vec<u8>)>,
    count: usize,
    job_dir: std::path::PathBuf,
) -> Vec<Option<String>> {
    use std::io::Write;
    let open = |name: &str| {
        std::fs::OpenOptions::new().create(true).append(true).open(job_dir.join("user_logs").join(name)).ok()
    };
    let mut merged = open("std_log.txt");
    let mut per_process: Vec<Option<std::fs::File>> =
        if count > 1 { (0..count).map(|r| open(&format!("std_log_process_{r}.txt"))).collect() } else { Vec::new() };
    let mut partial: Vec<Vec<u8>> = vec![Vec::new(); count];
    let mut last: Vec<LastLines> = vec![LastLines::default(); count];
    while let Some((rank, bytes)) = rx.recv().await {
        last[rank].observe(&bytes);
        if count == 1 {
            if let Some(f) = merged.as_mut() {
                let _ = f.write_all(&bytes);
            }
        } else {
            if let Some(Some(f)) = per_process.get_mut(rank) {
                let _ = f.write_all(&bytes);
            }
            partial[rank].extend_from_slice(&bytes);
            if let Some(end) = partial[rank].iter().rposition(|b| *b == b'\n') {
                let complete: Vec<u8> = partial[rank].drain(..=end).collect();
                if let Some(f) = merged.as_mut() {
                    for line in complete.split_inclusive(|b| *b == b'\n') {
                        let _ = write!(f, "[rank {rank}] ");
                        let _ = f.write_all(line);
                    }
                }
            }
        }
        emit(&Event::Log);
    }
    if let Some(f) = merged.as_mut() {
        for (rank, rest) in partial.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let _ = write!(f, "[rank {rank}] ");
            let _ = f.write_all(rest);
            let _ = f.write_all(b"\n");
        }
    }
    emit(&Event::Log);
    last.iter().map(LastLines::reason).collect()
}

/// Keeps what best says why a process failed: the last line that names an error (Python's
/// `KeyError: …` after a traceback, `error: …`), else the last line. Output arrives in pipe
/// reads that may end mid-line (Python writes `ValueError` and `: bad input` apart), so the
/// unfinished line waits for the rest.
#[derive(Default, Clone)]
struct LastLines {
    last: Option<String>,
    last_error: Option<String>,
    partial: Vec<u8>,
}

/// A line longer than this is judged by its start (and the rest of it is not kept).
const LINE_LIMIT: usize = 64 * 1024;

impl LastLines {
    fn observe(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        if let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') {
            let complete: Vec<u8> = self.partial.drain(..=end).collect();
            self.lines(&complete);
        }
        if self.partial.len() > LINE_LIMIT {
            let long = std::mem::take(&mut self.partial);
            self.lines(&long);
        }
    }

    fn lines(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let line: String = line.chars().take(500).collect();
            if names_an_error(&line) {
                self.last_error = Some(line.clone());
            }
            self.last = Some(line);
        }
    }

    fn reason(&self) -> Option<String> {
        let mut done = self.clone();
        let rest = std::mem::take(&mut done.partial);
        done.lines(&rest);
        done.last_error.or(done.last)
    }
}

fn names_an_error(line: &str) -> bool {
    let head = line.split([':', ' ']).next().unwrap_or("");
    let name = head.rsplit('.').next().unwrap_or(head);
    (name.ends_with("Error") || name.ends_with("Exception") || name == "error" || name == "Error" || name == "FATAL")
        && line.len() > head.len()
}

/// Stops the job's process group and every other descendant of the launcher: SIGTERM, a
/// grace period, then SIGKILL.
async fn stop_tree(pgid: i32, children: &mut [tokio::process::Child]) {
    let signal_all = |sig: Signal| {
        if pgid > 0 {
            let _ = killpg(Pid::from_raw(pgid), sig);
        }
        for pid in descendants(std::process::id() as i32) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    };
    if pgid <= 0 && descendants(std::process::id() as i32).is_empty() {
        return;
    }
    let any_left = |children: &mut [tokio::process::Child]| {
        children.iter_mut().any(|c| matches!(c.try_wait(), Ok(None)))
            || !descendants(std::process::id() as i32).is_empty()
    };
    if !any_left(children) {
        return;
    }
    signal_all(Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + GRACE;
    while tokio::time::Instant::now() < deadline {
        if !any_left(children) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal_all(Signal::SIGKILL);
    for c in children.iter_mut() {
        let _ = c.wait().await;
    }
    // Reap re-parented orphans (the launcher is their subreaper).
    for _ in 0..50 {
        if descendants(std::process::id() as i32).is_empty() {
            break;
        }
        signal_all(Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every live descendant of `root`, from `/proc` (zombies excluded: they are already dead).
fn descendants(root: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name is in parentheses and may hold spaces; fields follow the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok()).unwrap_or(0);
        if state != "Z" && state != "X" {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(pid, _)| *pid));
        i += 1;
    }
    found.remove(0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_reason_is_the_last_error_line() {
        let mut l = LastLines::default();
        l.observe(b"Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'MLFLOW_RUN_ID'\n");
        l.observe(b"View run at http://x\n");
        assert_eq!(l.reason().as_deref(), Some("KeyError: 'MLFLOW_RUN_ID'"));
        let mut plain = LastLines::default();
        plain.observe(b"step 1\nstep 2\n");
        assert_eq!(plain.reason().as_deref(), Some("step 2"));
        // A line split across pipe reads, and a last line with no newline.
        let mut split = LastLines::default();
        split.observe(b"Traceback (most recent call last):\nValueError");
        split.observe(b": bad input\nexiting");
        assert_eq!(split.reason().as_deref(), Some("ValueError: bad input"));
        let mut unfinished = LastLines::default();
        unfinished.observe(b"step 1\nstep");
        unfinished.observe(b" 2");
        assert_eq!(unfinished.reason().as_deref(), Some("step 2"));
        assert!(names_an_error("torch.distributed.DistBackendError: NCCL failed"));
    }

    #[tokio::test]
    async fn the_launcher_stops_with_the_parent_it_names_and_only_then() {
        // Its own parent is alive: no end for as long as we wait.
        let parent = nix::unistd::getppid().as_raw() as u32;
        let alive = tokio::time::timeout(Duration::from_millis(600), parent_ended(Some(parent))).await;
        assert!(alive.is_err(), "a living parent was taken for ended");
        // A pid that is not its parent (here its own): the parent it was started by is gone.
        let gone = tokio::time::timeout(Duration::from_secs(5), parent_ended(Some(std::process::id()))).await;
        assert!(gone.is_ok(), "a parent that is not ours was not taken for ended");
        // No parent named (jobs): never.
        let none = tokio::time::timeout(Duration::from_millis(300), parent_ended(None)).await;
        assert!(none.is_err());
    }

    #[test]
    fn pytorch_ranks_get_their_rendezvous_variables() {
        let env: std::collections::HashMap<String, String> =
            rank_env(ProcessPlan::PyTorch { instance_count: 2, per_instance: 2 }, 3, 29400).into_iter().collect();
        assert_eq!(env["WORLD_SIZE"], "4");
        assert_eq!(env["RANK"], "3");
        assert_eq!(env["LOCAL_RANK"], "1");
        assert_eq!(env["NODE_RANK"], "1");
        assert_eq!(env["MASTER_PORT"], "29400");
        let tf: std::collections::HashMap<String, String> =
            rank_env(ProcessPlan::TensorFlow { workers: 2 }, 1, 5000).into_iter().collect();
        let config: serde_json::Value = serde_json::from_str(&tf["TF_CONFIG"]).unwrap();
        assert_eq!(config["task"]["index"], 1);
        assert_eq!(config["cluster"]["worker"][1], "127.0.0.1:5001");
    }
}
