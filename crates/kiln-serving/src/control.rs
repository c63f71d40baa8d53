//! Creating, changing and deleting endpoints and deployments, and bringing deployments up.
//!
//! A deployment is recorded first (`Creating`/`Updating`) and provisioned in the background;
//! its new runtime replaces the old one only once it is ready, so an update drops no
//! request: requests already holding the old runtime finish on it. Changes happen one at a
//! time (one lock), and every change rebuilds the endpoint's routing table.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_spec::endpoint::{self as spec, ModelSpec};
use kiln_store::{DeploymentRecord, EndpointRecord, now_ms};
use kiln_tracking::ServiceError;
use tokio::sync::Semaphore;

use crate::live::{LiveDeployment, LiveEndpoint, Runtime};
use crate::model::{RuntimeKind, mlflow_environment, model_files, runtime_for};
use crate::onnx::OnnxModel;
use crate::workers::{WorkerPool, WorkerSpec};
use crate::{
    Credentials, DeploymentDocument, DeploymentView, EndpointDocument, EndpointView, ModelBinding, RequestSettings,
    Result, Serving, auth, now_s, scoring_path, state,
};

/// A spec sent by a client: its text, the file name errors should give, `--set` overrides.
#[derive(Debug, Clone, Default)]
pub struct EndpointCreate {
    pub spec: String,
    pub source: String,
    pub overrides: Vec<String>,
}

/// What `online-endpoint update` changes: the spec's fields, and/or the traffic flags.
#[derive(Debug, Clone, Default)]
pub struct EndpointUpdate {
    pub spec: Option<EndpointCreate>,
    pub traffic: Option<BTreeMap<String, u32>>,
    pub mirror_traffic: Option<BTreeMap<String, u32>>,
}

#[derive(Debug, Clone, Default)]
pub struct DeploymentCreate {
    pub spec: EndpointCreate,
    /// `--all-traffic`: once ready, the deployment takes all of the endpoint's traffic.
    pub all_traffic: bool,
}

/// `WORKER_COUNT` (an environment variable of the deployment, as the original inference
/// server reads it): worker processes per instance.
fn worker_count(env: &BTreeMap<String, String>) -> Result<u64> {
    match env.get("WORKER_COUNT") {
        None => Ok(1),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n @ 1..=32) => Ok(n),
            _ => Err(ServiceError::invalid(format!(
                "environment_variables.WORKER_COUNT: expected a number of worker processes from 1 to 32, found '{v}'"
            ))),
        },
    }
}

pub(crate) fn invalid(e: kiln_spec::SpecError) -> ServiceError {
    ServiceError::invalid(e.to_string())
}

