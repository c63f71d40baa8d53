//! The job launcher: the part of Kiln that runs where a job runs.
//!
//! A compute backend starts `kiln launch JOB_DIR` with a [`LaunchPlan`] in `JOB_DIR/launch.json`.
//! The launcher materializes what the plan names (code snapshot, environment, inputs, output
//! folders), binds `${{inputs.x}}`/`${{outputs.y}}` in the command, starts the job's processes
//! in a process group of their own, writes their merged output to `user_logs/std_log.txt`,
//! enforces `limits.timeout`, stops the whole process tree on cancel (SIGTERM to the launcher),
//! saves the outputs, and reports its progress as JSON lines on stdout ([`Event`]). The outcome
//! also goes to `result.json`, so a server that restarted meanwhile still learns it.

mod data;
pub mod plan;
mod procs;
mod python;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow};
use kiln_blobs::{ArtifactPath, ArtifactStore};

pub use plan::*;
pub use python::UV_VERSION;

/// The launcher's two logs and its event channel.
pub(crate) struct SystemLog {
    system: Mutex<Option<std::fs::File>>,
    user: Mutex<Option<std::fs::File>>,
}

impl SystemLog {
    fn open(job_dir: &Path) -> SystemLog {
        let open = |rel: &str| {
            let p = job_dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap_or(job_dir)).ok()?;
            std::fs::OpenOptions::new().create(true).append(true).open(p).ok()
        };
        SystemLog { system: Mutex::new(open(SYSTEM_LOG)), user: Mutex::new(open(USER_LOG)) }
    }

    /// A line in the system log.
    pub fn line(&self, text: &str) {
        if let Ok(mut guard) = self.system.lock()
            && let Some(f) = guard.as_mut()
        {
            let _ = writeln!(f, "{} {text}", timestamp());
        }
    }

    /// A line in the job's own log (what `job stream` shows), and in the system log.
    pub fn user(&self, text: &str) {
        self.line(text);
        self.user_bytes(format!("{text}\n").as_bytes());
    }

    pub fn user_bytes(&self, bytes: &[u8]) {
        if let Ok(mut guard) = self.user.lock()
            && let Some(f) = guard.as_mut()
        {
            let _ = f.write_all(bytes);
        }
        emit(&Event::Log);
    }
}

fn timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

/// Writes an event line on stdout. A server that went away is not an error: the launcher
/// goes on, and `result.json` tells the next server how it ended.
pub(crate) fn emit(event: &Event) {
    if let Ok(line) = serde_json::to_string(event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Runs the plan in `job_dir/launch.json` to its end.
pub async fn launch(job_dir: &Path) -> Outcome {
    let log = SystemLog::open(job_dir);
    let outcome = match read_plan(job_dir) {
        Ok(plan) => run(&plan, &log).await,
        Err(e) => failed(None, format!("cannot read the launch plan: {e:#}")),
    };
    log.line(&format!("outcome: {outcome:?}"));
    if let Ok(text) = serde_json::to_vec_pretty(&outcome) {
        let tmp = job_dir.join(format!("{RESULT_FILE}.tmp"));
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, job_dir.join(RESULT_FILE));
        }
    }
    emit(&Event::Done(outcome.clone()));
    outcome
}

fn read_plan(job_dir: &Path) -> Result<LaunchPlan> {
    let text = std::fs::read(job_dir.join(PLAN_FILE))?;
    Ok(serde_json::from_slice(&text)?)
}

fn failed(exit_code: Option<i32>, message: String) -> Outcome {
    Outcome { status: OutcomeStatus::Failed, exit_code, message: Some(message) }
}

async fn run(plan: &LaunchPlan, log: &SystemLog) -> Outcome {
    procs::become_subreaper();
    let cancel = procs::CancelSignal::listen(plan.stop_with_parent);
    emit(&Event::Preparing);
    let blobs = match ArtifactStore::open(&plan.artifact_store) {
        Ok(b) => b,
        Err(e) => return failed(None, format!("cannot open the artifact store: {e}")),
    };
    let wd = plan.job_dir.join("wd");
    let prepared = tokio::select! {
        p = prepare(plan, &blobs, &wd, log) => p,
        _ = cancel.requested() => {
            return Outcome { status: OutcomeStatus::Canceled, exit_code: None, message: Some("canceled while preparing".into()) };
        }
    };
    let (command, env, uploads) = match prepared {
        Ok(p) => p,
        Err(e) => {
            log.user(&format!("[kiln] preparing the job failed: {e:#}"));
            return failed(None, format!("preparing the job failed: {e:#}"));
        }
    };
    emit(&Event::Starting);
    let outcome = procs::run(plan, &command, &env, &wd, log, &cancel).await;
    emit(&Event::Finalizing);
    match finalize(plan, &blobs, &wd, &uploads, log).await {
        Ok(()) => outcome,
        Err(e) => {
            log.line(&format!("saving outputs failed: {e:#}"));
            match outcome.status {
                OutcomeStatus::Completed => failed(outcome.exit_code, format!("saving the outputs failed: {e:#}")),
                _ => outcome,
            }
        }
    }
}

