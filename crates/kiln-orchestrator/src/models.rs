//! Model assets: versions of the MLflow registry's registered models, created from a folder or
//! file (`kiln model create`), a run's artifacts, a job output or a datastore path.
//!
//! There is one registry: a model created here is the registered model `mlflow` sees, and a
//! model logged with `registered_model_name=` is an asset here. Uploaded files are copied out
//! of the content-addressed store to `models/<name>/<snapshot id>/<file or folder name>` so the
//! version's source is an ordinary artifact folder that MLflow's clients download, and the
//! same content always gets the same source. That source decides re-registration: the same
//! source under an existing version is accepted as it is, another one is refused. Archiving a
//! version moves it to MLflow's `Archived` stage.

use std::collections::BTreeMap;

use kiln_blobs::ArtifactPath;
use kiln_blobs::snapshot::{Snapshot, blob_path, manifest_path};
use kiln_registry::Version;
use kiln_tracking::{PROXY_SCHEME, ServiceError, Tag};
use serde::Serialize;

use crate::{Orchestrator, Result};

pub const MODEL_TYPES: [&str; 3] = ["custom_model", "mlflow_model", "triton_model"];
/// The tag that keeps a version's Azure ML model type.
pub const MODEL_TYPE_TAG: &str = "azureml.type";
const ARCHIVED_STAGE: &str = "Archived";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelAsset {
    pub name: String,
    pub version: String,
    #[serde(rename = "type")]
    pub model_type: String,
    /// The registry's source: `mlflow-artifacts:/…`, `runs:/…` or a URL.
    pub source: String,
    pub run_id: Option<String>,
    pub stage: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: i64,
    pub archived: bool,
}

