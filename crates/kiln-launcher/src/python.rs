//! The job's Python: the host's, or an isolated environment built with `uv` and cached by the
//! environment's content hash, so a second job with the same environment builds nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::SystemLog;
use crate::data::lock;
use crate::plan::EnvironmentPlan;

/// The uv release Kiln installs from PyPI when none is configured.
pub const UV_VERSION: &str = "0.13.9";
const READY: &str = ".kiln-ready";

/// Variables that put an environment first on the job's PATH.
pub(crate) struct PythonEnv {
    /// `bin` of the environment, or `None` for the host's Python.
    pub bin: Option<PathBuf>,
}

/// Resolves the plan's environment, building it on first use.
pub(crate) async fn prepare(plan: &EnvironmentPlan, cache_dir: &Path, log: &SystemLog) -> Result<PythonEnv> {
    let Some(requirements) = &plan.requirements else {
        let host = which("python3").or_else(|| which("python"));
        let host = host.map(|p| p.display().to_string()).unwrap_or_else(|| "none found on PATH".into());
        match &plan.image {
            Some(image) => log.user(&format!(
                "[kiln] environment {}: image '{image}' is not run on local compute (no container runtime); \
                 the job runs with the host's Python ({host})",
                plan.label
            )),
            None => log.user(&format!("[kiln] environment {}: the host's Python ({host})", plan.label)),
        }
        return Ok(PythonEnv { bin: None });
    };
    let dir = cache_dir.join("envs").join(&plan.hash);
    if dir.join(READY).exists() {
        log.user(&format!("[kiln] environment {}: cached ({})", plan.label, short(&plan.hash)));
        return Ok(PythonEnv { bin: Some(dir.join("bin")) });
    }
    let _lock = lock(&cache_dir.join("envs").join(format!("{}.lock", plan.hash))).await?;
    if dir.join(READY).exists() {
        log.user(&format!("[kiln] environment {}: cached ({})", plan.label, short(&plan.hash)));
        return Ok(PythonEnv { bin: Some(dir.join("bin")) });
    }
    let started = Instant::now();
    log.user(&format!(
        "[kiln] environment {}: building ({}) with uv: {}",
        plan.label,
        short(&plan.hash),
        if requirements.is_empty() { "no packages".to_string() } else { requirements.join(" ") }
    ));
    let uv = uv(cache_dir, log).await?;
    if dir.exists() {
        tokio::fs::remove_dir_all(&dir).await.ok();
    }
    let mut venv = tokio::process::Command::new(&uv);
    venv.arg("venv").arg("--quiet").arg(&dir);
    match &plan.python {
        Some(v) => {
            venv.arg("--python").arg(v);
        }
        None => {
            if let Some(host) = which("python3") {
                venv.arg("--python").arg(host);
            }
        }
    }
    run(&mut venv, "uv venv", log).await?;
    if !requirements.is_empty() {
        let req_file = dir.join("kiln-requirements.txt");
        tokio::fs::write(&req_file, requirements.join("\n") + "\n").await?;
        let mut install = tokio::process::Command::new(&uv);
        install.arg("pip").arg("install").arg("--quiet").arg("--python").arg(dir.join("bin/python"));
        install.arg("-r").arg(&req_file);
        run(&mut install, "uv pip install", log).await?;
    }
    tokio::fs::write(dir.join(READY), b"").await?;
    log.user(&format!("[kiln] environment {}: built in {:.1} s", plan.label, started.elapsed().as_secs_f64()));
    Ok(PythonEnv { bin: Some(dir.join("bin")) })
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

async fn run(cmd: &mut tokio::process::Command, what: &str, log: &SystemLog) -> Result<()> {
    let out = cmd.output().await.with_context(|| format!("cannot start {what}"))?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        log.user(&format!("[kiln] {line}"));
    }
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, text.lines().last().unwrap_or(""));
    }
    Ok(())
}

/// Finds uv: `KILN_UV`, then `uv` on PATH, then the copy Kiln installed from PyPI into its
/// cache, installing it there the first time.
async fn uv(cache_dir: &Path, log: &SystemLog) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_UV").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = which("uv") {
        return Ok(p);
    }
    let tool = cache_dir.join("tools").join(format!("uv-{UV_VERSION}"));
    let bin = tool.join("bin/uv");
    if tool.join(READY).exists() {
        return Ok(bin);
    }
    let _lock = lock(&cache_dir.join("tools").join("uv.lock")).await?;
    if tool.join(READY).exists() {
        return Ok(bin);
    }
    let python = which("python3").context("building an environment needs uv, and installing uv needs python3")?;
    log.user(&format!("[kiln] installing uv {UV_VERSION} from PyPI into {}", tool.display()));
    let mut venv = tokio::process::Command::new(&python);
    venv.arg("-m").arg("venv").arg(&tool);
    run(&mut venv, "python3 -m venv", log).await?;
    let mut pip = tokio::process::Command::new(tool.join("bin/python"));
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).arg(format!("uv=={UV_VERSION}"));
    run(&mut pip, "pip install uv", log).await?;
    tokio::fs::write(tool.join(READY), b"").await?;
    Ok(bin)
}

/// A program on PATH.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}
