//! Python worker pools: MLflow pyfunc models and scoring scripts.
//!
//! Each instance of a deployment is one worker process (`worker.py`, embedded in the binary)
//! started through `kiln launch` like a job: the launcher materializes the model and the
//! scoring code, builds or reuses the environment (uv, cached by content hash), runs the
//! worker in a process group of its own and stops the whole tree on SIGTERM. The worker
//! listens on 127.0.0.1 and writes its port to a file once the model is loaded; requests are
//! forwarded to ready instances in turn.
//!
//! A supervisor task per instance starts it, waits for it to be ready, probes it (`GET /`
//! every `liveness_probe.period`; out of routing after `readiness_probe.failure_threshold`
//! failures in a row, restarted after `liveness_probe.failure_threshold`), and restarts it
//! with a growing pause when it exits. An instance that fails before it was ever ready fails
//! the provisioning with the end of its log. Dropping the pool stops every instance.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_launcher::{EnvironmentPlan, Event, InputPlan, LaunchPlan, PLAN_FILE, ProcessPlan, USER_LOG};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch};

use crate::Probe;
use crate::live::{ScoreRequest, ScoreResponse};
use crate::shell_quote as quote;

pub(crate) const WORKER_SCRIPT: &str = include_str!("worker.py");

/// Everything an instance is started from.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub label: String,
    /// `<data>/endpoints/<endpoint>/<deployment>/workers/<generation>`.
    pub dir: PathBuf,
    pub exe: PathBuf,
    pub cache_dir: PathBuf,
    pub artifact_store: String,
    /// Where the launcher keeps the instances' logs when they stop.
    pub artifacts_dest: String,
    /// `mlflow` or `script`.
    pub mode: &'static str,
    /// The model's URI, whether it is one file, and its registered name and version.
    pub model: Option<(String, bool, String, String)>,
    /// The code snapshot and the scoring script in it.
    pub code: Option<(String, String)>,
    pub environment: EnvironmentPlan,
    pub env: BTreeMap<String, String>,
    pub instances: u64,
    /// Worker processes per instance (`WORKER_COUNT`).
    pub workers_per_instance: u64,
    pub liveness: Probe,
    pub readiness: Probe,
}

/// One worker process: `WORKER_COUNT` of them (default 1) per instance of the deployment.
struct Instance {
    /// Unique in the pool (folders are named by it).
    index: usize,
    /// The deployment instance it belongs to.
    instance: usize,
    /// How messages name it.
    name: String,
    /// A worker scores one request at a time, as the original inference server's sync
    /// workers do: CPU-bound Python gains nothing from more, and threads fighting over the
    /// GIL lose throughput. Requests wait here, in Kiln's queue.
    busy: Arc<tokio::sync::Semaphore>,
    /// The port while the instance takes requests; 0 while it does not.
    port: AtomicU16,
    /// Why it is not ready, when it is not.
    problem: Mutex<Option<String>>,
    /// Its current log.
    log: Mutex<PathBuf>,
}

