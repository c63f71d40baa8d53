//! `kiln job …` and `kiln compute …`: reading specs, uploading what they point at on this
//! machine, and following jobs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use kiln_api::{ComputeCreate, Job, JobUpdate};
use kiln_client::Client;
use kiln_spec::Node;

use crate::bundle::text;
use crate::output::{self, Format};

/// Reads a job spec, uploads its local code, inputs and conda file, and submits it.
pub async fn create(client: &Client, file: &Path, mut set: Vec<String>, name: Option<String>) -> Result<Job> {
    if let Some(name) = name {
        set.push(format!("name={name}"));
    }
    let (label, mut tree) = kiln_spec::read_spec(file, &set)?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let named = check_and_bundle(client, &mut tree, &label, &base, None).await?;
    if !named {
        default_experiment(&mut tree, &base)?;
    }
    Ok(client.create_job(tree.to_flow(), Some(label)).await?)
}

/// Checks a job (printing its warnings) and bundles it: local paths become uploads,
/// component files are inlined. `checked` is what to check when it differs from what is
/// bundled (a schedule's job as it will be at a fire). Returns whether the job names its
/// experiment.
pub async fn check_and_bundle(
    client: &Client,
    tree: &mut Node,
    label: &str,
    base: &Path,
    checked: Option<&Node>,
) -> Result<bool> {
    let (spec, warnings) = kiln_spec::job_from_node(label, checked.unwrap_or(tree))?;
    let bundler = crate::bundle::Bundler { client };
    Ok(match &spec {
        kiln_spec::JobSpec::Command(c) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            bundler.command(tree, base, label, "").await?;
            c.experiment_name.is_some()
        }
        kiln_spec::JobSpec::Pipeline(p) => {
            for w in check_pipeline(client, p, &warnings).await?.1 {
                eprintln!("warning: {w}");
            }
            bundler.pipeline(tree, base.to_path_buf(), label.to_string(), 0).await?;
            p.experiment_name.is_some()
        }
        kiln_spec::JobSpec::Sweep(s) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            bundler.inputs(tree, base, label, "").await?;
            if let Some(trial) = crate::bundle::entry_mut(tree, "trial") {
                bundler.command(trial, base, label, "trial.").await?;
            }
            s.experiment_name.is_some()
        }
    })
}

