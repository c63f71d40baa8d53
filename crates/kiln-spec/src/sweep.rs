//! Sweep jobs (`type: sweep`) and the sweep settings a pipeline's sweep node shares with
//! them: the search space, the sampling algorithm, the objective, the limits and the
//! early-termination policy. Distributions and policies are read into `kiln-tune`'s types,
//! which the orchestrator's sweep driver samples and judges with.

use std::collections::BTreeMap;

use kiln_tune::early::{EarlyTermination, Policy, Slack};
use kiln_tune::{Distribution, Goal, Parameter, SearchSpace};

use crate::bind;
use crate::job::{self, CommandJob};
use crate::read::{MapReader, Result, Source, describe, scalar_text};
use crate::yaml::{Kind, Node, Pos, Resolved};

/// The documented default of `limits.max_total_trials`.
pub const DEFAULT_MAX_TOTAL_TRIALS: u32 = 1000;

/// A sweep job as written, checked: the trial is a command job whose command may still hold
/// `${{search_space.<name>}}` (the driver renders it for each trial).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepJob {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub experiment_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
    /// The trials' command job: the `trial` body with the sweep's inputs, outputs and compute,
    /// and `limits.trial_timeout` as its timeout.
    pub trial: CommandJob,
    pub sweep: SweepSettings,
}

/// What a sweep (a job or a pipeline node) searches and how.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSettings {
    pub search_space: SearchSpace,
    pub sampling: Sampling,
    pub objective: Objective,
    pub limits: SweepLimits,
    pub early_termination: Option<EarlyTermination>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Independent uniform draws; without a seed the driver picks one at submission and keeps it.
    Random { seed: Option<u64> },
    /// Every combination of the choice values, in order.
    Grid,
    /// Model-based (Gaussian process, expected improvement).
    Bayesian,
}

