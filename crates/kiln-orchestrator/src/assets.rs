//! Versioned data and environment assets, and job outputs registered as data or models
//! (models live in the MLflow registry: `models.rs`).
//!
//! A version's content hash decides re-registration: the same content under an existing
//! version is accepted as it is, other content is refused. Data is identified by its type and
//! URI (local uploads are content-addressed `cas:` snapshots, so the URI is the content);
//! environments by what they install.

use std::collections::BTreeMap;

use kiln_store::{AssetCreated, AssetRecord};
use kiln_tracking::ServiceError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::environments::EnvironmentDefinition;
use crate::{Orchestrator, Result};

pub const DATA_TYPES: [&str; 3] = ["uri_file", "uri_folder", "mltable"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataAsset {
    pub name: String,
    pub version: String,
    #[serde(rename = "type")]
    pub data_type: String,
    /// `cas:…`, `blob:…` or a URL.
    pub uri: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: i64,
    pub archived: bool,
}

#[derive(Debug, Clone, Default)]
pub struct NewData {
    pub name: String,
    pub version: Option<String>,
    pub data_type: String,
    pub path: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentAsset {
    pub name: String,
    pub version: String,
    pub definition: EnvironmentDefinition,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: i64,
    pub archived: bool,
}

#[derive(Debug, Clone, Default)]
pub struct NewEnvironment {
    pub name: String,
    pub version: Option<String>,
    pub image: Option<String>,
    /// A conda spec (YAML or JSON text).
    pub conda_file: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// What the `spec` column of a data asset holds.
#[derive(Serialize, Deserialize)]
struct DataSpec {
    #[serde(rename = "type")]
    data_type: String,
    uri: String,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// An environment asset's `spec`: the definition (what jobs read) and its description.
#[derive(Serialize, Deserialize)]
struct EnvironmentSpec {
    #[serde(flatten)]
    definition: EnvironmentDefinition,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

pub(crate) fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(format!("{kind} name '{name}': use letters, digits, '-', '_' and '.'")))
    }
}

pub(crate) fn check_version(version: Option<&str>) -> Result<()> {
    match version {
        Some(v) if v.is_empty() || v == "latest" || v.contains(['/', ':', '@']) => {
            Err(ServiceError::invalid(format!("version '{v}' is not allowed")))
        }
        _ => Ok(()),
    }
}

pub(crate) fn content_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

pub(crate) fn created(kind: &str, result: AssetCreated) -> Result<AssetRecord> {
    match result {
        AssetCreated::New(r) | AssetCreated::Same(r) => Ok(r),
        AssetCreated::Conflict(r) => Err(ServiceError::exists(format!(
            "{kind} {}:{} already exists with different content; register it under a new version (--set version=N)",
            r.name, r.version
        ))),
    }
}

fn data_view(r: AssetRecord) -> Result<DataAsset> {
    let spec: DataSpec = serde_json::from_str(&r.spec).map_err(|e| ServiceError::internal(e.to_string()))?;
    Ok(DataAsset {
        name: r.name,
        version: r.version,
        data_type: spec.data_type,
        uri: spec.uri,
        description: spec.description,
        tags: spec.tags,
        created_at: r.created_at,
        archived: r.archived,
    })
}

fn environment_view(r: AssetRecord) -> Result<EnvironmentAsset> {
    let spec: EnvironmentSpec = serde_json::from_str(&r.spec).map_err(|e| ServiceError::internal(e.to_string()))?;
    Ok(EnvironmentAsset {
        name: r.name,
        version: r.version,
        definition: spec.definition,
        description: spec.description,
        tags: spec.tags,
        created_at: r.created_at,
        archived: r.archived,
    })
}

impl Orchestrator {
    /// Whether the snapshot a `cas:` URI (`rest` after the scheme) names was uploaded; the
    /// inner error says what is wrong, for the caller to place.
    pub(crate) async fn check_snapshot(&self, uri: &str, rest: &str) -> Result<std::result::Result<(), String>> {
        let id = rest.split('/').next().unwrap_or(rest);
        let Ok(manifest) = kiln_blobs::snapshot::manifest_path(id) else {
            return Ok(Err(format!("'{uri}' is not a snapshot id")));
        };
        if self.inner.blobs.size(&manifest).await?.is_none() {
            return Ok(Err(format!("snapshot {id} was never uploaded")));
        }
        Ok(Ok(()))
    }

    /// A data URI the workspace can read: an uploaded snapshot, a datastore path, a URL.
    pub(crate) async fn data_uri(&self, path: &str) -> Result<String> {
        if let Some(rest) = path.strip_prefix("cas:") {
            return match self.check_snapshot(path, rest).await? {
                Ok(()) => Ok(path.to_string()),
                Err(why) => Err(ServiceError::invalid(format!("path: {why}"))),
            };
        }
        if path.starts_with("blob:") || path.starts_with("http://") || path.starts_with("https://") {
            return Ok(path.to_string());
        }
        if let Some(p) = crate::resolve::datastore_path(path) {
            return Ok(format!("blob:{p}"));
        }
        Err(ServiceError::invalid(format!(
            "path: '{path}' is not an uploaded snapshot (cas:), a datastore path (azureml://datastores/…) or a URL; \
             local paths are uploaded by `kiln data create`"
        )))
    }

    pub async fn create_data(&self, d: NewData) -> Result<DataAsset> {
        check_name("data", &d.name)?;
        check_version(d.version.as_deref())?;
        if !DATA_TYPES.contains(&d.data_type.as_str()) {
            return Err(ServiceError::invalid(format!(
                "type '{}': expected one of {}",
                d.data_type,
                DATA_TYPES.join(", ")
            )));
        }
        let uri = self.data_uri(&d.path).await?;
        let hash = content_hash(&[&d.data_type, &uri]);
        let spec = DataSpec { data_type: d.data_type, uri, description: d.description, tags: d.tags };
        let text = serde_json::to_string(&spec).map_err(|e| ServiceError::internal(e.to_string()))?;
        let result = self.store().create_asset("data", &d.name, d.version.as_deref(), &hash, &text).await?;
        data_view(created("data", result)?)
    }

    /// One version, or the latest (`None` or `latest`).
    pub async fn get_data(&self, name: &str, version: Option<&str>) -> Result<DataAsset> {
        data_view(self.asset("data", name, version).await?)
    }

    pub async fn list_data(&self, name: Option<&str>, archived: Option<bool>) -> Result<Vec<DataAsset>> {
        self.store().list_assets("data", name, archived).await?.into_iter().map(data_view).collect()
    }

    pub async fn create_environment(&self, e: NewEnvironment) -> Result<EnvironmentAsset> {
        check_name("environment", &e.name)?;
        check_version(e.version.as_deref())?;
        let conda = match &e.conda_file {
            None => None,
            Some(text) => {
                let node = match kiln_spec::yaml::parse(text) {
                    Ok(Some(n)) => n,
                    Ok(None) => return Err(ServiceError::invalid("conda_file: the conda file is empty")),
                    Err(err) => {
                        return Err(ServiceError::invalid(format!(
                            "conda_file:{}:{}: invalid YAML: {}",
                            err.pos.line, err.pos.col, err.message
                        )));
                    }
                };
                let req = kiln_spec::conda::python_requirements(&node)
                    .map_err(|m| ServiceError::invalid(format!("conda_file: {m}")))?;
                Some((node, req))
            }
        };
        if e.image.is_none() && conda.is_none() {
            return Err(ServiceError::invalid("an environment needs an image or a conda_file"));
        }
        let definition =
            EnvironmentDefinition::from_parts(e.image.clone(), conda.as_ref().map(|(n, r)| (n, r.clone())));
        let hash = content_hash(&[&definition.hash(), e.image.as_deref().unwrap_or("")]);
        let spec = EnvironmentSpec { definition, description: e.description, tags: e.tags };
        let text = serde_json::to_string(&spec).map_err(|err| ServiceError::internal(err.to_string()))?;
        let result = self.store().create_asset("environment", &e.name, e.version.as_deref(), &hash, &text).await?;
        environment_view(created("environment", result)?)
    }

    pub async fn get_environment(&self, name: &str, version: Option<&str>) -> Result<EnvironmentAsset> {
        environment_view(self.asset("environment", name, version).await?)
    }

    pub async fn list_environments(&self, name: Option<&str>, archived: Option<bool>) -> Result<Vec<EnvironmentAsset>> {
        self.store().list_assets("environment", name, archived).await?.into_iter().map(environment_view).collect()
    }

    /// Archives (or restores) one version, or every version of a name. Archived versions are
    /// left out of lists and of `@latest`, and can still be used by version.
    pub async fn set_asset_archived(
        &self,
        kind: &str,
        name: &str,
        version: Option<&str>,
        archived: bool,
    ) -> Result<()> {
        let n = self.store().set_asset_archived(kind, name, version, archived).await?;
        if n == 0 {
            let what = version.map(|v| format!("{name}:{v}")).unwrap_or_else(|| name.to_string());
            return Err(ServiceError::not_found(format!("{kind} {what} does not exist")));
        }
        Ok(())
    }

    pub(crate) async fn asset(&self, kind: &str, name: &str, version: Option<&str>) -> Result<AssetRecord> {
        let record = match version.filter(|v| *v != "latest") {
            Some(v) => self.store().get_asset(kind, name, v).await?,
            None => self.store().latest_asset(kind, name).await?,
        };
        record.ok_or_else(|| {
            let what = version.map(|v| format!("{name}:{v}")).unwrap_or_else(|| format!("{name}@latest"));
            ServiceError::not_found(format!("{kind} {what} does not exist"))
        })
    }

    /// A data reference as a job input names it: `azureml:name:version`, `azureml:name@latest`,
    /// or the same without the prefix. `None` when it does not look like one.
    pub(crate) async fn data_reference(&self, reference: &str) -> Result<Option<DataAsset>> {
        let Some(r) = kiln_spec::reference::asset_reference(reference, false) else { return Ok(None) };
        self.get_data(r.name, r.version).await.map(Some)
    }

    /// Registers the outputs of a completed job that carry an asset name.
    pub(crate) async fn register_job_outputs(
        &self,
        job: &str,
        outputs: &BTreeMap<String, crate::JobOutput>,
    ) -> Result<()> {
        for (key, out) in outputs {
            let Some(name) = &out.asset_name else { continue };
            if DATA_TYPES.contains(&out.data_type.as_str()) {
                let mut tags = BTreeMap::new();
                tags.insert("azureml.job".to_string(), job.to_string());
                tags.insert("azureml.output".to_string(), key.clone());
                self.create_data(NewData {
                    name: name.clone(),
                    version: out.asset_version.clone(),
                    data_type: out.data_type.clone(),
                    path: out.uri.clone(),
                    description: Some(format!("output '{key}' of job {job}")),
                    tags,
                })
                .await?;
            } else if crate::models::MODEL_TYPES.contains(&out.data_type.as_str()) {
                self.register_model_output(job, key, name, out).await?;
            }
        }
        Ok(())
    }
}