pub(crate) fn parse_doc<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| ServiceError::internal(format!("{what} cannot be read: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn endpoint_view(r: &EndpointRecord, doc: &EndpointDocument) -> EndpointView {
    EndpointView {
        name: r.name.clone(),
        auth_mode: doc.auth_mode.clone(),
        description: doc.description.clone(),
        tags: doc.tags.clone(),
        traffic: doc.traffic.clone(),
        mirror_traffic: doc.mirror_traffic.clone(),
        scoring_path: scoring_path(&r.name),
        provisioning_state: state::SUCCEEDED.into(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// Checks a traffic split and mirror against the endpoint's deployments.
fn check_routing(
    traffic: &BTreeMap<String, u32>,
    mirror: &BTreeMap<String, u32>,
    deployments: &[String],
) -> Result<()> {
    spec::check_traffic(traffic).map_err(ServiceError::invalid)?;
    spec::check_mirror(mirror).map_err(ServiceError::invalid)?;
    for name in traffic.keys().chain(mirror.keys()) {
        if !deployments.contains(name) {
            return Err(ServiceError::invalid(format!(
                "traffic names deployment '{name}', which this endpoint does not have{}",
                if deployments.is_empty() {
                    " (it has none yet: create a deployment, then set the traffic)".to_string()
                } else {
                    format!(" (it has {})", deployments.join(", "))
                }
            )));
        }
    }
    for (name, pct) in mirror {
        if *pct > 0 && traffic.get(name).copied().unwrap_or(0) > 0 {
            return Err(ServiceError::invalid(format!(
                "deployment '{name}' gets live traffic, so it cannot also get mirror traffic"
            )));
        }
    }
    Ok(())
}

impl Serving {
    fn log_path(&self, endpoint: &str, deployment: &str) -> PathBuf {
        self.inner.config.data_dir.join("endpoints").join(endpoint).join(deployment).join("deployment.log")
    }

    /// Appends a line to a deployment's log.
    pub(crate) fn log(&self, endpoint: &str, deployment: &str, line: &str) {
        let path = self.log_path(endpoint, deployment);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            let ts = chrono::DateTime::from_timestamp_millis(now_ms())
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_default();
            let _ = writeln!(f, "{ts} {line}");
        }
    }

    async fn endpoint_record(&self, name: &str) -> Result<(EndpointRecord, EndpointDocument)> {
        self.endpoint_of_kind(name, "online").await
    }

    /// An endpoint of one kind (`online`, `batch`) and its document.
    pub(crate) async fn endpoint_of_kind<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        kind: &str,
    ) -> Result<(EndpointRecord, T)> {
        let r = self
            .inner
            .tracking
            .store()
            .get_endpoint(name)
            .await?
            .filter(|r| r.kind == kind)
            .ok_or_else(|| ServiceError::not_found(format!("{kind} endpoint '{name}' does not exist")))?;
        let doc = parse_doc(&format!("{kind} endpoint"), &r.document)?;
        Ok((r, doc))
    }

    /// Records a new endpoint; a taken name (of either kind) is refused.
    pub(crate) async fn insert_endpoint(&self, name: &str, kind: &str, document: String) -> Result<EndpointRecord> {
        let now = now_ms();
        let record =
            EndpointRecord { name: name.to_string(), kind: kind.into(), document, created_at: now, updated_at: now };
        self.inner.tracking.store().insert_endpoint(&record).await.map_err(|err| match err {
            kiln_store::StoreError::AlreadyExists(_) => {
                ServiceError::exists(format!("an endpoint named '{name}' already exists"))
            }
            other => other.into(),
        })?;
        Ok(record)
    }

    async fn deployment_names(&self, endpoint: &str) -> Result<Vec<String>> {
        Ok(self.inner.tracking.store().list_deployments(Some(endpoint)).await?.into_iter().map(|d| d.name).collect())
    }

    /// Rebuilds an endpoint's routing table from its document and the runtimes that are up.
    async fn refresh(&self, name: &str) -> Result<()> {
        let Some(r) = self.inner.tracking.store().get_endpoint(name).await? else {
            if let Ok(mut live) = self.inner.live.write() {
                live.remove(name);
            }
            return Ok(());
        };
        let doc: EndpointDocument = parse_doc("endpoint", &r.document)?;
        let records = self.inner.tracking.store().list_deployments(Some(name)).await?;
        let mut deployments = HashMap::new();
        let mut unavailable = HashMap::new();
        let runtimes = self.inner.runtimes.read().map(|m| m.clone()).unwrap_or_default();
        for d in records {
            match runtimes.get(&(name.to_string(), d.name.clone())) {
                Some((_, rt)) => {
                    deployments.insert(d.name.clone(), rt.clone());
                }
                None => {
                    let why = match d.state.as_str() {
                        state::FAILED => format!("it failed: {}", d.message.unwrap_or_default()),
                        other => format!("it is not ready yet ({other})"),
                    };
                    unavailable.insert(d.name.clone(), why);
                }
            }
        }
        let live = Arc::new(LiveEndpoint::new(name, &doc, deployments, unavailable));
        if let Ok(mut map) = self.inner.live.write() {
            map.insert(name.to_string(), live);
        }
        Ok(())
    }

    pub async fn create_endpoint(&self, req: EndpointCreate) -> Result<EndpointView> {
        let (e, _warnings) =
            kiln_spec::read_str(&req.source, &req.spec, &req.overrides, spec::online_endpoint).map_err(invalid)?;
        let _guard = self.inner.control.lock().await;
        let traffic = e.traffic.unwrap_or_default();
        let mirror = e.mirror_traffic.unwrap_or_default();
        check_routing(&traffic, &mirror, &[])?;
        let doc = EndpointDocument {
            auth_mode: e.auth_mode.as_str().into(),
            description: e.description,
            tags: e.tags,
            traffic,
            mirror_traffic: mirror,
            keys: auth::Keys::generate(),
        };
        let record = self.insert_endpoint(&e.name, "online", to_json(&doc)).await?;
        self.refresh(&e.name).await?;
        Ok(endpoint_view(&record, &doc))
    }

    pub async fn get_endpoint(&self, name: &str) -> Result<EndpointView> {
        let (r, doc) = self.endpoint_record(name).await?;
        Ok(endpoint_view(&r, &doc))
    }

    pub async fn list_endpoints(&self) -> Result<Vec<EndpointView>> {
        let mut out = Vec::new();
        for r in self.inner.tracking.store().list_endpoints(Some("online")).await? {
            let doc: EndpointDocument = parse_doc("endpoint", &r.document)?;
            out.push(endpoint_view(&r, &doc));
        }
        Ok(out)
    }

    pub async fn update_endpoint(&self, name: &str, req: EndpointUpdate) -> Result<EndpointView> {
        let _guard = self.inner.control.lock().await;
        let (mut r, mut doc) = self.endpoint_record(name).await?;
        if let Some(s) = req.spec {
            let (e, _) =
                kiln_spec::read_str(&s.source, &s.spec, &s.overrides, spec::online_endpoint).map_err(invalid)?;
            if e.name != name {
                return Err(ServiceError::invalid(format!(
                    "name: the spec names endpoint '{}', not '{name}'; an endpoint cannot be renamed",
                    e.name
                )));
            }
            doc.auth_mode = e.auth_mode.as_str().into();
            doc.description = e.description;
            doc.tags = e.tags;
            if let Some(t) = e.traffic {
                doc.traffic = t;
            }
            if let Some(m) = e.mirror_traffic {
                doc.mirror_traffic = m;
            }
        }
        if let Some(t) = req.traffic {
            doc.traffic = t;
        }
        if let Some(m) = req.mirror_traffic {
            doc.mirror_traffic = m;
        }
        // Deployments left out of a split get none; zeros are not kept.
        doc.traffic.retain(|_, p| *p > 0);
        doc.mirror_traffic.retain(|_, p| *p > 0);
        check_routing(&doc.traffic, &doc.mirror_traffic, &self.deployment_names(name).await?)?;
        r.document = to_json(&doc);
        r.updated_at = now_ms();
        self.inner.tracking.store().update_endpoint(name, &r.document, r.updated_at).await?;
        self.refresh(name).await?;
        Ok(endpoint_view(&r, &doc))
    }

    pub async fn delete_endpoint(&self, name: &str) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        self.endpoint_record(name).await?;
        let deployments = self.deployment_names(name).await?;
        self.inner.tracking.store().delete_endpoint(name).await?;
        for d in deployments {
            self.drop_runtime(name, &d);
        }
        if let Ok(mut live) = self.inner.live.write() {
            live.remove(name);
        }
        self.inner.metrics.remove_endpoint(name);
        let _ = std::fs::remove_dir_all(self.inner.config.data_dir.join("endpoints").join(name));
        Ok(())
    }

    pub async fn credentials(&self, name: &str) -> Result<Credentials> {
        let (_, doc) = self.endpoint_record(name).await?;
        Ok(match doc.auth_mode.as_str() {
            "aml_token" => {
                let expiry = now_s() + auth::TOKEN_LIFETIME_S;
                Credentials::Token {
                    access_token: auth::token(&doc.keys, name, expiry),
                    token_type: "Bearer".into(),
                    expiry_time_utc: expiry,
                    refresh_after_time_utc: expiry - auth::TOKEN_LIFETIME_S / 2,
                }
            }
            _ => Credentials::Keys { primary_key: doc.keys.primary.clone(), secondary_key: doc.keys.secondary.clone() },
        })
    }

    /// Replaces the primary or secondary key (the other keeps working); for an `aml_token`
    /// endpoint, the secret its tokens are signed with.
    pub async fn regenerate_key(&self, name: &str, key_type: &str) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (r, mut doc) = self.endpoint_record(name).await?;
        if doc.auth_mode == "aml_token" {
            // A token endpoint has one signing secret: a new one revokes every token handed out.
            doc.keys.token_secret = auth::random_secret();
        } else {
            match key_type.to_ascii_lowercase().as_str() {
                "primary" => doc.keys.primary = auth::random_secret(),
                "secondary" => doc.keys.secondary = auth::random_secret(),
                other => {
                    return Err(ServiceError::invalid(format!(
                        "key_type: expected primary or secondary, found '{other}'"
                    )));
                }
            }
        }
        self.inner.tracking.store().update_endpoint(&r.name, &to_json(&doc), now_ms()).await?;
        self.refresh(name).await
    }

    fn deployment_view(&self, r: &DeploymentRecord, doc: &DeploymentDocument) -> DeploymentView {
        let runtime = self
            .inner
            .runtimes
            .read()
            .ok()
            .and_then(|m| m.get(&(r.endpoint.clone(), r.name.clone())).map(|(_, rt)| rt.clone()));
        let (inputs, ready) = match runtime.as_ref().map(|rt| &rt.runtime) {
            Some(Runtime::Onnx(m)) => (m.inputs(), doc.instance_count),
            Some(Runtime::Workers(pool)) => (Vec::new(), pool.ready()),
            None => (Vec::new(), 0),
        };
        DeploymentView {
            name: r.name.clone(),
            endpoint_name: r.endpoint.clone(),
            description: doc.description.clone(),
            tags: doc.tags.clone(),
            model: doc.model.clone(),
            scoring_script: doc.code.as_ref().map(|(_, s)| s.clone()),
            environment: doc.environment.clone(),
            runtime: doc.runtime.label().into(),
            instance_count: doc.instance_count,
            ready_instances: ready,
            request_settings: doc.request_settings,
            liveness_probe: doc.liveness_probe,
            readiness_probe: doc.readiness_probe,
            provisioning_state: r.state.clone(),
            message: r.message.clone(),
            inputs,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    pub async fn get_deployment(&self, endpoint: &str, name: &str) -> Result<DeploymentView> {
        self.endpoint_record(endpoint).await?;
        let r = self
            .inner
            .tracking
            .store()
            .get_deployment(endpoint, name)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("endpoint '{endpoint}' has no deployment '{name}'")))?;
        let doc = parse_doc("deployment", &r.document)?;
        Ok(self.deployment_view(&r, &doc))
    }

    pub async fn list_deployments(&self, endpoint: &str) -> Result<Vec<DeploymentView>> {
        self.endpoint_record(endpoint).await?;
        let mut out = Vec::new();
        for r in self.inner.tracking.store().list_deployments(Some(endpoint)).await? {
            let doc = parse_doc("deployment", &r.document)?;
            out.push(self.deployment_view(&r, &doc));
        }
        Ok(out)
    }

    /// Resolves what a deployment spec names: the model's files and the runtime they call for.
    async fn resolve_deployment(
        &self,
        d: &spec::OnlineDeployment,
        sent: &EndpointCreate,
        revision: u64,
    ) -> Result<DeploymentDocument> {
        let blobs = self.inner.tracking.blobs();
        let model = match d.model.as_ref().map(|m| &m.value) {
            None => None,
            Some(ModelSpec::Reference(reference)) => {
                let (asset, path) = self.inner.orchestrator.model_files(reference).await?.ok_or_else(|| {
                    ServiceError::invalid(format!(
                        "model: '{reference}' is not a model reference (azureml:<name>:<version> or azureml:<name>@latest)"
                    ))
                })?;
                Some(ModelBinding {
                    label: reference.clone(),
                    name: Some(asset.name),
                    version: Some(asset.version),
                    uri: format!("blob:{}", path.as_str()),
                })
            }
            Some(ModelSpec::Inline { path, .. }) => {
                if !path.starts_with("cas:") {
                    return Err(ServiceError::invalid(format!(
                        "model.path: '{path}' is a local path; `kiln online-deployment create` uploads it (the API \
                         takes uploaded snapshots, cas:<id>/<name>)"
                    )));
                }
                Some(ModelBinding { label: "inline".into(), name: None, version: None, uri: path.clone() })
            }
        };
        let code = d.code_configuration.as_ref().map(|c| (c.value.code.clone(), c.value.scoring_script.clone()));
        if let Some((uri, _)) = &code {
            if !uri.starts_with("cas:") {
                return Err(ServiceError::invalid(format!(
                    "code_configuration.code: '{uri}' is a local path; `kiln online-deployment create` uploads it (the \
                     API takes uploaded snapshots, cas:<id>)"
                )));
            }
            self.inner
                .orchestrator
                .check_snapshot_uri(uri)
                .await
                .map_err(|e| ServiceError::invalid(format!("code_configuration.code: {}", e.message)))?;
        }
        let files = match &model {
            Some(m) => Some(model_files(blobs, &m.uri).await?),
            None => None,
        };
        let runtime = match &files {
            Some(f) => runtime_for(blobs, f, code.is_some()).await?,
            None => RuntimeKind::ScoringScript,
        };
        let environment_plan = match (&runtime, &d.environment, &files) {
            (RuntimeKind::Onnx { .. }, _, _) => None,
            (_, Some(env), _) => {
                let (label, def) = self.inner.orchestrator.resolve_environment(&env.value, &sent.source).await?;
                Some(def.plan(&label))
            }
            (RuntimeKind::MlflowPyfunc, None, Some(f)) => {
                Some(mlflow_environment(blobs, f).await?.plan("the model's environment"))
            }
            _ => Some(kiln_orchestrator::EnvironmentDefinition::from_parts(None, None).plan("the host's Python")),
        };
        let s = d.request_settings;
        Ok(DeploymentDocument {
            revision,
            generation: uuid::Uuid::new_v4().simple().to_string(),
            spec: sent.spec.clone(),
            source: sent.source.clone(),
            description: d.description.clone(),
            tags: d.tags.clone(),
            model,
            code,
            environment: d.environment.as_ref().map(|e| match &e.value {
                kiln_spec::Environment::Reference(r) => r.clone(),
                kiln_spec::Environment::Inline(_) => "inline".into(),
            }),
            environment_plan,
            environment_variables: d.environment_variables.clone(),
            instance_count: d.instance_count,
            request_settings: RequestSettings {
                request_timeout_ms: s.request_timeout_ms,
                max_concurrent_requests_per_instance: s.max_concurrent_requests_per_instance,
                max_queue_wait_ms: s.max_queue_wait_ms,
            },
            liveness_probe: d.liveness_probe.into(),
            readiness_probe: d.readiness_probe.into(),
            runtime,
        })
    }

    /// Creates (`update: false`) or updates a deployment from its spec; it is provisioned in
    /// the background and the view returned says `Creating` or `Updating`.
    /// An update without a spec changes the stored one with its overrides
    /// (`--set instance_count=2`).
    pub async fn put_deployment(&self, endpoint: &str, req: DeploymentCreate, update: bool) -> Result<DeploymentView> {
        let _guard = self.inner.control.lock().await;
        self.endpoint_record(endpoint).await?;
        let mut s = req.spec.clone();
        if s.spec.trim().is_empty() {
            if !update {
                return Err(ServiceError::invalid("spec: the deployment's YAML is missing"));
            }
            let name = s.overrides.iter().rev().find_map(|o| o.strip_prefix("name=")).unwrap_or_default().to_string();
            let stored =
                self.inner.tracking.store().get_deployment(endpoint, &name).await?.ok_or_else(|| {
                    ServiceError::not_found(format!("endpoint '{endpoint}' has no deployment '{name}'"))
                })?;
            let stored = parse_doc::<DeploymentDocument>("deployment", &stored.document)?;
            s.spec = stored.spec;
            s.source = stored.source;
        }
        let (d, _) = kiln_spec::read_str(&s.source, &s.spec, &s.overrides, spec::online_deployment).map_err(invalid)?;
        if d.endpoint_name != endpoint {
            return Err(ServiceError::invalid(format!(
                "endpoint_name: the spec names endpoint '{}', not '{endpoint}'",
                d.endpoint_name
            )));
        }
        let store = self.inner.tracking.store();
        let existing = store.get_deployment(endpoint, &d.name).await?;
        let revision = match (&existing, update) {
            (Some(_), false) => {
                return Err(ServiceError::exists(format!(
                    "endpoint '{endpoint}' already has a deployment '{}'; change it with `kiln online-deployment update`",
                    d.name
                )));
            }
            (None, true) => {
                return Err(ServiceError::not_found(format!("endpoint '{endpoint}' has no deployment '{}'", d.name)));
            }
            (Some(r), true) => parse_doc::<DeploymentDocument>("deployment", &r.document)?.revision + 1,
            (None, false) => 1,
        };
        let doc = self.resolve_deployment(&d, &s, revision).await?;
        let now = now_ms();
        let record = DeploymentRecord {
            endpoint: endpoint.to_string(),
            name: d.name.clone(),
            document: to_json(&doc),
            state: if update { state::UPDATING } else { state::CREATING }.into(),
            message: None,
            created_at: existing.as_ref().map_or(now, |r| r.created_at),
            updated_at: now,
        };
        store.put_deployment(&record).await?;
        self.log(
            endpoint,
            &d.name,
            &format!("{} revision {revision}", if update { "updating to" } else { "creating" }),
        );
        if !update {
            self.refresh(endpoint).await?;
        }
        let me = self.clone();
        let (ep, name, all_traffic) = (endpoint.to_string(), d.name.clone(), req.all_traffic);
        tokio::spawn(async move { me.provision(&ep, &name, doc, all_traffic).await });
        Ok(self.deployment_view(&record, &parse_doc("deployment", &record.document)?))
    }

    /// Builds a deployment's runtime and puts it in service (or records why it failed).
    async fn provision(&self, endpoint: &str, name: &str, doc: DeploymentDocument, all_traffic: bool) {
        let built = self.build_runtime(endpoint, name, &doc).await;
        let _guard = self.inner.control.lock().await;
        let store = self.inner.tracking.store();
        // A newer revision (or a delete) came in meanwhile: this one is out of date.
        // Compared by generation, not revision: a deployment deleted and created again starts
        // at revision 1 again, and a build of the deleted one must not come back.
        let current = match store.get_deployment(endpoint, name).await {
            Ok(Some(r)) => parse_doc::<DeploymentDocument>("deployment", &r.document).map(|d| d.generation).ok(),
            _ => None,
        };
        if current.as_deref() != Some(doc.generation.as_str()) {
            return;
        }
        match built {
            Ok((runtime, loaded)) => {
                self.log(endpoint, name, &loaded);
                let rt = self.live_deployment(endpoint, name, &doc, runtime);
                rt.metrics.ready_instances.set(doc.instance_count as i64);
                if let Ok(mut map) = self.inner.runtimes.write() {
                    map.insert((endpoint.to_string(), name.to_string()), (doc.revision, Arc::new(rt)));
                }
                let _ = store.set_deployment_state(endpoint, name, state::SUCCEEDED, None, now_ms()).await;
                self.log(endpoint, name, &format!("revision {} is serving", doc.revision));
                if all_traffic && let Ok((_, mut ep)) = self.endpoint_record(endpoint).await {
                    ep.traffic = BTreeMap::from([(name.to_string(), 100)]);
                    ep.mirror_traffic.remove(name);
                    let _ = store.update_endpoint(endpoint, &to_json(&ep), now_ms()).await;
                }
            }
            Err(e) => {
                let serving_old = self
                    .inner
                    .runtimes
                    .read()
                    .map(|m| m.contains_key(&(endpoint.into(), name.into())))
                    .unwrap_or(false);
                let message =
                    if serving_old { format!("{e}; the previous revision keeps serving") } else { e.to_string() };
                self.log(endpoint, name, &format!("revision {} failed: {message}", doc.revision));
                let _ = store.set_deployment_state(endpoint, name, state::FAILED, Some(&message), now_ms()).await;
            }
        }
        let _ = self.refresh(endpoint).await;
    }

    /// Builds the runtime of a deployment; also says what was loaded, for its log.
    async fn build_runtime(&self, endpoint: &str, name: &str, doc: &DeploymentDocument) -> Result<(Runtime, String)> {
        let blobs = self.inner.tracking.blobs();
        let runtime = match &doc.runtime {
            RuntimeKind::Onnx { file } => {
                let model =
                    doc.model.as_ref().ok_or_else(|| ServiceError::invalid("an ONNX deployment needs a model"))?;
                let files = model_files(blobs, &model.uri).await?;
                let f =
                    files.files.iter().find(|f| f.path == *file).ok_or_else(|| {
                        ServiceError::invalid(format!("model: {file} is gone from the model's files"))
                    })?;
                let bytes =
                    blobs.get_bytes(&f.stored).await.map_err(|e| ServiceError::internal(e.to_string()))?.ok_or_else(
                        || ServiceError::invalid(format!("model: {file} is gone from the artifact store")),
                    )?;
                let loaded = tokio::task::spawn_blocking(move || OnnxModel::load(&bytes))
                    .await
                    .map_err(|e| ServiceError::internal(e.to_string()))?
                    .map_err(|e| ServiceError::invalid(format!("model {file}: {e}")))?;
                let inputs: Vec<String> =
                    loaded.inputs().iter().map(|i| format!("{} {} {}", i.name, i.dtype, i.shape_text())).collect();
                (Runtime::Onnx(Arc::new(loaded)), format!("loaded {file} with tract: inputs {}", inputs.join(", ")))
            }
            kind @ (RuntimeKind::MlflowPyfunc | RuntimeKind::ScoringScript) => {
                let model = match &doc.model {
                    Some(m) => {
                        let files = model_files(blobs, &m.uri).await?;
                        let name = m.name.clone().unwrap_or_else(|| files.root_name.clone());
                        Some((m.uri.clone(), files.is_file, name, m.version.clone().unwrap_or_else(|| "1".into())))
                    }
                    None => None,
                };
                let environment = doc
                    .environment_plan
                    .clone()
                    .ok_or_else(|| ServiceError::internal("the deployment's environment was not resolved"))?;
                let env_label = environment.label.clone();
                let config = &self.inner.config;
                let spec = WorkerSpec {
                    label: format!("deployment '{name}' of '{endpoint}'"),
                    dir: config
                        .data_dir
                        .join("endpoints")
                        .join(endpoint)
                        .join(name)
                        .join("workers")
                        .join(&doc.generation),
                    exe: config.exe.clone(),
                    cache_dir: config.cache_dir.clone(),
                    artifact_store: config.artifact_store.clone(),
                    artifacts_dest: format!("blob:endpoints/{endpoint}/{name}/instances/{}", doc.generation),
                    mode: if matches!(kind, RuntimeKind::MlflowPyfunc) { "mlflow" } else { "script" },
                    model,
                    code: doc.code.clone(),
                    environment,
                    env: doc.environment_variables.clone(),
                    instances: doc.instance_count,
                    workers_per_instance: worker_count(&doc.environment_variables)?,
                    liveness: doc.liveness_probe,
                    readiness: doc.readiness_probe,
                };
                let pool = WorkerPool::start(spec).await.map_err(ServiceError::invalid)?;
                let what = format!(
                    "{} instance(s) of the {} runtime are ready (environment: {env_label})",
                    doc.instance_count,
                    kind.label()
                );
                (Runtime::Workers(pool), what)
            }
        };
        Ok(runtime)
    }

    fn live_deployment(
        &self,
        endpoint: &str,
        name: &str,
        doc: &DeploymentDocument,
        runtime: Runtime,
    ) -> LiveDeployment {
        let s = doc.request_settings;
        let slots = doc
            .instance_count
            .saturating_mul(s.max_concurrent_requests_per_instance)
            .clamp(1, Semaphore::MAX_PERMITS as u64) as usize;
        LiveDeployment {
            name: name.to_string(),
            runtime,
            slots: Arc::new(Semaphore::new(slots)),
            queue_wait: Duration::from_millis(s.max_queue_wait_ms),
            timeout: Duration::from_millis(s.request_timeout_ms),
            metrics: self.inner.metrics.deployment(endpoint, name),
        }
    }

    fn drop_runtime(&self, endpoint: &str, name: &str) {
        if let Ok(mut map) = self.inner.runtimes.write() {
            map.remove(&(endpoint.to_string(), name.to_string()));
        }
        self.inner.metrics.remove(endpoint, name);
    }

    /// Deletes a deployment; one that still gets traffic is refused (set it to 0 first).
    pub async fn delete_deployment(&self, endpoint: &str, name: &str) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (_, doc) = self.endpoint_record(endpoint).await?;
        let store = self.inner.tracking.store();
        if store.get_deployment(endpoint, name).await?.is_none() {
            return Err(ServiceError::not_found(format!("endpoint '{endpoint}' has no deployment '{name}'")));
        }
        if doc.traffic.get(name).copied().unwrap_or(0) > 0 || doc.mirror_traffic.get(name).copied().unwrap_or(0) > 0 {
            return Err(ServiceError::invalid(format!(
                "deployment '{name}' still gets traffic; set its traffic to 0 first \
                 (kiln online-endpoint update -n {endpoint} --traffic \"{name}=0 …\")"
            )));
        }
        store.delete_deployment(endpoint, name).await?;
        self.drop_runtime(endpoint, name);
        let _ = std::fs::remove_dir_all(self.inner.config.data_dir.join("endpoints").join(endpoint).join(name));
        self.refresh(endpoint).await
    }

    /// The last `lines` lines of a deployment's log.
    pub async fn deployment_logs(&self, endpoint: &str, name: &str, lines: usize) -> Result<String> {
        self.get_deployment(endpoint, name).await?;
        let mut text = tokio::fs::read_to_string(self.log_path(endpoint, name)).await.unwrap_or_default();
        let runtime = self
            .inner
            .runtimes
            .read()
            .ok()
            .and_then(|m| m.get(&(endpoint.to_string(), name.to_string())).map(|(_, rt)| rt.clone()));
        if let Some(Runtime::Workers(pool)) = runtime.as_ref().map(|rt| &rt.runtime) {
            for (index, log) in pool.logs() {
                let worker = tokio::fs::read_to_string(&log).await.unwrap_or_default();
                for line in worker.lines() {
                    text.push_str(&format!("[{index}] {line}\n"));
                }
            }
        }
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        Ok(all[start..].iter().map(|l| format!("{l}\n")).collect())
    }

    /// Brings every online endpoint back after a restart: routing tables at once, deployments
    /// provisioned again in the background (a deployment that had failed stays failed).
    pub async fn start(&self) -> Result<()> {
        let store = self.inner.tracking.store();
        for e in store.list_endpoints(Some("online")).await? {
            self.refresh(&e.name).await?;
            for d in store.list_deployments(Some(&e.name)).await? {
                if d.state == state::FAILED {
                    continue;
                }
                let doc: DeploymentDocument = match parse_doc("deployment", &d.document) {
                    Ok(doc) => doc,
                    Err(err) => {
                        let _ = store
                            .set_deployment_state(&e.name, &d.name, state::FAILED, Some(&err.to_string()), now_ms())
                            .await;
                        continue;
                    }
                };
                self.log(&e.name, &d.name, &format!("restoring revision {} after a restart", doc.revision));
                let me = self.clone();
                let (ep, name) = (e.name.clone(), d.name.clone());
                tokio::spawn(async move { me.provision(&ep, &name, doc, false).await });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_checked_against_the_deployments() {
        let deps = vec!["blue".to_string(), "green".to_string()];
        let t = |pairs: &[(&str, u32)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>();
        assert!(check_routing(&t(&[("blue", 90), ("green", 10)]), &t(&[]), &deps).is_ok());
        assert!(check_routing(&t(&[("blue", 100)]), &t(&[("green", 10)]), &deps).is_ok());
        let e = check_routing(&t(&[("red", 100)]), &t(&[]), &deps).unwrap_err();
        assert!(e.message.contains("'red', which this endpoint does not have (it has blue, green)"), "{e}");
        let e = check_routing(&t(&[("blue", 100)]), &t(&[("blue", 10)]), &deps).unwrap_err();
        assert!(e.message.contains("cannot also get mirror traffic"), "{e}");
        assert!(check_routing(&t(&[("blue", 50)]), &t(&[]), &deps).is_err());
    }
}
