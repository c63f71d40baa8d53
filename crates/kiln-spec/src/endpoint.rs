//! Online and batch endpoints and their deployments (`online-endpoint`, `online-deployment`,
//! `batch-endpoint`, `batch-deployment` YAML): what to serve, how requests reach it, and
//! how a batch of files is scored.
//!
//! Defaults are the original service's (request timeout 5 s, one concurrent request per
//! instance, probes every 10 s with 30 failures allowed, mini-batches of 10 files, …) so a
//! spec behaves the same here as there. Fields about Azure's infrastructure (instance types,
//! identities, network isolation, data collection) are accepted with a warning.

use std::collections::BTreeMap;

use crate::job::{Environment, Located, environment, not_used_locally};
use crate::read::{MapReader, Result, Source};
use crate::yaml::{Kind, Node};

/// How callers of an online endpoint prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A primary and a secondary key, either accepted, each regenerable.
    Key,
    /// Expiring tokens signed by the workspace.
    AmlToken,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Key => "key",
            AuthMode::AmlToken => "aml_token",
        }
    }

    pub fn parse(text: &str) -> Option<AuthMode> {
        match text.to_ascii_lowercase().as_str() {
            "key" => Some(AuthMode::Key),
            "aml_token" | "amltoken" => Some(AuthMode::AmlToken),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnlineEndpoint {
    pub name: String,
    pub auth_mode: AuthMode,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Deployment name → percent of live traffic (written, not yet checked against the
    /// deployments the endpoint has).
    pub traffic: Option<BTreeMap<String, u32>>,
    /// At most one deployment → percent of requests copied to it.
    pub mirror_traffic: Option<BTreeMap<String, u32>>,
}

/// The model a deployment serves.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    /// `azureml:name:version`, `azureml:name@latest`, `name:version`.
    Reference(String),
    /// `{path: ./model}`: files that come with the deployment (an anonymous model).
    Inline { path: String, model_type: Option<String> },
}

/// `code_configuration`: a scoring script with `init()` and `run(...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeConfiguration {
    /// The folder uploaded with the deployment.
    pub code: String,
    /// The script, relative to `code`.
    pub scoring_script: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSettings {
    pub request_timeout_ms: u64,
    pub max_concurrent_requests_per_instance: u64,
    pub max_queue_wait_ms: u64,
}

impl Default for RequestSettings {
    fn default() -> Self {
        RequestSettings { request_timeout_ms: 5000, max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 500 }
    }
}

/// A liveness or readiness probe, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub initial_delay: u64,
    pub period: u64,
    pub timeout: u64,
    pub success_threshold: u64,
    pub failure_threshold: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe { initial_delay: 10, period: 10, timeout: 2, success_threshold: 1, failure_threshold: 30 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnlineDeployment {
    pub name: String,
    pub endpoint_name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model: Option<Located<ModelSpec>>,
    pub code_configuration: Option<Located<CodeConfiguration>>,
    pub environment: Option<Located<Environment>>,
    pub environment_variables: BTreeMap<String, String>,
    pub instance_count: u64,
    pub request_settings: RequestSettings,
    pub liveness_probe: Probe,
    pub readiness_probe: Probe,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchEndpoint {
    pub name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// `defaults.deployment_name`: the deployment an invocation without `-d` runs.
    pub default_deployment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputAction {
    /// The rows `run()` returns are appended to one output file.
    AppendRow,
    /// The script writes its own files; only a summary is kept.
    SummaryOnly,
}

impl OutputAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputAction::AppendRow => "append_row",
            OutputAction::SummaryOnly => "summary_only",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub max_concurrency_per_instance: u64,
    pub mini_batch_size: u64,
    pub output_action: OutputAction,
    pub output_file_name: String,
    pub max_retries: u64,
    /// Seconds a mini-batch may take.
    pub retry_timeout_s: u64,
    /// Failed files (or mini-batches) tolerated; -1 tolerates all.
    pub error_threshold: i64,
    pub logging_level: String,
    pub environment_variables: BTreeMap<String, String>,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_concurrency_per_instance: 1,
            mini_batch_size: 10,
            output_action: OutputAction::AppendRow,
            output_file_name: "predictions.csv".into(),
            max_retries: 3,
            retry_timeout_s: 30,
            error_threshold: -1,
            logging_level: "info".into(),
            environment_variables: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchDeployment {
    pub name: String,
    pub endpoint_name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model: Located<ModelSpec>,
    pub code_configuration: Option<Located<CodeConfiguration>>,
    pub environment: Option<Located<Environment>>,
    pub compute: Option<String>,
    pub instance_count: u64,
    pub settings: BatchSettings,
}

/// Endpoint and deployment names: 3 to 32 letters, digits and '-', starting with a letter and
/// not ending with '-' (they become a DNS label in the original service).
pub fn valid_endpoint_name(n: &str) -> bool {
    (3..=32).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && !n.ends_with('-')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn checked_name(src: &Source, m: &MapReader, field: &str, what: &str) -> Result<String> {
    let name = m.req_str(field)?;
    if !valid_endpoint_name(&name) {
        return Err(src.error(
            m.pos_of(field),
            &m.field(field),
            format!(
                "'{name}' is not a valid {what} name: use 3 to 32 letters, digits and '-', starting with a letter and not ending with '-'"
            ),
        ));
    }
    Ok(name)
}

/// A `{deployment: percent}` map.
fn percent_map(src: &Source, m: &MapReader, field: &str, max: u32) -> Result<Option<BTreeMap<String, u32>>> {
    let Some(map) = m.map(field)? else { return Ok(None) };
    let mut out = BTreeMap::new();
    for e in map.entries() {
        map.accept(&[&e.key]);
        let f = map.field(&e.key);
        let value = match e.value.resolve() {
            Some(crate::yaml::Resolved::Int(i)) if (0..=max as i64).contains(&i) => i as u32,
            _ => {
                return Err(src.error(
                    e.value.pos,
                    &f,
                    format!("expected a whole percent from 0 to {max}, found {}", crate::read::describe(&e.value)),
                ));
            }
        };
        out.insert(e.key.clone(), value);
    }
    Ok(Some(out))
}

/// Checks a traffic split: percents of live traffic add up to 0 or 100.
pub fn check_traffic(traffic: &BTreeMap<String, u32>) -> std::result::Result<(), String> {
    if let Some((name, pct)) = traffic.iter().find(|(_, p)| **p > 100) {
        return Err(format!("{name}={pct}: a percent is at most 100"));
    }
    let sum: u64 = traffic.values().map(|p| *p as u64).sum();
    if sum != 0 && sum != 100 {
        return Err(format!("the traffic percents add up to {sum}; they must add up to 100 (or 0 to stop traffic)"));
    }
    Ok(())
}

/// Checks mirror traffic: one deployment, at most 50 percent.
pub fn check_mirror(mirror: &BTreeMap<String, u32>) -> std::result::Result<(), String> {
    if mirror.len() > 1 {
        return Err("mirror traffic goes to one deployment only".into());
    }
    if mirror.values().any(|p| *p > 50) {
        return Err("at most 50 percent of the traffic can be mirrored".into());
    }
    Ok(())
}

/// Parses `blue=90 green=10` (also with commas), as `--traffic` is written.
pub fn parse_traffic(text: &str) -> std::result::Result<BTreeMap<String, u32>, String> {
    let mut out = BTreeMap::new();
    for part in text.split([' ', ',']).filter(|p| !p.is_empty()) {
        let (name, pct) = part.split_once('=').ok_or_else(|| format!("'{part}': expected deployment=percent"))?;
        let pct: u32 = pct.trim().parse().map_err(|_| format!("'{part}': the percent must be a whole number"))?;
        if pct > 100 {
            return Err(format!("'{part}': a percent is at most 100"));
        }
        out.insert(name.trim().to_string(), pct);
    }
    Ok(out)
}

pub fn online_endpoint(src: &Source, root: &Node) -> Result<OnlineEndpoint> {
    let m = MapReader::new(src, root, "")?;
    let name = checked_name(src, &m, "name", "endpoint")?;
    let auth_mode = match m.str("auth_mode")? {
        None => AuthMode::Key,
        Some(text) => match AuthMode::parse(&text) {
            Some(mode) => mode,
            None if text.eq_ignore_ascii_case("aad_token") => {
                return Err(src.error(
                    m.pos_of("auth_mode"),
                    "auth_mode",
                    "aad_token needs Microsoft Entra ID, which a Kiln workspace does not use; choose key or aml_token",
                ));
            }
            None => {
                return Err(src.error(
                    m.pos_of("auth_mode"),
                    "auth_mode",
                    format!("expected key or aml_token, found '{text}'"),
                ));
            }
        },
    };
    let traffic = percent_map(src, &m, "traffic", 100)?;
    if let Some(t) = &traffic {
        check_traffic(t).map_err(|e| src.error(m.pos_of("traffic"), "traffic", e))?;
    }
    let mirror_traffic = percent_map(src, &m, "mirror_traffic", 100)?;
    if let Some(t) = &mirror_traffic {
        check_mirror(t).map_err(|e| src.error(m.pos_of("mirror_traffic"), "mirror_traffic", e))?;
    }
    let endpoint = OnlineEndpoint {
        name,
        auth_mode,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        traffic,
        mirror_traffic,
    };
    not_used_locally(
        src,
        &m,
        &[
            ("identity", "endpoints here call nothing on a caller's behalf"),
            ("public_network_access", "the endpoint is reachable wherever the Kiln server is"),
            ("compute", "deployments run on this machine"),
            ("kind", "deployments run on this machine"),
        ],
    );
    m.accept(&["$schema", "properties", "location", "scoring_uri", "swagger_uri", "provisioning_state"]);
    m.warn_unknown();
    Ok(endpoint)
}

fn model_spec(src: &Source, m: &MapReader) -> Result<Option<Located<ModelSpec>>> {
    let Some(node) = m.get("model") else { return Ok(None) };
    let pos = node.pos;
    if let Kind::Scalar { text, .. } = &node.kind {
        return Ok(Some(Located { value: ModelSpec::Reference(text.clone()), pos }));
    }
    let mm = MapReader::new(src, node, "model")?;
    let path = mm.req_str("path")?;
    let model_type = mm.choice("type", &["custom_model", "mlflow_model", "triton_model"])?;
    mm.accept(&["name", "version", "description", "tags", "properties", "$schema", "stage", "flavors", "datastore"]);
    mm.warn_unknown();
    Ok(Some(Located { value: ModelSpec::Inline { path, model_type }, pos }))
}

fn code_configuration(m: &MapReader) -> Result<Option<Located<CodeConfiguration>>> {
    let Some(c) = m.map("code_configuration")? else { return Ok(None) };
    let value = CodeConfiguration { code: c.req_str("code")?, scoring_script: c.req_str("scoring_script")? };
    c.warn_unknown();
    Ok(Some(Located { value, pos: c.node.pos }))
}

fn optional_environment(src: &Source, m: &MapReader) -> Result<Option<Located<Environment>>> {
    if m.get("environment").is_none() {
        return Ok(None);
    }
    environment(src, m).map(Some)
}

/// A count of at least `min`.
fn count_at_least(m: &MapReader, field: &str, min: u64, default: u64) -> Result<u64> {
    match m.count(field)? {
        None => Ok(default),
        Some(v) if v < min => {
            Err(m.src.error(m.pos_of(field), &m.field(field), format!("expected at least {min}, found {v}")))
        }
        Some(v) => Ok(v),
    }
}

fn probe(m: &MapReader, field: &str) -> Result<Probe> {
    let Some(p) = m.map(field)? else { return Ok(Probe::default()) };
    let d = Probe::default();
    let probe = Probe {
        initial_delay: p.count("initial_delay")?.unwrap_or(d.initial_delay),
        period: count_at_least(&p, "period", 1, d.period)?,
        timeout: count_at_least(&p, "timeout", 1, d.timeout)?,
        success_threshold: count_at_least(&p, "success_threshold", 1, d.success_threshold)?,
        failure_threshold: count_at_least(&p, "failure_threshold", 1, d.failure_threshold)?,
    };
    p.warn_unknown();
    Ok(probe)
}

/// Instances of one deployment on this machine: each is a process (or a slot of the native
/// runtime), so the count stays within what one machine can hold.
pub const MAX_INSTANCES: u64 = 64;
/// Requests one instance scores at once.
pub const MAX_CONCURRENT_PER_INSTANCE: u64 = 1024;

pub fn online_deployment(src: &Source, root: &Node) -> Result<OnlineDeployment> {
    let m = MapReader::new(src, root, "")?;
    let name = checked_name(src, &m, "name", "deployment")?;
    let endpoint_name = checked_name(src, &m, "endpoint_name", "endpoint")?;
    let model = model_spec(src, &m)?;
    let code_configuration = code_configuration(&m)?;
    let environment = optional_environment(src, &m)?;
    let instance_count = count_at_least(&m, "instance_count", 1, 1)?;
    if instance_count > MAX_INSTANCES {
        return Err(src.error(
            m.pos_of("instance_count"),
            "instance_count",
            format!("at most {MAX_INSTANCES} instances of a deployment run on one machine, found {instance_count}"),
        ));
    }
    let request_settings = match m.map("request_settings")? {
        None => RequestSettings::default(),
        Some(r) => {
            let d = RequestSettings::default();
            let timeout = count_at_least(&r, "request_timeout_ms", 1, d.request_timeout_ms)?;
            if timeout > 180_000 {
                return Err(src.error(
                    r.pos_of("request_timeout_ms"),
                    &r.field("request_timeout_ms"),
                    format!("at most 180000 ms, found {timeout}"),
                ));
            }
            let settings = RequestSettings {
                request_timeout_ms: timeout,
                max_concurrent_requests_per_instance: {
                    let c = count_at_least(
                        &r,
                        "max_concurrent_requests_per_instance",
                        1,
                        d.max_concurrent_requests_per_instance,
                    )?;
                    if c > MAX_CONCURRENT_PER_INSTANCE {
                        return Err(src.error(
                            r.pos_of("max_concurrent_requests_per_instance"),
                            &r.field("max_concurrent_requests_per_instance"),
                            format!("at most {MAX_CONCURRENT_PER_INSTANCE}, found {c}"),
                        ));
                    }
                    c
                },
                max_queue_wait_ms: r.count("max_queue_wait_ms")?.unwrap_or(d.max_queue_wait_ms),
            };
            r.warn_unknown();
            settings
        }
    };
    if model.is_none() && code_configuration.is_none() {
        return Err(src.error(
            m.node.pos,
            "model",
            "a deployment needs a model, a scoring script (code_configuration), or both",
        ));
    }
    let deployment = OnlineDeployment {
        name,
        endpoint_name,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        model,
        code_configuration,
        environment,
        environment_variables: m.string_map("environment_variables")?,
        instance_count,
        request_settings,
        liveness_probe: probe(&m, "liveness_probe")?,
        readiness_probe: probe(&m, "readiness_probe")?,
    };
    not_used_locally(
        src,
        &m,
        &[
            ("instance_type", "instances are processes on this machine"),
            ("model_mount_path", "the model's folder is given in AZUREML_MODEL_DIR"),
            ("app_insights_enabled", "metrics are served at /metrics"),
            ("egress_public_network_access", "deployments use this machine's network"),
            ("data_collector", "requests are not collected"),
            ("scale_settings", "instance_count instances run"),
            ("resources", "instances are processes on this machine"),
        ],
    );
    m.accept(&["$schema", "type", "properties", "provisioning_state"]);
    m.warn_unknown();
    Ok(deployment)
}

pub fn batch_endpoint(src: &Source, root: &Node) -> Result<BatchEndpoint> {
    let m = MapReader::new(src, root, "")?;
    let name = checked_name(src, &m, "name", "endpoint")?;
    let default_deployment = match m.map("defaults")? {
        None => None,
        Some(d) => {
            let v = d.str("deployment_name")?;
            d.warn_unknown();
            v
        }
    };
    if let Some(mode) = m.str("auth_mode")?
        && !mode.eq_ignore_ascii_case("aad_token")
    {
        return Err(src.error(m.pos_of("auth_mode"), "auth_mode", format!("expected aad_token, found '{mode}'")));
    }
    let endpoint =
        BatchEndpoint { name, description: m.str("description")?, tags: m.string_map("tags")?, default_deployment };
    m.accept(&["$schema", "properties", "scoring_uri", "swagger_uri", "provisioning_state"]);
    m.warn_unknown();
    Ok(endpoint)
}

fn batch_settings(src: &Source, s: &MapReader) -> Result<BatchSettings> {
    let d = BatchSettings::default();
    let output_action = match s.choice("output_action", &["append_row", "summary_only"])?.as_deref() {
        Some("summary_only") => OutputAction::SummaryOnly,
        _ => OutputAction::AppendRow,
    };
    let output_file_name = s.str("output_file_name")?.unwrap_or(d.output_file_name);
    if output_file_name.is_empty() || output_file_name.contains('/') || output_file_name == ".." {
        return Err(src.error(
            s.pos_of("output_file_name"),
            &s.field("output_file_name"),
            format!("'{output_file_name}' is not a file name"),
        ));
    }
    let (max_retries, retry_timeout_s) = match s.map("retry_settings")? {
        None => (d.max_retries, d.retry_timeout_s),
        Some(r) => {
            let v = (
                r.count("max_retries")?.unwrap_or(d.max_retries),
                count_at_least(&r, "timeout", 1, d.retry_timeout_s)?,
            );
            r.warn_unknown();
            v
        }
    };
    let error_threshold = s.int("error_threshold")?.unwrap_or(d.error_threshold);
    if error_threshold < -1 {
        return Err(src.error(
            s.pos_of("error_threshold"),
            &s.field("error_threshold"),
            format!("expected -1 (tolerate every failure) or a count, found {error_threshold}"),
        ));
    }
    Ok(BatchSettings {
        max_concurrency_per_instance: count_at_least(s, "max_concurrency_per_instance", 1, 1)?,
        mini_batch_size: count_at_least(s, "mini_batch_size", 1, d.mini_batch_size)?,
        output_action,
        output_file_name,
        max_retries,
        retry_timeout_s,
        error_threshold,
        logging_level: s.choice("logging_level", &["debug", "info", "warning"])?.unwrap_or(d.logging_level),
        environment_variables: s.string_map("environment_variables")?,
    })
}

pub fn batch_deployment(src: &Source, root: &Node) -> Result<BatchDeployment> {
    let m = MapReader::new(src, root, "")?;
    let name = checked_name(src, &m, "name", "deployment")?;
    let endpoint_name = checked_name(src, &m, "endpoint_name", "endpoint")?;
    if let Some(t) = m.str("type")?
        && !t.eq_ignore_ascii_case("model")
    {
        return Err(src.error(
            m.pos_of("type"),
            "type",
            if t.eq_ignore_ascii_case("pipeline") {
                "pipeline batch deployments are not supported yet; deploy a model (type: model)".to_string()
            } else {
                format!("expected model, found '{t}'")
            },
        ));
    }
    let model = model_spec(src, &m)?.ok_or_else(|| src.error(m.node.pos, "model", "missing required field 'model'"))?;
    // Legacy specs (no `type:`) write the settings at the root.
    let settings = match m.map("settings")? {
        Some(s) => {
            let v = batch_settings(src, &s)?;
            s.warn_unknown();
            v
        }
        None => batch_settings(src, &m)?,
    };
    let instance_count = match m.map("resources")? {
        None => 1,
        Some(r) => {
            let c = count_at_least(&r, "instance_count", 1, 1)?;
            r.accept(&["instance_type", "properties", "shm_size"]);
            r.warn_unknown();
            c
        }
    };
    let deployment = BatchDeployment {
        name,
        endpoint_name,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        model,
        code_configuration: code_configuration(&m)?,
        environment: optional_environment(src, &m)?,
        compute: m.str("compute")?,
        instance_count,
        settings,
    };
    m.accept(&["$schema", "properties", "provisioning_state"]);
    m.warn_unknown();
    Ok(deployment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T>(text: &str, f: fn(&Source, &Node) -> Result<T>) -> (Result<T>, Vec<crate::Diagnostic>) {
        let root = crate::yaml::parse(text).unwrap().unwrap();
        let src = Source::new("e.yml");
        let r = f(&src, &root);
        (r, src.take_warnings())
    }

    #[test]
    fn online_endpoint_defaults_and_fields() {
        let (e, w) = read("name: my-endpoint\nidentity: {type: system_assigned}\n", online_endpoint);
        let e = e.unwrap();
        assert_eq!(e.name, "my-endpoint");
        assert_eq!(e.auth_mode, AuthMode::Key);
        assert!(e.traffic.is_none());
        assert_eq!(w.len(), 1);
        assert!(w[0].to_string().contains("identity"), "{w:?}");

        let (e, _) = read(
            "name: ep1\nauth_mode: AML_TOKEN\ntraffic: {blue: 90, green: 10}\nmirror_traffic: {green: 20}\n",
            online_endpoint,
        );
        let e = e.unwrap();
        assert_eq!(e.auth_mode, AuthMode::AmlToken);
        assert_eq!(e.traffic.unwrap()["blue"], 90);
        assert_eq!(e.mirror_traffic.unwrap()["green"], 20);
    }

    #[test]
    fn online_endpoint_errors_name_line_and_field() {
        for (text, expect) in [
            ("name: 1abc\n", "e.yml:1:7: name: '1abc' is not a valid endpoint name"),
            ("name: ab\n", "not a valid endpoint name"),
            ("name: abc\nauth_mode: aad_token\n", "e.yml:2:12: auth_mode: aad_token needs"),
            ("name: abc\nauth_mode: basic\n", "expected key or aml_token, found 'basic'"),
            ("name: abc\ntraffic: {blue: 60, green: 30}\n", "traffic: the traffic percents add up to 90"),
            (
                "name: abc\ntraffic: {blue: 160}\n",
                "traffic.blue: expected a whole percent from 0 to 100, found an integer '160'",
            ),
            ("name: abc\nmirror_traffic: {blue: 60}\n", "at most 50 percent"),
            ("name: abc\nmirror_traffic: {blue: 10, green: 10}\n", "one deployment only"),
            ("description: x\n", "name: missing required field 'name'"),
        ] {
            let (r, _) = read(text, online_endpoint);
            let err = r.unwrap_err().to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    #[test]
    fn online_deployment_reads_every_setting() {
        let text = "\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  path: ../model-1/model/
code_configuration:
  code: ../model-1/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../model-1/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
instance_type: Standard_DS3_v2
instance_count: 2
environment_variables: {WORKER_COUNT: 2}
request_settings:
  request_timeout_ms: 3000
  max_concurrent_requests_per_instance: 4
liveness_probe: {initial_delay: 5, period: 3}
";
        let (d, w) = read(text, online_deployment);
        let d = d.unwrap();
        assert_eq!(d.name, "blue");
        assert_eq!(d.endpoint_name, "my-endpoint");
        assert_eq!(d.model.unwrap().value, ModelSpec::Inline { path: "../model-1/model/".into(), model_type: None });
        let code = d.code_configuration.unwrap().value;
        assert_eq!(code.scoring_script, "score.py");
        assert!(matches!(d.environment.unwrap().value, Environment::Inline(_)));
        assert_eq!(d.instance_count, 2);
        assert_eq!(d.environment_variables["WORKER_COUNT"], "2");
        assert_eq!(
            d.request_settings,
            RequestSettings {
                request_timeout_ms: 3000,
                max_concurrent_requests_per_instance: 4,
                max_queue_wait_ms: 500
            }
        );
        assert_eq!(d.liveness_probe, Probe { initial_delay: 5, period: 3, ..Probe::default() });
        assert_eq!(d.readiness_probe, Probe::default());
        assert!(w.iter().any(|w| w.field == "instance_type"), "{w:?}");
    }

    #[test]
    fn online_deployment_errors() {
        for (text, expect) in [
            ("name: blue\nendpoint_name: ep1\n", "a deployment needs a model, a scoring script"),
            (
                "name: blue\nendpoint_name: ep1\nmodel: azureml:m:1\ninstance_count: 0\n",
                "instance_count: expected at least 1, found 0",
            ),
            ("name: blue\nendpoint_name: ep1\nmodel: azureml:m:1\ninstance_count: 1000\n", "at most 64 instances"),
            (
                "name: blue\nendpoint_name: ep1\nmodel: m:1\nrequest_settings: {request_timeout_ms: 999999}\n",
                "request_settings.request_timeout_ms: at most 180000 ms",
            ),
            (
                "name: blue\nendpoint_name: ep1\nmodel: {type: mlflow_model}\n",
                "model.path: missing required field 'path'",
            ),
            (
                "name: blue\nendpoint_name: ep1\ncode_configuration: {code: .}\n",
                "code_configuration.scoring_script: missing",
            ),
            ("name: blue\nmodel: m:1\n", "endpoint_name: missing required field"),
        ] {
            let (r, _) = read(text, online_deployment);
            let err = r.unwrap_err().to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    #[test]
    fn batch_deployment_settings_and_legacy_layout() {
        let text = "\
name: classifier
endpoint_name: scorer
type: model
model: azureml:heart:1
compute: azureml:batch-cluster
resources: {instance_count: 2}
settings:
  max_concurrency_per_instance: 2
  mini_batch_size: 3
  output_action: append_row
  output_file_name: out.csv
  retry_settings: {max_retries: 1, timeout: 60}
  error_threshold: 5
";
        let (d, _) = read(text, batch_deployment);
        let d = d.unwrap();
        assert_eq!(d.model.value, ModelSpec::Reference("azureml:heart:1".into()));
        assert_eq!(d.instance_count, 2);
        assert_eq!(d.settings.mini_batch_size, 3);
        assert_eq!(d.settings.max_concurrency_per_instance, 2);
        assert_eq!(d.settings.output_file_name, "out.csv");
        assert_eq!((d.settings.max_retries, d.settings.retry_timeout_s, d.settings.error_threshold), (1, 60, 5));

        let legacy =
            "name: classifier\nendpoint_name: scorer\nmodel: m:1\nmini_batch_size: 7\noutput_action: summary_only\n";
        let (d, w) = read(legacy, batch_deployment);
        let d = d.unwrap();
        assert_eq!(d.settings.mini_batch_size, 7);
        assert_eq!(d.settings.output_action, OutputAction::SummaryOnly);
        assert!(w.is_empty(), "{w:?}");

        let (r, _) = read("name: classifier\nendpoint_name: scorer\ntype: pipeline\ncomponent: x\n", batch_deployment);
        assert!(r.unwrap_err().to_string().contains("pipeline batch deployments are not supported yet"));
        let (r, _) = read(
            "name: classifier\nendpoint_name: scorer\nmodel: m:1\nsettings: {output_file_name: a/b}\n",
            batch_deployment,
        );
        assert!(r.unwrap_err().to_string().contains("settings.output_file_name: 'a/b' is not a file name"));
    }

    #[test]
    fn traffic_flags_parse() {
        assert_eq!(
            parse_traffic("blue=90 green=10").unwrap(),
            BTreeMap::from([("blue".into(), 90), ("green".into(), 10)])
        );
        assert_eq!(parse_traffic("blue=100,green=0").unwrap().len(), 2);
        assert!(parse_traffic("blue").unwrap_err().contains("expected deployment=percent"));
        assert!(parse_traffic("blue=x").is_err());
        assert!(parse_traffic("blue=101").is_err());
    }

    #[test]
    fn traffic_sums_cannot_wrap() {
        let t = BTreeMap::from([("a".to_string(), u32::MAX), ("b".to_string(), 101)]);
        assert!(check_traffic(&t).unwrap_err().contains("at most 100"));
        let t = BTreeMap::from([("a".to_string(), 100), ("b".to_string(), 100)]);
        assert!(check_traffic(&t).unwrap_err().contains("add up to 200"));
    }

    #[test]
    fn batch_endpoint_defaults() {
        let (e, _) =
            read("name: scorer\ndefaults: {deployment_name: classifier}\nauth_mode: aad_token\n", batch_endpoint);
        let e = e.unwrap();
        assert_eq!(e.default_deployment.as_deref(), Some("classifier"));
    }
}
