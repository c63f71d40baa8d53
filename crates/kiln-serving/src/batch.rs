//! Batch endpoints: a name, a default deployment, and deployments that say how a batch of
//! files is scored. Nothing runs until an invocation: each one is a command job (so it is
//! queued, logged, tracked as an MLflow run, followed and downloaded like any job) whose
//! command is the batch driver (`batch_driver.py`, embedded) and whose named output `score`
//! holds the predictions. The driver is added to the deployment's scoring code as one more
//! file of a new snapshot, so the job's code is one content-addressed folder.

use std::collections::BTreeMap;

use kiln_blobs::snapshot::{Snapshot, SnapshotFile, blob_path, digest_of, manifest_path};
use kiln_orchestrator::{Job, ListJobs, Submission};
use kiln_spec::endpoint::{self as spec, ModelSpec};
use kiln_store::{DeploymentRecord, EndpointRecord, now_ms};
use kiln_tracking::ServiceError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::control::{invalid, parse_doc, to_json};
use crate::model::{RuntimeKind, mlflow_environment, model_files, runtime_for};
use crate::{EndpointCreate, ModelBinding, Result, Serving, shell_quote as quote, state};

const DRIVER: &str = include_str!("batch_driver.py");
const DRIVER_NAME: &str = "kiln_batch_driver.py";
/// The job property that names the batch endpoint an invocation came from.
pub const ENDPOINT_PROPERTY: &str = "kiln.batch_endpoint";
pub const DEPLOYMENT_PROPERTY: &str = "kiln.batch_deployment";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BatchEndpointDocument {
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    default_deployment: Option<String>,
}