/// Outputs written under the job's folder, to upload when it ends: (local folder, store path).
type Uploads = Vec<(PathBuf, ArtifactPath)>;

async fn prepare(
    plan: &LaunchPlan,
    blobs: &ArtifactStore,
    wd: &Path,
    log: &SystemLog,
) -> Result<(String, Vec<(String, String)>, Uploads)> {
    let m = data::Materializer { blobs, cache_dir: &plan.cache_dir, job_dir: &plan.job_dir, log };
    tokio::fs::create_dir_all(wd).await?;
    if let Some(code) = &plan.code {
        let n = m.code_into(code, wd).await.context("materializing the code snapshot")?;
        log.line(&format!("code: {n} files from {code}"));
    }
    // What the runtime pre-creates: the implicit `artifacts` output's folders.
    tokio::fs::create_dir_all(wd.join("outputs")).await?;
    tokio::fs::create_dir_all(wd.join("logs")).await?;

    let mut env: Vec<(String, String)> = plan.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut inputs = std::collections::BTreeMap::new();
    for (name, input) in &plan.inputs {
        let value = m.input(name, input).await.with_context(|| format!("input '{name}'"))?;
        if matches!(input, InputPlan::Data { .. }) {
            env.push((format!("AZURE_ML_INPUT_{name}"), value.clone()));
        }
        inputs.insert(name.clone(), value);
    }
    let mut outputs = std::collections::BTreeMap::new();
    let mut uploads = Vec::new();
    for (name, output) in &plan.outputs {
        let (path, upload) = m.output(name, output).with_context(|| format!("output '{name}'"))?;
        if upload {
            let dest = ArtifactPath::parse(output.uri.trim_start_matches("blob:"))?;
            uploads.push((plan.job_dir.join("outputs").join(name), dest));
        }
        let value = path.display().to_string();
        env.push((format!("AZURE_ML_OUTPUT_{name}"), value.clone()));
        outputs.insert(name.clone(), value);
    }
    let command = kiln_spec::bind::substitute(&plan.command, |expr| match kiln_spec::bind::split_io(expr) {
        Some(("inputs", n)) => inputs.get(n).cloned().ok_or_else(|| anyhow!("no input '{n}'")),
        Some(("outputs", n)) => outputs.get(n).cloned().ok_or_else(|| anyhow!("no output '{n}'")),
        _ => Err(anyhow!("cannot bind '${{{{{expr}}}}}' in a command job")),
    })
    .map_err(|at| anyhow!("unterminated '${{{{' at byte {at} of the command"))??;

    let python = python::prepare(&plan.environment, &plan.cache_dir, log).await.context("the environment")?;
    if let Some(bin) = python.bin {
        let path = std::env::var("PATH").unwrap_or_default();
        env.push(("PATH".into(), format!("{}:{path}", bin.display())));
        if let Some(venv) = bin.parent() {
            env.push(("VIRTUAL_ENV".into(), venv.display().to_string()));
        }
    }
    Ok((command, env, uploads))
}

/// Saves the implicit `artifacts` output (`./outputs`, `./logs`, the job's logs) and the
/// outputs written locally.
async fn finalize(
    plan: &LaunchPlan,
    blobs: &ArtifactStore,
    wd: &Path,
    uploads: &Uploads,
    log: &SystemLog,
) -> Result<()> {
    let dest = ArtifactPath::parse(plan.artifacts_dest.trim_start_matches("blob:"))?;
    for folder in ["outputs", "logs"] {
        let src = wd.join(folder);
        let to = dest.join(folder)?;
        match blobs.local_path(&to) {
            // Same disk: move the folder into place rather than copy it.
            Some(local) => move_into(&src, &local).await?,
            None => {
                blobs.put_dir(&to, &src).await?;
            }
        }
    }
    for (local, to) in uploads {
        let n = blobs.put_dir(to, local).await?;
        log.line(&format!("uploaded {n} files to {}", to.as_str()));
    }
    // The logs are copied, not moved: the server may still be reading them.
    for rel in ["user_logs", "system_logs"] {
        let src = plan.job_dir.join(rel);
        let to = dest.join(rel)?;
        match blobs.local_path(&to) {
            Some(local) => {
                let (s, l) = (src.clone(), local.clone());
                tokio::task::spawn_blocking(move || data::copy_tree(&s, &l)).await??;
            }
            None => {
                blobs.put_dir(&to, &src).await?;
            }
        }
    }
    Ok(())
}

/// Moves the contents of `src` into `dest` (merging with what is there), renaming where it
/// can and copying across file systems.
async fn move_into(src: &Path, dest: &Path) -> Result<()> {
    let (src, dest) = (src.to_path_buf(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let Ok(entries) = std::fs::read_dir(&src) else { return Ok(()) };
        std::fs::create_dir_all(&dest)?;
        for entry in entries {
            let entry = entry?;
            let to = dest.join(entry.file_name());
            if std::fs::rename(entry.path(), &to).is_err() {
                if entry.file_type()?.is_dir() {
                    data::copy_tree(&entry.path(), &to)?;
                } else {
                    std::fs::copy(entry.path(), &to)?;
                }
            }
        }
        Ok(())
    })
    .await??;
    Ok(())
}
