//! From a checked command job to a launch plan: every reference resolved to a URI the
//! launcher can read (snapshots, artifact-store paths, downloads), every output given its
//! place, the environment made concrete, and the variables the job's process gets.

use std::collections::BTreeMap;

use kiln_launcher::{InputPlan, LaunchPlan, OutputPlan, ProcessPlan};
use kiln_spec::job::{CommandJob, CondaFile, DataInput, Distribution, Environment, JobInput};
use kiln_store::Experiment;
use kiln_tracking::ServiceError;

use crate::environments::{EnvironmentDefinition, curated, curated_names};
use crate::{JobOutput, Orchestrator, Result};

pub(crate) struct Resolver<'a> {
    pub orchestrator: &'a Orchestrator,
    /// How messages name the spec.
    pub source: &'a str,
}

impl Orchestrator {
    /// What an `environment:` (inline, registered, or a curated name) becomes on this
    /// machine, with the label logs name it by; `source` names the spec in errors.
    pub async fn resolve_environment(
        &self,
        env: &Environment,
        source: &str,
    ) -> Result<(String, EnvironmentDefinition)> {
        Resolver { orchestrator: self, source }.environment(env).await
    }

    /// Whether an uploaded snapshot (`cas:<id>[/<path>]`) exists; the error says what is wrong.
    pub async fn check_snapshot_uri(&self, uri: &str) -> Result<()> {
        let rest = uri
            .strip_prefix("cas:")
            .ok_or_else(|| ServiceError::invalid(format!("'{uri}' is not an uploaded snapshot")))?;
        self.check_snapshot(uri, rest).await?.map_err(ServiceError::invalid)
    }
}

pub(crate) struct Resolved {
    pub plan: LaunchPlan,
    pub outputs: BTreeMap<String, JobOutput>,
    pub notes: Vec<String>,
}

fn invalid(source: &str, field: &str, message: impl std::fmt::Display) -> ServiceError {
    ServiceError::invalid(format!("{source}: {field}: {message}"))
}