#[derive(Debug, Clone, Default)]
pub struct NewModel {
    pub name: String,
    pub version: Option<String>,
    /// `custom_model` when left out.
    pub model_type: Option<String>,
    /// `cas:<snapshot>[/<sub path>]`, `runs:/<run>/<path>`, `azureml://jobs/…`,
    /// `azureml://datastores/…`, `blob:<path>`, `mlflow-artifacts:/…` or a URL.
    pub path: String,
    pub run_id: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

fn view(v: Version) -> ModelAsset {
    let mut tags: BTreeMap<String, String> = v.tags.into_iter().map(|t| (t.key, t.value)).collect();
    let model_type = tags.remove(MODEL_TYPE_TAG).unwrap_or_else(|| {
        // Versions logged through MLflow carry no Azure type; they are MLflow models.
        if v.model_id.is_some() || v.source.starts_with("runs:/") || v.source.starts_with("models:/") {
            "mlflow_model".into()
        } else {
            "custom_model".into()
        }
    });
    ModelAsset {
        name: v.name,
        version: v.version.to_string(),
        model_type,
        source: v.source,
        run_id: v.run_id,
        archived: v.current_stage == ARCHIVED_STAGE,
        stage: v.current_stage,
        description: v.description,
        tags,
        created_at: v.creation_timestamp,
    }
}

/// MLflow's filter string for one registered model's versions.
fn name_filter(name: &str) -> String {
    // A doubled quote stands for the quote itself in MLflow's filter grammar.
    format!("name = '{}'", name.replace('\'', "''"))
}

impl Orchestrator {
    pub async fn create_model(&self, m: NewModel) -> Result<ModelAsset> {
        let model_type = m.model_type.clone().unwrap_or_else(|| "custom_model".into());
        if !MODEL_TYPES.contains(&model_type.as_str()) {
            return Err(ServiceError::invalid(format!(
                "type '{model_type}': expected one of {}",
                MODEL_TYPES.join(", ")
            )));
        }
        if m.name.is_empty() {
            return Err(ServiceError::invalid("a model needs a name"));
        }
        let asked = match m.version.as_deref() {
            None | Some("") => None,
            Some(v) => Some(v.trim().parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ServiceError::invalid(format!(
                    "version '{v}': model versions are the registry's sequential numbers (1, 2, …); leave it out to get the next one"
                ))
            })?),
        };
        let (source, run_id) = self.model_source(&m, &model_type).await?;
        let registry = &self.inner.registry;
        if registry.get_registered_model(&m.name).await.is_err() {
            match registry.create_registered_model(&m.name, None, Vec::new(), None).await {
                Ok(_) => {}
                Err(e) if e.kind == kiln_tracking::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(v) = asked {
            let versions = self.model_versions(&m.name).await?;
            if let Some(existing) = versions.iter().find(|x| x.version == v) {
                if existing.source == source {
                    return Ok(view(existing.clone()));
                }
                return Err(ServiceError::exists(format!(
                    "model {}:{v} already exists with different content; register it under a new version \
                     (leave the version out to get the next one)",
                    m.name
                )));
            }
            let next = versions.iter().map(|x| x.version).max().unwrap_or(0) + 1;
            if v != next {
                return Err(ServiceError::invalid(format!(
                    "version '{v}': model versions are the registry's sequential numbers; the next version of {} is {next}",
                    m.name
                )));
            }
        }
        let mut tags = vec![Tag::new(MODEL_TYPE_TAG, model_type)];
        tags.extend(m.tags.into_iter().map(|(k, v)| Tag::new(k, v)));
        let version = registry
            .create_model_version(kiln_registry::NewVersionRequest {
                name: m.name.clone(),
                source,
                run_id,
                run_link: None,
                description: m.description,
                model_id: None,
                user_id: None,
                tags,
            })
            .await?;
        Ok(view(version))
    }

    /// Where a new version's files are, as the registry records it, and the run they came
    /// from.
    async fn model_source(&self, m: &NewModel, model_type: &str) -> Result<(String, Option<String>)> {
        let path = m.path.as_str();
        if let Some(rest) = path.strip_prefix("cas:") {
            let source = self.copy_snapshot_to_models(&m.name, path, rest, model_type).await?;
            return Ok((source, m.run_id.clone()));
        }
        if let Some(rest) = path.strip_prefix("runs:/") {
            let run = rest.split('/').next().unwrap_or("").to_string();
            self.inner.tracking.get_run_info(&run).await?;
            return Ok((path.to_string(), Some(run)));
        }
        if let Some(rest) = path.strip_prefix("azureml://jobs/") {
            // azureml://jobs/<job>/outputs/artifacts/paths/<p> is the run's own artifacts.
            let mut parts = rest.splitn(4, '/');
            let (job, kw, output, sub) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            if kw != "outputs" || job.is_empty() || output.is_empty() {
                return Err(ServiceError::invalid(format!(
                    "path: '{path}': expected azureml://jobs/<job>/outputs/<output>[/paths/<path>]"
                )));
            }
            let sub = sub.strip_prefix("paths/").unwrap_or(sub).trim_matches('/');
            if output == "artifacts" {
                self.inner.tracking.get_run_info(job).await?;
                return Ok((format!("runs:/{job}/{sub}").trim_end_matches('/').to_string(), Some(job.to_string())));
            }
            let record = self.get(job).await?;
            let out = record
                .outputs
                .get(output)
                .ok_or_else(|| ServiceError::invalid(format!("path: job '{job}' has no output '{output}'")))?;
            let blob = out.uri.strip_prefix("blob:").unwrap_or(&out.uri).trim_end_matches('/');
            let joined = if sub.is_empty() { blob.to_string() } else { format!("{blob}/{sub}") };
            return Ok((format!("{PROXY_SCHEME}/{joined}"), Some(job.to_string())));
        }
        if let Some(p) = crate::resolve::datastore_path(path) {
            return Ok((format!("{PROXY_SCHEME}/{p}"), m.run_id.clone()));
        }
        if let Some(p) = path.strip_prefix("blob:") {
            let p = ArtifactPath::parse(p).map_err(|e| ServiceError::invalid(format!("path: {e}")))?;
            return Ok((format!("{PROXY_SCHEME}/{}", p.as_str()), m.run_id.clone()));
        }
        if path.starts_with(PROXY_SCHEME) || path.contains("://") {
            return Ok((path.to_string(), m.run_id.clone()));
        }
        Err(ServiceError::invalid(format!(
            "path: '{path}' is not an uploaded snapshot (cas:), a run's artifacts (runs:/), a job output \
             (azureml://jobs/…), a datastore path (azureml://datastores/…) or a URL; local paths are uploaded by \
             `kiln model create`"
        )))
    }

    /// Copies the files of an uploaded snapshot (or of one file or folder in it) out of the
    /// content-addressed store into an ordinary artifact folder; returns its source URI.
    async fn copy_snapshot_to_models(&self, name: &str, uri: &str, rest: &str, model_type: &str) -> Result<String> {
        if let Err(why) = self.check_snapshot(uri, rest).await? {
            return Err(ServiceError::invalid(format!("path: {why}")));
        }
        let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let sub = sub.trim_matches('/');
        let blobs = &self.inner.blobs;
        let manifest = blobs
            .get_bytes(&manifest_path(id).map_err(|e| ServiceError::invalid(format!("path: {e}")))?)
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))?
            .ok_or_else(|| ServiceError::invalid(format!("path: snapshot {id} was never uploaded")))?;
        let snapshot: Snapshot = serde_json::from_slice(&manifest)
            .map_err(|e| ServiceError::internal(format!("snapshot {id} cannot be read: {e}")))?;
        let files: Vec<_> = snapshot
            .files
            .iter()
            .filter(|f| sub.is_empty() || f.path == sub || f.path.strip_prefix(sub).is_some_and(|r| r.starts_with('/')))
            .collect();
        if files.is_empty() {
            return Err(ServiceError::invalid(format!("path: '{uri}': the snapshot has no '{sub}'")));
        }
        let is_folder = !files.iter().any(|f| f.path == sub);
        if model_type == "mlflow_model" {
            let mlmodel = if sub.is_empty() { "MLmodel".to_string() } else { format!("{sub}/MLmodel") };
            if !is_folder || !files.iter().any(|f| f.path == mlmodel) {
                return Err(ServiceError::invalid(
                    "path: an mlflow_model is a folder with an MLmodel file at its top (what mlflow.*.save_model writes)",
                ));
            }
        }
        let base = ArtifactPath::parse(&format!("models/{name}/{id}"))
            .map_err(|e| ServiceError::invalid(format!("name: {e}")))?;
        let internal = |e: kiln_blobs::BlobError| ServiceError::internal(e.to_string());
        for f in &files {
            let dest = base.join(&f.path).map_err(internal)?;
            if blobs.size(&dest).await.map_err(internal)? == Some(f.size) {
                continue;
            }
            blobs.copy(&blob_path(&f.digest).map_err(internal)?, &dest).await.map_err(internal)?;
        }
        let target = if sub.is_empty() { base } else { base.join(sub).map_err(internal)? };
        Ok(format!("{PROXY_SCHEME}/{}", target.as_str()))
    }

    async fn model_versions(&self, name: &str) -> Result<Vec<Version>> {
        Ok(self.inner.registry.search_model_versions(Some(&name_filter(name)), &[], None, None).await?.items)
    }

    /// One version, or the latest that is not archived (`None` or `latest`).
    pub async fn get_model(&self, name: &str, version: Option<&str>) -> Result<ModelAsset> {
        match version.filter(|v| *v != "latest") {
            Some(v) => Ok(view(self.inner.registry.get_model_version(name, v).await?)),
            None => self
                .model_versions(name)
                .await?
                .into_iter()
                .filter(|v| v.current_stage != ARCHIVED_STAGE)
                .max_by_key(|v| v.version)
                .map(view)
                .ok_or_else(|| ServiceError::not_found(format!("model {name}@latest does not exist"))),
        }
    }

    /// Versions (of one name, or of every model), newest first per name; `archived` as for
    /// data assets (`Some(false)` leaves archived versions out, `None` keeps all).
    pub async fn list_models(&self, name: Option<&str>, archived: Option<bool>) -> Result<Vec<ModelAsset>> {
        let mut versions = match name {
            Some(n) => self.model_versions(n).await?,
            None => self.inner.registry.search_model_versions(None, &[], None, None).await?.items,
        };
        versions.sort_by(|a, b| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
        Ok(versions.into_iter().map(view).filter(|m| archived.is_none_or(|want| m.archived == want)).collect())
    }

    /// Moves one version (or every version) to the `Archived` stage, or back to `None`.
    pub async fn set_model_archived(&self, name: &str, version: Option<&str>, archived: bool) -> Result<()> {
        let targets = match version {
            Some(v) => vec![self.inner.registry.get_model_version(name, v).await?],
            None => self.model_versions(name).await?,
        };
        if targets.is_empty() {
            return Err(ServiceError::not_found(format!("model {name} does not exist")));
        }
        let stage = if archived { ARCHIVED_STAGE } else { "None" };
        for v in targets {
            // Restoring leaves a version that was never archived in its stage.
            if archived || v.current_stage == ARCHIVED_STAGE {
                self.inner.registry.transition_stage(name, &v.version.to_string(), stage, false).await?;
            }
        }
        Ok(())
    }

    /// A model reference (`azureml:name:version`, `name@latest`, …): the version and where its
    /// files are in the artifact store (a file, or a folder). `None` when it does not look
    /// like one.
    pub async fn model_files(&self, reference: &str) -> Result<Option<(ModelAsset, ArtifactPath)>> {
        let Some(kiln_spec::reference::AssetRef { name, version }) =
            kiln_spec::reference::asset_reference(reference, false)
        else {
            return Ok(None);
        };
        let model = self.get_model(name, version).await?;
        let uri = self.inner.registry.download_uri(name, &model.version).await?;
        let path = kiln_tracking::proxy_path(&uri).ok_or_else(|| {
            ServiceError::invalid(format!(
                "model {name}:{} keeps its files outside the workspace store ({uri})",
                model.version
            ))
        })?;
        Ok(Some((model, path)))
    }

    /// A model reference as a job input names it (`azureml:name:version`, `name@latest`, …):
    /// the artifact-store folder of the version's files. `None` when it does not look like one.
    pub(crate) async fn model_reference(&self, reference: &str) -> Result<Option<String>> {
        let Some((_, path)) = self.model_files(reference).await? else { return Ok(None) };
        // A model that is one file is given to the job as the folder holding it, as a
        // deployment's AZUREML_MODEL_DIR holds it.
        let is_file = self.inner.blobs.size(&path).await.map_err(|e| ServiceError::internal(e.to_string()))?.is_some();
        let folder = match path.as_str().rsplit_once('/') {
            Some((parent, _)) if is_file => parent.to_string(),
            _ => path.as_str().to_string(),
        };
        Ok(Some(format!("blob:{folder}")))
    }

    /// A model output of a completed job becomes a version of a registered model whose source
    /// is the output's folder.
    pub(crate) async fn register_model_output(
        &self,
        job: &str,
        key: &str,
        name: &str,
        out: &crate::JobOutput,
    ) -> Result<()> {
        self.create_model(NewModel {
            name: name.to_string(),
            version: out.asset_version.clone(),
            model_type: Some(out.data_type.clone()),
            path: out.uri.clone(),
            run_id: Some(job.to_string()),
            description: Some(format!("output '{key}' of job {job}")),
            tags: BTreeMap::new(),
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filters_quote_the_name() {
        assert_eq!(name_filter("a'b"), "name = 'a''b'");
    }
}