impl Sampling {
    pub fn name(&self) -> &'static str {
        match self {
            Sampling::Random { .. } => "random",
            Sampling::Grid => "grid",
            Sampling::Bayesian => "bayesian",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub goal: Goal,
    /// The MLflow metric the trials log.
    pub primary_metric: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepLimits {
    pub max_total_trials: u32,
    /// At most `max_total_trials`.
    pub max_concurrent_trials: u32,
    /// The whole sweep, in seconds.
    pub timeout_s: Option<u64>,
    /// Each trial, in seconds.
    pub trial_timeout_s: Option<u64>,
}

const DISTRIBUTIONS: [&str; 10] = [
    "choice",
    "randint",
    "uniform",
    "loguniform",
    "quniform",
    "qloguniform",
    "normal",
    "lognormal",
    "qnormal",
    "qlognormal",
];

/// Reads a sweep job from the root of a spec.
pub fn sweep_job(src: &Source, root: &Node) -> Result<SweepJob> {
    let m = MapReader::new(src, root, "")?;
    m.accept(&["$schema"]);
    if m.choice("type", &["sweep"])?.is_none() {
        return Err(src.error(root.pos, "type", "missing required field 'type' (sweep)"));
    }
    let name = job::job_name(src, &m)?;
    let sweep = sweep_settings(src, &m)?;
    let inputs = job::job_inputs(src, &m)?;
    let outputs = job::job_outputs(src, &m)?;
    let experiment_name = m.str("experiment_name")?;
    let t = m.map("trial")?.ok_or_else(|| src.error(root.pos, "trial", "missing required field 'trial'"))?;
    // The trial's body is what a command component runs (its `limits.timeout` gives way to
    // the sweep's `trial_timeout`).
    let body = crate::pipeline::command_body(src, &t)?;
    let trial = CommandJob {
        name: None,
        display_name: None,
        experiment_name: experiment_name.clone(),
        description: None,
        tags: BTreeMap::new(),
        properties: BTreeMap::new(),
        command: body.command,
        code: body.code,
        environment: body.environment,
        environment_variables: body.environment_variables,
        inputs,
        outputs,
        compute: m.str("compute")?,
        distribution: body.distribution,
        resources: body.resources,
        timeout_s: sweep.limits.trial_timeout_s.or(body.timeout_s),
        parent_job_name: None,
    };
    t.accept(&["type", "$schema"]);
    t.warn_unknown();
    job::not_used_locally(
        src,
        &m,
        &[
            ("identity", "a data-access identity does not apply to local compute"),
            ("queue_settings", "queue settings do not apply to local compute"),
            ("resources", "sweep-level resources are not used: trials take the trial's 'resources'"),
        ],
    );
    let job = SweepJob {
        name,
        display_name: m.str("display_name")?,
        experiment_name,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        properties: m.string_map("properties")?,
        trial,
        sweep,
    };
    m.warn_unknown();
    check_trial_bindings(src, &job, t.pos_of("environment_variables"))?;
    Ok(job)
}

/// `search_space`, `sampling_algorithm`, `objective`, `limits` and `early_termination` of a
/// sweep job or a pipeline's sweep node (`m` is the mapping holding them).
pub fn sweep_settings(src: &Source, m: &MapReader) -> Result<SweepSettings> {
    let search_space = search_space(src, m)?;
    let (sampling, sampling_pos) = sampling(src, m)?;
    if sampling == Sampling::Grid
        && let Some(p) = search_space.parameters.iter().find(|p| !matches!(p.distribution, Distribution::Choice { .. }))
    {
        return Err(src.error(
            sampling_pos,
            &m.field("sampling_algorithm"),
            format!("grid sampling takes choice parameters only, and '{}' is not one (use random or bayesian)", p.name),
        ));
    }
    let objective = {
        let o = m
            .map("objective")?
            .ok_or_else(|| src.error(m.node.pos, &m.field("objective"), "missing required field 'objective'"))?;
        let goal = match o.choice("goal", &["maximize", "minimize"])? {
            Some(g) if g == "maximize" => Goal::Maximize,
            Some(_) => Goal::Minimize,
            None => {
                return Err(src.error(
                    o.node.pos,
                    &o.field("goal"),
                    "missing required field 'goal' (maximize or minimize)",
                ));
            }
        };
        let primary_metric = o.req_str("primary_metric")?;
        if primary_metric.trim().is_empty() {
            return Err(src.error(o.pos_of("primary_metric"), &o.field("primary_metric"), "the metric name is empty"));
        }
        o.warn_unknown();
        Objective { goal, primary_metric }
    };
    let limits = match m.map("limits")? {
        None => SweepLimits {
            max_total_trials: DEFAULT_MAX_TOTAL_TRIALS,
            max_concurrent_trials: DEFAULT_MAX_TOTAL_TRIALS,
            timeout_s: None,
            trial_timeout_s: None,
        },
        Some(l) => {
            let positive = |name: &str| -> Result<Option<u64>> {
                match l.count(name)? {
                    Some(0) => Err(src.error(l.pos_of(name), &l.field(name), "expected 1 or more, found 0")),
                    other => Ok(other),
                }
            };
            let total =
                positive("max_total_trials")?.unwrap_or(DEFAULT_MAX_TOTAL_TRIALS as u64).min(u32::MAX as u64) as u32;
            let concurrent = positive("max_concurrent_trials")?.map(|c| c.min(u32::MAX as u64) as u32).unwrap_or(total);
            let limits = SweepLimits {
                max_total_trials: total,
                max_concurrent_trials: concurrent.min(total),
                timeout_s: positive("timeout")?,
                trial_timeout_s: positive("trial_timeout")?,
            };
            l.warn_unknown();
            limits
        }
    };
    let early_termination = early_termination(src, m)?;
    if sampling == Sampling::Bayesian
        && let Some(n) = m.get("early_termination")
        && early_termination.is_some()
    {
        src.warn(
            n.pos,
            &m.field("early_termination"),
            "Azure ML refuses early termination with bayesian sampling; Kiln applies it, and the sampler learns \
             from a stopped trial's best value so far",
        );
    }
    Ok(SweepSettings { search_space, sampling, objective, limits, early_termination })
}

fn search_space(src: &Source, m: &MapReader) -> Result<SearchSpace> {
    let s = m
        .map("search_space")?
        .ok_or_else(|| src.error(m.node.pos, &m.field("search_space"), "missing required field 'search_space'"))?;
    let mut parameters = Vec::new();
    for e in s.entries() {
        s.accept(&[&e.key]);
        let field = s.field(&e.key);
        let distribution = match &e.value.kind {
            Kind::Map(_) => distribution_object(src, &e.value, &field)?,
            Kind::Seq(items) => distribution_array(src, &e.value, items, &field)?,
            Kind::Scalar { .. } => {
                return Err(src.error(
                    e.value.pos,
                    &field,
                    format!(
                        "expected a distribution ({{type: choice, values: [...]}}, {{type: uniform, min_value: .., max_value: ..}}, …), found {}",
                        describe(&e.value)
                    ),
                ));
            }
        };
        distribution.check(&e.key).map_err(|err| src.error(e.value.pos, &field, err.to_string()))?;
        parameters.push(Parameter { name: e.key.clone(), distribution });
    }
    if parameters.is_empty() {
        return Err(src.error(s.node.pos, &m.field("search_space"), "the search space has no parameters"));
    }
    Ok(SearchSpace { parameters })
}

/// `{type: uniform, min_value: 0.01, max_value: 0.9}`, the YAML and SDK form.
fn distribution_object(src: &Source, node: &Node, field: &str) -> Result<Distribution> {
    let d = MapReader::new(src, node, field)?;
    let Some(kind) = d.choice("type", &DISTRIBUTIONS)? else {
        return Err(src.error(
            node.pos,
            &d.field("type"),
            format!("missing required field 'type' (one of {})", DISTRIBUTIONS.join(", ")),
        ));
    };
    let num = |name: &str| -> Result<f64> { number(src, d.req(name)?, &d.field(name)) };
    let dist = match kind.as_str() {
        "choice" => {
            let values = d.req("values")?;
            let Kind::Seq(items) = &values.kind else {
                return Err(src.error(
                    values.pos,
                    &d.field("values"),
                    format!("expected a list, found {}", values.type_name()),
                ));
            };
            Distribution::Choice { values: choice_values(src, items, &d.field("values"))? }
        }
        "randint" => {
            let upper = d.req("upper")?;
            Distribution::Randint { upper: integer(src, upper, &d.field("upper"))? }
        }
        "uniform" => Distribution::Uniform { min: num("min_value")?, max: num("max_value")? },
        "loguniform" => Distribution::LogUniform { min: num("min_value")?, max: num("max_value")? },
        "quniform" => Distribution::QUniform { min: num("min_value")?, max: num("max_value")?, q: num("q")? },
        "qloguniform" => Distribution::QLogUniform { min: num("min_value")?, max: num("max_value")?, q: num("q")? },
        "normal" => Distribution::Normal { mu: num("mu")?, sigma: num("sigma")? },
        "lognormal" => Distribution::LogNormal { mu: num("mu")?, sigma: num("sigma")? },
        "qnormal" => Distribution::QNormal { mu: num("mu")?, sigma: num("sigma")?, q: num("q")? },
        _ => Distribution::QLogNormal { mu: num("mu")?, sigma: num("sigma")?, q: num("q")? },
    };
    d.warn_unknown();
    Ok(dist)
}

/// `["uniform", [0.01, 0.9]]` or `["choice", [["gbdt", "dart"]]]`, the REST (hyperdrive) form.
fn distribution_array(src: &Source, node: &Node, items: &[Node], field: &str) -> Result<Distribution> {
    let shape = || {
        src.error(
            node.pos,
            field,
            "expected [<distribution>, [<parameters>]] such as [\"uniform\", [0.01, 0.9]] or [\"choice\", [[1, 2, 3]]]",
        )
    };
    let [kind_node, params_node] = items else { return Err(shape()) };
    let Kind::Scalar { text, .. } = &kind_node.kind else { return Err(shape()) };
    let Some(kind) = DISTRIBUTIONS.iter().find(|d| d.eq_ignore_ascii_case(text.trim())) else {
        return Err(src.error(
            kind_node.pos,
            field,
            format!("expected one of {}, found '{text}'", DISTRIBUTIONS.join(", ")),
        ));
    };
    let Kind::Seq(params) = &params_node.kind else { return Err(shape()) };
    let want = match *kind {
        "choice" | "randint" => 1,
        "uniform" | "loguniform" | "normal" | "lognormal" => 2,
        _ => 3,
    };
    if params.len() != want {
        return Err(src.error(
            params_node.pos,
            field,
            format!("{kind} takes {want} parameter{}, found {}", if want == 1 { "" } else { "s" }, params.len()),
        ));
    }
    if *kind == "choice" {
        let Kind::Seq(values) = &params[0].kind else {
            return Err(src.error(
                params[0].pos,
                field,
                "choice takes its values as one list: [\"choice\", [[a, b, c]]]",
            ));
        };
        return Ok(Distribution::Choice { values: choice_values(src, values, field)? });
    }
    if *kind == "randint" {
        return Ok(Distribution::Randint { upper: integer(src, &params[0], field)? });
    }
    let p: Vec<f64> = params.iter().map(|n| number(src, n, field)).collect::<Result<_>>()?;
    Ok(match *kind {
        "uniform" => Distribution::Uniform { min: p[0], max: p[1] },
        "loguniform" => Distribution::LogUniform { min: p[0], max: p[1] },
        "normal" => Distribution::Normal { mu: p[0], sigma: p[1] },
        "lognormal" => Distribution::LogNormal { mu: p[0], sigma: p[1] },
        "quniform" => Distribution::QUniform { min: p[0], max: p[1], q: p[2] },
        "qloguniform" => Distribution::QLogUniform { min: p[0], max: p[1], q: p[2] },
        "qnormal" => Distribution::QNormal { mu: p[0], sigma: p[1], q: p[2] },
        _ => Distribution::QLogNormal { mu: p[0], sigma: p[1], q: p[2] },
    })
}

fn choice_values(src: &Source, items: &[Node], field: &str) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::with_capacity(items.len());
    for n in items {
        let v = match n.resolve() {
            Some(Resolved::Int(i)) => serde_json::Value::from(i),
            Some(Resolved::Float(f)) => serde_json::Number::from_f64(f)
                .map(serde_json::Value::Number)
                .ok_or_else(|| src.error(n.pos, field, format!("{} is not a finite number", describe(n))))?,
            Some(Resolved::Bool(b)) => serde_json::Value::Bool(b),
            Some(Resolved::Str(s)) => serde_json::Value::String(s.to_string()),
            Some(Resolved::Null) => return Err(src.error(n.pos, field, "a choice value is empty (null)")),
            None => {
                return Err(src.error(
                    n.pos,
                    field,
                    format!(
                        "choice values must be numbers, strings or booleans, found {} (nested search spaces are not supported)",
                        n.type_name()
                    ),
                ));
            }
        };
        out.push(v);
    }
    Ok(out)
}

fn number(src: &Source, node: &Node, field: &str) -> Result<f64> {
    let v = match node.resolve() {
        Some(Resolved::Int(i)) => Some(i as f64),
        Some(Resolved::Float(f)) => Some(f),
        Some(Resolved::Str(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    v.filter(|v| v.is_finite())
        .ok_or_else(|| src.error(node.pos, field, format!("expected a number, found {}", describe(node))))
}

fn integer(src: &Source, node: &Node, field: &str) -> Result<i64> {
    match node.resolve() {
        Some(Resolved::Int(i)) => Ok(i),
        Some(Resolved::Str(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().unwrap_or_default()),
        _ => Err(src.error(node.pos, field, format!("expected an integer, found {}", describe(node)))),
    }
}

/// `sampling_algorithm`: a string or `{type: …}`; where it was written.
fn sampling(src: &Source, m: &MapReader) -> Result<(Sampling, Pos)> {
    const KINDS: [&str; 3] = ["random", "grid", "bayesian"];
    let node = m.req("sampling_algorithm")?;
    let field = m.field("sampling_algorithm");
    let make = |kind: &str, seed: Option<u64>| match kind {
        "grid" => Sampling::Grid,
        "bayesian" => Sampling::Bayesian,
        _ => Sampling::Random { seed },
    };
    match &node.kind {
        Kind::Scalar { .. } => {
            let text = scalar_text(src, node, &field)?;
            match KINDS.iter().find(|k| k.eq_ignore_ascii_case(text.trim())) {
                Some(k) => Ok((make(k, None), node.pos)),
                None => {
                    Err(src.error(node.pos, &field, format!("expected one of {}, found '{text}'", KINDS.join(", "))))
                }
            }
        }
        _ => {
            let s = MapReader::new(src, node, &field)?;
            let Some(kind) = s.choice("type", &KINDS)? else {
                return Err(src.error(
                    node.pos,
                    &s.field("type"),
                    "missing required field 'type' (random, grid or bayesian)",
                ));
            };
            let seed = if kind == "random" { s.count("seed")? } else { None };
            if kind == "random" {
                if let Some(rule) = s.choice("rule", &["random", "sobol"])?
                    && rule == "sobol"
                {
                    src.warn(
                        s.pos_of("rule"),
                        &s.field("rule"),
                        "the sobol rule is not implemented: trials are drawn at random",
                    );
                }
                if let Some(n) = s.get("logbase") {
                    src.warn(
                        n.pos,
                        &s.field("logbase"),
                        "logbase is not used (log distributions take exponents in base e)",
                    );
                }
            }
            s.warn_unknown();
            Ok((make(&kind, seed), node.pos))
        }
    }
}

fn early_termination(src: &Source, m: &MapReader) -> Result<Option<EarlyTermination>> {
    let Some(node) = m.get("early_termination") else { return Ok(None) };
    if node.is_null() {
        return Ok(None);
    }
    let e = MapReader::new(src, node, &m.field("early_termination"))?;
    let Some(kind) = e.choice("type", &["bandit", "median_stopping", "truncation_selection"])? else {
        return Err(src.error(
            node.pos,
            &e.field("type"),
            "missing required field 'type' (bandit, median_stopping or truncation_selection)",
        ));
    };
    let policy = match kind.as_str() {
        "bandit" => {
            let factor = e.get("slack_factor").map(|n| number(src, n, &e.field("slack_factor"))).transpose()?;
            let amount = e.get("slack_amount").map(|n| number(src, n, &e.field("slack_amount"))).transpose()?;
            let slack = match (factor, amount) {
                (Some(_), Some(_)) => {
                    return Err(src.error(
                        node.pos,
                        &e.field("slack_factor"),
                        "give slack_factor or slack_amount, not both",
                    ));
                }
                (None, None) => {
                    return Err(src.error(
                        node.pos,
                        &e.field("slack_factor"),
                        "a bandit policy needs slack_factor or slack_amount",
                    ));
                }
                (Some(f), None) if f < 0.0 => {
                    return Err(src.error(
                        e.pos_of("slack_factor"),
                        &e.field("slack_factor"),
                        format!("expected 0 or more, found {f}"),
                    ));
                }
                (None, Some(a)) if a < 0.0 => {
                    return Err(src.error(
                        e.pos_of("slack_amount"),
                        &e.field("slack_amount"),
                        format!("expected 0 or more, found {a}"),
                    ));
                }
                (Some(f), None) => Slack::Factor(f),
                (None, Some(a)) => Slack::Amount(a),
            };
            Policy::Bandit { slack }
        }
        "median_stopping" => Policy::MedianStopping,
        _ => {
            let Some(p) = e.count("truncation_percentage")? else {
                return Err(src.error(
                    node.pos,
                    &e.field("truncation_percentage"),
                    "missing required field 'truncation_percentage'",
                ));
            };
            if !(1..=99).contains(&p) {
                return Err(src.error(
                    e.pos_of("truncation_percentage"),
                    &e.field("truncation_percentage"),
                    format!("expected a percentage from 1 to 99, found {p}"),
                ));
            }
            Policy::TruncationSelection {
                percentage: p as u32,
                exclude_finished: e.bool("exclude_finished_jobs")?.unwrap_or(false),
            }
        }
    };
    let policy = EarlyTermination {
        policy,
        evaluation_interval: e.count("evaluation_interval")?.unwrap_or(1).clamp(1, u32::MAX as u64) as u32,
        delay_evaluation: e.count("delay_evaluation")?.unwrap_or(0).min(u32::MAX as u64) as u32,
    };
    e.warn_unknown();
    Ok(Some(policy))
}

/// `${{search_space.x}}` names a parameter, `${{inputs.x}}` an input and `${{outputs.y}}` an
/// output, in the trial's command (and its variables, outputs aside).
fn check_trial_bindings(src: &Source, job: &SweepJob, env_pos: Pos) -> Result<()> {
    let params: Vec<&str> = job.sweep.search_space.parameters.iter().map(|p| p.name.as_str()).collect();
    let trial = &job.trial;
    let check = |text: &str, pos: Pos, field: &str, outputs_allowed: bool| -> Result<()> {
        let found = bind::bindings(text).map_err(|_| src.error(pos, field, "a '${{' is not closed by '}}'"))?;
        for b in found {
            let problem = match bind::split_io(b.expr) {
                Some(("search_space", n)) if params.contains(&n) => continue,
                Some(("inputs", n)) if trial.inputs.contains_key(n) => continue,
                Some(("outputs", n)) if outputs_allowed && trial.outputs.contains_key(n) => continue,
                Some(("search_space", n)) => format!("there is no parameter '{n}' in 'search_space'"),
                Some(("inputs", n)) => format!("there is no input '{n}' in 'inputs'"),
                Some(("outputs", n)) if outputs_allowed => format!("there is no output '{n}' in 'outputs'"),
                _ => "expected search_space.<name>, inputs.<name> or outputs.<name>".to_string(),
            };
            return Err(src.error(pos, field, format!("'${{{{{}}}}}': {problem}", b.expr)));
        }
        Ok(())
    };
    check(&trial.command.value, trial.command.pos, "trial.command", true)?;
    for (k, v) in &trial.environment_variables {
        check(v, env_pos, &format!("trial.environment_variables.{k}"), false)?;
    }
    Ok(())
}

/// The trial's command for one set of values: `${{search_space.x}}` replaced by the value
/// (numbers as Python writes them); other bindings are left for the job's resolution.
pub fn render_trial_command(command: &str, values: &kiln_tune::Assignment) -> String {
    let rendered = bind::substitute(command, |expr| -> std::result::Result<String, ()> {
        match bind::split_io(expr) {
            Some(("search_space", n)) => match values.iter().find(|(k, _)| k == n) {
                Some((_, v)) => Ok(kiln_tune::space::render(v)),
                None => Ok(format!("${{{{{expr}}}}}")),
            },
            _ => Ok(format!("${{{{{expr}}}}}")),
        }
    });
    match rendered {
        Ok(Ok(text)) => text,
        _ => command.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<(SweepJob, Vec<String>)> {
        let root = crate::parse_with_overrides("sweep.yml", text, &[])?;
        let src = Source::new("sweep.yml");
        let job = sweep_job(&src, &root)?;
        Ok((job, src.take_warnings().iter().map(|w| w.to_string()).collect()))
    }

    const HEAD: &str = "type: sweep\ntrial:\n  code: ./src\n  command: python train.py --lr ${{search_space.lr}} --data ${{inputs.data}}\n  environment: azureml:AzureML-sklearn-1.5@latest\ninputs:\n  data: {type: uri_file, path: ./iris.csv}\nobjective: {goal: Maximize, primary_metric: accuracy}\n";

    #[test]
    fn reads_a_sweep_with_every_distribution_in_both_forms() {
        let text = format!(
            "{HEAD}sampling_algorithm: {{type: random, seed: 7}}\nsearch_space:\n  lr: {{type: loguniform, min_value: -6, max_value: -1}}\n  \
             a: {{type: choice, values: [1, 2.5, x, true]}}\n  b: {{type: randint, upper: 5}}\n  c: {{type: uniform, min_value: 0, max_value: 1}}\n  \
             d: {{type: quniform, min_value: 1, max_value: 9, q: 2}}\n  e: {{type: qloguniform, min_value: 0, max_value: 3, q: 1}}\n  \
             f: {{type: normal, mu: 0, sigma: 1}}\n  g: {{type: lognormal, mu: 0, sigma: 1}}\n  h: {{type: qnormal, mu: 10, sigma: 2, q: 1}}\n  \
             i: {{type: qlognormal, mu: 1, sigma: 0.5, q: 0.5}}\n  j: [uniform, [0.01, 0.9]]\n  k: [choice, [[gbdt, dart]]]\n  \
             l: [randint, [3]]\n  m: [qnormal, [0, 1, 0.1]]\n\
             limits: {{max_total_trials: 20, max_concurrent_trials: 4, timeout: 600, trial_timeout: 60}}\n\
             early_termination: {{type: bandit, slack_factor: 0.1, evaluation_interval: 2, delay_evaluation: 4}}\n"
        );
        let (job, warnings) = read(&text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let s = &job.sweep;
        assert_eq!(s.sampling, Sampling::Random { seed: Some(7) });
        assert_eq!(s.objective, Objective { goal: Goal::Maximize, primary_metric: "accuracy".into() });
        assert_eq!(
            s.limits,
            SweepLimits {
                max_total_trials: 20,
                max_concurrent_trials: 4,
                timeout_s: Some(600),
                trial_timeout_s: Some(60)
            }
        );
        assert_eq!(job.trial.timeout_s, Some(60));
        let d = |n: &str| s.search_space.parameters.iter().find(|p| p.name == n).unwrap().distribution.clone();
        assert_eq!(s.search_space.parameters.len(), 14);
        assert_eq!(d("lr"), Distribution::LogUniform { min: -6.0, max: -1.0 });
        assert_eq!(d("a"), Distribution::Choice { values: vec![1.into(), 2.5.into(), "x".into(), true.into()] });
        assert_eq!(d("b"), Distribution::Randint { upper: 5 });
        assert_eq!(d("i"), Distribution::QLogNormal { mu: 1.0, sigma: 0.5, q: 0.5 });
        assert_eq!(d("j"), Distribution::Uniform { min: 0.01, max: 0.9 });
        assert_eq!(d("k"), Distribution::Choice { values: vec!["gbdt".into(), "dart".into()] });
        assert_eq!(d("l"), Distribution::Randint { upper: 3 });
        assert_eq!(d("m"), Distribution::QNormal { mu: 0.0, sigma: 1.0, q: 0.1 });
        let et = s.early_termination.as_ref().unwrap();
        assert_eq!(et.policy, Policy::Bandit { slack: Slack::Factor(0.1) });
        assert_eq!((et.evaluation_interval, et.delay_evaluation), (2, 4));
        assert!(job.trial.command.value.contains("${{search_space.lr}}"));
        assert!(job.trial.inputs.contains_key("data"));
    }

    #[test]
    fn defaults_and_string_forms() {
        let text = format!(
            "{HEAD}sampling_algorithm: Bayesian\nsearch_space:\n  lr: {{type: uniform, min_value: 0.1, max_value: 1}}\n"
        );
        let (job, _) = read(&text).unwrap();
        assert_eq!(job.sweep.sampling, Sampling::Bayesian);
        assert_eq!(job.sweep.limits.max_total_trials, DEFAULT_MAX_TOTAL_TRIALS);
        assert_eq!(job.sweep.limits.max_concurrent_trials, DEFAULT_MAX_TOTAL_TRIALS);
        assert!(job.sweep.early_termination.is_none());
        let text = format!(
            "{HEAD}sampling_algorithm: random\nsearch_space:\n  lr: {{type: uniform, min_value: 0.1, max_value: 1}}\n\
             limits: {{max_total_trials: 3, max_concurrent_trials: 10}}\n\
             early_termination: {{type: truncation_selection, truncation_percentage: 20, exclude_finished_jobs: true}}\n"
        );
        let (job, _) = read(&text).unwrap();
        assert_eq!(job.sweep.sampling, Sampling::Random { seed: None });
        assert_eq!(job.sweep.limits.max_concurrent_trials, 3, "never above the total");
        let et = job.sweep.early_termination.unwrap();
        assert_eq!(et.policy, Policy::TruncationSelection { percentage: 20, exclude_finished: true });
        assert_eq!((et.evaluation_interval, et.delay_evaluation), (1, 0));
    }

    #[test]
    fn renders_search_space_bindings_only() {
        let values = vec![("lr".to_string(), serde_json::json!(1e-5)), ("k".to_string(), serde_json::json!("dart"))];
        assert_eq!(
            render_trial_command("t --lr ${{ search_space.lr }} --k ${{search_space.k}} --d ${{inputs.d}}", &values),
            "t --lr 1e-05 --k dart --d ${{inputs.d}}"
        );
    }

    fn error(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let space = "search_space:\n  lr: {type: uniform, min_value: 0.1, max_value: 1}\n";
        assert_eq!(
            error(&format!("{HEAD}sampling_algorithm: grid\n{space}")),
            "sweep.yml:9:21: sampling_algorithm: grid sampling takes choice parameters only, and 'lr' is not one (use random or bayesian)"
        );
        assert_eq!(
            error(&format!("{HEAD}sampling_algorithm: annealing\n{space}")),
            "sweep.yml:9:21: sampling_algorithm: expected one of random, grid, bayesian, found 'annealing'"
        );
        assert_eq!(
            error(&format!(
                "{HEAD}sampling_algorithm: random\nsearch_space:\n  lr: {{type: uniform, min_value: 2, max_value: 1}}\n"
            )),
            "sweep.yml:11:7: search_space.lr: lr: min_value 2 is above max_value 1"
        );
        assert_eq!(
            error(&format!("{HEAD}sampling_algorithm: random\nsearch_space:\n  lr: {{type: gamma, k: 1}}\n")),
            "sweep.yml:11:14: search_space.lr.type: expected one of choice, randint, uniform, loguniform, quniform, qloguniform, normal, lognormal, qnormal, qlognormal, found 'gamma'"
        );
        assert_eq!(
            error(&format!("{HEAD}sampling_algorithm: random\nsearch_space:\n  lr: {{type: normal, mu: 0}}\n")),
            "sweep.yml:11:7: search_space.lr.sigma: missing required field 'sigma'"
        );
        assert_eq!(
            error(&format!("{HEAD}sampling_algorithm: random\nsearch_space:\n  lr: [uniform, [1]]\n")),
            "sweep.yml:11:17: search_space.lr: uniform takes 2 parameters, found 1"
        );
        assert_eq!(
            error(&format!(
                "{HEAD}sampling_algorithm: random\nsearch_space:\n  lr: {{type: choice, values: [{{a: 1}}]}}\n"
            )),
            "sweep.yml:11:31: search_space.lr.values: choice values must be numbers, strings or booleans, found a mapping (nested search spaces are not supported)"
        );
        let bad_binding = HEAD.replace("${{search_space.lr}}", "${{search_space.rate}}");
        assert_eq!(
            error(&format!("{bad_binding}sampling_algorithm: random\n{space}")),
            "sweep.yml:4:12: trial.command: '${{search_space.rate}}': there is no parameter 'rate' in 'search_space'"
        );
        assert_eq!(
            error(&format!("{HEAD}sampling_algorithm: random\n{space}early_termination: {{type: bandit}}\n")),
            "sweep.yml:12:20: early_termination.slack_factor: a bandit policy needs slack_factor or slack_amount"
        );
        assert_eq!(
            error(&format!("{HEAD}sampling_algorithm: random\n{space}limits: {{max_total_trials: 0}}\n")),
            "sweep.yml:12:28: limits.max_total_trials: expected 1 or more, found 0"
        );
        assert!(error(&format!("{HEAD}{space}")).contains("sampling_algorithm: missing required field"));
        let no_goal = HEAD.replace("goal: Maximize, ", "");
        assert!(
            error(&format!("{no_goal}sampling_algorithm: random\n{space}"))
                .contains("objective.goal: missing required field 'goal'")
        );
    }

    #[test]
    fn bayesian_with_early_termination_and_unused_fields_warn() {
        let text = format!(
            "{HEAD}sampling_algorithm: bayesian\nsearch_space:\n  lr: {{type: uniform, min_value: 0.1, max_value: 1}}\n\
             early_termination: {{type: median_stopping}}\nqueue_settings: {{job_tier: spot}}\n"
        );
        let (_, warnings) = read(&text).unwrap();
        assert!(
            warnings.iter().any(|w| w.contains("early_termination: Azure ML refuses early termination")),
            "{warnings:?}"
        );
        assert!(warnings.iter().any(|w| w.contains("queue_settings: queue settings do not apply")), "{warnings:?}");
    }
}
