//! Components (`type: command`, `type: pipeline`) and pipeline jobs (`type: pipeline`), read
//! from located YAML trees. References between files are left as written: [`crate::graph`]
//! follows them and checks the whole DAG.

use std::collections::{BTreeMap, BTreeSet};

use crate::bind;
use crate::job::{
    self, DATA_TYPES, Distribution, Environment, INPUT_MODES, JobInput, JobOutput, Literal, LiteralKind, Located,
    OUTPUT_MODES, Resources,
};
use crate::read::{MapReader, Result, Source, describe, scalar_text};
use crate::yaml::{Kind, Node, Pos};

/// A component's input port.
#[derive(Debug, Clone, PartialEq)]
pub struct InputPort {
    pub kind: PortKind,
    pub default: Option<Literal>,
    pub optional: bool,
    /// `min`/`max` for numbers, `enum` for strings.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub allowed: Option<Vec<String>>,
    pub mode: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PortKind {
    Literal(LiteralKind),
    /// A data or model type (`uri_folder`, `mlflow_model`, …).
    Data(String),
    /// An inline step's input bound to something whose type the graph decides.
    Any,
}

impl PortKind {
    pub fn name(&self) -> &str {
        match self {
            PortKind::Literal(k) => k.name(),
            PortKind::Data(t) => t,
            PortKind::Any => "any",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputPort {
    pub data_type: String,
    pub mode: Option<String>,
    pub pos: Pos,
}

/// A command component: a command with typed ports. Inline command steps of a pipeline are
/// read as anonymous ones.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandComponent {
    pub name: Option<String>,
    pub version: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub is_deterministic: bool,
    pub command: Located<String>,
    pub code: Option<Located<String>>,
    pub environment: Located<Environment>,
    pub environment_variables: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, InputPort>,
    pub outputs: BTreeMap<String, OutputPort>,
    pub distribution: Option<Distribution>,
    pub resources: Resources,
    pub timeout_s: Option<u64>,
    /// The file it was read from, for messages; relative paths are relative to its folder.
    pub file: String,
    /// `$source`: how the pipeline named the file this component was inlined from.
    pub source: Option<String>,
}

/// A pipeline component: steps with typed ports, usable as a step of other pipelines.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineComponent {
    pub name: Option<String>,
    pub version: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, InputPort>,
    pub outputs: BTreeMap<String, OutputPort>,
    pub jobs: Vec<Step>,
    pub file: String,
    /// `$source`, as for command components.
    pub source: Option<String>,
}

// Made once per spec and moved rarely: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Component {
    Command(CommandComponent),
    Pipeline(PipelineComponent),
}

impl Component {
    pub fn name(&self) -> Option<&str> {
        match self {
            Component::Command(c) => c.name.as_deref(),
            Component::Pipeline(p) => p.name.as_deref(),
        }
    }
    pub fn version(&self) -> Option<&str> {
        match self {
            Component::Command(c) => c.version.as_deref(),
            Component::Pipeline(p) => p.version.as_deref(),
        }
    }
    /// The file an inlined component came from, as the pipeline named it.
    pub fn source(&self) -> Option<&str> {
        match self {
            Component::Command(c) => c.source.as_deref(),
            Component::Pipeline(p) => p.source.as_deref(),
        }
    }
}

/// `settings:` of a pipeline job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    pub default_compute: Option<String>,
    pub default_datastore: Option<String>,
    /// Fail fast unless set: the first failed step cancels the others.
    pub continue_on_step_failure: bool,
    pub force_rerun: bool,
    /// Keys Kiln does not use, kept (and echoed as properties) as the original tool does.
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineJob {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub experiment_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, Located<JobInput>>,
    pub outputs: BTreeMap<String, Located<JobOutput>>,
    pub settings: Settings,
    pub compute: Option<String>,
    pub jobs: Vec<Step>,
    pub file: String,
}

/// One entry of `jobs:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub pos: Pos,
    pub component: ComponentRef,
    pub inputs: BTreeMap<String, Located<StepInput>>,
    pub outputs: BTreeMap<String, Located<StepOutput>>,
    /// As written; may be a `${{parent.inputs.x}}` binding.
    pub compute: Option<Located<String>>,
    pub display_name: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub resources: Option<Resources>,
    pub distribution: Option<Distribution>,
    pub timeout_s: Option<u64>,
    pub environment_variables: BTreeMap<String, String>,
    /// `retry_settings.max_retries`.
    pub max_retries: u32,
    /// A sweep node (`type: sweep`): its trial is `component`, and the search space's keys
    /// name the component's inputs.
    pub sweep: Option<crate::sweep::SweepSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ComponentRef {
    /// An inline command step, or `component:` written as a mapping.
    Inline(Box<Component>),
    /// `./x.yml` or `file:./x.yml`, relative to the spec that names it.
    File { path: String, pos: Pos },
    /// `azureml:name:version`, `azureml:name@latest`, `azureml:name`, a registry URI.
    Registered { reference: String, pos: Pos },
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepInput {
    Literal(Literal),
    Data(crate::DataInput),
    Bind { to: Binding, mode: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Binding {
    /// `${{parent.inputs.x}}`
    ParentInput(String),
    /// `${{parent.jobs.step.outputs.o}}`: a DAG edge.
    StepOutput { step: String, output: String },
    /// `${{parent.jobs.step.inputs.i}}`: the same binding as another step's input.
    StepInput { step: String, input: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutput {
    /// Settings for the step's own output (defaults when written as null).
    Own(JobOutput),
    /// `${{parent.outputs.y}}`: the step's output is the pipeline's output `y`.
    Promote(String),
}

impl LiteralKind {
    pub fn name(&self) -> &'static str {
        match self {
            LiteralKind::String => "string",
            LiteralKind::Integer => "integer",
            LiteralKind::Number => "number",
            LiteralKind::Boolean => "boolean",
        }
    }
}

/// Reads a binding: the whole value must be one `${{…}}` of a shape a step may use.
pub fn parse_binding(src: &Source, text: &str, pos: Pos, field: &str) -> Result<Option<Binding>> {
    let found = bind::bindings(text).map_err(|_| src.error(pos, field, "a '${{' is not closed by '}}'"))?;
    let Some(b) = found.first() else { return Ok(None) };
    if found.len() > 1 || b.start != 0 || b.end != text.trim_end().len() {
        return Err(src.error(pos, field, format!("'{text}': a binding must be the whole value")));
    }
    let parts: Vec<&str> = b.expr.split('.').collect();
    let binding = match parts.as_slice() {
        ["parent", "inputs", x] if !x.is_empty() => Binding::ParentInput(x.to_string()),
        ["parent", "jobs", s, "outputs", o] if !s.is_empty() && !o.is_empty() => {
            Binding::StepOutput { step: s.to_string(), output: o.to_string() }
        }
        ["parent", "jobs", s, "inputs", i] if !s.is_empty() && !i.is_empty() => {
            Binding::StepInput { step: s.to_string(), input: i.to_string() }
        }
        _ => {
            return Err(src.error(
                pos,
                field,
                format!(
                    "'${{{{{}}}}}': expected parent.inputs.<name>, parent.jobs.<step>.outputs.<name> or \
                     parent.jobs.<step>.inputs.<name>",
                    b.expr
                ),
            ));
        }
    };
    Ok(Some(binding))
}

/// `${{parent.outputs.y}}` as a step output's value: `y`.
fn promoted_output(src: &Source, text: &str, pos: Pos, field: &str) -> Result<String> {
    let found = bind::bindings(text).map_err(|_| src.error(pos, field, "a '${{' is not closed by '}}'"))?;
    let name = match found.as_slice() {
        [b] if b.start == 0 && b.end == text.trim_end().len() => b.expr.strip_prefix("parent.outputs."),
        _ => None,
    };
    match name {
        Some(y) if !y.is_empty() && !y.contains('.') => Ok(y.to_string()),
        _ => Err(src.error(
            pos,
            field,
            format!("'{text}': expected ${{{{parent.outputs.<name>}}}} or an output mapping"),
        )),
    }
}

/// Reads a component file's root.
pub fn component(src: &Source, root: &Node) -> Result<Component> {
    let m = MapReader::new(src, root, "")?;
    match m.choice("type", &["command", "pipeline"])?.as_deref() {
        Some("pipeline") => Ok(Component::Pipeline(pipeline_component(src, root)?)),
        _ => Ok(Component::Command(command_component(src, root, false)?)),
    }
}

fn check_component_name(src: &Source, m: &MapReader) -> Result<Option<String>> {
    let name = m.str("name")?;
    if let Some(n) = &name {
        let mut chars = n.chars();
        let ok = n.len() <= 255
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(src.error(
                m.pos_of("name"),
                &m.field("name"),
                format!("'{n}' is not a valid component name: a lowercase letter, then a-z, 0-9 and '_'"),
            ));
        }
    }
    Ok(name)
}

/// A command component (`inline`: an anonymous one written inside a pipeline, which needs no
/// name).
pub fn command_component(src: &Source, node: &Node, inline: bool) -> Result<CommandComponent> {
    let path = if inline { "component" } else { "" };
    let m = MapReader::new(src, node, path)?;
    m.accept(&["$schema", "type"]);
    let source = m.str("$source")?;
    let name = check_component_name(src, &m)?;
    if name.is_none() && !inline {
        return Err(src.error(node.pos, "name", "missing required field 'name'"));
    }
    let body = command_body(src, &m)?;
    let inputs = input_ports(src, &m)?;
    let component = CommandComponent {
        name,
        version: m.str("version")?,
        display_name: m.str("display_name")?,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        inputs,
        outputs: output_ports(src, &m)?,
        source,
        ..body
    };
    if let Some(n) = m.get("additional_includes") {
        src.warn(n.pos, "additional_includes", "additional_includes are not added to the code snapshot yet");
    }
    m.accept(&["properties", "instance_count", "services", "queue_settings"]);
    m.warn_unknown();
    check_component_command(src, &component)?;
    Ok(component)
}

/// What a command component shares with an inline command step: what it runs and how. The
/// ports and the component's identity are the caller's to fill in.
pub(crate) fn command_body(src: &Source, m: &MapReader) -> Result<CommandComponent> {
    let command_node = m.req("command")?;
    Ok(CommandComponent {
        name: None,
        version: None,
        display_name: None,
        description: None,
        tags: BTreeMap::new(),
        is_deterministic: m.bool("is_deterministic")?.unwrap_or(true),
        command: Located { value: scalar_text(src, command_node, &m.field("command"))?, pos: command_node.pos },
        code: m
            .get("code")
            .map(|n| Ok(Located { value: scalar_text(src, n, &m.field("code"))?, pos: n.pos }))
            .transpose()?,
        environment: job::environment(src, m)?,
        environment_variables: m.string_map("environment_variables")?,
        distribution: job::distribution(src, m)?,
        resources: job::resources(m)?,
        timeout_s: job::timeout(m)?,
        inputs: BTreeMap::new(),
        outputs: BTreeMap::new(),
        file: src.file.clone(),
        source: None,
    })
}

fn input_ports(src: &Source, m: &MapReader) -> Result<BTreeMap<String, InputPort>> {
    let mut inputs = BTreeMap::new();
    if let Some(im) = m.map("inputs")? {
        for e in im.entries() {
            im.accept(&[&e.key]);
            inputs.insert(e.key.clone(), input_port(src, &e.value, &im.field(&e.key))?);
        }
    }
    Ok(inputs)
}

fn output_ports(src: &Source, m: &MapReader) -> Result<BTreeMap<String, OutputPort>> {
    let mut outputs = BTreeMap::new();
    if let Some(om) = m.map("outputs")? {
        for e in om.entries() {
            om.accept(&[&e.key]);
            let field = om.field(&e.key);
            let o = MapReader::new(src, &e.value, &field)?;
            let Some(data_type) = o.choice("type", &DATA_TYPES)? else {
                return Err(src.error(e.value.pos, &o.field("type"), "missing required field 'type'"));
            };
            let port = OutputPort { data_type, mode: o.choice("mode", &OUTPUT_MODES)?, pos: e.value.pos };
            o.accept(&["description", "is_control", "early_available"]);
            o.warn_unknown();
            outputs.insert(e.key.clone(), port);
        }
    }
    Ok(outputs)
}

/// A component's input port: parameters may have defaults, data ports take none.
fn input_port(src: &Source, node: &Node, field: &str) -> Result<InputPort> {
    let m = MapReader::new(src, node, field)?;
    let type_name = match m.get("type") {
        Some(n) => scalar_text(src, n, &m.field("type"))?,
        None => return Err(src.error(node.pos, &m.field("type"), "missing required field 'type'")),
    };
    let kind = if let Some(k) = LiteralKind::parse(&type_name) {
        PortKind::Literal(k)
    } else if DATA_TYPES.contains(&type_name.as_str()) || type_name == "path" {
        PortKind::Data(if type_name == "path" { "uri_folder".into() } else { type_name })
    } else {
        return Err(src.error(
            m.pos_of("type"),
            &m.field("type"),
            format!("expected one of {}, string, integer, number, boolean; found '{type_name}'", DATA_TYPES.join(", ")),
        ));
    };
    let default = match (m.get("default"), &kind) {
        (None, _) => None,
        (Some(d), PortKind::Literal(k)) => Some(job::typed_literal(src, d, *k, &m.field("default"))?),
        (Some(d), _) => {
            return Err(src.error(
                d.pos,
                &m.field("default"),
                "a data input takes no default; bind it in the pipeline",
            ));
        }
    };
    let number = |name: &str| -> Result<Option<f64>> {
        m.get(name)
            .map(|n| {
                scalar_text(src, n, &m.field(name))?
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| src.error(n.pos, &m.field(name), format!("expected a number, found {}", describe(n))))
            })
            .transpose()
    };
    let allowed = match m.get("enum") {
        None => None,
        Some(n) => match &n.kind {
            Kind::Seq(items) => {
                Some(items.iter().map(|i| scalar_text(src, i, &m.field("enum"))).collect::<Result<Vec<_>>>()?)
            }
            _ => return Err(src.error(n.pos, &m.field("enum"), format!("expected a list, found {}", n.type_name()))),
        },
    };
    let port = InputPort {
        kind,
        default,
        optional: m.bool("optional")?.unwrap_or(false),
        min: number("min")?,
        max: number("max")?,
        allowed,
        mode: m.choice("mode", &INPUT_MODES)?,
        pos: node.pos,
    };
    m.accept(&["description", "path"]);
    m.warn_unknown();
    Ok(port)
}

/// `$[[…]]` blocks in a component's command: optional inputs only inside them, the others
/// only outside; every binding names a port.
fn check_component_command(src: &Source, c: &CommandComponent) -> Result<()> {
    let (pos, field) = (c.command.pos, "command");
    let blocks = optional_blocks(&c.command.value).map_err(|m| src.error(pos, field, m))?;
    let found = bind::bindings(&c.command.value).map_err(|_| src.error(pos, field, "a '${{' is not closed by '}}'"))?;
    for b in found {
        let inside = blocks.iter().any(|(s, e)| b.start >= *s && b.end <= *e);
        match bind::split_io(b.expr) {
            Some(("inputs", name)) => match c.inputs.get(name) {
                None => {
                    return Err(src.error(pos, field, format!("'${{{{{}}}}}': there is no input '{name}'", b.expr)));
                }
                Some(p) if p.optional && !inside => {
                    return Err(src.error(
                        pos,
                        field,
                        format!("optional input '{name}' must be placed in an optional block: $[[ … ${{{{inputs.{name}}}}} … ]]"),
                    ));
                }
                Some(p) if !p.optional && inside => {
                    return Err(src.error(
                        pos,
                        field,
                        format!("input '{name}' is not optional: only optional inputs go in $[[ … ]]"),
                    ));
                }
                Some(_) => {}
            },
            Some(("outputs", name)) if c.outputs.contains_key(name) => {}
            Some(("outputs", name)) => {
                return Err(src.error(pos, field, format!("'${{{{{}}}}}': there is no output '{name}'", b.expr)));
            }
            _ => {
                return Err(src.error(
                    pos,
                    field,
                    format!("'${{{{{}}}}}': expected inputs.<name> or outputs.<name>", b.expr),
                ));
            }
        }
    }
    Ok(())
}

/// The byte ranges of the `$[[ … ]]` blocks of a command (brackets included).
pub fn optional_blocks(command: &str) -> std::result::Result<Vec<(usize, usize)>, String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = command[from..].find("$[[") {
        let start = from + i;
        let rest = &command[start + 3..];
        let close = rest.find("]]").ok_or_else(|| "a '$[[' is not closed by ']]'".to_string())?;
        if rest[..close].contains("$[[") {
            return Err("optional blocks $[[ … ]] cannot be nested".into());
        }
        let end = start + 3 + close + 2;
        out.push((start, end));
        from = end;
    }
    Ok(out)
}

/// A command with each `$[[ … ]]` block kept (without its brackets) when every input in it
/// has a value, and removed otherwise.
pub fn render_optional_blocks(command: &str, has_value: impl Fn(&str) -> bool) -> String {
    let Ok(blocks) = optional_blocks(command) else { return command.to_string() };
    let mut out = String::with_capacity(command.len());
    let mut last = 0;
    for (s, e) in blocks {
        out.push_str(&command[last..s]);
        let inner = &command[s + 3..e - 2];
        let keep = bind::bindings(inner).map(|bs| {
            bs.iter().all(|b| match bind::split_io(b.expr) {
                Some(("inputs", name)) => has_value(name),
                _ => true,
            })
        });
        if keep.unwrap_or(false) {
            out.push_str(inner);
        }
        last = e;
    }
    out.push_str(&command[last..]);
    out
}

/// A pipeline component file.
pub fn pipeline_component(src: &Source, root: &Node) -> Result<PipelineComponent> {
    let m = MapReader::new(src, root, "")?;
    m.accept(&["$schema", "type"]);
    let source = m.str("$source")?;
    let name = check_component_name(src, &m)?;
    let inputs = input_ports(src, &m)?;
    let outputs = output_ports(src, &m)?;
    let jobs = steps(src, &m)?;
    let c = PipelineComponent {
        name,
        version: m.str("version")?,
        display_name: m.str("display_name")?,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        inputs,
        outputs,
        jobs,
        file: src.file.clone(),
        source,
    };
    if let Some(n) = m.get("settings") {
        src.warn(n.pos, "settings", "a pipeline component has no settings; they come from the pipeline job");
    }
    m.accept(&["properties"]);
    m.warn_unknown();
    Ok(c)
}

/// A pipeline job.
pub fn pipeline_job(src: &Source, root: &Node) -> Result<PipelineJob> {
    let m = MapReader::new(src, root, "")?;
    m.accept(&["$schema"]);
    if m.choice("type", &["pipeline"])?.is_none() {
        return Err(src.error(root.pos, "type", "missing required field 'type' (pipeline)"));
    }
    let name = job::job_name(src, &m)?;
    let inputs = job::job_inputs(src, &m)?;
    let outputs = job::job_outputs(src, &m)?;
    let settings = match m.map("settings")? {
        None => Settings::default(),
        Some(s) => {
            let known = Settings {
                default_compute: s.str("default_compute")?,
                default_datastore: s.str("default_datastore")?,
                continue_on_step_failure: s.bool("continue_on_step_failure")?.unwrap_or(false),
                force_rerun: s.bool("force_rerun")?.unwrap_or(false),
                extra: BTreeMap::new(),
            };
            let mut extra = BTreeMap::new();
            for e in s.entries() {
                if ["default_compute", "default_datastore", "continue_on_step_failure", "force_rerun"]
                    .contains(&e.key.as_str())
                {
                    continue;
                }
                src.warn(e.key_pos, &s.field(&e.key), format!("unknown setting '{}' (kept, not used)", e.key));
                let text = match &e.value.kind {
                    Kind::Scalar { text, .. } => text.clone(),
                    _ => e.value.to_flow(),
                };
                extra.insert(e.key.clone(), text);
            }
            Settings { extra, ..known }
        }
    };
    let jobs = steps(src, &m)?;
    job::not_used_locally(src, &m, &[("identity", "data-access identity does not apply to local compute")]);
    let p = PipelineJob {
        name,
        display_name: m.str("display_name")?,
        experiment_name: m.str("experiment_name")?,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        properties: m.string_map("properties")?,
        inputs,
        outputs,
        settings,
        compute: m.str("compute")?,
        jobs,
        file: src.file.clone(),
    };
    m.warn_unknown();
    Ok(p)
}

fn steps(src: &Source, m: &MapReader) -> Result<Vec<Step>> {
    let Some(jm) = m.map("jobs")? else {
        return Err(src.error(m.node.pos, "jobs", "missing required field 'jobs'"));
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for e in jm.entries() {
        jm.accept(&[&e.key]);
        let field = jm.field(&e.key);
        let valid = e.key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && e.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(src.error(
                e.key_pos,
                &field,
                format!("'{}' is not a valid step name: use letters, digits, '_' and '-'", e.key),
            ));
        }
        if !seen.insert(e.key.clone()) {
            return Err(src.error(e.key_pos, &field, format!("step '{}' is defined twice", e.key)));
        }
        out.push(step(src, &e.key, &e.value, &field)?);
    }
    if out.is_empty() {
        return Err(src.error(jm.node.pos, "jobs", "a pipeline needs at least one step"));
    }
    Ok(out)
}

fn step(src: &Source, name: &str, node: &Node, field: &str) -> Result<Step> {
    let m = MapReader::new(src, node, field)?;
    let kind =
        m.choice("type", &["command", "pipeline", "sweep", "parallel", "spark", "automl", "import", "data_transfer"])?;
    match kind.as_deref() {
        None | Some("command") | Some("pipeline") | Some("sweep") => {}
        Some(other) => {
            return Err(src.error(
                m.pos_of("type"),
                &m.field("type"),
                format!("'{other}' steps are not supported by Kiln yet (command, pipeline and sweep steps are)"),
            ));
        }
    }
    let is_pipeline = kind.as_deref() == Some("pipeline");
    let is_sweep = kind.as_deref() == Some("sweep");
    // A sweep node names its trial component under `trial`.
    let component_key = if is_sweep { "trial" } else { "component" };
    let component = match m.get(component_key) {
        Some(c) => match &c.kind {
            Kind::Scalar { text, .. } => {
                let text = text.trim();
                if let Some(path) = text.strip_prefix("file:") {
                    ComponentRef::File { path: path.to_string(), pos: c.pos }
                } else if text.starts_with("azureml:") || !(text.ends_with(".yml") || text.ends_with(".yaml")) {
                    ComponentRef::Registered { reference: text.to_string(), pos: c.pos }
                } else {
                    ComponentRef::File { path: text.to_string(), pos: c.pos }
                }
            }
            Kind::Map(_) => {
                let comp = if is_pipeline || c.get("jobs").is_some() {
                    Component::Pipeline(pipeline_component(src, c)?)
                } else {
                    Component::Command(command_component(src, c, true)?)
                };
                ComponentRef::Inline(Box::new(comp))
            }
            Kind::Seq(_) => {
                return Err(src.error(
                    c.pos,
                    &m.field(component_key),
                    "expected a file, a reference or a mapping, found a list",
                ));
            }
        },
        None if is_sweep => {
            return Err(src.error(node.pos, &m.field("trial"), "a sweep step needs 'trial' (a command component)"));
        }
        None if is_pipeline => {
            return Err(src.error(node.pos, &m.field("component"), "a pipeline step needs 'component'"));
        }
        None => {
            if !m.has("command") {
                return Err(src.error(node.pos, field, "a command step needs 'command' or 'component'"));
            }
            ComponentRef::Inline(Box::new(Component::Command(inline_command_step(src, node, field)?)))
        }
    };
    let inline_step = !is_sweep
        && matches!(&component, ComponentRef::Inline(c) if matches!(**c, Component::Command(_)))
        && m.has("command");
    let sweep = if is_sweep { Some(crate::sweep::sweep_settings(src, &m)?) } else { None };
    let mut inputs = BTreeMap::new();
    if let Some(im) = m.map("inputs")? {
        for e in im.entries() {
            im.accept(&[&e.key]);
            let value = step_input(src, &e.value, &im.field(&e.key))?;
            inputs.insert(e.key.clone(), Located { value, pos: e.value.pos });
        }
    }
    let mut outputs = BTreeMap::new();
    if let Some(om) = m.map("outputs")? {
        for e in om.entries() {
            om.accept(&[&e.key]);
            let f = om.field(&e.key);
            let value = match &e.value.kind {
                Kind::Scalar { text, .. } if !e.value.is_null() => {
                    StepOutput::Promote(promoted_output(src, text, e.value.pos, &f)?)
                }
                _ => StepOutput::Own(job::job_output(src, &e.value, &f)?),
            };
            outputs.insert(e.key.clone(), Located { value, pos: e.value.pos });
        }
    }
    let compute = m
        .get("compute")
        .map(|n| Ok(Located { value: scalar_text(src, n, &m.field("compute"))?, pos: n.pos }))
        .transpose()?;
    let max_retries = match m.map("retry_settings")? {
        None => 0,
        Some(r) => {
            let n = r.count("max_retries")?.unwrap_or(0);
            r.accept(&["timeout"]);
            r.warn_unknown();
            n.min(100) as u32
        }
    };
    let step = Step {
        name: name.to_string(),
        pos: node.pos,
        component,
        inputs,
        outputs,
        compute,
        display_name: m.str("display_name")?,
        tags: m.string_map("tags")?,
        resources: if !inline_step && m.has("resources") { Some(job::resources(&m)?) } else { None },
        distribution: if inline_step { None } else { job::distribution(src, &m)? },
        timeout_s: if inline_step || is_sweep { None } else { job::timeout(&m)? },
        environment_variables: if inline_step { BTreeMap::new() } else { m.string_map("environment_variables")? },
        max_retries,
        sweep,
    };
    if inline_step {
        // Read by the inline component.
        m.accept(&[
            "command",
            "code",
            "environment",
            "environment_variables",
            "resources",
            "distribution",
            "limits",
            "is_deterministic",
        ]);
    }
    m.accept(&["description", "properties", "identity", "services", "queue_settings", "experiment_name", "name"]);
    m.warn_unknown();
    Ok(step)
}

/// An inline command step is an anonymous command component whose ports are the step's own
/// inputs and outputs.
fn inline_command_step(src: &Source, node: &Node, field: &str) -> Result<CommandComponent> {
    let m = MapReader::new(src, node, field)?;
    let body = command_body(src, &m)?;
    let mut inputs = BTreeMap::new();
    if let Some(im) = m.map("inputs")? {
        for e in im.entries() {
            let value = step_input(src, &e.value, &im.field(&e.key))?;
            let kind = match &value {
                StepInput::Literal(l) => PortKind::Literal(l.kind),
                StepInput::Data(d) => PortKind::Data(d.data_type.clone()),
                StepInput::Bind { .. } => PortKind::Any,
            };
            let port = InputPort {
                kind,
                default: None,
                optional: false,
                min: None,
                max: None,
                allowed: None,
                mode: None,
                pos: e.value.pos,
            };
            inputs.insert(e.key.clone(), port);
        }
    }
    let mut outputs = BTreeMap::new();
    if let Some(om) = m.map("outputs")? {
        for e in om.entries() {
            let data_type = match &e.value.kind {
                Kind::Map(_) => e.value.get("type").and_then(|t| match &t.kind {
                    Kind::Scalar { text, .. } => Some(text.clone()),
                    _ => None,
                }),
                _ => None,
            };
            outputs.insert(
                e.key.clone(),
                OutputPort {
                    data_type: data_type.unwrap_or_else(|| "uri_folder".into()),
                    mode: None,
                    pos: e.value.pos,
                },
            );
        }
    }
    let c = CommandComponent { inputs, outputs, ..body };
    // Bindings in an inline step's command name its own ports.
    let found = bind::bindings(&c.command.value)
        .map_err(|_| src.error(c.command.pos, &m.field("command"), "a '${{' is not closed by '}}'"))?;
    for b in found {
        let ok = match bind::split_io(b.expr) {
            Some(("inputs", n)) => c.inputs.contains_key(n),
            Some(("outputs", n)) => c.outputs.contains_key(n),
            _ => false,
        };
        if !ok {
            return Err(src.error(
                c.command.pos,
                &m.field("command"),
                format!("'${{{{{}}}}}': the step has no such input or output", b.expr),
            ));
        }
    }
    Ok(c)
}

fn step_input(src: &Source, node: &Node, field: &str) -> Result<StepInput> {
    if let Kind::Scalar { text, .. } = &node.kind
        && let Some(b) = parse_binding(src, text, node.pos, field)?
    {
        return Ok(StepInput::Bind { to: b, mode: None });
    }
    if let Kind::Map(_) = &node.kind
        && let Some(p) = node.get("path")
        && let Kind::Scalar { text, .. } = &p.kind
        && text.contains("${{")
    {
        let m = MapReader::new(src, node, field)?;
        let b = parse_binding(src, text, p.pos, &m.field("path"))?.expect("a binding");
        let mode = m.choice("mode", &INPUT_MODES)?;
        m.accept(&["path", "type", "description"]);
        m.warn_unknown();
        return Ok(StepInput::Bind { to: b, mode });
    }
    Ok(match job::job_input(src, node, field)? {
        JobInput::Literal(l) => StepInput::Literal(l),
        JobInput::Data(d) => StepInput::Data(d),
    })
}
