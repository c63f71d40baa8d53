//! Kiln's reader for Azure ML v2 YAML specs.
//!
//! A spec is parsed into a located tree ([`yaml`]), overridden by `--set path=value`, then read
//! with the schema of its kind ([`job`]); every error and warning names the file, the line, the
//! field and what was expected. Nothing here touches the disk beyond reading the spec file, the
//! network or the store: resolving paths and references is the orchestrator's job.

pub mod bind;
pub mod conda;
pub mod endpoint;
pub mod graph;
pub mod job;
pub mod pipeline;
pub mod read;
pub mod reference;
pub mod schedule;
pub mod sweep;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

pub use job::{CommandJob, DataInput, Distribution, Environment, JobInput, JobOutput, Literal, LiteralKind};
pub use yaml::{Node, Pos};

/// Something said about a place in a spec: `file:line:col: field: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Pos,
    /// The dotted field path (`inputs.lr`); empty for the file as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: about the file as a whole (it cannot be read; a --set that does not apply).
        if self.pos.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.pos.line, self.pos.col)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A spec that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub Diagnostic);

/// A spec read from a file, with the warnings its reading produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    pub spec: T,
    /// The folder relative paths in the spec are relative to.
    pub base_dir: PathBuf,
    pub warnings: Vec<Diagnostic>,
}

/// Parses `text` (named `file` in messages) and applies `--set` overrides (`path=value`).
pub fn parse_with_overrides(file: &str, text: &str, overrides: &[String]) -> Result<Node, SpecError> {
    let src = read::Source::new(file);
    let mut root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => return Err(src.error(Pos { line: 1, col: 1 }, "", "the file is empty")),
        Err(e) => return Err(src.error(e.pos, "", format!("invalid YAML: {}", e.message))),
    };
    for o in overrides {
        let Some((path, value)) = o.split_once('=') else {
            return Err(src.error(Pos::default(), "", format!("--set '{o}': expected path=value")));
        };
        root.set_path(path.trim(), value).map_err(|e| src.error(Pos::default(), path.trim(), format!("--set: {e}")))?;
    }
    Ok(root)
}

/// Reads a command job from a spec text.
pub fn command_job_from_str(
    file: &str,
    text: &str,
    overrides: &[String],
) -> Result<(CommandJob, Vec<Diagnostic>), SpecError> {
    let root = parse_with_overrides(file, text, overrides)?;
    let src = read::Source::new(file);
    let job = job::command_job(&src, &root)?;
    Ok((job, src.take_warnings()))
}

/// Reads a spec of one kind (`endpoint::online_endpoint`, …) from its text, with overrides.
pub fn read_str<T>(
    file: &str,
    text: &str,
    overrides: &[String],
    read: fn(&read::Source, &Node) -> Result<T, SpecError>,
) -> Result<(T, Vec<Diagnostic>), SpecError> {
    let root = parse_with_overrides(file, text, overrides)?;
    let src = read::Source::new(file);
    let spec = read(&src, &root)?;
    Ok((spec, src.take_warnings()))
}

/// A job spec of any kind Kiln runs.
// Made once per spec and moved rarely: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum JobSpec {
    Command(CommandJob),
    Pipeline(pipeline::PipelineJob),
    Sweep(sweep::SweepJob),
}

/// The `type:` of a job spec's root (`command` when absent, as the original tool reads it).
pub fn job_type(root: &Node) -> String {
    match root.get("type").map(|t| &t.kind) {
        Some(yaml::Kind::Scalar { text, .. }) => text.trim().to_ascii_lowercase(),
        _ => "command".into(),
    }
}

/// Reads a job spec of any supported kind from a parsed root.
pub fn job_from_node(file: &str, root: &Node) -> Result<(JobSpec, Vec<Diagnostic>), SpecError> {
    let src = read::Source::new(file);
    let spec = match job_type(root).as_str() {
        "command" => JobSpec::Command(job::command_job(&src, root)?),
        "pipeline" => JobSpec::Pipeline(pipeline::pipeline_job(&src, root)?),
        "sweep" => JobSpec::Sweep(sweep::sweep_job(&src, root)?),
        other => {
            let pos = root.get("type").map(|t| t.pos).unwrap_or(root.pos);
            return Err(src.error(
                pos,
                "type",
                format!("'{other}' jobs are not supported by Kiln yet (command, pipeline and sweep jobs are)"),
            ));
        }
    };
    Ok((spec, src.take_warnings()))
}

/// Reads and parses a spec file with `--set` overrides: its label for messages and its tree.
pub fn read_spec(path: &Path, overrides: &[String]) -> Result<(String, Node), SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        read::Source::new(file.as_str()).error(Pos::default(), "", format!("cannot read the file: {e}"))
    })?;
    let root = parse_with_overrides(&file, &text, overrides)?;
    Ok((file, root))
}

fn base_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Reads a job spec of any supported kind from a file.
pub fn load_job(path: &Path, overrides: &[String]) -> Result<Loaded<JobSpec>, SpecError> {
    let (file, root) = read_spec(path, overrides)?;
    let (spec, warnings) = job_from_node(&file, &root)?;
    Ok(Loaded { spec, base_dir: base_dir(path), warnings })
}

/// Reads a component (command or pipeline) from a parsed spec.
pub fn component_from_node(file: &str, root: &Node) -> Result<(pipeline::Component, Vec<Diagnostic>), SpecError> {
    let src = read::Source::new(file);
    let spec = pipeline::component(&src, root)?;
    Ok((spec, src.take_warnings()))
}

/// Reads a component file (command or pipeline).
pub fn load_component(path: &Path, overrides: &[String]) -> Result<Loaded<pipeline::Component>, SpecError> {
    let (file, root) = read_spec(path, overrides)?;
    let (spec, warnings) = component_from_node(&file, &root)?;
    Ok(Loaded { spec, base_dir: base_dir(path), warnings })
}

/// Component files, read from disk relative to the spec naming them; registered components
/// come from `registered` (none by default).
#[derive(Default)]
pub struct FileComponents {
    cache: std::collections::HashMap<PathBuf, std::sync::Arc<pipeline::Component>>,
    pub registered: std::collections::HashMap<String, std::sync::Arc<pipeline::Component>>,
    pub warnings: Vec<Diagnostic>,
}

impl FileComponents {
    /// The file a `component: ./x.yml` written in `from_file` names.
    pub fn path_of(path: &str, from_file: &str) -> PathBuf {
        let base = Path::new(from_file).parent().map(Path::to_path_buf).unwrap_or_default();
        base.join(path)
    }
}

impl graph::Components for FileComponents {
    fn load(
        &mut self,
        r: &pipeline::ComponentRef,
        from_file: &str,
    ) -> Result<Option<std::sync::Arc<pipeline::Component>>, SpecError> {
        match r {
            pipeline::ComponentRef::Inline(c) => Ok(Some(std::sync::Arc::new((**c).clone()))),
            pipeline::ComponentRef::Registered { reference, .. } => Ok(self.registered.get(reference).cloned()),
            pipeline::ComponentRef::File { path, pos } => {
                let full = Self::path_of(path, from_file);
                if let Some(c) = self.cache.get(&full) {
                    return Ok(Some(c.clone()));
                }
                if !full.is_file() {
                    return Err(read::Source::new(from_file).error(
                        *pos,
                        "component",
                        format!("{} does not exist", full.display()),
                    ));
                }
                let loaded = load_component(&full, &[])?;
                self.warnings.extend(loaded.warnings);
                let c = std::sync::Arc::new(loaded.spec);
                self.cache.insert(full, c.clone());
                Ok(Some(c))
            }
        }
    }
}