/// The settings of a batch deployment, as the spec has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSettings {
    pub max_concurrency_per_instance: u64,
    pub mini_batch_size: u64,
    pub output_action: String,
    pub output_file_name: String,
    pub max_retries: u64,
    pub retry_timeout_s: u64,
    pub error_threshold: i64,
    pub logging_level: String,
    pub environment_variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BatchDeploymentDocument {
    spec: String,
    source: String,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    model: ModelBinding,
    /// The model's type as a job input takes it, and its root's name.
    model_input_type: String,
    root_name: String,
    /// `mlflow` or `script`.
    mode: String,
    code: Option<(String, String)>,
    /// The environment as the job will name it (JSON of the spec's, or one made for the model).
    environment: Value,
    environment_label: String,
    instance_count: u64,
    settings: BatchSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchEndpointView {
    pub name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub default_deployment: Option<String>,
    pub deployments: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchDeploymentView {
    pub name: String,
    pub endpoint_name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model: ModelBinding,
    pub scoring_script: Option<String>,
    pub environment: String,
    pub instance_count: u64,
    pub settings: BatchSettings,
    pub provisioning_state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `batch-endpoint invoke`.
#[derive(Debug, Clone, Default)]
pub struct BatchInvocation {
    pub deployment: Option<String>,
    /// A `cas:` upload, a URL, a data asset (`azureml:name:version`) or a datastore path.
    pub input: String,
    /// `uri_folder` (the default) or `uri_file`.
    pub input_type: Option<String>,
    pub mini_batch_size: Option<u64>,
    pub instance_count: Option<u64>,
    pub output_file_name: Option<String>,
    pub job_name: Option<String>,
    pub user: Option<String>,
}

impl Serving {
    async fn batch_endpoint_record(&self, name: &str) -> Result<(EndpointRecord, BatchEndpointDocument)> {
        self.endpoint_of_kind(name, "batch").await
    }

    async fn batch_endpoint_view(&self, r: &EndpointRecord, doc: &BatchEndpointDocument) -> Result<BatchEndpointView> {
        let deployments =
            self.inner.tracking.store().list_deployments(Some(&r.name)).await?.into_iter().map(|d| d.name).collect();
        Ok(BatchEndpointView {
            name: r.name.clone(),
            description: doc.description.clone(),
            tags: doc.tags.clone(),
            default_deployment: doc.default_deployment.clone(),
            deployments,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }

    pub async fn create_batch_endpoint(&self, req: EndpointCreate) -> Result<BatchEndpointView> {
        let (e, _) =
            kiln_spec::read_str(&req.source, &req.spec, &req.overrides, spec::batch_endpoint).map_err(invalid)?;
        let _guard = self.inner.control.lock().await;
        if e.default_deployment.is_some() {
            return Err(ServiceError::invalid(
                "defaults.deployment_name: the endpoint has no deployments yet; create one with --set-default",
            ));
        }
        let doc = BatchEndpointDocument { description: e.description, tags: e.tags, default_deployment: None };
        let record = self.insert_endpoint(&e.name, "batch", to_json(&doc)).await?;
        self.batch_endpoint_view(&record, &doc).await
    }

    pub async fn get_batch_endpoint(&self, name: &str) -> Result<BatchEndpointView> {
        let (r, doc) = self.batch_endpoint_record(name).await?;
        self.batch_endpoint_view(&r, &doc).await
    }

    pub async fn list_batch_endpoints(&self) -> Result<Vec<BatchEndpointView>> {
        let mut out = Vec::new();
        for r in self.inner.tracking.store().list_endpoints(Some("batch")).await? {
            let doc = parse_doc("batch endpoint", &r.document)?;
            out.push(self.batch_endpoint_view(&r, &doc).await?);
        }
        Ok(out)
    }

    /// Changes an endpoint's description, tags or default deployment (from a spec, or
    /// `defaults.deployment_name` alone).
    pub async fn update_batch_endpoint(
        &self,
        name: &str,
        spec_req: Option<EndpointCreate>,
        default_deployment: Option<String>,
    ) -> Result<BatchEndpointView> {
        let _guard = self.inner.control.lock().await;
        let (mut r, mut doc) = self.batch_endpoint_record(name).await?;
        let mut wanted_default = default_deployment;
        if let Some(s) = spec_req {
            let (e, _) =
                kiln_spec::read_str(&s.source, &s.spec, &s.overrides, spec::batch_endpoint).map_err(invalid)?;
            if e.name != name {
                return Err(ServiceError::invalid(format!("name: the spec names '{}', not '{name}'", e.name)));
            }
            doc.description = e.description;
            doc.tags = e.tags;
            if e.default_deployment.is_some() {
                wanted_default = e.default_deployment;
            }
        }
        if let Some(d) = wanted_default {
            if self.inner.tracking.store().get_deployment(name, &d).await?.is_none() {
                return Err(ServiceError::invalid(format!(
                    "defaults.deployment_name: batch endpoint '{name}' has no deployment '{d}'"
                )));
            }
            doc.default_deployment = Some(d);
        }
        r.document = to_json(&doc);
        r.updated_at = now_ms();
        self.inner.tracking.store().update_endpoint(name, &r.document, r.updated_at).await?;
        self.batch_endpoint_view(&r, &doc).await
    }

    pub async fn delete_batch_endpoint(&self, name: &str) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        self.batch_endpoint_record(name).await?;
        self.inner.tracking.store().delete_endpoint(name).await?;
        Ok(())
    }

    fn batch_deployment_view(&self, r: &DeploymentRecord, doc: &BatchDeploymentDocument) -> BatchDeploymentView {
        BatchDeploymentView {
            name: r.name.clone(),
            endpoint_name: r.endpoint.clone(),
            description: doc.description.clone(),
            tags: doc.tags.clone(),
            model: doc.model.clone(),
            scoring_script: doc.code.as_ref().map(|(_, s)| s.clone()),
            environment: doc.environment_label.clone(),
            instance_count: doc.instance_count,
            settings: doc.settings.clone(),
            provisioning_state: r.state.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    /// Creates or replaces a batch deployment; `set_default` makes it the endpoint's default
    /// (so does being its first deployment).
    pub async fn put_batch_deployment(
        &self,
        endpoint: &str,
        req: EndpointCreate,
        set_default: bool,
        update: bool,
    ) -> Result<BatchDeploymentView> {
        let (d, _) =
            kiln_spec::read_str(&req.source, &req.spec, &req.overrides, spec::batch_deployment).map_err(invalid)?;
        if d.endpoint_name != endpoint {
            return Err(ServiceError::invalid(format!(
                "endpoint_name: the spec names endpoint '{}', not '{endpoint}'",
                d.endpoint_name
            )));
        }
        let _guard = self.inner.control.lock().await;
        let (er, mut edoc) = self.batch_endpoint_record(endpoint).await?;
        let store = self.inner.tracking.store();
        let existing = store.get_deployment(endpoint, &d.name).await?;
        match (&existing, update) {
            (Some(_), false) => {
                return Err(ServiceError::exists(format!(
                    "batch endpoint '{endpoint}' already has a deployment '{}'; change it with `kiln batch-deployment update`",
                    d.name
                )));
            }
            (None, true) => {
                return Err(ServiceError::not_found(format!(
                    "batch endpoint '{endpoint}' has no deployment '{}'",
                    d.name
                )));
            }
            _ => {}
        }
        let doc = self.resolve_batch_deployment(&d, &req).await?;
        let now = now_ms();
        let record = DeploymentRecord {
            endpoint: endpoint.to_string(),
            name: d.name.clone(),
            document: to_json(&doc),
            state: state::SUCCEEDED.into(),
            message: None,
            created_at: existing.as_ref().map_or(now, |r| r.created_at),
            updated_at: now,
        };
        store.put_deployment(&record).await?;
        if set_default || edoc.default_deployment.is_none() {
            edoc.default_deployment = Some(d.name.clone());
            store.update_endpoint(&er.name, &to_json(&edoc), now_ms()).await?;
        }
        Ok(self.batch_deployment_view(&record, &doc))
    }

    async fn resolve_batch_deployment(
        &self,
        d: &spec::BatchDeployment,
        sent: &EndpointCreate,
    ) -> Result<BatchDeploymentDocument> {
        let blobs = self.inner.tracking.blobs();
        let (model, model_type) = match &d.model.value {
            ModelSpec::Reference(reference) => {
                let (asset, path) = self.inner.orchestrator.model_files(reference).await?.ok_or_else(|| {
                    ServiceError::invalid(format!(
                        "model: '{reference}' is not a model reference (azureml:<name>:<version>)"
                    ))
                })?;
                let binding = ModelBinding {
                    label: reference.clone(),
                    name: Some(asset.name.clone()),
                    version: Some(asset.version.clone()),
                    uri: format!("blob:{}", path.as_str()),
                };
                (binding, Some(asset.model_type))
            }
            ModelSpec::Inline { path, .. } => {
                if !path.starts_with("cas:") {
                    return Err(ServiceError::invalid(format!(
                        "model.path: '{path}' is a local path; `kiln batch-deployment create` uploads it"
                    )));
                }
                (ModelBinding { label: "inline".into(), name: None, version: None, uri: path.clone() }, None)
            }
        };
        let files = model_files(blobs, &model.uri).await?;
        let code = d.code_configuration.as_ref().map(|c| (c.value.code.clone(), c.value.scoring_script.clone()));
        if let Some((uri, _)) = &code {
            self.inner
                .orchestrator
                .check_snapshot_uri(uri)
                .await
                .map_err(|e| ServiceError::invalid(format!("code_configuration.code: {}", e.message)))?;
        }
        let mode = match runtime_for(blobs, &files, code.is_some()).await? {
            RuntimeKind::ScoringScript => "script",
            RuntimeKind::MlflowPyfunc => "mlflow",
            RuntimeKind::Onnx { .. } => {
                return Err(ServiceError::invalid(
                    "model: batch deployments score MLflow models and scoring scripts; give this ONNX model a scoring \
                     script (code_configuration), or deploy it to an online endpoint, which runs ONNX natively",
                ));
            }
        };
        // The job names the environment as the spec wrote it, or one made from what the model
        // asks for.
        let root = kiln_spec::parse_with_overrides(&sent.source, &sent.spec, &sent.overrides).map_err(invalid)?;
        let (environment, environment_label) = match root.get("environment") {
            Some(node) => (
                node.to_json(),
                match &d.environment.as_ref().map(|e| &e.value) {
                    Some(kiln_spec::Environment::Reference(r)) => r.clone(),
                    _ => "inline".into(),
                },
            ),
            None if mode == "mlflow" => {
                let def = mlflow_environment(blobs, &files).await?;
                match def.requirements {
                    Some(reqs) => {
                        let mut deps = Vec::new();
                        if let Some(p) = &def.python {
                            deps.push(json!(format!("python={p}")));
                        }
                        deps.push(json!("pip"));
                        deps.push(json!({ "pip": reqs }));
                        (
                            json!({"image": "python", "conda_file": {"dependencies": deps}}),
                            "the model's environment".into(),
                        )
                    }
                    None => (json!({"image": "python"}), "the host's Python".into()),
                }
            }
            None => (json!({"image": "python"}), "the host's Python".into()),
        };
        let is_file = files.is_file;
        let model_input_type = match model_type {
            Some(t) => t,
            None if is_file => "uri_file".into(),
            None => "uri_folder".into(),
        };
        let s = &d.settings;
        Ok(BatchDeploymentDocument {
            spec: sent.spec.clone(),
            source: sent.source.clone(),
            description: d.description.clone(),
            tags: d.tags.clone(),
            model,
            model_input_type,
            root_name: files.root_name.clone(),
            mode: mode.into(),
            code,
            environment,
            environment_label,
            instance_count: d.instance_count,
            settings: BatchSettings {
                max_concurrency_per_instance: s.max_concurrency_per_instance,
                mini_batch_size: s.mini_batch_size,
                output_action: s.output_action.as_str().into(),
                output_file_name: s.output_file_name.clone(),
                max_retries: s.max_retries,
                retry_timeout_s: s.retry_timeout_s,
                error_threshold: s.error_threshold,
                logging_level: s.logging_level.clone(),
                environment_variables: s.environment_variables.clone(),
            },
        })
    }

    pub async fn get_batch_deployment(&self, endpoint: &str, name: &str) -> Result<BatchDeploymentView> {
        self.batch_endpoint_record(endpoint).await?;
        let r = self.inner.tracking.store().get_deployment(endpoint, name).await?.ok_or_else(|| {
            ServiceError::not_found(format!("batch endpoint '{endpoint}' has no deployment '{name}'"))
        })?;
        Ok(self.batch_deployment_view(&r, &parse_doc("batch deployment", &r.document)?))
    }

    pub async fn list_batch_deployments(&self, endpoint: &str) -> Result<Vec<BatchDeploymentView>> {
        self.batch_endpoint_record(endpoint).await?;
        let mut out = Vec::new();
        for r in self.inner.tracking.store().list_deployments(Some(endpoint)).await? {
            out.push(self.batch_deployment_view(&r, &parse_doc("batch deployment", &r.document)?));
        }
        Ok(out)
    }

    /// Deletes a batch deployment; the default one is refused while others remain.
    pub async fn delete_batch_deployment(&self, endpoint: &str, name: &str) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (er, mut edoc) = self.batch_endpoint_record(endpoint).await?;
        let store = self.inner.tracking.store();
        if store.get_deployment(endpoint, name).await?.is_none() {
            return Err(ServiceError::not_found(format!("batch endpoint '{endpoint}' has no deployment '{name}'")));
        }
        if edoc.default_deployment.as_deref() == Some(name) {
            let others = store.list_deployments(Some(endpoint)).await?.len() > 1;
            if others {
                return Err(ServiceError::invalid(format!(
                    "deployment '{name}' is the endpoint's default; make another the default first \
                     (kiln batch-endpoint update -n {endpoint} --set defaults.deployment_name=<other>)"
                )));
            }
            edoc.default_deployment = None;
            store.update_endpoint(&er.name, &to_json(&edoc), now_ms()).await?;
        }
        store.delete_deployment(endpoint, name).await?;
        Ok(())
    }

    /// The job's code: the deployment's scoring code with the driver added, as one snapshot.
    async fn driver_snapshot(&self, code: Option<&str>) -> Result<String> {
        let blobs = self.inner.tracking.blobs();
        let internal = |e: kiln_blobs::BlobError| ServiceError::internal(e.to_string());
        let digest = digest_of(DRIVER.as_bytes());
        let blob = blob_path(&digest).map_err(internal)?;
        if blobs.size(&blob).await.map_err(internal)?.is_none() {
            blobs.put_bytes(&blob, bytes::Bytes::from_static(DRIVER.as_bytes())).await.map_err(internal)?;
        }
        let mut files = match code {
            None => Vec::new(),
            Some(uri) => {
                let id = uri.trim_start_matches("cas:");
                let manifest = blobs
                    .get_bytes(&manifest_path(id).map_err(internal)?)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| ServiceError::invalid(format!("code: snapshot {id} was never uploaded")))?;
                let snapshot: Snapshot = serde_json::from_slice(&manifest)
                    .map_err(|e| ServiceError::internal(format!("snapshot {id} cannot be read: {e}")))?;
                snapshot.files
            }
        };
        files.retain(|f| f.path != DRIVER_NAME);
        files.push(SnapshotFile { path: DRIVER_NAME.into(), digest, size: DRIVER.len() as u64, executable: false });
        let snapshot = Snapshot::normalized(files).map_err(internal)?;
        let id = snapshot.id();
        let path = manifest_path(&id).map_err(internal)?;
        if blobs.size(&path).await.map_err(internal)?.is_none() {
            let text = serde_json::to_vec(&snapshot).map_err(|e| ServiceError::internal(e.to_string()))?;
            blobs.put_bytes(&path, text.into()).await.map_err(internal)?;
        }
        Ok(format!("cas:{id}"))
    }

    /// Starts a batch scoring job over a file, a folder or a data asset.
    pub async fn invoke_batch(&self, endpoint: &str, inv: BatchInvocation) -> Result<Job> {
        let (_, edoc) = self.batch_endpoint_record(endpoint).await?;
        let deployment = inv.deployment.clone().or(edoc.default_deployment.clone()).ok_or_else(|| {
            ServiceError::invalid(format!(
                "batch endpoint '{endpoint}' has no default deployment; name one (-d) or create one"
            ))
        })?;
        let r = self.inner.tracking.store().get_deployment(endpoint, &deployment).await?.ok_or_else(|| {
            ServiceError::not_found(format!("batch endpoint '{endpoint}' has no deployment '{deployment}'"))
        })?;
        let doc: BatchDeploymentDocument = parse_doc("batch deployment", &r.document)?;
        if inv.input.trim().is_empty() {
            return Err(ServiceError::invalid(
                "input: name the data to score (a file, a folder, a data asset or a URL)",
            ));
        }
        let input_type = inv.input_type.clone().unwrap_or_else(|| "uri_folder".into());
        if input_type != "uri_folder" && input_type != "uri_file" {
            return Err(ServiceError::invalid(format!(
                "input_type: expected uri_folder or uri_file, found '{input_type}'"
            )));
        }
        let s = &doc.settings;
        let mini_batch_size = inv.mini_batch_size.unwrap_or(s.mini_batch_size);
        let instance_count = inv.instance_count.unwrap_or(doc.instance_count);
        if mini_batch_size == 0 || instance_count == 0 {
            return Err(ServiceError::invalid("mini_batch_size and instance_count must be at least 1"));
        }
        let output_file_name = inv.output_file_name.clone().unwrap_or_else(|| s.output_file_name.clone());
        if output_file_name.is_empty() || output_file_name.contains('/') {
            return Err(ServiceError::invalid(format!("output_file_name: '{output_file_name}' is not a file name")));
        }
        let code = self.driver_snapshot(doc.code.as_ref().map(|(uri, _)| uri.as_str())).await?;
        let mut command = format!(
            "python {DRIVER_NAME} --input \"${{{{inputs.data}}}}\" --output \"${{{{outputs.score}}}}\" --mode {} \
             --model \"${{{{inputs.model}}}}\" --model-root-name {} --mini-batch-size {mini_batch_size} \
             --concurrency {} --output-action {} --output-file-name {} --max-retries {} --timeout {} \
             --error-threshold {}",
            doc.mode,
            quote(&doc.root_name),
            s.max_concurrency_per_instance.saturating_mul(instance_count),
            s.output_action,
            quote(&output_file_name),
            s.max_retries,
            s.retry_timeout_s,
            s.error_threshold,
        );
        if let Some((_, script)) = &doc.code {
            command.push_str(&format!(" --script {}", quote(script)));
        }
        let mut properties = BTreeMap::from([
            (ENDPOINT_PROPERTY.to_string(), endpoint.to_string()),
            (DEPLOYMENT_PROPERTY.to_string(), deployment.clone()),
        ]);
        properties.insert("kiln.batch.mini_batch_size".into(), mini_batch_size.to_string());
        let mut job = json!({
            "type": "command",
            "display_name": format!("{endpoint}/{deployment}"),
            "experiment_name": endpoint,
            "description": format!("batch scoring with deployment '{deployment}' of batch endpoint '{endpoint}'"),
            "properties": properties,
            "code": code,
            "command": command,
            "inputs": {
                "data": {"type": input_type, "path": inv.input},
                "model": {"type": doc.model_input_type, "path": if doc.model.label == "inline" { doc.model.uri.clone() } else { doc.model.label.clone() }},
            },
            "outputs": {"score": {"type": "uri_folder"}},
            "environment": doc.environment,
            "environment_variables": s.environment_variables,
        });
        if let Some(n) = &inv.job_name {
            job["name"] = json!(n);
        }
        let sub = Submission {
            spec: job.to_string(),
            source: format!("batch endpoint '{endpoint}'"),
            user: inv.user.clone(),
        };
        self.inner.orchestrator.submit(sub).await
    }

    /// The jobs a batch endpoint's invocations created, newest first.
    pub async fn batch_jobs(&self, endpoint: &str) -> Result<Vec<Job>> {
        self.batch_endpoint_record(endpoint).await?;
        let all =
            self.inner.orchestrator.list(&ListJobs { archived_only: Some(false), limit: None, parent: None }).await?;
        Ok(all
            .into_iter()
            .filter(|j| j.properties.get(ENDPOINT_PROPERTY).map(String::as_str) == Some(endpoint))
            .collect())
    }
}