/// As the Azure ML CLI does: the experiment is named after the spec's folder.
fn default_experiment(tree: &mut Node, base: &Path) -> Result<()> {
    let folder = std::fs::canonicalize(base).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(folder) = folder.filter(|f| !f.is_empty()) {
        tree.set_path_node("experiment_name", text(&folder)).map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

/// Checks a pipeline with the component files it names and the registered components it
/// names (fetched from the server; when the server cannot be reached they are left to the
/// server to check at submission).
pub async fn check_pipeline(
    client: &Client,
    p: &kiln_spec::pipeline::PipelineJob,
    spec_warnings: &[kiln_spec::Diagnostic],
) -> Result<(Option<kiln_spec::graph::Graph>, Vec<String>)> {
    let mut components = kiln_spec::FileComponents::default();
    let mut warnings: Vec<String> = spec_warnings.iter().map(ToString::to_string).collect();
    let graph = loop {
        match kiln_spec::graph::flatten(p, &mut components) {
            Ok((g, w)) => {
                warnings.extend(w.iter().map(ToString::to_string));
                break Some(g);
            }
            Err(kiln_spec::graph::GraphError::Unknown { reference, file: at, pos }) => {
                let Some(r) = kiln_spec::reference::asset_reference(&reference, true) else {
                    warnings.push(format!("{at}: component '{reference}' is not a workspace component: not checked"));
                    break None;
                };
                let fetched =
                    client.asset::<kiln_api::ComponentAsset>("components", r.name, r.version.unwrap_or("latest"));
                match fetched.await {
                    Ok(c) => {
                        let text = c.spec.to_string();
                        let root = kiln_spec::parse_with_overrides(&reference, &text, &[])?;
                        let src = kiln_spec::read::Source::new(reference.as_str());
                        let parsed = kiln_spec::pipeline::component(&src, &root)?;
                        components.registered.insert(reference, std::sync::Arc::new(parsed));
                    }
                    Err(kiln_client::ClientError::Api { status: 404, .. }) => bail!(
                        "{at}:{}:{}: component: '{reference}' is not a registered component \
                         (register it with `kiln component create -f FILE`)",
                        pos.line,
                        pos.col
                    ),
                    Err(e) => {
                        warnings.push(format!(
                            "{at}: component '{reference}' could not be fetched ({e}): checked when submitted"
                        ));
                        break None;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    warnings.extend(components.warnings.iter().map(ToString::to_string));
    Ok((graph, warnings))
}

/// Follows a job's log live until it ends; an error when it did not complete.
pub async fn stream(client: &Client, name: &str) -> Result<Job> {
    match client.job(name).await?.kind.as_str() {
        "pipeline" => return stream_pipeline(client, name).await,
        "sweep" => return stream_sweep(client, name).await,
        _ => {}
    }
    eprintln!("RunId: {name}");
    eprintln!("Streaming user_logs/std_log.txt");
    eprintln!("===============================");
    let mut offset = 0u64;
    let mut out = std::io::stdout();
    loop {
        let mut response = client.job_log(name, true, offset).await?;
        while let Some(chunk) = response.chunk().await.context("reading the job log")? {
            offset += chunk.len() as u64;
            out.write_all(&chunk)?;
            out.flush()?;
        }
        let job = client.job(name).await?;
        let ended = matches!(job.status.as_str(), "Completed" | "Failed" | "Canceled");
        if ended {
            // Anything written between the last chunk and the end.
            let mut rest = client.job_log(name, false, offset).await?;
            while let Some(chunk) = rest.chunk().await.context("reading the job log")? {
                out.write_all(&chunk)?;
            }
            out.flush()?;
            return summary("job", job, None);
        }
        // The stream ended early (the server restarted): pick up where it stopped.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The end of a stream, as the Azure ML CLI prints it; an error when the job did not complete.
fn summary(kind: &str, job: Job, extra: Option<String>) -> Result<Job> {
    let name = &job.name;
    eprintln!();
    eprintln!("Execution Summary");
    eprintln!("=================");
    eprintln!("RunId: {name}");
    eprintln!("Status: {}", job.status);
    if let Some(extra) = extra {
        eprintln!("{extra}");
    }
    if job.status != "Completed" {
        let why = job.failure.clone().unwrap_or_default();
        bail!(
            "{kind} {name} {}{}",
            job.status.to_lowercase(),
            if why.is_empty() { String::new() } else { format!(": {why}") }
        );
    }
    Ok(job)
}

/// Follows a pipeline: each step's status as it changes, and each step's log (lines prefixed
/// with the step's name) as it is written, until the pipeline ends.
async fn stream_pipeline(client: &Client, name: &str) -> Result<Job> {
    eprintln!("RunId: {name}");
    eprintln!("Streaming the steps of pipeline {name}");
    eprintln!("===============================");
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut offsets: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut out = std::io::stdout();
    loop {
        let job = client.job(name).await?;
        let graph = client.pipeline_graph(name).await?;
        for step in &graph.nodes {
            let (Some(step_job), Some(status)) = (&step.job, &step.status) else { continue };
            if seen.get(&step.name) != Some(status) {
                let why = step.reuse.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                eprintln!("[{}] {status}{why}", step.name);
                seen.insert(step.name.clone(), status.clone());
            }
            if step.reused_from.is_some() {
                continue;
            }
            let offset = offsets.entry(step.name.clone()).or_default();
            let mut log = client.job_log(step_job, false, *offset).await?;
            let mut pending = Vec::new();
            while let Some(chunk) = log.chunk().await.context("reading a step's log")? {
                pending.extend_from_slice(&chunk);
            }
            // Whole lines only, so prefixes land at line starts.
            let upto = pending.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
            for line in String::from_utf8_lossy(&pending[..upto]).lines() {
                writeln!(out, "[{}] {line}", step.name)?;
            }
            *offset += upto as u64;
        }
        out.flush()?;
        if matches!(job.status.as_str(), "Completed" | "Failed" | "Canceled") {
            return summary("pipeline", job, None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Follows a sweep: each trial as it starts (with its values) and ends (with its score),
/// until the sweep ends; the trials' own logs are a `job stream` of each away.
async fn stream_sweep(client: &Client, name: &str) -> Result<Job> {
    eprintln!("RunId: {name}");
    eprintln!("Streaming the trials of sweep {name}");
    eprintln!("===============================");
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    loop {
        let job = client.job(name).await?;
        let sweep = client.sweep_trials(name).await?;
        for t in &sweep.trials {
            let status = if t.early_terminated.is_some() && t.status == "Canceled" {
                "EarlyTerminated".to_string()
            } else {
                t.status.clone()
            };
            if seen.get(&t.job) == Some(&status) {
                continue;
            }
            let detail = if !seen.contains_key(&t.job) {
                let values: Vec<String> = sweep
                    .parameters
                    .iter()
                    .filter_map(|p| {
                        t.values.get(&p.name).map(|v| format!("{}={}", p.name, crate::output::render_value(v)))
                    })
                    .collect();
                format!(" {}", values.join(" "))
            } else if let Some(m) = t.metric {
                format!(" {}={m}", sweep.primary_metric)
            } else {
                String::new()
            };
            let why =
                t.early_terminated.clone().or_else(|| t.failure.clone()).map(|w| format!(" ({w})")).unwrap_or_default();
            println!("[trial {} {}] {status}{detail}{why}", t.index, t.job);
            seen.insert(t.job.clone(), status);
        }
        if matches!(job.status.as_str(), "Completed" | "Failed" | "Canceled") {
            let best = match (&sweep.best_trial, sweep.best_metric) {
                (Some(best), Some(m)) => Some(format!("Best trial: {best} ({} = {m})", sweep.primary_metric)),
                _ => None,
            };
            return summary("sweep", job, best);
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// `job download`: the implicit `artifacts` output into `<path>/artifacts`, named outputs into
/// `<path>/named-outputs/<name>`, as the Azure ML CLI lays them out.
pub async fn download(client: &Client, name: &str, path: &Path, output: Option<String>, all: bool) -> Result<()> {
    let job = client.job(name).await?;
    let names: Vec<String> = match (output, all) {
        (Some(o), _) => vec![o],
        (None, true) => job.outputs.keys().cloned().collect(),
        (None, false) => vec!["artifacts".into()],
    };
    for out in names {
        let files = client.output_files(name, &out).await?;
        let dest = if out == "artifacts" { path.join("artifacts") } else { path.join("named-outputs").join(&out) };
        for f in &files.files {
            let target = dest.join(&f.path);
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let mut response = client.download(&f.store_path).await?;
            let mut file =
                tokio::fs::File::create(&target).await.with_context(|| format!("creating {}", target.display()))?;
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = response.chunk().await? {
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
        }
        eprintln!("Downloaded {} file(s) of output '{out}' to {}", files.files.len(), dest.display());
    }
    Ok(())
}

/// `--set tags.k=v`, `--set display_name=…`, `--set description=…`, `--set properties.k=v`.
pub fn update_from_sets(sets: &[String]) -> Result<JobUpdate> {
    let mut u = JobUpdate::default();
    for s in sets {
        let (path, value) = s.split_once('=').ok_or_else(|| anyhow!("--set '{s}': expected path=value"))?;
        let value = value.to_string();
        match path.trim() {
            "display_name" => u.display_name = Some(value),
            "description" => u.description = Some(value),
            p if p.starts_with("tags.") && p.len() > 5 => {
                u.tags.insert(p[5..].to_string(), value);
            }
            p if p.starts_with("properties.") && p.len() > 11 => {
                u.properties.insert(p[11..].to_string(), value);
            }
            p => bail!(
                "--set {p}: a job's display_name, description, tags.<key> and properties.<key> can change; nothing else"
            ),
        }
    }
    Ok(u)
}

/// `kiln compute create`: flags, or a compute YAML file (`name`, `type`, `max_instances`).
pub async fn create_compute(
    client: &Client,
    file: Option<PathBuf>,
    name: Option<String>,
    kind: Option<String>,
    max: Option<i64>,
    format: Format,
) -> Result<()> {
    let mut req = ComputeCreate { name: String::new(), kind: None, max_concurrent_jobs: None, description: None };
    if let Some(file) = &file {
        let label = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {label}"))?;
        let root = kiln_spec::parse_with_overrides(&label, &text, &[])?;
        let get = |k: &str| {
            root.get(k).and_then(|n| match &n.kind {
                kiln_spec::yaml::Kind::Scalar { text, .. } => Some(text.clone()),
                _ => None,
            })
        };
        req.name = get("name").unwrap_or_default();
        req.kind = get("type");
        req.description = get("description");
        if let Some(m) = get("max_instances") {
            req.max_concurrent_jobs =
                Some(m.parse().map_err(|_| anyhow!("{label}: max_instances: expected an integer, found '{m}'"))?);
        }
    }
    if let Some(n) = name {
        req.name = n;
    }
    if kind.is_some() {
        req.kind = kind;
    }
    if max.is_some() {
        req.max_concurrent_jobs = max;
    }
    if req.name.is_empty() {
        bail!("a compute target needs a name (--name or name: in the file)");
    }
    let c = client.create_compute(&req).await?;
    output::computes(&[c], format)
}

/// Reads a component file (checked with file, line and field), inlines the component files it
/// names and uploads its local paths, and registers it.
pub async fn create_component(client: &Client, file: &Path, set: &[String]) -> Result<kiln_api::ComponentAsset> {
    let (label, mut tree) = kiln_spec::read_spec(file, set)?;
    let (component, warnings) = kiln_spec::component_from_node(&label, &tree)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if component.name().is_none() {
        bail!("{label}: name: a registered component needs a name");
    }
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    crate::bundle::Bundler { client }.component(&mut tree, base, label.clone(), 0).await?;
    Ok(client.create_component(tree.to_flow(), label).await?)
}
