//! Kiln's model registry service: registered models, numbered versions, stages, aliases and
//! tags, with MLflow's rules and messages. Plain Rust, no wire formats.

use kiln_store::{ModelVersion, NewModelVersion, Op, RegisteredModel, STAGES, Search, Store, StoreError, Tag, Target};
use kiln_tracking::search::{MODEL_VERSIONS, REGISTERED_MODELS, parse_filter, parse_order_by};
use kiln_tracking::validate::{MAX_REGISTRY_TAG_VAL_LENGTH, truncate, validate_key};
use kiln_tracking::{Paged, Result, ServiceError, Tracking, decode_page_token};

pub use kiln_store::{ModelVersion as Version, RegisteredModel as Model};

/// The tag MLflow's prompt registry puts on registered models that hold prompts.
const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// A request for a new model version: the store's own plain type, checked here first.
pub use kiln_store::NewModelVersion as NewVersionRequest;

#[derive(Clone)]
pub struct Registry {
    store: Store,
    tracking: Tracking,
}

fn validate_model_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(ServiceError::missing("name"));
    }
    if name.contains('/') || name.contains(':') {
        return Err(ServiceError::invalid(format!(
            "Invalid name: '{name}'. Registered model names cannot contain '/' or ':'."
        )));
    }
    if name == "." || name == ".." || name.contains("../") {
        return Err(ServiceError::invalid(format!("Invalid name: '{name}'. Names cannot be path-like.")));
    }
    Ok(())
}

fn parse_version(version: &str) -> Result<i64> {
    if version.is_empty() {
        return Err(ServiceError::missing("version"));
    }
    version
        .trim()
        .parse::<i64>()
        .map_err(|_| ServiceError::invalid(format!("Parameter 'version' must be an integer, got '{version}'.")))
}

/// Canonical stage spelling (`staging` → `Staging`), or an error naming the valid ones.
pub fn canonical_stage(stage: &str) -> Result<&'static str> {
    STAGES.iter().find(|s| s.eq_ignore_ascii_case(stage)).copied().ok_or_else(|| {
        ServiceError::invalid(format!(
            "Invalid Model Version stage: {stage}. Value must be one of {}.",
            STAGES.join(", ")
        ))
    })
}

fn validate_alias(alias: &str) -> Result<()> {
    if alias.is_empty() {
        return Err(ServiceError::missing("alias"));
    }
    let well_formed = alias.len() <= 255 && alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if !well_formed {
        return Err(ServiceError::invalid(format!(
            "Invalid alias name: '{alias}'. Aliases may only contain alphanumerics, underscores and dashes, and be at \
             most 255 characters long."
        )));
    }
    let lower = alias.to_ascii_lowercase();
    let reserved = lower == "latest"
        || (lower.len() > 1 && lower.starts_with('v') && lower[1..].chars().all(|c| c.is_ascii_digit()));
    if reserved {
        return Err(ServiceError::invalid(format!(
            "Invalid alias name: '{alias}'. Aliases cannot be 'latest' or of the form 'v<number>'."
        )));
    }
    Ok(())
}

impl Registry {
    pub fn new(tracking: Tracking) -> Registry {
        Registry { store: tracking.store().clone(), tracking }
    }