pub(crate) struct WorkerPool {
    instances: Vec<Arc<Instance>>,
    next: AtomicUsize,
    http: reqwest::Client,
    stop: watch::Sender<bool>,
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The last lines of a log, for an error message.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl WorkerPool {
    /// Starts every instance and waits until all are ready; the first that fails before it
    /// was ever ready fails the whole pool (and stops the others).
    pub async fn start(spec: WorkerSpec) -> Result<WorkerPool, String> {
        std::fs::create_dir_all(&spec.dir).map_err(|e| format!("cannot create {}: {e}", spec.dir.display()))?;
        let script = spec.dir.join("kiln_worker.py");
        std::fs::write(&script, WORKER_SCRIPT).map_err(|e| format!("cannot write the worker: {e}"))?;
        let (stop, stop_rx) = watch::channel(false);
        let http =
            reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())?;
        let spec = Arc::new(spec);
        let (ready_tx, mut ready_rx) = mpsc::channel((spec.instances * spec.workers_per_instance.max(1)) as usize);
        let mut instances = Vec::new();
        let per = spec.workers_per_instance.max(1) as usize;
        for index in 0..spec.instances as usize * per {
            let (instance, worker) = (index / per, index % per);
            let inst = Arc::new(Instance {
                index,
                instance,
                name: if per == 1 {
                    format!("instance {instance}")
                } else {
                    format!("instance {instance} (worker {worker})")
                },
                busy: Arc::new(tokio::sync::Semaphore::new(1)),
                port: AtomicU16::new(0),
                problem: Mutex::new(Some("starting".into())),
                log: Mutex::new(PathBuf::new()),
            });
            instances.push(inst.clone());
            tokio::spawn(supervise(spec.clone(), inst, stop_rx.clone(), ready_tx.clone(), http.clone()));
        }
        drop(ready_tx);
        let count = instances.len();
        let pool = WorkerPool { instances, next: AtomicUsize::new(0), http, stop };
        for _ in 0..count {
            match ready_rx.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err("the instances stopped before they were ready".into()),
            }
        }
        Ok(pool)
    }

    /// Instances with at least one ready worker.
    pub fn ready(&self) -> u64 {
        let mut ready: Vec<usize> =
            self.instances.iter().filter(|i| i.port.load(Ordering::Relaxed) != 0).map(|i| i.instance).collect();
        ready.dedup();
        ready.len() as u64
    }

    /// The current log of each instance.
    pub fn logs(&self) -> Vec<(String, PathBuf)> {
        self.instances.iter().map(|i| (i.name.clone(), i.log.lock().map(|p| p.clone()).unwrap_or_default())).collect()
    }

    /// Forwards a request to the next ready instance.
    pub async fn score(&self, deployment: &str, request: &ScoreRequest) -> ScoreResponse {
        let n = self.instances.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let ready = |i: &&Arc<Instance>| i.port.load(Ordering::Relaxed) != 0;
        // An idle ready worker if there is one, else the next ready one (waiting for it).
        let idle = (0..n)
            .map(|k| &self.instances[(start + k) % n])
            .filter(ready)
            .find_map(|i| i.busy.clone().try_acquire_owned().ok().map(|permit| (i, permit)));
        let chosen = match idle {
            Some(found) => Some(found),
            None => match (0..n).map(|k| &self.instances[(start + k) % n]).find(ready) {
                Some(i) => i.busy.clone().acquire_owned().await.ok().map(|permit| (i, permit)),
                None => None,
            },
        };
        let Some((inst, _permit)) = chosen else {
            let problems: Vec<String> = self
                .instances
                .iter()
                .map(|i| {
                    let p = i.problem.lock().ok().and_then(|p| p.clone()).unwrap_or_else(|| "not ready".into());
                    format!("{}: {p}", i.name)
                })
                .collect();
            return ScoreResponse::error(
                503,
                "DEPLOYMENT_UNHEALTHY",
                &format!("deployment '{deployment}' has no healthy instance ({})", problems.join("; ")),
            );
        };
        let port = inst.port.load(Ordering::Relaxed);
        let mut req = self.http.post(format!("http://127.0.0.1:{port}/score")).body(request.body.clone());
        if let Some(ct) = &request.content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        let answer = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let ct = r
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/json")
                    .to_string();
                r.bytes().await.map(|body| (status, ct, body))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((status, ct, body)) => ScoreResponse { status, content_type: Cow::Owned(ct), body, deployment: None },
            Err(e) => {
                // Out of routing at once: the next request goes elsewhere (or gets a 503 that
                // says why) instead of finding the same dead worker. Its supervisor puts it
                // back after a good health check, or restarts it.
                if inst.port.compare_exchange(port, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                    set_problem(inst, Some(format!("failed while scoring ({e}); checking it")));
                }
                ScoreResponse::error(
                    502,
                    "WORKER_FAILED",
                    &format!(
                        "{} of deployment '{deployment}' failed while scoring ({e}); it is restarted if it died",
                        inst.name
                    ),
                )
            }
        }
    }
}

