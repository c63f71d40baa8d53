//! A pipeline job as one checked DAG of command steps.
//!
//! Nested pipeline components are flattened (a step `train` of a pipeline step `prep` becomes
//! `prep/train`), every binding is followed to a value, a data path or an upstream step's
//! output, and every mistake is reported before anything runs: unknown steps, inputs or
//! outputs, cycles, type mismatches, missing required inputs, each with file, line and field.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::SpecError;
use crate::job::{DataInput, Distribution, JobInput, JobOutput, Literal, LiteralKind, Resources};
use crate::pipeline::{
    Binding, CommandComponent, Component, ComponentRef, InputPort, PipelineJob, PortKind, Step, StepInput, StepOutput,
};
use crate::read::Source;
use crate::yaml::Pos;

/// Where a step's input comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Literal(Literal),
    Data(DataInput),
    /// Another step's output (by index in [`Graph::steps`]).
    Upstream {
        step: usize,
        output: String,
        data_type: String,
        mode: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphStep {
    /// `train`, or `outer/inner` for a step of a nested pipeline.
    pub path: String,
    pub component: Arc<CommandComponent>,
    /// How the spec named the component (`./train.yml`, `azureml:train@latest`, `inline`).
    pub component_label: String,
    /// Bound (or defaulted) inputs; optional inputs left unbound are absent.
    pub inputs: BTreeMap<String, Value>,
    /// Every output of the component, with the step's settings for it.
    pub outputs: BTreeMap<String, JobOutput>,
    pub upstream: BTreeSet<usize>,
    pub compute: Option<String>,
    pub display_name: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub resources: Resources,
    pub distribution: Option<Distribution>,
    pub timeout_s: Option<u64>,
    pub environment_variables: BTreeMap<String, String>,
    pub max_retries: u32,
    /// A sweep node: the step runs as a sweep whose trials set the search space's inputs
    /// (absent from `inputs`).
    pub sweep: Option<crate::sweep::SweepSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// In an order where every step comes after the steps it reads from.
    pub steps: Vec<GraphStep>,
    /// Pipeline outputs: name → (step index, that step's output).
    pub outputs: BTreeMap<String, (usize, String)>,
}

/// Why a pipeline cannot be flattened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A registered component the loader does not have; the caller may fetch it and retry.
    #[error("{file}:{}:{}: component: '{reference}' is not a registered component", pos.line, pos.col)]
    Unknown { reference: String, file: String, pos: Pos },
}

type Result<T> = std::result::Result<T, GraphError>;

/// Finds the components steps name.
pub trait Components {
    /// The component `r` names, written in the spec `from_file`. `Ok(None)` for a registered
    /// component this loader does not know.
    fn load(&mut self, r: &ComponentRef, from_file: &str) -> std::result::Result<Option<Arc<Component>>, SpecError>;
}

/// What a step of a level gives the steps after it.
enum Done {
    Command(usize),
    /// A nested pipeline: its outputs (→ inner step and output).
    Pipeline {
        outputs: BTreeMap<String, (usize, String)>,
    },
}

struct Level<'a> {
    src: Source,
    prefix: String,
    /// The inputs of the pipeline (or pipeline component) the steps are in; `None`: declared,
    /// optional and unbound.
    inputs: &'a BTreeMap<String, Option<Value>>,
    /// Its outputs, with the settings a step output promoted to it takes.
    outputs: &'a BTreeMap<String, JobOutput>,
    default_compute: Option<String>,
}

struct Flattener<'c> {
    components: &'c mut dyn Components,
    steps: Vec<GraphStep>,
    /// Which step output each pipeline output of the current nesting is (innermost last).
    promoted: Vec<BTreeMap<String, (usize, String)>>,
    depth: usize,
}

/// Flattens and checks a pipeline job.
pub fn flatten(job: &PipelineJob, components: &mut dyn Components) -> Result<(Graph, Vec<crate::Diagnostic>)> {
    let src = Source::new(job.file.clone());
    let mut inputs = BTreeMap::new();
    for (k, v) in &job.inputs {
        let value = match &v.value {
            JobInput::Literal(l) => Value::Literal(l.clone()),
            JobInput::Data(d) => Value::Data(d.clone()),
        };
        inputs.insert(k.clone(), Some(value));
    }
    let outputs: BTreeMap<String, JobOutput> = job.outputs.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect();
    let mut f = Flattener { components, steps: Vec::new(), promoted: vec![BTreeMap::new()], depth: 0 };
    let level = Level {
        src,
        prefix: String::new(),
        inputs: &inputs,
        outputs: &outputs,
        default_compute: job.settings.default_compute.clone().or_else(|| job.compute.clone()),
    };
    f.level(&job.jobs, &level)?;
    let warnings = level.src.take_warnings();
    let promoted = f.promoted.pop().unwrap_or_default();
    Ok((Graph { steps: f.steps, outputs: promoted }, warnings))
}