    pub async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: Vec<Tag>,
        user_id: Option<&str>,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        let tags = checked_tags(tags)?;
        match self.store.create_registered_model(name, description, user_id, &tags).await {
            Err(StoreError::AlreadyExists(_)) => {
                return Err(ServiceError::exists(format!("Registered Model (name={name}) already exists.")));
            }
            other => other?,
        }
        self.get_registered_model(name).await
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        if name.is_empty() {
            return Err(ServiceError::missing("name"));
        }
        self.store
            .get_registered_model(name)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("Registered Model with name={name} not found")))
    }

    pub async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        validate_model_name(new_name)?;
        self.get_registered_model(name).await?;
        match self.store.rename_registered_model(name, new_name).await {
            Err(StoreError::AlreadyExists(_)) => {
                return Err(ServiceError::exists(format!("Registered Model (name={new_name}) already exists.")));
            }
            other => other?,
        }
        self.get_registered_model(new_name).await
    }

    pub async fn update_registered_model(&self, name: &str, description: Option<&str>) -> Result<RegisteredModel> {
        self.get_registered_model(name).await?;
        self.store.update_registered_model(name, description).await?;
        self.get_registered_model(name).await
    }

    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        self.get_registered_model(name).await?;
        Ok(self.store.delete_registered_model(name).await?)
    }

    pub async fn search_registered_models(
        &self,
        filter: Option<&str>,
        order_by: &[String],
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Paged<RegisteredModel>> {
        let limit = max_results.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::invalid(format!(
                "Invalid value for request parameter max_results. It must be at most 1000, but got value {limit}"
            )));
        }
        let mut clauses = parse_filter(filter.unwrap_or(""), &REGISTERED_MODELS)?;
        // MLflow's clients always add this clause; models without the tag must still match.
        for c in &mut clauses {
            if c.target == Target::Tag(PROMPT_TAG.into()) && c.op == Op::Ne {
                c.op = Op::NeOrMissing;
            }
        }
        let search = Search {
            clauses,
            order_by: parse_order_by(order_by, &REGISTERED_MODELS)?,
            offset: decode_page_token(page_token)?,
            limit,
            ..Default::default()
        };
        Ok(self.store.search_registered_models(&search).await?.into())
    }

    pub async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        validate_key(key, "key")?;
        self.get_registered_model(name).await?;
        Ok(self
            .store
            .set_registered_model_tag(name, &Tag::new(key, truncate(value, MAX_REGISTRY_TAG_VAL_LENGTH)))
            .await?)
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.get_registered_model(name).await?;
        if !self.store.delete_registered_model_tag(name, key).await? {
            return Err(ServiceError::not_found(format!("No tag with name: {key} in registered model {name}")));
        }
        Ok(())
    }

    pub async fn get_latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        self.get_registered_model(name).await?;
        let stages = stages.iter().map(|s| canonical_stage(s).map(str::to_string)).collect::<Result<Vec<_>>>()?;
        Ok(self.store.latest_model_versions(name, &stages).await?)
    }

    pub async fn create_model_version(&self, req: NewVersionRequest) -> Result<ModelVersion> {
        validate_model_name(&req.name)?;
        if req.source.is_empty() {
            return Err(ServiceError::missing("source"));
        }
        self.validate_source(&req).await?;
        self.get_registered_model(&req.name).await?;
        let new = NewModelVersion {
            run_id: req.run_id.filter(|r| !r.is_empty()),
            model_id: req.model_id.filter(|m| !m.is_empty()),
            tags: checked_tags(req.tags)?,
            ..req
        };
        let version = self.store.create_model_version(&new).await?;
        if let Some(model_id) = &version.model_id {
            self.record_registration(model_id, &version.name, version.version).await?;
        }
        Ok(version)
    }

    /// MLflow's source checks: a run or model source must agree with the ids given, and a URL
    /// source may not climb out of its location.
    async fn validate_source(&self, req: &NewVersionRequest) -> Result<()> {
        let source = req.source.as_str();
        if let Some(rest) = source.strip_prefix("runs:/") {
            let run_in_source = rest.split('/').next().unwrap_or("");
            if let Some(run_id) = req.run_id.as_deref().filter(|r| !r.is_empty())
                && run_id != run_in_source
            {
                return Err(ServiceError::invalid(format!(
                    "Invalid source: '{source}'. To use a runs:/ source, the run_id request parameter has to be \
                         specified and must match the run ID in the source."
                )));
            }
        } else if let Some(rest) = source.strip_prefix("models:/m-") {
            let model_in_source = format!("m-{}", rest.split('/').next().unwrap_or(""));
            if req.model_id.as_deref() != Some(model_in_source.as_str()) {
                return Err(ServiceError::invalid(format!(
                    "Invalid source: '{source}'. To use a models:/ source, the model_id request parameter has to be \
                     specified and must match the model ID in the source."
                )));
            }
        }
        let decoded = percent_decode(source);
        if decoded.split(['/', '\\']).any(|seg| seg == "..") {
            return Err(ServiceError::invalid(format!(
                "Invalid model version source: '{source}'. If supplying a source as an http, https, local file path, \
                 ftp, objectstore, or mlflow-artifacts uri, an absolute path without parent directory references \
                 is required."
            )));
        }
        Ok(())
    }

    /// Adds `{name, version}` to the logged model's `mlflow.modelVersions` tag.
    async fn record_registration(&self, model_id: &str, name: &str, version: i64) -> Result<()> {
        let Ok(model) = self.tracking.get_logged_model(model_id).await else { return Ok(()) };
        let mut list: Vec<serde_json::Value> = model
            .tags
            .iter()
            .find(|t| t.key == "mlflow.modelVersions")
            .and_then(|t| serde_json::from_str(&t.value).ok())
            .unwrap_or_default();
        let entry = serde_json::json!({"name": name, "version": version.to_string()});
        if !list.contains(&entry) {
            list.push(entry);
        }
        let value = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
        self.tracking.set_logged_model_tags(model_id, vec![Tag::new("mlflow.modelVersions", value)]).await?;
        Ok(())
    }

    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        if name.is_empty() {
            return Err(ServiceError::missing("name"));
        }
        let v = parse_version(version)?;
        self.store
            .get_model_version(name, v)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("Model Version (name={name}, version={version}) not found")))
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let mv = self.get_model_version(name, version).await?;
        self.store.update_model_version(name, mv.version, description).await?;
        self.get_model_version(name, version).await
    }

    pub async fn transition_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        if stage.is_empty() {
            return Err(ServiceError::missing("stage"));
        }
        let stage = canonical_stage(stage)?;
        let mv = self.get_model_version(name, version).await?;
        self.store.transition_model_version_stage(name, mv.version, stage, archive_existing).await?;
        self.get_model_version(name, version).await
    }

    pub async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let mv = self.get_model_version(name, version).await?;
        Ok(self.store.delete_model_version(name, mv.version).await?)
    }

    pub async fn search_model_versions(
        &self,
        filter: Option<&str>,
        order_by: &[String],
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Paged<ModelVersion>> {
        let limit = max_results.unwrap_or(200_000);
        if !(1..=200_000).contains(&limit) {
            return Err(ServiceError::invalid(format!(
                "Invalid value for request parameter max_results. It must be at most 200000, but got value {limit}"
            )));
        }
        let search = Search {
            clauses: parse_filter(filter.unwrap_or(""), &MODEL_VERSIONS)?,
            order_by: parse_order_by(order_by, &MODEL_VERSIONS)?,
            offset: decode_page_token(page_token)?,
            limit,
            ..Default::default()
        };
        Ok(self.store.search_model_versions(&search).await?.into())
    }

    /// Where a version's files are: the logged model's artifacts for MLflow 3 models, else
    /// the version's source.
    pub async fn download_uri(&self, name: &str, version: &str) -> Result<String> {
        let mv = self.get_model_version(name, version).await?;
        if let Some(model_id) = &mv.model_id
            && let Ok(model) = self.tracking.get_logged_model(model_id).await
        {
            return Ok(model.artifact_uri);
        }
        if let Some(rest) = mv.source.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            if let Ok(run) = self.tracking.get_run_info(run_id).await {
                return Ok(format!("{}/{}", run.artifact_uri, path).trim_end_matches('/').to_string());
            }
        }
        Ok(mv.source)
    }

    pub async fn set_model_version_tag(&self, name: &str, version: &str, key: &str, value: &str) -> Result<()> {
        validate_key(key, "key")?;
        let mv = self.get_model_version(name, version).await?;
        let tag = Tag::new(key, truncate(value, MAX_REGISTRY_TAG_VAL_LENGTH));
        Ok(self.store.set_model_version_tag(name, mv.version, &tag).await?)
    }

    pub async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        let mv = self.get_model_version(name, version).await?;
        if !self.store.delete_model_version_tag(name, mv.version, key).await? {
            return Err(ServiceError::not_found(format!(
                "No tag with name: {key} in model version (name={name}, version={version})"
            )));
        }
        Ok(())
    }

    pub async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        validate_alias(alias)?;
        let mv = self.get_model_version(name, version).await?;
        Ok(self.store.set_registered_model_alias(name, alias, mv.version).await?)
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.get_registered_model(name).await?;
        if alias.is_empty() {
            return Err(ServiceError::missing("alias"));
        }
        self.store.delete_registered_model_alias(name, alias).await?;
        Ok(())
    }

    pub async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.get_registered_model(name).await?;
        match self.store.alias_version(name, alias).await? {
            Some(v) => self.get_model_version(name, &v.to_string()).await,
            None => Err(ServiceError::not_found(format!("Registered model alias {alias} not found."))),
        }
    }
}

fn checked_tags(tags: Vec<Tag>) -> Result<Vec<Tag>> {
    tags.into_iter()
        .map(|t| {
            validate_key(&t.key, "key")?;
            Ok(Tag::new(t.key, truncate(&t.value, MAX_REGISTRY_TAG_VAL_LENGTH)))
        })
        .collect()
}

/// Decodes percent-encodings, repeatedly, so `%252e%252e` is seen as `..` too.
fn percent_decode(s: &str) -> String {
    let mut out = s.to_string();
    for _ in 0..3 {
        let next = percent_encoding::percent_decode_str(&out).decode_utf8_lossy().into_owned();
        if next == out {
            break;
        }
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_stages() {
        assert!(validate_alias("champion").is_ok());
        assert!(validate_alias("latest").is_err());
        assert!(validate_alias("v3").is_err());
        assert!(validate_alias("a b").is_err());
        assert_eq!(canonical_stage("production").unwrap(), "Production");
        assert!(canonical_stage("prod").is_err());
    }

    #[test]
    fn traversal_in_sources_is_seen_through_encodings() {
        assert!(percent_decode("s3://b/%2e%2e/x").contains(".."));
        assert_eq!(percent_decode("a%2Fb"), "a/b");
    }
}