/// The launch plan of one start of an instance.
fn plan(spec: &WorkerSpec, index: usize, dir: &Path, port_file: &Path) -> LaunchPlan {
    let mut command = format!(
        "python {} --mode {} --port-file {}",
        quote(&spec.dir.join("kiln_worker.py").display().to_string()),
        spec.mode,
        quote(&port_file.display().to_string())
    );
    let mut inputs = BTreeMap::new();
    if let Some((uri, is_file, name, version)) = &spec.model {
        command.push_str(&format!(
            " --model \"${{{{inputs.model}}}}\" --model-name {} --model-version {}",
            quote(name),
            quote(version)
        ));
        let data_type = if *is_file { "uri_file" } else { "uri_folder" };
        inputs.insert(
            "model".to_string(),
            InputPlan::Data { uri: uri.clone(), data_type: data_type.into(), mode: "ro_mount".into() },
        );
    }
    if let Some((_, script)) = &spec.code {
        command.push_str(&format!(" --script {}", quote(script)));
    }
    let mut env = spec.env.clone();
    env.insert("PYTHONUNBUFFERED".into(), "1".into());
    LaunchPlan {
        job_name: format!("{}-{index}", spec.label),
        job_dir: dir.to_path_buf(),
        cache_dir: spec.cache_dir.clone(),
        artifact_store: spec.artifact_store.clone(),
        command,
        code: spec.code.as_ref().map(|(uri, _)| uri.clone()),
        environment: spec.environment.clone(),
        env,
        inputs,
        outputs: BTreeMap::new(),
        artifacts_dest: format!("{}/{}", spec.artifacts_dest, dir.file_name().and_then(|n| n.to_str()).unwrap_or("x")),
        processes: ProcessPlan::Single,
        timeout_s: None,
        stop_with_parent: Some(std::process::id()),
    }
}

/// A started instance: the launcher and its event lines.
struct Running {
    child: tokio::process::Child,
    events: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

fn launch(spec: &WorkerSpec, index: usize, dir: &Path, port_file: &Path) -> std::io::Result<Running> {
    std::fs::create_dir_all(dir)?;
    let plan = plan(spec, index, dir, port_file);
    std::fs::write(dir.join(PLAN_FILE), serde_json::to_vec_pretty(&plan).map_err(std::io::Error::other)?)?;
    let mut cmd = tokio::process::Command::new(&spec.exe);
    cmd.arg("launch").arg(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    // Its own group (a Ctrl-C for the server is not for it); the plan's `stop_with_parent`
    // stops it, and the worker's whole process tree, when the server ends, however it ends.
    cmd.process_group(0);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no launcher output"))?;
    Ok(Running { child, events: tokio::io::BufReader::new(stdout).lines() })
}

/// Stops an instance: SIGTERM to its launcher, which stops the worker's tree; SIGKILL to the
/// group if it lingers.
async fn terminate(running: &mut Running) {
    if let Some(pid) = running.child.id() {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), running.child.wait()).await.is_err() {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = running.child.wait().await;
        }
    }
}

async fn healthy(http: &reqwest::Client, port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, http.get(format!("http://127.0.0.1:{port}/")).send()).await,
        Ok(Ok(r)) if r.status().is_success()
    )
}

fn set_problem(inst: &Instance, problem: Option<String>) {
    if let Ok(mut p) = inst.problem.lock() {
        *p = problem;
    }
}

/// Why a start ended before the instance was ready.
fn start_failure(spec: &WorkerSpec, name: &str, log: &Path, what: &str) -> String {
    failure(spec, name, log, what, 8)
}

/// Why an instance that was serving stopped: short, it is repeated in 503 answers.
fn stop_failure(spec: &WorkerSpec, name: &str, log: &Path, what: &str) -> String {
    failure(spec, name, log, what, 1)
}

fn failure(spec: &WorkerSpec, name: &str, log: &Path, what: &str, lines: usize) -> String {
    let tail = log_tail(log, lines);
    format!("{name} of {} {what}{}", spec.label, if tail.is_empty() { String::new() } else { format!(":\n{tail}") })
}

