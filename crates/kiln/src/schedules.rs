//! `kiln schedule …`: reading a schedule spec, bundling the job it creates (the job file
//! read, checked and uploaded here, as `kiln job create` does), and sending it.

use std::path::Path;

use anyhow::{Result, anyhow};
use kiln_api::Schedule;
use kiln_client::Client;
use kiln_spec::schedule::JobBase;
use kiln_spec::yaml::{Entry, Kind};
use kiln_spec::{Node, Pos};

use crate::bundle::{entry_mut, text};

fn read(label: &str, tree: &Node) -> Result<kiln_spec::schedule::Schedule> {
    let src = kiln_spec::read::Source::new(label);
    let spec = kiln_spec::schedule::schedule(&src, tree)?;
    for w in src.take_warnings() {
        eprintln!("warning: {w}");
    }
    Ok(spec)
}

/// Creates (or replaces) a schedule from its YAML file.
pub async fn create(client: &Client, file: &Path, mut set: Vec<String>, name: Option<String>) -> Result<Schedule> {
    if let Some(name) = name {
        set.push(format!("name={name}"));
    }
    let (label, mut tree) = kiln_spec::read_spec(file, &set)?;
    let spec = read(&label, &tree)?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let bundler = crate::bundle::Bundler { client };
    // Data inputs that the overrides give as local paths are uploaded, relative to the
    // schedule's file.
    let with_job = tree.get("create_job").is_some_and(|c| c.get("job").is_some());
    if with_job && let Some(cj) = entry_mut(&mut tree, "create_job") {
        bundler.inputs(cj, &base, &label, "create_job.").await?;
    }
    // Read again: the overrides now name the uploads (the first read checked the file before
    // anything was uploaded).
    let create = kiln_spec::schedule::schedule(&kiln_spec::read::Source::new(label.as_str()), &tree)?.create_job;
    let (job, job_label, job_base, source) = match &create.base {
        JobBase::Existing { .. } => {
            // The server reads the job it names, and checks it.
            return Ok(client.create_schedule(tree.to_flow(), label).await?);
        }
        JobBase::File { path, pos } => {
            let job_file = base.join(path.strip_prefix("./").unwrap_or(path));
            let (job_label, job) = kiln_spec::read_spec(&job_file, &[])
                .map_err(|e| anyhow!("{label}:{}:{}: create_job: {e}", pos.line, pos.col))?;
            let job_base = job_file.parent().map(Path::to_path_buf).unwrap_or_default();
            (job, job_label, job_base, Some(path.clone()))
        }
        JobBase::Inline(job) => (job.clone(), label.clone(), base.clone(), None),
    };
    // What runs is the job with the overrides applied; it is checked as it will be at a fire.
    let mut merged = job;
    kiln_spec::schedule::apply_overrides(&mut merged, &create.overrides);
    let checked = kiln_spec::schedule::job_for_fire(&merged, &create, &spec.name, "check", "2000-01-01T00:00:00Z");
    crate::jobs::check_and_bundle(client, &mut merged, &job_label, &job_base, Some(&checked)).await?;
    if let (Some(source), Kind::Map(entries)) = (source, &mut merged.kind) {
        entries.push(Entry { key: "$source".into(), key_pos: Pos::default(), value: text(&source) });
    }
    let create_job = Node {
        kind: Kind::Map(vec![Entry { key: "job".into(), key_pos: Pos::default(), value: merged }]),
        pos: Pos::default(),
    };
    tree.set_path_node("create_job", create_job).map_err(|e| anyhow!(e))?;
    Ok(client.create_schedule(tree.to_flow(), label).await?)
}

/// Changes fields of a schedule as stored (`--set trigger.expression="0 3 * * *"`).
pub async fn update(client: &Client, name: &str, set: &[String]) -> Result<Schedule> {
    let current = client.schedule(name).await?;
    let label = format!("schedule '{name}'");
    let tree = kiln_spec::parse_with_overrides(&label, &current.spec.to_string(), set)?;
    read(&label, &tree)?;
    if tree.get("name").and_then(|n| n.resolve()) != Some(kiln_spec::yaml::Resolved::Str(name)) {
        anyhow::bail!("--set name=…: a schedule's name cannot change (create one under the new name)");
    }
    Ok(client.create_schedule(tree.to_flow(), label).await?)
}