fn err(src: &Source, pos: Pos, field: &str, message: impl Into<String>) -> GraphError {
    GraphError::Spec(src.error(pos, field, message))
}

/// The steps a step reads from, by name.
fn dependencies(step: &Step) -> Vec<(&str, Pos, String)> {
    let mut out = Vec::new();
    for (name, input) in &step.inputs {
        if let StepInput::Bind {
            to: Binding::StepOutput { step: s, .. } | Binding::StepInput { step: s, .. }, ..
        } = &input.value
        {
            out.push((s.as_str(), input.pos, format!("jobs.{}.inputs.{name}", step.name)));
        }
    }
    out
}

/// The steps of a level in an order where each comes after those it reads from; unknown step
/// names and cycles are errors.
fn order<'s>(src: &Source, steps: &'s [Step]) -> Result<Vec<&'s Step>> {
    let by_name: BTreeMap<&str, &Step> = steps.iter().map(|s| (s.name.as_str(), s)).collect();
    for s in steps {
        for (dep, pos, field) in dependencies(s) {
            if !by_name.contains_key(dep) {
                let known: Vec<&str> = by_name.keys().copied().collect();
                return Err(err(src, pos, &field, format!("there is no step '{dep}' (steps: {})", known.join(", "))));
            }
            if dep == s.name {
                return Err(err(src, pos, &field, format!("step '{dep}' reads its own output")));
            }
        }
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < steps.len() {
        let before = out.len();
        for s in steps {
            if !done.contains(s.name.as_str()) && dependencies(s).iter().all(|(d, _, _)| done.contains(d)) {
                done.insert(&s.name);
                out.push(s);
            }
        }
        if out.len() == before {
            // Walk from a stuck step along its stuck dependencies until one repeats.
            let stuck = |name: &str| !done.contains(name);
            let mut path: Vec<&str> = Vec::new();
            let mut at = steps.iter().find(|s| stuck(&s.name)).map(|s| s.name.as_str()).unwrap_or("");
            while !path.contains(&at) {
                path.push(at);
                at = by_name[at]
                    .inputs
                    .values()
                    .find_map(|i| match &i.value {
                        StepInput::Bind {
                            to: Binding::StepOutput { step, .. } | Binding::StepInput { step, .. },
                            ..
                        } if stuck(step) => Some(step.as_str()),
                        _ => None,
                    })
                    .unwrap_or(at);
            }
            let start = path.iter().position(|p| *p == at).unwrap_or(0);
            let mut cycle: Vec<&str> = path[start..].to_vec();
            cycle.push(at);
            let first = by_name[at];
            return Err(err(
                src,
                first.pos,
                &format!("jobs.{at}"),
                format!("the steps form a cycle: {}", cycle.join(" → ")),
            ));
        }
    }
    Ok(out)
}

fn data_compatible(port: &str, given: &str) -> bool {
    const MODELS: [&str; 3] = ["custom_model", "mlflow_model", "triton_model"];
    port == given
        || (port == "uri_folder" && (given == "mltable" || MODELS.contains(&given)))
        || (port == "mltable" && given == "uri_folder")
}

fn value_type(v: &Value) -> String {
    match v {
        Value::Literal(l) => l.kind.name().to_string(),
        Value::Data(d) => d.data_type.clone(),
        Value::Upstream { data_type, .. } => data_type.clone(),
    }
}

