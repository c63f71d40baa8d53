//! The command job kind (`type: command`), read from a located YAML tree.

use std::collections::BTreeMap;

use crate::bind;
use crate::read::{MapReader, Result, Source, describe, scalar_text};
use crate::yaml::{Kind, Node, Pos, Resolved};

/// A command job as written, checked against the v2 schema; paths are still as written
/// (relative to the file's folder), references still unresolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandJob {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub experiment_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
    pub command: Located<String>,
    pub code: Option<Located<String>>,
    pub environment: Located<Environment>,
    pub environment_variables: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, Located<JobInput>>,
    pub outputs: BTreeMap<String, Located<JobOutput>>,
    pub compute: Option<String>,
    pub distribution: Option<Distribution>,
    pub resources: Resources,
    /// `limits.timeout`, in seconds.
    pub timeout_s: Option<u64>,
    pub parent_job_name: Option<String>,
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Environment {
    /// `azureml:name:version`, `azureml:name@latest`, a registry URI, or a curated name.
    Reference(String),
    Inline(InlineEnvironment),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct InlineEnvironment {
    pub image: Option<String>,
    pub conda_file: Option<CondaFile>,
    /// `build.path` and `build.dockerfile_path`.
    pub build: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CondaFile {
    /// A path relative to the spec's folder.
    Path(String),
    /// The conda spec written inline.
    Inline(Node),
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobInput {
    Literal(Literal),
    Data(DataInput),
}

/// A literal input with the text it was written as (`1.0` stays `1.0` in a command).
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub kind: LiteralKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralKind {
    String,
    Integer,
    Number,
    Boolean,
}

impl LiteralKind {
    pub fn parse(name: &str) -> Option<LiteralKind> {
        match name {
            "string" => Some(LiteralKind::String),
            "integer" => Some(LiteralKind::Integer),
            "number" => Some(LiteralKind::Number),
            "boolean" => Some(LiteralKind::Boolean),
            _ => None,
        }
    }
}

pub const DATA_TYPES: [&str; 6] = ["uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"];
pub(crate) const INPUT_MODES: [&str; 5] = ["ro_mount", "download", "direct", "eval_mount", "eval_download"];
pub(crate) const OUTPUT_MODES: [&str; 3] = ["rw_mount", "upload", "direct"];

#[derive(Debug, Clone, PartialEq)]
pub struct DataInput {
    pub data_type: String,
    /// As written: a local path, a URL, `azureml:name:version`, `azureml://…`.
    pub path: String,
    pub mode: String,
    pub datastore: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    pub data_type: String,
    pub mode: String,
    pub path: Option<String>,
    /// Register the output as an asset of this name (and version) when the job completes.
    pub asset_name: Option<String>,
    pub asset_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    PyTorch { process_count_per_instance: u64 },
    Mpi { process_count_per_instance: u64 },
    TensorFlow { worker_count: Option<u64>, parameter_server_count: u64 },
    Ray,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    pub instance_count: u64,
    pub instance_type: Option<String>,
    pub shm_size: Option<String>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources { instance_count: 1, instance_type: None, shm_size: None }
    }
}

/// Reads a command job from the root of a spec.
pub fn command_job(src: &Source, root: &Node) -> Result<CommandJob> {
    let m = MapReader::new(src, root, "")?;
    m.accept(&["$schema"]);
    if let Some(t) = m.str("type")?
        && t != "command"
    {
        return Err(src.error(m.pos_of("type"), "type", format!("expected 'command' here, found '{t}'")));
    }
    let name = job_name(src, &m)?;
    let command_node = m.req("command")?;
    let command = Located { value: scalar_text(src, command_node, "command")?, pos: command_node.pos };
    let environment = environment(src, &m)?;
    let code = m.get("code").map(|n| Ok(Located { value: scalar_text(src, n, "code")?, pos: n.pos })).transpose()?;

    let inputs = job_inputs(src, &m)?;
    let outputs = job_outputs(src, &m)?;
    let resources = resources(&m)?;
    let timeout_s = timeout(&m)?;
    let distribution = distribution(src, &m)?;
    not_used_locally(
        src,
        &m,
        &[
            ("identity", "data-access identity do not apply to local compute"),
            ("services", "interactive services do not apply to local compute"),
            ("queue_settings", "queue settings do not apply to local compute"),
        ],
    );
    let job = CommandJob {
        name,
        display_name: m.str("display_name")?,
        experiment_name: m.str("experiment_name")?,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        properties: m.string_map("properties")?,
        command,
        code,
        environment,
        environment_variables: m.string_map("environment_variables")?,
        inputs,
        outputs,
        compute: m.str("compute")?,
        distribution,
        resources,
        timeout_s,
        parent_job_name: m.str("parent_job_name")?,
    };
    m.warn_unknown();
    check_bindings(src, &job, m.pos_of("environment_variables"))?;
    Ok(job)
}

/// Fields the format has that mean nothing on local compute: accepted, each with a warning
/// saying why.
pub(crate) fn not_used_locally(src: &Source, m: &MapReader, fields: &[(&str, &str)]) {
    for (field, why) in fields {
        if let Some(n) = m.get(field) {
            src.warn(n.pos, &m.field(field), format!("{why} (accepted, not used)"));
        }
    }
}

/// `name:` of a job (of any kind), checked.
pub(crate) fn job_name(src: &Source, m: &MapReader) -> Result<Option<String>> {
    let name = m.str("name")?;
    if let Some(n) = &name
        && !valid_job_name(n)
    {
        return Err(src.error(
            m.pos_of("name"),
            &m.field("name"),
            format!("'{n}' is not a valid job name: use letters, digits, '-' and '_', at most 255, starting with a letter or digit"),
        ));
    }
    Ok(name)
}

/// `inputs:` of a job (of any kind).
pub(crate) fn job_inputs(src: &Source, m: &MapReader) -> Result<BTreeMap<String, Located<JobInput>>> {
    let mut inputs = BTreeMap::new();
    if let Some(im) = m.map("inputs")? {
        for e in im.entries() {
            im.accept(&[&e.key]);
            let value = job_input(src, &e.value, &im.field(&e.key))?;
            inputs.insert(e.key.clone(), Located { value, pos: e.value.pos });
        }
    }
    Ok(inputs)
}

/// `outputs:` of a job (of any kind).
pub(crate) fn job_outputs(src: &Source, m: &MapReader) -> Result<BTreeMap<String, Located<JobOutput>>> {
    let mut outputs = BTreeMap::new();
    if let Some(om) = m.map("outputs")? {
        for e in om.entries() {
            om.accept(&[&e.key]);
            let value = job_output(src, &e.value, &om.field(&e.key))?;
            outputs.insert(e.key.clone(), Located { value, pos: e.value.pos });
        }
    }
    Ok(outputs)
}

/// `resources:` (defaults when absent).
pub(crate) fn resources(m: &MapReader) -> Result<Resources> {
    Ok(match m.map("resources")? {
        None => Resources::default(),
        Some(r) => {
            let res = Resources {
                instance_count: r.count("instance_count")?.unwrap_or(1).max(1),
                instance_type: r.str("instance_type")?,
                shm_size: r.str("shm_size")?,
            };
            r.accept(&["docker_args", "locations", "max_instance_count", "properties"]);
            r.warn_unknown();
            res
        }
    })
}

/// `limits.timeout`, in seconds.
pub(crate) fn timeout(m: &MapReader) -> Result<Option<u64>> {
    Ok(match m.map("limits")? {
        None => None,
        Some(l) => {
            let t = l.count("timeout")?;
            l.warn_unknown();
            t
        }
    })
}

pub(crate) fn valid_job_name(n: &str) -> bool {
    let mut chars = n.chars();
    n.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) fn environment(src: &Source, m: &MapReader) -> Result<Located<Environment>> {
    let node = m.req("environment")?;
    let pos = node.pos;
    if let Kind::Scalar { text, .. } = &node.kind {
        return Ok(Located { value: Environment::Reference(text.clone()), pos });
    }
    let e = MapReader::new(src, node, "environment")?;
    for dropped in ["name", "version"] {
        if let Some(n) = e.get(dropped) {
            src.warn(n.pos, &e.field(dropped), format!("an inline environment has no {dropped}; it is ignored"));
        }
    }
    e.accept(&["description", "tags", "os_type", "datastore", "inference_config", "$schema"]);
    let conda_file = match e.get("conda_file") {
        None => None,
        Some(n) => Some(match &n.kind {
            Kind::Scalar { text, .. } => CondaFile::Path(text.clone()),
            Kind::Map(_) => CondaFile::Inline(n.clone()),
            _ => {
                return Err(src.error(
                    n.pos,
                    "environment.conda_file",
                    format!("expected a path or a conda mapping, found {}", n.type_name()),
                ));
            }
        }),
    };
    let build = match e.map("build")? {
        None => None,
        Some(b) => {
            let path = b.req_str("path")?;
            let dockerfile = b.str("dockerfile_path")?.unwrap_or_else(|| "Dockerfile".into());
            b.warn_unknown();
            Some((path, dockerfile))
        }
    };
    let inline = InlineEnvironment { image: e.str("image")?, conda_file, build };
    if inline.image.is_none() && inline.build.is_none() {
        return Err(src.error(pos, "environment", "an inline environment needs 'image' or 'build'"));
    }
    e.warn_unknown();
    Ok(Located { value: Environment::Inline(inline), pos })
}

pub(crate) fn job_input(src: &Source, node: &Node, field: &str) -> Result<JobInput> {
    // A bare scalar is always a literal, even one that looks like a URL.
    if let Some(resolved) = node.resolve() {
        let text = scalar_text(src, node, field)?;
        let kind = match resolved {
            Resolved::Int(_) => LiteralKind::Integer,
            Resolved::Float(_) => LiteralKind::Number,
            Resolved::Bool(_) => LiteralKind::Boolean,
            Resolved::Null | Resolved::Str(_) => LiteralKind::String,
        };
        let text = match resolved {
            // Rendered as the Python SDK renders booleans.
            Resolved::Bool(b) => if b { "True" } else { "False" }.to_string(),
            _ => text,
        };
        return Ok(JobInput::Literal(Literal { kind, text }));
    }
    let m = MapReader::new(src, node, field)?;
    let type_name = m.str("type")?.unwrap_or_else(|| "uri_folder".into());
    if let Some(kind) = LiteralKind::parse(&type_name) {
        let value_field = if m.has("value") { "value" } else { "default" };
        let value = m.req(value_field)?;
        let literal = typed_literal(src, value, kind, &m.field(value_field))?;
        m.accept(&["description", "optional", "min", "max", "enum"]);
        m.warn_unknown();
        return Ok(JobInput::Literal(literal));
    }
    if !DATA_TYPES.contains(&type_name.as_str()) {
        return Err(src.error(
            m.pos_of("type"),
            &m.field("type"),
            format!("expected one of {}, string, integer, number, boolean; found '{type_name}'", DATA_TYPES.join(", ")),
        ));
    }
    let path = m.req_str("path")?;
    let mode = m.choice("mode", &INPUT_MODES)?.unwrap_or_else(|| "ro_mount".into());
    if mode.starts_with("eval_") && type_name != "mltable" {
        return Err(src.error(m.pos_of("mode"), &m.field("mode"), format!("mode '{mode}' is only for mltable inputs")));
    }
    let input = DataInput { data_type: type_name, path, mode, datastore: m.str("datastore")? };
    m.accept(&["description"]);
    m.warn_unknown();
    Ok(JobInput::Data(input))
}

/// A literal declared with a type: its value must be of that type.
pub(crate) fn typed_literal(src: &Source, value: &Node, kind: LiteralKind, field: &str) -> Result<Literal> {
    let text = scalar_text(src, value, field)?;
    let trimmed = text.trim();
    let ok = match kind {
        LiteralKind::String => true,
        LiteralKind::Integer => trimmed.parse::<i64>().is_ok(),
        LiteralKind::Number => trimmed.parse::<f64>().is_ok_and(f64::is_finite),
        LiteralKind::Boolean => matches!(trimmed.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no"),
    };
    if !ok {
        let want = match kind {
            LiteralKind::Integer => "an integer",
            LiteralKind::Number => "a number",
            LiteralKind::Boolean => "a boolean",
            LiteralKind::String => "a string",
        };
        return Err(src.error(value.pos, field, format!("expected {want}, found {}", describe(value))));
    }
    let text = match kind {
        LiteralKind::Boolean => {
            if matches!(trimmed.to_ascii_lowercase().as_str(), "true" | "yes") { "True" } else { "False" }.to_string()
        }
        _ => text,
    };
    Ok(Literal { kind, text })
}

pub(crate) fn job_output(src: &Source, node: &Node, field: &str) -> Result<JobOutput> {
    if node.is_null() {
        return Ok(JobOutput {
            data_type: "uri_folder".into(),
            mode: "rw_mount".into(),
            path: None,
            asset_name: None,
            asset_version: None,
        });
    }
    let m = MapReader::new(src, node, field)?;
    let data_type = match m.choice("type", &DATA_TYPES)? {
        Some(t) => t,
        None => "uri_folder".into(),
    };
    let mode = m.choice("mode", &OUTPUT_MODES)?.unwrap_or_else(|| "rw_mount".into());
    let out = JobOutput {
        data_type,
        mode,
        path: m.str("path")?,
        asset_name: m.str("name")?,
        asset_version: m.str("version")?,
    };
    if out.asset_version.is_some() && out.asset_name.is_none() {
        return Err(src.error(
            m.pos_of("version"),
            &m.field("version"),
            "an output 'version' needs a 'name' to register under",
        ));
    }
    m.accept(&["description", "datastore"]);
    m.warn_unknown();
    Ok(out)
}

pub(crate) fn distribution(src: &Source, m: &MapReader) -> Result<Option<Distribution>> {
    let Some(d) = m.map("distribution")? else { return Ok(None) };
    let kind = d.choice("type", &["pytorch", "mpi", "tensorflow", "ray"])?;
    let Some(kind) = kind else {
        return Err(src.error(d.node.pos, "distribution.type", "missing required field 'type'"));
    };
    let per_instance = || -> Result<u64> { Ok(d.count("process_count_per_instance")?.unwrap_or(1).max(1)) };
    let dist = match kind.as_str() {
        "pytorch" => Distribution::PyTorch { process_count_per_instance: per_instance()? },
        "mpi" => Distribution::Mpi { process_count_per_instance: per_instance()? },
        "tensorflow" => Distribution::TensorFlow {
            worker_count: d.count("worker_count")?,
            parameter_server_count: d.count("parameter_server_count")?.unwrap_or(0),
        },
        _ => {
            d.accept(&["include_dashboard", "head_node_additional_args", "worker_node_additional_args"]);
            Distribution::Ray
        }
    };
    d.warn_unknown();
    Ok(Some(dist))
}

/// Every `${{…}}` in the command names a declared input or output; environment variables may
/// name inputs.
fn check_bindings(src: &Source, job: &CommandJob, env_pos: Pos) -> Result<()> {
    let check = |text: &str, pos: Pos, field: &str, outputs_allowed: bool| -> Result<()> {
        let found =
            bind::bindings(text).map_err(|_| src.error(pos, field, "a '${{' is not closed by '}}'".to_string()))?;
        for b in found {
            let problem = match bind::split_io(b.expr) {
                Some(("inputs", name)) if job.inputs.contains_key(name) => continue,
                Some(("outputs", name)) if outputs_allowed && job.outputs.contains_key(name) => continue,
                Some(("inputs", name)) => format!("there is no input '{name}' in 'inputs'"),
                Some(("outputs", name)) if outputs_allowed => format!("there is no output '{name}' in 'outputs'"),
                _ if outputs_allowed => "expected inputs.<name> or outputs.<name>".to_string(),
                _ => "expected inputs.<name>".to_string(),
            };
            return Err(src.error(pos, field, format!("'${{{{{}}}}}': {problem}", b.expr)));
        }
        Ok(())
    };
    check(&job.command.value, job.command.pos, "command", true)?;
    for (k, v) in &job.environment_variables {
        check(v, env_pos, &format!("environment_variables.{k}"), false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{LiteralKind, command_job_from_str};

    use super::*;

    const FULL: &str = r#"$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
name: train_1
display_name: Train
experiment_name: demo
description: trains
tags: {team: ml, tries: 3}
code: ./src
command: >-
  python train.py --data ${{inputs.data}} --lr ${{inputs.lr}} --n ${{ inputs.n }}
  --flag ${{inputs.flag}} --model ${{outputs.model}}
environment:
  image: python:3.11-slim
  conda_file: ./env.yml
environment_variables:
  DATA: ${{inputs.data}}
  MODE: fast
inputs:
  data:
    type: uri_file
    path: ./data/iris.csv
    mode: download
  lr: 1.0
  n: 10
  flag: yes
  url: https://example.com/iris.csv
  depth: {type: integer, default: 4}
outputs:
  model:
    type: mlflow_model
    name: iris-model
    version: "2"
  scratch:
compute: local
distribution: {type: pytorch, process_count_per_instance: 2}
resources: {instance_count: 1, shm_size: 2g}
limits: {timeout: 600}
"#;

    #[test]
    fn reads_every_field_of_a_command_job() {
        let (job, warnings) = command_job_from_str("job.yml", FULL, &[]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(job.name.as_deref(), Some("train_1"));
        assert_eq!(job.tags.get("tries").map(String::as_str), Some("3"));
        assert_eq!(job.command.pos.line, 9);
        assert!(job.command.value.starts_with("python train.py --data ${{inputs.data}}"));
        let Environment::Inline(env) = &job.environment.value else { panic!() };
        assert_eq!(env.image.as_deref(), Some("python:3.11-slim"));
        assert_eq!(env.conda_file, Some(CondaFile::Path("./env.yml".into())));
        let lit = |name: &str| match &job.inputs[name].value {
            JobInput::Literal(l) => (l.kind, l.text.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(lit("lr"), (LiteralKind::Number, "1.0".into()));
        assert_eq!(lit("n"), (LiteralKind::Integer, "10".into()));
        assert_eq!(lit("flag"), (LiteralKind::Boolean, "True".into()));
        assert_eq!(
            lit("url"),
            (LiteralKind::String, "https://example.com/iris.csv".into()),
            "a bare string is a literal"
        );
        assert_eq!(lit("depth"), (LiteralKind::Integer, "4".into()));
        let JobInput::Data(data) = &job.inputs["data"].value else { panic!() };
        assert_eq!(
            (data.data_type.as_str(), data.path.as_str(), data.mode.as_str()),
            ("uri_file", "./data/iris.csv", "download")
        );
        let model = &job.outputs["model"].value;
        assert_eq!((model.asset_name.as_deref(), model.asset_version.as_deref()), (Some("iris-model"), Some("2")));
        let scratch = &job.outputs["scratch"].value;
        assert_eq!((scratch.data_type.as_str(), scratch.mode.as_str()), ("uri_folder", "rw_mount"));
        assert_eq!(job.distribution, Some(Distribution::PyTorch { process_count_per_instance: 2 }));
        assert_eq!(job.timeout_s, Some(600));
        assert_eq!(job.environment_variables["MODE"], "fast");
    }

    #[test]
    fn minimal_job_and_registered_environment() {
        let text = "command: echo hello world\nenvironment: azureml:AzureML-sklearn-1.5@latest\n";
        let (job, _) = command_job_from_str("hello.yml", text, &[]).unwrap();
        assert_eq!(job.environment.value, Environment::Reference("azureml:AzureML-sklearn-1.5@latest".into()));
        assert!(job.inputs.is_empty() && job.outputs.is_empty() && job.code.is_none());
        assert_eq!(job.resources.instance_count, 1);
    }

    #[test]
    fn overrides_apply_before_reading() {
        let sets = vec!["inputs.lr=0.5".to_string(), "environment.image=python:3.12".into(), "limits.timeout=5".into()];
        let (job, _) = command_job_from_str("job.yml", FULL, &sets).unwrap();
        let JobInput::Literal(lr) = &job.inputs["lr"].value else { panic!() };
        assert_eq!(lr.text, "0.5");
        let Environment::Inline(env) = &job.environment.value else { panic!() };
        assert_eq!(env.image.as_deref(), Some("python:3.12"));
        assert_eq!(job.timeout_s, Some(5));
    }

    fn error(text: &str) -> String {
        command_job_from_str("job.yml", text, &[]).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_field_and_expectation() {
        let env = "environment: azureml:e:1\n";
        assert_eq!(error(env), "job.yml:1:1: command: missing required field 'command'");
        assert_eq!(
            error(&format!("command: echo ${{{{inputs.nope}}}}\n{env}")),
            "job.yml:1:10: command: '${{inputs.nope}}': there is no input 'nope' in 'inputs'"
        );
        assert_eq!(
            error(&format!("command: x\n{env}inputs:\n  n: {{type: integer, default: abc}}\n")),
            "job.yml:4:31: inputs.n.default: expected an integer, found a string 'abc'"
        );
        assert_eq!(
            error(&format!("command: x\n{env}limits:\n  timeout: soon\n")),
            "job.yml:4:12: limits.timeout: expected an integer, found a string 'soon'"
        );
        assert_eq!(
            error(&format!("command: x\n{env}inputs:\n  d: {{type: uri_file, path: a.csv, mode: rw_mount}}\n")),
            "job.yml:4:42: inputs.d.mode: expected one of ro_mount, download, direct, eval_mount, eval_download, found 'rw_mount'"
        );
        assert_eq!(
            error(&format!("command: x\n{env}inputs:\n  d: {{type: table, path: a.csv}}\n")),
            "job.yml:4:13: inputs.d.type: expected one of uri_file, uri_folder, mltable, mlflow_model, custom_model, triton_model, string, integer, number, boolean; found 'table'"
        );
        assert_eq!(
            error(&format!("type: sweep\ncommand: x\n{env}")),
            "job.yml:1:7: type: expected 'command' here, found 'sweep'"
        );
        assert_eq!(error("command: [a\n"), "job.yml:1:10: invalid YAML: unclosed bracket '['");
        assert_eq!(error("- a\n- b\n"), "job.yml:1:1: expected a mapping for the file, found a list");
        assert_eq!(
            error("command: x\nenvironment:\n  conda_file: env.yml\n"),
            "job.yml:3:3: environment: an inline environment needs 'image' or 'build'"
        );
        assert_eq!(error(&format!("name: 'bad name'\ncommand: x\n{env}")).split(": ").nth(1), Some("name"));
    }

    #[test]
    fn unknown_fields_and_local_only_notes_are_warnings() {
        let text =
            "command: x\nenvironment: azureml:e:1\ncomand: typo\nidentity: {type: managed}\nresources: {gpus: 2}\n";
        let (_, warnings) = command_job_from_str("job.yml", text, &[]).unwrap();
        let lines: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert!(lines.contains(&"job.yml:3:1: comand: unknown field 'comand' (ignored)".to_string()), "{lines:?}");
        assert!(
            lines.contains(&"job.yml:5:13: resources.gpus: unknown field 'gpus' (ignored)".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("job.yml:4:11: identity: data-access identity do not apply")),
            "{lines:?}"
        );
    }
}