impl Resolver<'_> {
    pub async fn resolve(
        &self,
        spec: &CommandJob,
        name: &str,
        experiment: &Experiment,
        tracking_uri: &str,
    ) -> Result<Resolved> {
        let o = &self.orchestrator.inner;
        let mut notes = Vec::new();

        let code = match &spec.code {
            None => None,
            Some(c) => Some(self.snapshot_uri(&c.value, "code").await?),
        };

        let (env_label, env_def) = self.environment(&spec.environment.value).await?;
        notes.extend(env_def.notes.iter().cloned());

        let mut inputs = BTreeMap::new();
        for (key, input) in &spec.inputs {
            let field = format!("inputs.{key}");
            let plan = match &input.value {
                JobInput::Literal(l) => InputPlan::Literal { value: l.text.clone() },
                JobInput::Data(d) => self.data_input(d, &field).await?,
            };
            inputs.insert(key.clone(), plan);
        }

        let run_artifacts = run_artifacts_path(&experiment.artifact_location, name).ok_or_else(|| {
            ServiceError::invalid(format!(
                "experiment '{}' keeps its artifacts at '{}', which jobs cannot write to",
                experiment.name, experiment.artifact_location
            ))
        })?;
        let mut outputs = BTreeMap::new();
        let mut output_plans = BTreeMap::new();
        for (key, output) in &spec.outputs {
            let field = format!("outputs.{key}");
            let out = &output.value;
            let uri = match &out.path {
                None => format!("blob:azureml/{name}/{key}"),
                Some(p) => {
                    let p = p.replace("${{name}}", name).replace("{name}", name);
                    let p = p.replace("${{output_name}}", key).replace("{output_name}", key);
                    // Every datastore name is this workspace's artifact store.
                    let p = p.replace("${{default_datastore}}", "workspaceblobstore");
                    match datastore_path(&p) {
                        Some(path) => format!("blob:{path}"),
                        None => {
                            return Err(invalid(
                                self.source,
                                &format!("{field}.path"),
                                format!("'{p}': an output path must be azureml://datastores/<datastore>/paths/<path>"),
                            ));
                        }
                    }
                }
            };
            output_plans.insert(
                key.clone(),
                OutputPlan { uri: uri.clone(), data_type: out.data_type.clone(), mode: out.mode.clone() },
            );
            outputs.insert(
                key.clone(),
                JobOutput {
                    uri,
                    data_type: out.data_type.clone(),
                    asset_name: out.asset_name.clone(),
                    asset_version: out.asset_version.clone(),
                },
            );
        }
        outputs.insert(
            "artifacts".into(),
            JobOutput {
                uri: format!("blob:{run_artifacts}"),
                data_type: "uri_folder".into(),
                asset_name: None,
                asset_version: None,
            },
        );

        let processes = match &spec.distribution {
            None => ProcessPlan::Single,
            Some(Distribution::PyTorch { process_count_per_instance }) => ProcessPlan::PyTorch {
                instance_count: spec.resources.instance_count,
                per_instance: *process_count_per_instance,
            },
            Some(Distribution::TensorFlow { worker_count, .. }) => {
                ProcessPlan::TensorFlow { workers: worker_count.unwrap_or(spec.resources.instance_count).max(1) }
            }
            Some(Distribution::Mpi { .. }) => {
                return Err(invalid(
                    self.source,
                    "distribution",
                    "type 'mpi' needs mpirun and is not supported on local compute yet",
                ));
            }
            Some(Distribution::Ray) => {
                return Err(invalid(self.source, "distribution", "type 'ray' is not supported on local compute yet"));
            }
        };
        if spec.distribution.is_none() && spec.resources.instance_count > 1 {
            notes.push(format!(
                "resources.instance_count is {} but there is no distribution: the command runs once (on node 0), as in Azure ML",
                spec.resources.instance_count
            ));
        }

        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            env.insert(k.to_string(), v.to_string());
        };
        set("MLFLOW_TRACKING_URI", tracking_uri);
        set("MLFLOW_RUN_ID", name);
        set("MLFLOW_EXPERIMENT_ID", &experiment.experiment_id.to_string());
        set("MLFLOW_EXPERIMENT_NAME", &experiment.name);
        set("AZUREML_RUN_ID", name);
        set("AZUREML_ARM_PROJECT_NAME", &experiment.name);
        set("AZUREML_ARM_WORKSPACE_NAME", "kiln");
        set("AZUREML_ARM_SUBSCRIPTION", "local");
        set("AZUREML_ARM_RESOURCEGROUP", "local");
        set("AZUREML_SERVICE_ENDPOINT", tracking_uri);
        set("AZUREML_DISCOVERY_SERVICE_ENDPOINT", tracking_uri);
        // Python writes to a pipe in blocks unless told otherwise; a live log needs lines.
        set("PYTHONUNBUFFERED", "1");
        for (k, v) in &spec.environment_variables {
            set(k, v);
        }

        let plan = LaunchPlan {
            job_name: name.to_string(),
            job_dir: o.config.data_dir.join("jobs").join(name),
            cache_dir: o.config.cache_dir.clone(),
            artifact_store: o.config.artifact_store.clone(),
            command: spec.command.value.clone(),
            code,
            environment: env_def.plan(&env_label),
            env,
            inputs,
            outputs: output_plans,
            artifacts_dest: format!("blob:{run_artifacts}"),
            processes,
            timeout_s: spec.timeout_s,
            stop_with_parent: None,
        };
        Ok(Resolved { plan, outputs, notes })
    }

    /// A `cas:` URI whose manifest is in the store.
    async fn snapshot_uri(&self, uri: &str, field: &str) -> Result<String> {
        let Some(rest) = uri.strip_prefix("cas:") else {
            return Err(invalid(
                self.source,
                field,
                format!("'{uri}' is a local path: upload it first (`kiln job create` does) and pass its cas: URI"),
            ));
        };
        match self.orchestrator.check_snapshot(uri, rest).await? {
            Ok(()) => Ok(uri.to_string()),
            Err(why) => Err(invalid(self.source, field, why)),
        }
    }

    async fn data_input(&self, d: &DataInput, field: &str) -> Result<InputPlan> {
        let path = d.path.as_str();
        let data = |uri: String| InputPlan::Data { uri, data_type: d.data_type.clone(), mode: d.mode.clone() };
        if d.mode == "direct" {
            return Ok(data(path.to_string()));
        }
        if path.starts_with("cas:") {
            return Ok(data(self.snapshot_uri(path, &format!("{field}.path")).await?));
        }
        if path.starts_with("http://") || path.starts_with("https://") {
            return Ok(data(path.to_string()));
        }
        if let Some(p) = datastore_path(path) {
            return Ok(data(format!("blob:{p}")));
        }
        if let Some(rest) = path.strip_prefix("azureml://jobs/") {
            return Ok(data(self.job_output_uri(rest, field).await?));
        }
        if let Some(rest) = path.strip_prefix("runs:/") {
            let (run_id, sub) = rest.split_once('/').unwrap_or((rest, ""));
            let run = self.orchestrator.inner.tracking.get_run_info(run_id).await?;
            let base = kiln_tracking::proxy_path(&run.artifact_uri).ok_or_else(|| {
                invalid(self.source, field, format!("run {run_id} keeps its artifacts outside the workspace store"))
            })?;
            let joined = if sub.is_empty() { base.as_str().to_string() } else { format!("{}/{sub}", base.as_str()) };
            return Ok(data(format!("blob:{joined}")));
        }
        if crate::models::MODEL_TYPES.contains(&d.data_type.as_str()) {
            if let Some(uri) = self.orchestrator.model_reference(path).await? {
                return Ok(data(uri));
            }
        } else if let Some(asset) = self.orchestrator.data_reference(path).await? {
            return Ok(data(asset.uri));
        }
        Err(invalid(
            self.source,
            &format!("{field}.path"),
            format!(
                "'{path}' is neither an uploaded snapshot (cas:), a URL, an azureml:// path nor a registered asset; \
                 local paths are uploaded by `kiln job create`"
            ),
        ))
    }

    /// `azureml://jobs/<job>/outputs/<output>[/paths/<path>]`.
    async fn job_output_uri(&self, rest: &str, field: &str) -> Result<String> {
        let mut parts = rest.splitn(4, '/');
        let (job, kw, output) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if kw != "outputs" || job.is_empty() || output.is_empty() {
            return Err(invalid(self.source, field, "expected azureml://jobs/<job>/outputs/<output>[/paths/<path>]"));
        }
        let sub = parts.next().map(|p| p.strip_prefix("paths/").unwrap_or(p)).unwrap_or("");
        let job = self.orchestrator.get(job).await?;
        let out = job
            .outputs
            .get(output)
            .ok_or_else(|| invalid(self.source, field, format!("job '{}' has no output '{output}'", job.name)))?;
        Ok(if sub.is_empty() { out.uri.clone() } else { format!("{}/{}", out.uri.trim_end_matches('/'), sub) })
    }

    /// An inline environment, a registered one, or a curated name.
    pub(crate) async fn environment(&self, env: &Environment) -> Result<(String, EnvironmentDefinition)> {
        match env {
            Environment::Inline(inline) => {
                let conda = match &inline.conda_file {
                    None => None,
                    Some(CondaFile::Inline(node)) => {
                        let req = kiln_spec::conda::python_requirements(node)
                            .map_err(|e| invalid(self.source, "environment.conda_file", e))?;
                        Some((node, req))
                    }
                    Some(CondaFile::Path(p)) => {
                        return Err(invalid(
                            self.source,
                            "environment.conda_file",
                            format!(
                                "'{p}' is a local path: send the conda file's content inline (`kiln job create` does)"
                            ),
                        ));
                    }
                };
                let mut def = EnvironmentDefinition::from_parts(inline.image.clone(), conda);
                if inline.build.is_some() {
                    def.notes.push(
                        "environment.build: a Docker build context is not built on local compute; the job runs without it"
                            .into(),
                    );
                }
                Ok(("inline".into(), def))
            }
            Environment::Reference(reference) => {
                if let Some(found) = self.registered_environment(reference).await? {
                    return Ok(found);
                }
                if let Some((name, def)) = curated(reference) {
                    return Ok((format!("{name} (curated)"), def));
                }
                Err(ServiceError::not_found(format!(
                    "{}: environment: '{reference}' is not a registered environment (`kiln environment create`) \
                     nor a known curated one ({})",
                    self.source,
                    curated_names().join(", ")
                )))
            }
        }
    }

    /// `azureml:name:version`, `azureml:name@latest`, or the same without the prefix.
    async fn registered_environment(&self, reference: &str) -> Result<Option<(String, EnvironmentDefinition)>> {
        let Some(r) = kiln_spec::reference::asset_reference(reference, true) else { return Ok(None) };
        let store = self.orchestrator.store();
        let record = match r.version {
            Some(version) => store.get_asset("environment", r.name, version).await?,
            None => store.latest_asset("environment", r.name).await?,
        };
        let Some(record) = record else { return Ok(None) };
        let def: EnvironmentDefinition = serde_json::from_str(&record.spec).map_err(|e| {
            ServiceError::internal(format!("environment {}:{} cannot be read: {e}", record.name, record.version))
        })?;
        Ok(Some((format!("{}:{}", record.name, record.version), def)))
    }
}

/// `azureml://datastores/<any>/paths/<p>` → `<p>`: every datastore is the workspace's
/// artifact store here.
pub(crate) fn datastore_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("azureml://datastores/")?;
    let (_datastore, rest) = rest.split_once('/')?;
    let path = rest.strip_prefix("paths/")?;
    let path = path.trim_matches('/');
    kiln_blobs::ArtifactPath::parse(path).ok().filter(|p| !p.is_root()).map(|p| p.as_str().to_string())
}

/// The artifact-store folder of the run `name` in an experiment whose artifacts are proxied.
fn run_artifacts_path(experiment_location: &str, name: &str) -> Option<String> {
    let base = kiln_tracking::proxy_path(experiment_location)?;
    let joined =
        if base.is_root() { format!("{name}/artifacts") } else { format!("{}/{name}/artifacts", base.as_str()) };
    Some(joined)
}