/// Checks a value against a port; a string literal given to a typed parameter is converted.
fn fit(src: &Source, pos: Pos, field: &str, port: &InputPort, value: Value) -> Result<Value> {
    match (&port.kind, value) {
        (PortKind::Any, v) => Ok(v),
        (PortKind::Literal(want), Value::Literal(l)) => {
            let text = l.text.trim();
            let ok = match (want, l.kind) {
                (LiteralKind::String, _) => true,
                (a, b) if *a == b => true,
                (LiteralKind::Number, LiteralKind::Integer) => true,
                (LiteralKind::Integer, LiteralKind::String) => text.parse::<i64>().is_ok(),
                (LiteralKind::Number, LiteralKind::String) => text.parse::<f64>().is_ok(),
                (LiteralKind::Boolean, LiteralKind::String) => {
                    matches!(text.to_ascii_lowercase().as_str(), "true" | "false")
                }
                _ => false,
            };
            if !ok {
                return Err(err(
                    src,
                    pos,
                    field,
                    format!("expected {}, found {} '{}'", want.name(), l.kind.name(), l.text),
                ));
            }
            if let Ok(n) = text.parse::<f64>()
                && matches!(want, LiteralKind::Integer | LiteralKind::Number)
                && (port.min.is_some_and(|m| n < m) || port.max.is_some_and(|m| n > m))
            {
                let range = format!(
                    "[{}, {}]",
                    port.min.map(|m| m.to_string()).unwrap_or_else(|| "-inf".into()),
                    port.max.map(|m| m.to_string()).unwrap_or_else(|| "inf".into())
                );
                return Err(err(src, pos, field, format!("{text} is outside {range}")));
            }
            if let Some(allowed) = &port.allowed
                && !allowed.iter().any(|a| a == text)
            {
                return Err(err(src, pos, field, format!("'{text}' is not one of {}", allowed.join(", "))));
            }
            let text = if *want == LiteralKind::Boolean {
                if text.eq_ignore_ascii_case("true") { "True".into() } else { "False".into() }
            } else {
                l.text
            };
            Ok(Value::Literal(Literal { kind: *want, text }))
        }
        (PortKind::Literal(want), v) => {
            Err(err(src, pos, field, format!("expected {} (a parameter), found {} data", want.name(), value_type(&v))))
        }
        (PortKind::Data(want), Value::Literal(l)) => Err(err(
            src,
            pos,
            field,
            format!(
                "expected {want} data, found {} '{}'; give {{type: {want}, path: …}} or bind an output",
                l.kind.name(),
                l.text
            ),
        )),
        (PortKind::Data(want), v) => {
            let given = value_type(&v);
            if !data_compatible(want, &given) {
                return Err(err(src, pos, field, format!("expected {want}, found {given}")));
            }
            Ok(v)
        }
    }
}

fn label(r: &ComponentRef) -> String {
    match r {
        ComponentRef::Inline(c) => c.source().unwrap_or("inline").to_string(),
        ComponentRef::File { path, .. } => path.clone(),
        ComponentRef::Registered { reference, .. } => reference.clone(),
    }
}