async fn supervise(
    spec: Arc<WorkerSpec>,
    inst: Arc<Instance>,
    mut stop: watch::Receiver<bool>,
    ready_tx: mpsc::Sender<Result<(), String>>,
    http: reqwest::Client,
) {
    let mut first = Some(ready_tx);
    let mut failures_in_a_row = 0u32;
    for attempt in 0u64.. {
        if *stop.borrow() {
            return;
        }
        let dir = spec.dir.join(format!("{}-{attempt}", inst.index));
        // Each start gets a fresh folder (code copied in, logs); a worker that keeps failing
        // would otherwise fill the disk with them. The one before this stays for a look at
        // why it stopped; older ones were copied to the artifact store when they stopped.
        if let Some(stale) = attempt.checked_sub(2) {
            let _ = tokio::fs::remove_dir_all(spec.dir.join(format!("{}-{stale}", inst.index))).await;
        }
        let port_file = dir.join("port");
        let log = dir.join(USER_LOG);
        if let Ok(mut l) = inst.log.lock() {
            *l = log.clone();
        }
        let mut running = match launch(&spec, inst.index, &dir, &port_file) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("{} of {} cannot start: {e}", inst.name, spec.label);
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(message)).await;
                    return;
                }
                set_problem(&inst, Some(message));
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        // Until ready: the environment is built (no deadline: uv bounds it), then the model
        // loads within the readiness probe's allowance.
        let allowance = Duration::from_secs(
            spec.readiness.initial_delay + spec.readiness.period * spec.readiness.failure_threshold,
        );
        let mut deadline: Option<Instant> = None;
        let mut port = 0u16;
        let outcome: Result<(), String> = loop {
            tokio::select! {
                _ = stop.changed() => {
                    terminate(&mut running).await;
                    return;
                }
                line = running.events.next_line() => match line {
                    Ok(Some(text)) => match serde_json::from_str::<Event>(&text) {
                        Ok(Event::Running { .. }) => deadline = Some(Instant::now() + allowance),
                        Ok(Event::Done(o)) => {
                            let why = o.message.unwrap_or_else(|| format!("{:?}", o.status));
                            break Err(start_failure(&spec, &inst.name, &log, &format!("exited before it was ready ({why})")));
                        }
                        _ => {}
                    },
                    _ => break Err(start_failure(&spec, &inst.name, &log, "stopped before it was ready")),
                },
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|t| t.trim().parse::<u16>().ok())
                        && healthy(&http, p, Duration::from_secs(spec.readiness.timeout)).await
                    {
                        port = p;
                        break Ok(());
                    }
                    if deadline.is_some_and(|d| Instant::now() > d) {
                        terminate(&mut running).await;
                        break Err(start_failure(&spec, &inst.name, &log, &format!("was not ready within {} s", allowance.as_secs())));
                    }
                }
            }
        };
        if let Err(message) = outcome {
            if let Some(tx) = first.take() {
                terminate(&mut running).await;
                let _ = tx.send(Err(message)).await;
                return;
            }
            set_problem(&inst, Some(message));
        } else {
            failures_in_a_row = 0;
            set_problem(&inst, None);
            inst.port.store(port, Ordering::Relaxed);
            if let Some(tx) = first.take() {
                let _ = tx.send(Ok(())).await;
            }
            let why = serve(&spec, &inst, &mut running, &mut stop, &http, port, &log).await;
            inst.port.store(0, Ordering::Relaxed);
            match why {
                None => return,
                Some(problem) => set_problem(&inst, Some(problem)),
            }
        }
        // Restarted after a pause that grows while it keeps failing (1 s … 30 s).
        failures_in_a_row += 1;
        let pause = Duration::from_secs((1u64 << failures_in_a_row.min(5)).min(30));
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Serves until the instance exits, fails its liveness probe, or the pool stops (`None`).
async fn serve(
    spec: &WorkerSpec,
    inst: &Instance,
    running: &mut Running,
    stop: &mut watch::Receiver<bool>,
    http: &reqwest::Client,
    port: u16,
    log: &Path,
) -> Option<String> {
    let mut failures = 0u64;
    let period = Duration::from_secs(spec.liveness.period.max(1));
    // Probed every period; an instance out of routing (a request found it failing) is
    // checked every half second, so it is back soon when it was a passing fault.
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_probe = Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => {
                terminate(running).await;
                return None;
            }
            line = running.events.next_line() => match line {
                Ok(Some(text)) => {
                    if let Ok(Event::Done(o)) = serde_json::from_str::<Event>(&text) {
                        let why = o.message.unwrap_or_else(|| format!("{:?}", o.status));
                        return Some(stop_failure(spec, &inst.name, log, &format!("exited ({why}); restarting")));
                    }
                }
                _ => return Some(stop_failure(spec, &inst.name, log, "stopped; restarting")),
            },
            _ = tick.tick() => {
                if inst.port.load(Ordering::Relaxed) != 0 && last_probe.elapsed() < period {
                    continue;
                }
                last_probe = Instant::now();
                if healthy(http, port, Duration::from_secs(spec.liveness.timeout)).await {
                    failures = 0;
                    inst.port.store(port, Ordering::Relaxed);
                    set_problem(inst, None);
                    continue;
                }
                failures += 1;
                if failures >= spec.readiness.failure_threshold {
                    inst.port.store(0, Ordering::Relaxed);
                    set_problem(inst, Some(format!("failed {failures} health checks in a row")));
                }
                if failures >= spec.liveness.failure_threshold {
                    terminate(running).await;
                    return Some(format!(
                        "{} of {} failed its liveness probe {failures} times in a row; restarting",
                        inst.name, spec.label
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
