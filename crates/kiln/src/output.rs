//! Everything users see printed goes through here: results as JSON, YAML or a table, and
//! errors in one format.

use anyhow::Result;
use clap::ValueEnum;
use kiln_api::{
    ComponentAsset, ComputeTarget, DataAsset, EnvironmentAsset, Experiment, Job, Model, ModelAsset, PipelineStep, Run,
    Schedule, ScheduleFire, SweepTrials,
};
use serde::Serialize;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

pub fn print_error(e: &anyhow::Error) {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

fn structured<T: Serialize>(value: &T, format: Format) -> Result<bool> {
    match format {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(true)
        }
        Format::Yaml => {
            print!("{}", serde_saphyr::to_string(value)?);
            Ok(true)
        }
        Format::Table => Ok(false),
    }
}

/// Prints rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn time(ms: Option<i64>) -> String {
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".into(),
    }
}

fn value(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:.6}").trim_end_matches('0').trim_end_matches('.').to_string(),
        None => "NaN".into(),
    }
}

pub fn experiments(items: &[Experiment], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["ID", "NAME", "STAGE", "CREATED", "ARTIFACTS"],
        items
            .iter()
            .map(|e| {
                vec![
                    e.id.clone(),
                    e.name.clone(),
                    e.lifecycle_stage.clone(),
                    time(Some(e.creation_time)),
                    e.artifact_location.clone(),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn runs(items: &[Run], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["RUN ID", "NAME", "EXPERIMENT", "STATUS", "STARTED", "METRICS"],
        items
            .iter()
            .map(|r| {
                let metrics: Vec<String> = r.metrics.iter().map(|m| format!("{}={}", m.key, value(m.value))).collect();
                vec![
                    r.id.clone(),
                    r.name.clone(),
                    r.experiment_id.clone(),
                    r.status.clone(),
                    time(r.start_time),
                    metrics.join(" "),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn run(r: &Run, format: Format) -> Result<()> {
    if structured(r, format)? {
        return Ok(());
    }
    println!("Run:         {}", r.id);
    println!("Name:        {}", r.name);
    println!("Experiment:  {}", r.experiment_id);
    println!("Status:      {}", r.status);
    println!("User:        {}", r.user_id);
    println!("Started:     {}", time(r.start_time));
    println!("Ended:       {}", time(r.end_time));
    println!("Artifacts:   {}", r.artifact_uri);
    println!();
    println!("Metrics (latest):");
    table(
        &["  KEY", "VALUE", "STEP"],
        r.metrics.iter().map(|m| vec![format!("  {}", m.key), value(m.value), m.step.to_string()]).collect(),
    );
    println!();
    println!("Params:");
    table(&["  KEY", "VALUE"], r.params.iter().map(|(k, v)| vec![format!("  {k}"), v.clone()]).collect());
    println!();
    println!("Tags:");
    table(&["  KEY", "VALUE"], r.tags.iter().map(|(k, v)| vec![format!("  {k}"), v.clone()]).collect());
    Ok(())
}

pub fn models(items: &[Model], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"],
        items
            .iter()
            .map(|m| {
                let latest =
                    m.versions.iter().map(|v| v.version).max().map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                let aliases: Vec<String> = m.aliases.iter().map(|(a, v)| format!("{a}={v}")).collect();
                vec![
                    m.name.clone(),
                    latest,
                    aliases.join(" "),
                    time(Some(m.last_updated_timestamp)),
                    m.description.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn model(m: &Model, format: Format) -> Result<()> {
    if structured(m, format)? {
        return Ok(());
    }
    println!("Model:       {}", m.name);
    println!("Description: {}", m.description.clone().unwrap_or_default());
    println!("Updated:     {}", time(Some(m.last_updated_timestamp)));
    let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("Tags:        {}", tags.join(" "));
    println!();
    table(
        &["VERSION", "STAGE", "ALIASES", "STATUS", "CREATED", "SOURCE"],
        m.versions
            .iter()
            .map(|v| {
                vec![
                    v.version.to_string(),
                    v.stage.clone(),
                    v.aliases.join(","),
                    v.status.clone(),
                    time(Some(v.creation_timestamp)),
                    v.source.clone(),
                ]
            })
            .collect(),
    );
    Ok(())
}

/// What `kiln job validate` reports for a valid spec.
pub fn validated(
    file: &std::path::Path,
    job: &kiln_spec::CommandJob,
    spec_warnings: &[kiln_spec::Diagnostic],
    format: Format,
) -> Result<()> {
    #[derive(Serialize)]
    struct Summary<'a> {
        file: String,
        valid: bool,
        #[serde(rename = "type")]
        kind: &'a str,
        name: Option<&'a str>,
        inputs: Vec<&'a str>,
        outputs: Vec<&'a str>,
        warnings: Vec<String>,
    }
    let summary = Summary {
        file: file.display().to_string(),
        valid: true,
        kind: "command",
        name: job.name.as_deref(),
        inputs: job.inputs.keys().map(String::as_str).collect(),
        outputs: job.outputs.keys().map(String::as_str).collect(),
        warnings: spec_warnings.iter().map(ToString::to_string).collect(),
    };
    if structured(&summary, format)? {
        return Ok(());
    }
    let warned = match spec_warnings.len() {
        0 => String::new(),
        n => format!(" ({n} warning{})", if n == 1 { "" } else { "s" }),
    };
    println!("{}: a valid command job{warned}", summary.file);
    Ok(())
}

pub fn validated_sweep(
    file: &std::path::Path,
    sweep: &kiln_spec::sweep::SweepJob,
    spec_warnings: &[kiln_spec::Diagnostic],
    format: Format,
) -> Result<()> {
    #[derive(Serialize)]
    struct Summary<'a> {
        file: String,
        valid: bool,
        #[serde(rename = "type")]
        kind: &'a str,
        name: Option<&'a str>,
        sampling_algorithm: &'a str,
        parameters: Vec<&'a str>,
        primary_metric: &'a str,
        max_total_trials: u32,
        max_concurrent_trials: u32,
        inputs: Vec<&'a str>,
        outputs: Vec<&'a str>,
        warnings: Vec<String>,
    }
    let s = &sweep.sweep;
    let summary = Summary {
        file: file.display().to_string(),
        valid: true,
        kind: "sweep",
        name: sweep.name.as_deref(),
        sampling_algorithm: s.sampling.name(),
        parameters: s.search_space.parameters.iter().map(|p| p.name.as_str()).collect(),
        primary_metric: &s.objective.primary_metric,
        max_total_trials: s.limits.max_total_trials,
        max_concurrent_trials: s.limits.max_concurrent_trials,
        inputs: sweep.trial.inputs.keys().map(String::as_str).collect(),
        outputs: sweep.trial.outputs.keys().map(String::as_str).collect(),
        warnings: spec_warnings.iter().map(ToString::to_string).collect(),
    };
    if structured(&summary, format)? {
        return Ok(());
    }
    let warned = match spec_warnings.len() {
        0 => String::new(),
        n => format!(" ({n} warning{})", if n == 1 { "" } else { "s" }),
    };
    println!(
        "{}: a valid sweep job{warned}: {} sampling of {} over {} trials ({} at a time)",
        summary.file,
        summary.sampling_algorithm,
        summary.parameters.join(", "),
        summary.max_total_trials,
        summary.max_concurrent_trials
    );
    Ok(())
}

/// A sweep's trials, the best marked with `*`.
pub fn sweep_trials(t: &SweepTrials) {
    let mut headers: Vec<String> = vec!["TRIAL".into(), "STATUS".into(), t.primary_metric.to_uppercase()];
    headers.extend(t.parameters.iter().map(|p| p.name.to_uppercase()));
    headers.push("JOB".into());
    headers.push("NOTE".into());
    let rows = t
        .trials
        .iter()
        .map(|tr| {
            let best = t.best_trial.as_deref() == Some(tr.job.as_str());
            let mut row = vec![
                format!("{}{}", tr.index, if best { " *" } else { "" }),
                if tr.early_terminated.is_some() && tr.status == "Canceled" {
                    "EarlyTerminated".into()
                } else {
                    tr.status.clone()
                },
                tr.metric.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            ];
            for p in &t.parameters {
                row.push(tr.values.get(&p.name).map(render_value).unwrap_or_default());
            }
            row.push(tr.job.clone());
            row.push(tr.early_terminated.clone().or_else(|| tr.failure.clone()).unwrap_or_default());
            row
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    table(&headers, rows);
    match (&t.best_trial, t.best_metric) {
        (Some(job), Some(m)) => println!("\nbest: {job} ({} = {m}, {})", t.primary_metric, t.goal),
        _ => println!("\n{} trials of {}; {} {}", t.trials.len(), t.max_total_trials, t.goal, t.primary_metric),
    }
}

pub fn render_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn job(j: &Job, format: Format) -> Result<()> {
    if structured(j, format)? {
        return Ok(());
    }
    let mut rows = vec![
        ("name", j.name.clone()),
        ("display_name", j.display_name.clone().unwrap_or_default()),
        ("status", j.status.clone()),
        ("experiment", format!("{} (id {})", j.experiment_name, j.experiment_id)),
        ("compute", j.compute.clone()),
        ("environment", j.environment.clone()),
        ("command", j.command.trim().to_string()),
        ("created", time(Some(j.created_at))),
    ];
    if let Some(f) = &j.failure {
        rows.push(("failure", f.clone()));
    }
    for (name, o) in &j.outputs {
        rows.push(("output", format!("{name}: {}", o.uri)));
    }
    for w in &j.warnings {
        rows.push(("warning", w.clone()));
    }
    for (k, v) in &j.tags {
        rows.push(("tag", format!("{k}={v}")));
    }
    for t in &j.transitions {
        rows.push(("status_at", format!("{} {}", time(Some(t.at)), t.status)));
    }
    for (k, v) in rows {
        println!("{k:<13} {v}");
    }
    Ok(())
}

pub fn jobs(items: &[Job], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "DISPLAY NAME", "STATUS", "EXPERIMENT", "COMPUTE", "CREATED"],
        items
            .iter()
            .map(|j| {
                vec![
                    j.name.clone(),
                    j.display_name.clone().unwrap_or_default(),
                    j.status.clone(),
                    j.experiment_name.clone(),
                    j.compute.clone(),
                    time(Some(j.created_at)),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn computes(items: &[ComputeTarget], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "TYPE", "MAX CONCURRENT JOBS", "DESCRIPTION"],
        items
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.kind.clone(),
                    c.max_concurrent_jobs.to_string(),
                    c.description.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn data(items: &[DataAsset], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "VERSION", "TYPE", "URI", "CREATED", "ARCHIVED"],
        items
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.version.clone(),
                    d.data_type.clone(),
                    d.uri.clone(),
                    time(Some(d.created_at)),
                    if d.archived { "yes".into() } else { String::new() },
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn model_versions(items: &[ModelAsset], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "VERSION", "TYPE", "STAGE", "SOURCE", "CREATED", "ARCHIVED"],
        items
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.version.clone(),
                    m.model_type.clone(),
                    m.stage.clone(),
                    m.source.clone(),
                    time(Some(m.created_at)),
                    if m.archived { "yes".into() } else { String::new() },
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn environments(items: &[EnvironmentAsset], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "VERSION", "IMAGE", "PACKAGES", "CREATED", "ARCHIVED"],
        items
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.version.clone(),
                    e.image.clone().unwrap_or_default(),
                    e.requirements.as_ref().map(|r| r.join(" ")).unwrap_or_else(|| "(host Python)".into()),
                    time(Some(e.created_at)),
                    if e.archived { "yes".into() } else { String::new() },
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn validated_pipeline(
    file: &std::path::Path,
    p: &kiln_spec::pipeline::PipelineJob,
    graph: Option<&kiln_spec::graph::Graph>,
    warnings: &[String],
    format: Format,
) -> Result<()> {
    #[derive(Serialize)]
    struct Step<'a> {
        name: &'a str,
        component: &'a str,
        after: Vec<&'a str>,
    }
    #[derive(Serialize)]
    struct Summary<'a> {
        file: String,
        valid: bool,
        #[serde(rename = "type")]
        kind: &'a str,
        name: Option<&'a str>,
        inputs: Vec<&'a str>,
        outputs: Vec<&'a str>,
        steps: Vec<Step<'a>>,
        warnings: &'a [String],
    }
    let steps = graph
        .map(|g| {
            g.steps
                .iter()
                .map(|s| Step {
                    name: &s.path,
                    component: &s.component_label,
                    after: s.upstream.iter().map(|i| g.steps[*i].path.as_str()).collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = Summary {
        file: file.display().to_string(),
        valid: true,
        kind: "pipeline",
        name: p.name.as_deref(),
        inputs: p.inputs.keys().map(String::as_str).collect(),
        outputs: p.outputs.keys().map(String::as_str).collect(),
        steps,
        warnings,
    };
    if structured(&summary, format)? {
        return Ok(());
    }
    println!("{}: a valid pipeline job with {} steps", summary.file, summary.steps.len());
    table(
        &["STEP", "COMPONENT", "AFTER"],
        summary.steps.iter().map(|s| vec![s.name.to_string(), s.component.to_string(), s.after.join(", ")]).collect(),
    );
    Ok(())
}

/// A pipeline's steps: status, job, and why each ran or was reused.
pub fn pipeline_steps(steps: &[PipelineStep]) {
    table(
        &["STEP", "STATUS", "JOB", "COMPONENT", "REUSE"],
        steps
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.status.clone().unwrap_or_else(|| "-".into()),
                    s.job.clone().unwrap_or_default(),
                    s.component.clone(),
                    s.reuse.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    );
}

pub fn components(items: &[ComponentAsset], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "VERSION", "TYPE", "INPUTS", "OUTPUTS", "CREATED", "ARCHIVED"],
        items
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.version.clone(),
                    c.kind.clone(),
                    c.inputs.join(", "),
                    c.outputs.join(", "),
                    time(Some(c.created_at)),
                    if c.archived { "yes".into() } else { String::new() },
                ]
            })
            .collect(),
    );
    Ok(())
}

fn fire_summary(f: &ScheduleFire) -> String {
    let what = match (&f.job_name, &f.message) {
        (Some(job), _) => format!("{} {job}", f.status),
        (None, Some(m)) => format!("{}: {m}", f.status),
        (None, None) => f.status.clone(),
    };
    format!("{} {what}", time(Some(f.at)))
}

pub fn schedules(items: &[Schedule], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "ENABLED", "TRIGGER", "NEXT (UTC)", "LAST", "CREATE JOB"],
        items
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    if s.is_enabled { "yes".into() } else { "no".into() },
                    s.trigger.clone(),
                    time(s.next_fire_at),
                    s.fires.first().map(fire_summary).unwrap_or_default(),
                    s.create_job.clone(),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn schedule(s: &Schedule, format: Format) -> Result<()> {
    if structured(s, format)? {
        return Ok(());
    }
    let mut rows = vec![
        ("name", s.name.clone()),
        ("display_name", s.display_name.clone().unwrap_or_default()),
        ("enabled", if s.is_enabled { "yes".into() } else { "no".into() }),
        ("trigger", s.trigger.clone()),
        ("create_job", s.create_job.clone()),
        ("next (UTC)", time(s.next_fire_at)),
    ];
    if let Some(t) = s.start_time {
        rows.push(("start (UTC)", time(Some(t))));
    }
    if let Some(t) = s.end_time {
        rows.push(("end (UTC)", time(Some(t))));
    }
    rows.push(("created", time(Some(s.created_at))));
    for w in &s.warnings {
        rows.push(("warning", w.clone()));
    }
    for (k, v) in &s.tags {
        rows.push(("tag", format!("{k}={v}")));
    }
    for f in &s.fires {
        rows.push(("fired", fire_summary(f)));
    }
    for (k, v) in rows {
        println!("{k:<13} {v}");
    }
    Ok(())
}

/// Prints a value as JSON or YAML (a table has no shape for it).
pub fn structured_value<T: Serialize>(value: &T, format: Format) -> Result<()> {
    if !structured(value, format)? {
        println!("{}", serde_json::to_string_pretty(value)?);
    }
    Ok(())
}

fn percents(map: &std::collections::BTreeMap<String, u32>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

pub fn online_endpoints(items: &[kiln_api::OnlineEndpoint], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "AUTH", "TRAFFIC", "MIRROR", "SCORING URI"],
        items
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.auth_mode.clone(),
                    percents(&e.traffic),
                    percents(&e.mirror_traffic),
                    e.scoring_uri.clone(),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn online_endpoint(e: &kiln_api::OnlineEndpoint, format: Format) -> Result<()> {
    if structured(e, format)? {
        return Ok(());
    }
    let mut rows = vec![
        ("name", e.name.clone()),
        ("auth_mode", e.auth_mode.clone()),
        ("scoring_uri", e.scoring_uri.clone()),
        ("traffic", percents(&e.traffic)),
        ("mirror_traffic", percents(&e.mirror_traffic)),
        ("state", e.provisioning_state.clone()),
        ("created", time(Some(e.created_at))),
    ];
    if let Some(d) = &e.description {
        rows.push(("description", d.clone()));
    }
    for (k, v) in &e.tags {
        rows.push(("tag", format!("{k}={v}")));
    }
    for (k, v) in rows {
        println!("{k:<15} {v}");
    }
    Ok(())
}

fn deployment_model(d: &kiln_api::OnlineDeployment) -> String {
    match &d.model {
        Some(m) => match (&m.name, &m.version) {
            (Some(n), Some(v)) => format!("{n}:{v}"),
            _ => m.label.clone(),
        },
        None => "-".into(),
    }
}

pub fn online_deployments(items: &[kiln_api::OnlineDeployment], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "STATE", "RUNTIME", "MODEL", "INSTANCES", "UPDATED"],
        items
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.provisioning_state.clone(),
                    d.runtime.clone(),
                    deployment_model(d),
                    format!("{}/{}", d.ready_instances, d.instance_count),
                    time(Some(d.updated_at)),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn online_deployment(d: &kiln_api::OnlineDeployment, format: Format) -> Result<()> {
    if structured(d, format)? {
        return Ok(());
    }
    let s = &d.request_settings;
    let mut rows = vec![
        ("name", d.name.clone()),
        ("endpoint", d.endpoint_name.clone()),
        ("state", d.provisioning_state.clone()),
        ("runtime", d.runtime.clone()),
        ("model", deployment_model(d)),
        ("instances", format!("{} ready of {}", d.ready_instances, d.instance_count)),
        (
            "requests",
            format!(
                "timeout {} ms, {} at once per instance, queue {} ms",
                s.request_timeout_ms, s.max_concurrent_requests_per_instance, s.max_queue_wait_ms
            ),
        ),
    ];
    if let Some(script) = &d.scoring_script {
        rows.push(("scoring_script", script.clone()));
    }
    if let Some(env) = &d.environment {
        rows.push(("environment", env.clone()));
    }
    for i in &d.inputs {
        let dims: Vec<String> = i.shape.iter().map(|x| x.map_or("N".to_string(), |x| x.to_string())).collect();
        rows.push(("input", format!("{} {} [{}]", i.name, i.dtype, dims.join(", "))));
    }
    if let Some(m) = &d.message {
        rows.push(("message", m.clone()));
    }
    rows.push(("updated", time(Some(d.updated_at))));
    for (k, v) in rows {
        println!("{k:<15} {v}");
    }
    Ok(())
}

pub fn batch_endpoints(items: &[kiln_api::BatchEndpoint], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "DEFAULT DEPLOYMENT", "DEPLOYMENTS", "CREATED"],
        items
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.default_deployment.clone().unwrap_or_else(|| "-".into()),
                    e.deployments.join(" "),
                    time(Some(e.created_at)),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn batch_deployments(items: &[kiln_api::BatchDeployment], format: Format) -> Result<()> {
    if structured(&items, format)? {
        return Ok(());
    }
    table(
        &["NAME", "MODEL", "SCRIPT", "MINI BATCH", "CONCURRENCY", "OUTPUT"],
        items
            .iter()
            .map(|d| {
                let s = &d.settings;
                vec![
                    d.name.clone(),
                    match (&d.model.name, &d.model.version) {
                        (Some(n), Some(v)) => format!("{n}:{v}"),
                        _ => d.model.label.clone(),
                    },
                    d.scoring_script.clone().unwrap_or_else(|| "-".into()),
                    s.mini_batch_size.to_string(),
                    format!("{}×{}", d.instance_count, s.max_concurrency_per_instance),
                    format!("{} {}", s.output_action, s.output_file_name),
                ]
            })
            .collect(),
    );
    Ok(())
}