impl Flattener<'_> {
    fn load(&mut self, src: &Source, step: &Step) -> Result<Arc<Component>> {
        if let ComponentRef::Inline(c) = &step.component {
            return Ok(Arc::new((**c).clone()));
        }
        match self.components.load(&step.component, &src.file)? {
            Some(c) => Ok(c),
            None => {
                let (reference, pos) = match &step.component {
                    ComponentRef::Registered { reference, pos } | ComponentRef::File { path: reference, pos } => {
                        (reference.clone(), *pos)
                    }
                    ComponentRef::Inline(_) => unreachable!("inline components are returned above"),
                };
                Err(GraphError::Unknown { reference, file: src.file.clone(), pos })
            }
        }
    }

    fn level(&mut self, steps: &[Step], lv: &Level) -> Result<()> {
        let src = &lv.src;
        let mut done: BTreeMap<String, (Done, BTreeMap<String, Value>)> = BTreeMap::new();
        for step in order(src, steps)? {
            let component = self.load(src, step)?;
            let field = |rest: &str| format!("jobs.{}.{rest}", step.name);
            // The step's inputs, in the parent's context.
            let mut values: BTreeMap<String, Value> = BTreeMap::new();
            let ports = match &*component {
                Component::Command(c) => &c.inputs,
                Component::Pipeline(p) => &p.inputs,
            };
            for (name, input) in &step.inputs {
                let f = field(&format!("inputs.{name}"));
                let Some(port) = ports.get(name) else {
                    let known: Vec<&str> = ports.keys().map(String::as_str).collect();
                    return Err(err(
                        src,
                        input.pos,
                        &f,
                        format!("the component has no input '{name}' (inputs: {})", known.join(", ")),
                    ));
                };
                let value = match &input.value {
                    StepInput::Literal(l) => Some(Value::Literal(l.clone())),
                    StepInput::Data(d) => Some(Value::Data(d.clone())),
                    StepInput::Bind { to, mode } => {
                        let v = match to {
                            Binding::ParentInput(x) => match lv.inputs.get(x) {
                                Some(v) => v.clone(),
                                None => {
                                    let known: Vec<&str> = lv.inputs.keys().map(String::as_str).collect();
                                    return Err(err(
                                        src,
                                        input.pos,
                                        &f,
                                        format!("the pipeline has no input '{x}' (inputs: {})", known.join(", ")),
                                    ));
                                }
                            },
                            Binding::StepOutput { step: s, output } => {
                                let (d, _) = &done[s];
                                let found = match d {
                                    Done::Command(i) => self.steps[*i]
                                        .outputs
                                        .get(output)
                                        .map(|o| (*i, output.clone(), o.data_type.clone())),
                                    Done::Pipeline { outputs, .. } => outputs
                                        .get(output)
                                        .map(|(i, o)| (*i, o.clone(), self.steps[*i].outputs[o].data_type.clone())),
                                };
                                let Some((i, o, data_type)) = found else {
                                    return Err(err(
                                        src,
                                        input.pos,
                                        &f,
                                        format!("step '{s}' has no output '{output}'"),
                                    ));
                                };
                                Some(Value::Upstream { step: i, output: o, data_type, mode: None })
                            }
                            Binding::StepInput { step: s, input: i } => {
                                let (_, inputs) = &done[s];
                                match inputs.get(i) {
                                    Some(v) => Some(v.clone()),
                                    None => {
                                        return Err(err(
                                            src,
                                            input.pos,
                                            &f,
                                            format!("step '{s}' has no bound input '{i}'"),
                                        ));
                                    }
                                }
                            }
                        };
                        // A mode written on the binding applies to this step's copy.
                        match (v, mode) {
                            (Some(Value::Upstream { step, output, data_type, .. }), Some(m)) => {
                                Some(Value::Upstream { step, output, data_type, mode: Some(m.clone()) })
                            }
                            (Some(Value::Data(mut d)), Some(m)) => {
                                d.mode = m.clone();
                                Some(Value::Data(d))
                            }
                            (v, _) => v,
                        }
                    }
                };
                if let Some(v) = value {
                    values.insert(name.clone(), fit(src, input.pos, &f, port, v)?);
                }
            }
            if let Some(sweep) = &step.sweep {
                let Component::Command(_) = &*component else {
                    return Err(err(src, step.pos, &field("trial"), "a sweep's trial must be a command component"));
                };
                for p in &sweep.search_space.parameters {
                    let f = field(&format!("search_space.{}", p.name));
                    match ports.get(&p.name) {
                        Some(InputPort { kind: PortKind::Literal(_) | PortKind::Any, .. }) => {
                            // The trial's value replaces whatever the step bound.
                            values.remove(&p.name);
                        }
                        Some(port) => {
                            return Err(err(
                                src,
                                step.pos,
                                &f,
                                format!("input '{}' takes {} data, not a value to sweep", p.name, port.kind.name()),
                            ));
                        }
                        None => {
                            let known: Vec<&str> = ports.keys().map(String::as_str).collect();
                            return Err(err(
                                src,
                                step.pos,
                                &f,
                                format!(
                                    "the trial component has no input '{}' to sweep (inputs: {})",
                                    p.name,
                                    known.join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
            let swept = |name: &str| {
                step.sweep.as_ref().is_some_and(|s| s.search_space.parameters.iter().any(|p| p.name == name))
            };
            for (name, port) in ports {
                if values.contains_key(name) || swept(name) {
                    continue;
                }
                if let Some(d) = &port.default {
                    values.insert(name.clone(), Value::Literal(d.clone()));
                } else if !port.optional
                    && !matches!(&*component, Component::Command(c) if port.kind == PortKind::Any && c.name.is_none())
                {
                    return Err(err(
                        src,
                        step.pos,
                        &field(&format!("inputs.{name}")),
                        format!(
                            "missing required input '{name}' ({}) of component '{}'",
                            port.kind.name(),
                            component.name().unwrap_or("inline")
                        ),
                    ));
                }
            }
            // Outputs: the step's settings, promotions to the parent's outputs.
            let out_ports = match &*component {
                Component::Command(c) => &c.outputs,
                Component::Pipeline(p) => &p.outputs,
            };
            for (name, out) in &step.outputs {
                if !out_ports.contains_key(name) {
                    let known: Vec<&str> = out_ports.keys().map(String::as_str).collect();
                    return Err(err(
                        src,
                        out.pos,
                        &field(&format!("outputs.{name}")),
                        format!("the component has no output '{name}' (outputs: {})", known.join(", ")),
                    ));
                }
                if let StepOutput::Promote(y) = &out.value
                    && !lv.outputs.contains_key(y)
                {
                    let known: Vec<&str> = lv.outputs.keys().map(String::as_str).collect();
                    return Err(err(
                        src,
                        out.pos,
                        &field(&format!("outputs.{name}")),
                        format!("the pipeline has no output '{y}' (outputs: {})", known.join(", ")),
                    ));
                }
            }
            let settings_for = |name: &str, port_type: &str, port_mode: Option<&String>| -> JobOutput {
                let default = JobOutput {
                    data_type: port_type.to_string(),
                    mode: port_mode.cloned().unwrap_or_else(|| "rw_mount".into()),
                    path: None,
                    asset_name: None,
                    asset_version: None,
                };
                match step.outputs.get(name).map(|o| &o.value) {
                    Some(StepOutput::Own(o)) => JobOutput { data_type: port_type.to_string(), ..o.clone() },
                    Some(StepOutput::Promote(y)) => {
                        let outer = &lv.outputs[y];
                        JobOutput { data_type: port_type.to_string(), ..outer.clone() }
                    }
                    None => default,
                }
            };
            let compute = match &step.compute {
                None => lv.default_compute.clone(),
                Some(c) => match crate::pipeline::parse_binding(src, &c.value, c.pos, &field("compute"))? {
                    None => Some(c.value.clone()),
                    Some(Binding::ParentInput(x)) => match lv.inputs.get(&x) {
                        Some(Some(Value::Literal(l))) => Some(l.text.clone()),
                        _ => {
                            return Err(err(
                                src,
                                c.pos,
                                &field("compute"),
                                format!("parent input '{x}' is not a string value"),
                            ));
                        }
                    },
                    Some(_) => {
                        return Err(err(
                            src,
                            c.pos,
                            &field("compute"),
                            "compute can only be bound to ${{parent.inputs.<name>}}",
                        ));
                    }
                },
            };
            let path = format!("{}{}", lv.prefix, step.name);
            let result = match &*component {
                Component::Command(c) => {
                    let mut outputs = BTreeMap::new();
                    for (name, port) in &c.outputs {
                        outputs.insert(name.clone(), settings_for(name, &port.data_type, port.mode.as_ref()));
                    }
                    let upstream = values
                        .values()
                        .filter_map(|v| match v {
                            Value::Upstream { step, .. } => Some(*step),
                            _ => None,
                        })
                        .collect();
                    let index = self.steps.len();
                    for (name, out) in &step.outputs {
                        if let StepOutput::Promote(y) = &out.value {
                            self.promoted[self.depth].insert(y.clone(), (index, name.clone()));
                        }
                    }
                    self.steps.push(GraphStep {
                        path,
                        component: Arc::new(c.clone()),
                        component_label: label(&step.component),
                        inputs: values.clone(),
                        outputs,
                        upstream,
                        compute,
                        display_name: step.display_name.clone(),
                        tags: step.tags.clone(),
                        resources: step.resources.clone().unwrap_or_else(|| c.resources.clone()),
                        distribution: step.distribution.clone().or_else(|| c.distribution.clone()),
                        timeout_s: step.timeout_s.or(c.timeout_s),
                        environment_variables: {
                            let mut e = c.environment_variables.clone();
                            e.extend(step.environment_variables.clone());
                            e
                        },
                        max_retries: step.max_retries,
                        sweep: step.sweep.clone(),
                    });
                    Done::Command(index)
                }
                Component::Pipeline(p) => {
                    if self.depth >= 16 {
                        return Err(err(
                            src,
                            step.pos,
                            &field("component"),
                            "pipelines nest more than 16 deep (a component that uses itself?)",
                        ));
                    }
                    let inner_inputs: BTreeMap<String, Option<Value>> =
                        p.inputs.keys().map(|k| (k.clone(), values.get(k).cloned())).collect();
                    let inner_outputs: BTreeMap<String, JobOutput> = p
                        .outputs
                        .iter()
                        .map(|(k, port)| (k.clone(), settings_for(k, &port.data_type, port.mode.as_ref())))
                        .collect();
                    let inner = Level {
                        src: Source::new(p.file.clone()),
                        prefix: format!("{path}/"),
                        inputs: &inner_inputs,
                        outputs: &inner_outputs,
                        default_compute: compute.clone(),
                    };
                    self.depth += 1;
                    self.promoted.push(BTreeMap::new());
                    let r = self.level(&p.jobs, &inner);
                    for w in inner.src.take_warnings() {
                        src.warn(w.pos, &w.field, format!("{}: {}", w.file, w.message));
                    }
                    let mine = self.promoted.pop().unwrap_or_default();
                    self.depth -= 1;
                    r?;
                    for (o, port) in &p.outputs {
                        if !mine.contains_key(o) {
                            return Err(err(
                                &inner.src,
                                port.pos,
                                &format!("outputs.{o}"),
                                "no step of the pipeline component writes this output (${{parent.outputs.…}})",
                            ));
                        }
                    }
                    for (name, out) in &step.outputs {
                        if let StepOutput::Promote(y) = &out.value {
                            self.promoted[self.depth].insert(y.clone(), mine[name].clone());
                        }
                    }
                    Done::Pipeline { outputs: mine }
                }
            };
            done.insert(step.name.clone(), (result, values));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::pipeline::{self, render_optional_blocks};
    use crate::{JobSpec, job_from_node, parse_with_overrides};

    /// Component files held in memory, by the path a spec names them with.
    #[derive(Default)]
    struct Files(HashMap<String, String>);

    impl Components for Files {
        fn load(&mut self, r: &ComponentRef, _from: &str) -> std::result::Result<Option<Arc<Component>>, SpecError> {
            let ComponentRef::File { path, .. } = r else { return Ok(None) };
            let text = &self.0[path.trim_start_matches("./")];
            let root = parse_with_overrides(path, text, &[])?;
            let src = Source::new(path.trim_start_matches("./"));
            Ok(Some(Arc::new(pipeline::component(&src, &root)?)))
        }
    }

    const PREP: &str = r#"name: prep
inputs:
  raw: {type: uri_folder}
  rows: {type: integer, default: 10, min: 1}
  seed: {type: integer, optional: true}
outputs:
  clean: {type: uri_folder}
command: >-
  python prep.py --raw ${{inputs.raw}} --rows ${{inputs.rows}} $[[--seed ${{inputs.seed}}]]
  --out ${{outputs.clean}}
environment: {image: python:3.11-slim}
"#;

    const TRAIN: &str = r#"name: train
inputs:
  data: {type: uri_folder}
  lr: {type: number, default: 0.1}
outputs:
  model: {type: mlflow_model}
command: python train.py ${{inputs.data}} ${{inputs.lr}} ${{outputs.model}}
environment: azureml:AzureML-sklearn-1.5@latest
"#;

    fn files() -> Files {
        let mut f = Files::default();
        f.0.insert("prep.yml".into(), PREP.into());
        f.0.insert("train.yml".into(), TRAIN.into());
        f.0.insert(
            "sub.yml".into(),
            r#"type: pipeline
name: sub
inputs:
  raw: {type: uri_folder}
outputs:
  model: {type: mlflow_model}
jobs:
  p:
    component: ./prep.yml
    inputs: {raw: "${{parent.inputs.raw}}"}
  t:
    component: ./train.yml
    inputs: {data: "${{parent.jobs.p.outputs.clean}}"}
    outputs: {model: "${{parent.outputs.model}}"}
"#
            .into(),
        );
        f
    }

    fn flat(text: &str) -> Result<Graph> {
        let root = parse_with_overrides("pipe.yml", text, &[])?;
        let (JobSpec::Pipeline(p), _) = job_from_node("pipe.yml", &root)? else { panic!("not a pipeline") };
        flatten(&p, &mut files()).map(|(g, _)| g)
    }

    fn error(text: &str) -> String {
        flat(text).unwrap_err().to_string()
    }

    const THREE: &str = r#"type: pipeline
inputs:
  raw: {type: uri_folder, path: cas:abc}
  rate: 0.5
outputs:
  final_model: {name: best-model}
settings: {default_compute: cpu, continue_on_step_failure: true, default_datestore: typo}
jobs:
  prep:
    component: ./prep.yml
    inputs: {raw: "${{parent.inputs.raw}}"}
  train:
    component: file:./train.yml
    compute: big
    inputs:
      data: "${{parent.jobs.prep.outputs.clean}}"
      lr: "${{parent.inputs.rate}}"
    outputs: {model: "${{parent.outputs.final_model}}"}
  report:
    command: cat ${{inputs.m}} > ${{outputs.r}}/report.txt
    environment: {image: python:3.11-slim}
    inputs: {m: {path: "${{parent.jobs.train.outputs.model}}", mode: download}}
    outputs: {r: }
"#;

    #[test]
    fn a_sweep_node_sweeps_its_trial_components_inputs() {
        let sweep = |space: &str| {
            format!(
                "type: pipeline\ninputs:\n  raw: {{type: uri_folder, path: cas:abc}}\njobs:\n  tune:\n    type: sweep\n    \
                 trial: ./train.yml\n    inputs: {{data: \"${{{{parent.inputs.raw}}}}\", lr: 0.5}}\n    sampling_algorithm: bayesian\n    \
                 search_space:\n      {space}\n    objective: {{goal: maximize, primary_metric: auc}}\n    \
                 limits: {{max_total_trials: 8, trial_timeout: 30}}\n"
            )
        };
        let g = flat(&sweep("lr: {type: loguniform, min_value: -5, max_value: 0}")).unwrap();
        let tune = &g.steps[0];
        let s = tune.sweep.as_ref().expect("a sweep node");
        assert_eq!(s.search_space.parameters[0].name, "lr");
        assert_eq!((s.limits.max_total_trials, s.limits.trial_timeout_s), (8, Some(30)));
        assert!(!tune.inputs.contains_key("lr"), "each trial sets lr, the step's 0.5 is replaced");
        assert!(matches!(tune.inputs["data"], Value::Data(_)));
        assert_eq!(
            error(&sweep("rate: {type: uniform, min_value: 0, max_value: 1}")),
            "pipe.yml:6:5: jobs.tune.search_space.rate: the trial component has no input 'rate' to sweep (inputs: data, lr)"
        );
        assert_eq!(
            error(&sweep("data: {type: choice, values: [a, b]}")),
            "pipe.yml:6:5: jobs.tune.search_space.data: input 'data' takes uri_folder data, not a value to sweep"
        );
        let no_trial = "type: pipeline\njobs:\n  tune:\n    type: sweep\n    sampling_algorithm: random\n";
        assert_eq!(error(no_trial), "pipe.yml:4:5: jobs.tune.trial: a sweep step needs 'trial' (a command component)");
    }

    #[test]
    fn a_three_step_pipeline_flattens_into_a_dag() {
        let g = flat(THREE).unwrap();
        let names: Vec<&str> = g.steps.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(names, ["prep", "train", "report"]);
        let (prep, train, report) = (&g.steps[0], &g.steps[1], &g.steps[2]);
        assert_eq!(prep.inputs["rows"], Value::Literal(Literal { kind: LiteralKind::Integer, text: "10".into() }));
        assert!(!prep.inputs.contains_key("seed"));
        assert_eq!(prep.compute.as_deref(), Some("cpu"));
        assert_eq!(train.compute.as_deref(), Some("big"));
        assert_eq!(train.upstream, BTreeSet::from([0]));
        assert_eq!(train.inputs["lr"], Value::Literal(Literal { kind: LiteralKind::Number, text: "0.5".into() }));
        assert_eq!(train.outputs["model"].asset_name.as_deref(), Some("best-model"));
        assert_eq!(train.outputs["model"].data_type, "mlflow_model");
        assert_eq!(
            report.inputs["m"],
            Value::Upstream {
                step: 1,
                output: "model".into(),
                data_type: "mlflow_model".into(),
                mode: Some("download".into())
            }
        );
        assert_eq!(g.outputs["final_model"], (1, "model".to_string()));
        let cmd = render_optional_blocks(&prep.component.command.value, |n| prep.inputs.contains_key(n));
        assert!(!cmd.contains("seed") && !cmd.contains("$[["), "{cmd}");
        let cmd = render_optional_blocks(&prep.component.command.value, |_| true);
        assert!(cmd.contains("--seed ${{inputs.seed}}") && !cmd.contains("]]"), "{cmd}");
    }

    #[test]
    fn nested_pipeline_components_are_flattened_per_use() {
        let g = flat(
            r#"type: pipeline
inputs: {raw: {type: uri_folder, path: cas:abc}}
outputs: {m1: , m2: }
jobs:
  a:
    type: pipeline
    component: ./sub.yml
    inputs: {raw: "${{parent.inputs.raw}}"}
    outputs: {model: "${{parent.outputs.m1}}"}
  b:
    type: pipeline
    component: ./sub.yml
    inputs: {raw: "${{parent.inputs.raw}}"}
    outputs: {model: "${{parent.outputs.m2}}"}
  use:
    component: ./train.yml
    inputs: {data: "${{parent.jobs.a.outputs.model}}"}
"#,
        )
        .unwrap();
        let names: Vec<&str> = g.steps.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(names, ["a/p", "a/t", "b/p", "b/t", "use"]);
        assert_eq!(g.outputs["m1"], (1, "model".to_string()));
        assert_eq!(g.outputs["m2"], (3, "model".to_string()));
        assert_eq!(g.steps[4].upstream, BTreeSet::from([1]));
    }

    #[test]
    fn mistakes_are_reported_with_file_line_and_field() {
        let cycle = THREE.replace("raw: \"${{parent.inputs.raw}}\"}", "raw: \"${{parent.jobs.report.outputs.r}}\"}");
        assert_eq!(error(&cycle), "pipe.yml:10:5: jobs.prep: the steps form a cycle: prep → report → train → prep");
        let unknown = THREE.replace("parent.jobs.prep.outputs.clean", "parent.jobs.prepp.outputs.clean");
        assert_eq!(
            error(&unknown),
            "pipe.yml:16:13: jobs.train.inputs.data: there is no step 'prepp' (steps: prep, report, train)"
        );
        let no_output = THREE.replace("parent.jobs.prep.outputs.clean", "parent.jobs.prep.outputs.dirty");
        assert_eq!(error(&no_output), "pipe.yml:16:13: jobs.train.inputs.data: step 'prep' has no output 'dirty'");
        let mismatch = THREE.replace("lr: \"${{parent.inputs.rate}}\"", "lr: \"${{parent.jobs.prep.outputs.clean}}\"");
        assert_eq!(
            error(&mismatch),
            "pipe.yml:17:11: jobs.train.inputs.lr: expected number (a parameter), found uri_folder data"
        );
        let bad_literal = THREE.replace("rate: 0.5", "rate: fast");
        assert_eq!(error(&bad_literal), "pipe.yml:17:11: jobs.train.inputs.lr: expected number, found string 'fast'");
        let missing = THREE.replace("    inputs: {raw: \"${{parent.inputs.raw}}\"}\n", "");
        assert_eq!(
            error(&missing),
            "pipe.yml:10:5: jobs.prep.inputs.raw: missing required input 'raw' (uri_folder) of component 'prep'"
        );
        let extra = THREE.replace("lr: \"${{parent.inputs.rate}}\"", "lr: 0.1\n      epochs: 3");
        assert_eq!(
            error(&extra),
            "pipe.yml:18:15: jobs.train.inputs.epochs: the component has no input 'epochs' (inputs: data, lr)"
        );
        let promote = THREE.replace("parent.outputs.final_model", "parent.outputs.nope");
        assert!(
            error(&promote)
                .contains("jobs.train.outputs.model: the pipeline has no output 'nope' (outputs: final_model)")
        );
        let range = THREE
            .replace("inputs: {raw: \"${{parent.inputs.raw}}\"}", "inputs: {raw: \"${{parent.inputs.raw}}\", rows: 0}");
        assert!(error(&range).contains("jobs.prep.inputs.rows: 0 is outside [1, inf]"), "{}", error(&range));
    }

    #[test]
    fn component_commands_keep_optional_inputs_in_blocks() {
        let src = Source::new("c.yml");
        let read = |text: &str| {
            let root = parse_with_overrides("c.yml", text, &[]).unwrap();
            pipeline::component(&src, &root).map(|_| ()).unwrap_err().to_string()
        };
        let outside = PREP.replace("$[[--seed ${{inputs.seed}}]]", "--seed ${{inputs.seed}}");
        assert!(read(&outside).contains("optional input 'seed' must be placed in an optional block"));
        let inside = PREP.replace("--rows ${{inputs.rows}}", "$[[--rows ${{inputs.rows}}]]");
        assert!(read(&inside).contains("input 'rows' is not optional"));
        let bad_name = PREP.replace("name: prep", "name: Prep-1");
        assert!(read(&bad_name).contains("c.yml:1:7: name: 'Prep-1' is not a valid component name"));
    }
}
