//! Kiln's tracking service: experiments, runs, metrics, params, tags, search, logged models,
//! traces. Plain Rust: it knows nothing of HTTP or of any wire format; the server's MLflow
//! face and native face both call it.
//!
//! The rules here are MLflow's (its server is the reference behaviour): validation messages,
//! limits, run naming, page tokens, the latest-metric rule (in the store) and soft deletion.

pub mod error;
pub mod names;
pub mod search;
pub mod validate;

use base64::Engine;
use kiln_blobs::{ArtifactPath, ArtifactStore};
use kiln_store::*;
use serde::{Deserialize, Serialize};

pub use error::{ErrorKind, Result, ServiceError};
pub use kiln_store::{
    Dataset, DatasetInput, Experiment, LoggedModel, Metric, ModelOutput, Run, RunInfo, RunMetric, Tag, TraceInfo,
    ViewType,
};
use validate::*;

/// The scheme of artifact URIs the server proxies.
pub const PROXY_SCHEME: &str = "mlflow-artifacts:";
pub const DEFAULT_EXPERIMENT_ID: &str = "0";
pub const DEFAULT_EXPERIMENT_NAME: &str = "Default";
pub const RUN_STATUSES: [&str; 5] = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];
pub const LOGGED_MODEL_STATUSES: [&str; 3] =
    ["LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"];

/// An offset page token, spelled as MLflow spells it: `base64({"offset": N})`.
#[derive(Serialize, Deserialize)]
struct PageToken {
    offset: i64,
}

/// A page token: `base64(json(value))`, as MLflow spells its tokens.
fn encode_token<T: Serialize>(value: &T) -> String {
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_string(value).unwrap_or_default())
}

/// The value inside a page token; `None` for no token (the first page).
fn decode_token<T: serde::de::DeserializeOwned>(token: Option<&str>) -> Result<Option<T>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token))
        .map_err(|_| ServiceError::invalid("Invalid page token, could not base64-decode"))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| ServiceError::invalid(format!("Invalid page token, decoded value={token}")))
}

pub fn encode_page_token(offset: i64) -> String {
    encode_token(&PageToken { offset })
}

pub fn decode_page_token(token: Option<&str>) -> Result<i64> {
    let Some(parsed) = decode_token::<PageToken>(token)? else { return Ok(0) };
    if parsed.offset < 0 {
        return Err(ServiceError::invalid("Invalid page token, offset must be >= 0"));
    }
    Ok(parsed.offset)
}

/// A metric-history page token: the position of the last point served, `base64({"after":
/// [step, timestamp, value_bits]})`. A position, not an offset, so reading page N does not
/// walk pages 1…N−1 again.
#[derive(Serialize, Deserialize)]
struct HistoryToken {
    after: (i64, i64, i64),
}

fn encode_history_token(p: MetricPosition) -> String {
    encode_token(&HistoryToken { after: (p.step, p.timestamp, p.value_bits) })
}

fn decode_history_token(token: Option<&str>) -> Result<Option<MetricPosition>> {
    Ok(decode_token::<HistoryToken>(token)?.map(|t| {
        let (step, timestamp, value_bits) = t.after;
        MetricPosition { step, timestamp, value_bits }
    }))
}

fn not_active(run_id: &str, stage: &str) -> ServiceError {
    ServiceError::invalid(format!("The run {run_id} must be in the 'active' state. Current state is {stage}."))
}

/// A page of results and the token for the next one.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T> From<Page<T>> for Paged<T> {
    fn from(p: Page<T>) -> Self {
        Paged { items: p.items, next_page_token: p.next_offset.map(encode_page_token) }
    }
}

/// A search request as every MLflow search spells it.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub filter: Option<String>,
    pub order_by: Vec<String>,
    pub view: ViewType,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewRun {
    /// A run id chosen by the caller (a job's name); a random one when `None`.
    pub run_id: Option<String>,
    pub experiment_id: Option<String>,
    pub user_id: Option<String>,
    pub run_name: Option<String>,
    pub start_time: Option<i64>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default)]
pub struct NewLoggedModelRequest {
    pub experiment_id: String,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<Tag>,
    pub tags: Vec<Tag>,
}

/// The tracking service.
#[derive(Clone)]
pub struct Tracking {
    store: Store,
    blobs: ArtifactStore,
}

impl Tracking {
    /// Wraps a store and an artifact store, creating the Default experiment if needed.
    pub async fn new(store: Store, blobs: ArtifactStore) -> Result<Tracking> {
        store
            .ensure_default_experiment(DEFAULT_EXPERIMENT_NAME, &format!("{PROXY_SCHEME}/{DEFAULT_EXPERIMENT_ID}"))
            .await?;
        Ok(Tracking { store, blobs })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn blobs(&self) -> &ArtifactStore {
        &self.blobs
    }

    // ---- experiments -------------------------------------------------------------------

    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<String> {
        validate_experiment_name(name)?;
        for t in &tags {
            validate_key(&t.key, "key")?;
        }
        let tags: Vec<Tag> =
            tags.into_iter().map(|t| Tag::new(t.key, truncate(&t.value, MAX_EXPERIMENT_TAG_VAL_LENGTH))).collect();
        let location = match artifact_location.filter(|l| !l.is_empty()) {
            Some(l) => l.trim_end_matches('/').to_string(),
            None => format!("{PROXY_SCHEME}/"),
        };
        match self.store.create_experiment(name, &location, &tags).await {
            Ok(id) => Ok(id.to_string()),
            Err(StoreError::AlreadyExists(_)) => {
                Err(ServiceError::exists(format!("Experiment(name={name}) already exists.")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        let n = parse_experiment_id(id)?;
        self.store
            .get_experiment(n)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("No Experiment with id={id} exists")))
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.store
            .get_experiment_by_name(name)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("Could not find experiment with name '{name}'")))
    }

    pub async fn search_experiments(&self, req: &SearchRequest) -> Result<Paged<Experiment>> {
        let search = self.search(req, &search::EXPERIMENTS, 1000, SEARCH_MAX_RESULTS)?;
        Ok(self.store.search_experiments(&search).await?.into())
    }

    pub async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        if new_name.is_empty() {
            return Err(ServiceError::missing("new_name"));
        }
        validate_experiment_name(new_name)?;
        let exp = self.get_experiment(id).await?;
        if exp.lifecycle_stage != ACTIVE {
            return Err(ServiceError::invalid(format!(
                "Cannot rename a non-active experiment. Experiment {id} is in state {}.",
                exp.lifecycle_stage
            )));
        }
        match self.store.rename_experiment(exp.experiment_id, new_name).await {
            Err(StoreError::AlreadyExists(_)) => {
                Err(ServiceError::exists(format!("Experiment(name={new_name}) already exists.")))
            }
            other => Ok(other?),
        }
    }

    pub async fn delete_experiment(&self, id: &str) -> Result<()> {
        let exp = self.get_experiment(id).await?;
        if exp.experiment_id == 0 {
            return Err(ServiceError::invalid(
                "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
            ));
        }
        Ok(self.store.set_experiment_lifecycle(exp.experiment_id, true).await?)
    }

    pub async fn restore_experiment(&self, id: &str) -> Result<()> {
        let exp = self.get_experiment(id).await?;
        if exp.lifecycle_stage != DELETED {
            return Err(ServiceError::invalid(format!(
                "Cannot restore an active experiment. Experiment {id} is in state active."
            )));
        }
        Ok(self.store.set_experiment_lifecycle(exp.experiment_id, false).await?)
    }

    pub async fn set_experiment_tag(&self, id: &str, key: &str, value: &str) -> Result<()> {
        validate_key(key, "key")?;
        let exp = self.active_experiment(id).await?;
        let tag = Tag::new(key, truncate(value, MAX_EXPERIMENT_TAG_VAL_LENGTH));
        Ok(self.store.set_experiment_tag(exp.experiment_id, &tag).await?)
    }

    pub async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        let exp = self.active_experiment(id).await?;
        if !self.store.delete_experiment_tag(exp.experiment_id, key).await? {
            return Err(ServiceError::not_found(format!("No tag with name: {key} in experiment with id {id}")));
        }
        Ok(())
    }

    async fn active_experiment(&self, id: &str) -> Result<Experiment> {
        let exp = self.get_experiment(id).await?;
        if exp.lifecycle_stage != ACTIVE {
            return Err(ServiceError::invalid(format!(
                "The experiment {id} must be in the 'active' state. Current state is {}.",
                exp.lifecycle_stage
            )));
        }
        Ok(exp)
    }

    // ---- runs --------------------------------------------------------------------------

    pub async fn create_run(&self, new: NewRun) -> Result<Run> {
        let experiment_id = new.experiment_id.filter(|e| !e.is_empty()).unwrap_or_else(|| DEFAULT_EXPERIMENT_ID.into());
        let exp = self.active_experiment(&experiment_id).await?;
        let mut tags = Vec::with_capacity(new.tags.len() + 1);
        for t in new.tags {
            validate_key(&t.key, "key")?;
            tags.push(Tag::new(t.key, truncate(&t.value, MAX_TAG_VAL_LENGTH)));
        }
        let tag_name = tags.iter().rev().find(|t| t.key == "mlflow.runName").map(|t| t.value.clone());
        let run_name = match (new.run_name.filter(|n| !n.is_empty()), tag_name) {
            (Some(a), Some(b)) if a != b => {
                return Err(ServiceError::invalid(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values \
                     (run_name='{a}', mlflow.runName='{b}')."
                )));
            }
            (Some(a), Some(_)) => a,
            (Some(a), None) => {
                tags.push(Tag::new("mlflow.runName", a.clone()));
                a
            }
            (None, Some(b)) => b,
            (None, None) => {
                let name = names::random_run_name();
                tags.push(Tag::new("mlflow.runName", name.clone()));
                name
            }
        };
        let run_id = new.run_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let info = RunInfo {
            artifact_uri: format!("{}/{run_id}/artifacts", exp.artifact_location),
            run_id,
            experiment_id: exp.experiment_id,
            run_name,
            user_id: new.user_id.unwrap_or_default(),
            status: "RUNNING".into(),
            start_time: Some(new.start_time.unwrap_or_else(now_ms)),
            end_time: None,
            lifecycle_stage: ACTIVE.into(),
        };
        self.store.create_run(&info, &tags).await.map_err(|e| match e {
            kiln_store::StoreError::AlreadyExists(id) => {
                ServiceError::exists(format!("Run with id={id} already exists"))
            }
            e => e.into(),
        })?;
        // Everything a new run holds was just written; no need to read it back.
        tags.sort_by(|a, b| a.key.cmp(&b.key));
        tags.dedup_by(|later, earlier| {
            let same = later.key == earlier.key;
            if same {
                earlier.value = later.value.clone();
            }
            same
        });
        Ok(Run {
            info,
            metrics: Vec::new(),
            params: Vec::new(),
            tags,
            dataset_inputs: Vec::new(),
            model_inputs: Vec::new(),
            model_outputs: Vec::new(),
        })
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.store
            .get_run(run_id)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("Run with id={run_id} not found")))
    }

    pub async fn get_run_info(&self, run_id: &str) -> Result<RunInfo> {
        self.store
            .get_run_info(run_id)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("Run with id={run_id} not found")))
    }

    async fn active_run(&self, run_id: &str) -> Result<RunInfo> {
        if run_id.is_empty() {
            return Err(ServiceError::missing("run_id"));
        }
        let info = self.get_run_info(run_id).await?;
        if info.lifecycle_stage != ACTIVE {
            return Err(not_active(run_id, &info.lifecycle_stage));
        }
        Ok(info)
    }

    pub async fn update_run(
        &self,
        run_id: &str,
        status: Option<&str>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        self.active_run(run_id).await?;
        if let Some(s) = status
            && !RUN_STATUSES.contains(&s)
        {
            return Err(ServiceError::invalid(format!("Invalid value '{s}' for parameter 'status'")));
        }
        let run_name = run_name.filter(|n| !n.is_empty());
        self.store.update_run(run_id, status, end_time, run_name).await?;
        self.get_run_info(run_id).await
    }

    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.get_run_info(run_id).await?;
        Ok(self.store.set_run_lifecycle(run_id, true).await?)
    }

    pub async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.get_run_info(run_id).await?;
        Ok(self.store.set_run_lifecycle(run_id, false).await?)
    }

    pub async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        self.log_batch(run_id, vec![metric], Vec::new(), Vec::new()).await
    }

    pub async fn log_param(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        self.log_batch(run_id, Vec::new(), vec![Tag::new(key, value)], Vec::new()).await
    }

    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        self.log_batch(run_id, Vec::new(), Vec::new(), vec![Tag::new(key, value)]).await
    }

    pub async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.active_run(run_id).await?;
        if !self.store.delete_run_tag(run_id, key).await? {
            return Err(ServiceError::not_found(format!("No tag with name: {key} in run with id {run_id}")));
        }
        Ok(())
    }

    /// Logs metrics, params and tags atomically, with MLflow's limits and rules.
    pub async fn log_batch(&self, run_id: &str, metrics: Vec<Metric>, params: Vec<Tag>, tags: Vec<Tag>) -> Result<()> {
        validate_batch_sizes(metrics.len(), params.len(), tags.len())?;
        let mut seen = std::collections::HashSet::new();
        let mut dups: Vec<String> = Vec::new();
        for p in &params {
            if !seen.insert(p.key.as_str()) && !dups.contains(&p.key) {
                dups.push(p.key.clone());
            }
        }
        if !dups.is_empty() {
            let list: Vec<String> = dups.iter().map(|d| format!("'{d}'")).collect();
            return Err(ServiceError::invalid(format!(
                "Duplicate parameter keys have been submitted: [{}]. Please ensure the request contains only one \
                 param value per param key.",
                list.join(", ")
            )));
        }
        // A batch usually repeats a few keys many times: check each key once.
        let mut checked = std::collections::HashSet::new();
        for m in &metrics {
            if checked.insert(m.key.as_str()) {
                validate_key(&m.key, "key")?;
            }
            if m.timestamp < 0 {
                return Err(ServiceError::invalid(format!(
                    "Invalid value {} for parameter 'timestamp' supplied: Metric timestamp must be a non-negative integer.",
                    m.timestamp
                )));
            }
        }
        for p in &params {
            validate_key(&p.key, "key")?;
        }
        for t in &tags {
            validate_key(&t.key, "key")?;
        }
        if run_id.is_empty() {
            return Err(ServiceError::missing("run_id"));
        }
        let batch = RunBatch {
            metrics,
            params: params.into_iter().map(|p| Tag::new(p.key, truncate(&p.value, MAX_PARAM_VAL_LENGTH))).collect(),
            tags: tags.into_iter().map(|t| Tag::new(t.key, truncate(&t.value, MAX_TAG_VAL_LENGTH))).collect(),
        };
        match self.store.log_batch(run_id, &batch).await {
            Ok(None) => Ok(()),
            Ok(Some(BatchRefused::ParamChanged(c))) => Err(ServiceError::invalid(format!(
                "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run \
                 ID='{run_id}'. Attempted logging new value '{}'.",
                c.key, c.old_value, c.new_value
            ))),
            Ok(Some(BatchRefused::RunNotActive(stage))) => Err(not_active(run_id, &stage)),
            Err(StoreError::NotFound(_)) => Err(ServiceError::not_found(format!("Run with id={run_id} not found"))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn search_runs(&self, experiment_ids: &[String], req: &SearchRequest) -> Result<Paged<Run>> {
        let ids = experiment_ids.iter().map(|e| parse_experiment_id(e)).collect::<Result<Vec<_>>>()?;
        let search = self.search(req, &search::RUNS, 1000, SEARCH_MAX_RESULTS)?;
        Ok(self.store.search_runs(&ids, &search).await?.into())
    }

    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Paged<Metric>> {
        if key.is_empty() {
            return Err(ServiceError::missing("metric_key"));
        }
        if let Some(m) = max_results
            && m <= 0
        {
            return Err(ServiceError::invalid(format!(
                "Invalid value {m} for parameter 'max_results' supplied. It must be a positive integer"
            )));
        }
        let after = decode_history_token(page_token)?;
        let page = self.store.metric_history(run_id, key, after, max_results).await?;
        if page.items.is_empty() {
            // An empty answer may mean there is no such run; only then is it worth asking.
            self.get_run_info(run_id).await?;
        }
        Ok(Paged { items: page.items, next_page_token: page.next.map(encode_history_token) })
    }

    pub async fn metric_history_bulk_interval(
        &self,
        run_ids: &[String],
        key: &str,
        start_step: Option<i64>,
        end_step: Option<i64>,
        max_results: Option<i64>,
    ) -> Result<Vec<RunMetric>> {
        if run_ids.is_empty() {
            return Err(ServiceError::missing("run_ids"));
        }
        if run_ids.len() > 100 {
            return Err(ServiceError::invalid(format!(
                "GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received {} run_ids.",
                run_ids.len()
            )));
        }
        if key.is_empty() {
            return Err(ServiceError::missing("metric_key"));
        }
        let max = max_results.unwrap_or(320);
        if !(1..=2500).contains(&max) {
            return Err(ServiceError::invalid(format!("max_results must be between 1 and 2500, got {max}")));
        }
        let steps = match (start_step, end_step) {
            (Some(s), Some(e)) if s > e => {
                return Err(ServiceError::invalid(format!(
                    "end_step must be greater than start_step. Found start_step={s} and end_step={e}."
                )));
            }
            (Some(s), Some(e)) => Some((s, e)),
            (None, None) => None,
            _ => {
                return Err(ServiceError::invalid(
                    "If either start step or end step are specified, both must be specified.",
                ));
            }
        };
        for id in run_ids {
            self.get_run_info(id).await?;
        }
        Ok(self.store.metric_history_sampled(run_ids, key, steps, max as usize).await?)
    }

    pub async fn log_inputs(&self, run_id: &str, datasets: Vec<DatasetInput>, models: Vec<String>) -> Result<()> {
        self.active_run(run_id).await?;
        for d in &datasets {
            if d.dataset.name.is_empty() {
                return Err(ServiceError::missing("dataset.name"));
            }
            if d.dataset.digest.is_empty() {
                return Err(ServiceError::missing("dataset.digest"));
            }
        }
        Ok(self.store.log_inputs(run_id, &datasets, &models).await?)
    }

    pub async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        self.active_run(run_id).await?;
        Ok(self.store.log_outputs(run_id, &models).await?)
    }

    // ---- logged models -----------------------------------------------------------------

    pub async fn create_logged_model(&self, req: NewLoggedModelRequest) -> Result<LoggedModel> {
        let exp = self.active_experiment(&req.experiment_id).await?;
        if let Some(run_id) = req.source_run_id.as_deref().filter(|r| !r.is_empty()) {
            self.get_run_info(run_id).await?;
        }
        for t in req.tags.iter().chain(&req.params) {
            validate_key(&t.key, "key")?;
        }
        let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
        let name = req.name.filter(|n| !n.is_empty()).unwrap_or_else(names::random_run_name);
        let new = NewLoggedModel {
            artifact_uri: format!("{}/models/{model_id}/artifacts", exp.artifact_location),
            model_id: model_id.clone(),
            experiment_id: exp.experiment_id,
            name,
            model_type: req.model_type.filter(|t| !t.is_empty()),
            source_run_id: req.source_run_id.filter(|r| !r.is_empty()),
            params: req.params,
            tags: req.tags,
        };
        self.store.create_logged_model(&new).await?;
        self.get_logged_model(&model_id).await
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        self.store
            .get_logged_model(model_id)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("Logged model with ID '{model_id}' not found.")))
    }

    pub async fn finalize_logged_model(&self, model_id: &str, status: &str) -> Result<LoggedModel> {
        if !LOGGED_MODEL_STATUSES.contains(&status) {
            return Err(ServiceError::invalid(format!("Invalid value '{status}' for parameter 'status'")));
        }
        self.get_logged_model(model_id).await?;
        self.store.set_logged_model_status(model_id, status, None).await?;
        self.get_logged_model(model_id).await
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.get_logged_model(model_id).await?;
        Ok(self.store.delete_logged_model(model_id).await?)
    }

    pub async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<LoggedModel> {
        for t in &tags {
            validate_key(&t.key, "key")?;
        }
        self.get_logged_model(model_id).await?;
        self.store.set_logged_model_entries(model_id, &tags, false).await?;
        self.get_logged_model(model_id).await
    }

    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.get_logged_model(model_id).await?;
        if !self.store.delete_logged_model_tag(model_id, key).await? {
            return Err(ServiceError::not_found(format!(
                "No tag with key '{key}' found for model with ID '{model_id}'."
            )));
        }
        Ok(())
    }

    pub async fn log_logged_model_params(&self, model_id: &str, params: Vec<Tag>) -> Result<()> {
        for t in &params {
            validate_key(&t.key, "key")?;
        }
        self.get_logged_model(model_id).await?;
        Ok(self.store.set_logged_model_entries(model_id, &params, true).await?)
    }

    /// Logged models of the experiments; `order_by` is `(field, ascending)` pairs.
    pub async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        filter: Option<&str>,
        order_by: &[(String, bool)],
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Paged<LoggedModel>> {
        let ids = experiment_ids.iter().map(|e| parse_experiment_id(e)).collect::<Result<Vec<_>>>()?;
        let order: Vec<String> =
            order_by.iter().map(|(f, asc)| format!("{f} {}", if *asc { "ASC" } else { "DESC" })).collect();
        let req = SearchRequest {
            filter: filter.map(str::to_string),
            order_by: order,
            view: ViewType::ActiveOnly,
            max_results,
            page_token: page_token.map(str::to_string),
        };
        let search = self.search(&req, &search::LOGGED_MODELS, 50, SEARCH_MAX_RESULTS)?;
        Ok(self.store.search_logged_models(&ids, &search).await?.into())
    }

    // ---- traces ------------------------------------------------------------------------

    /// Records a new trace (StartTraceV3) and tells the client where its spans go.
    pub async fn start_trace(&self, mut info: TraceInfo) -> Result<TraceInfo> {
        if info.trace_id.is_empty() {
            info.trace_id = format!("tr-{}", uuid::Uuid::new_v4().simple());
        }
        let exp = self.active_experiment(&info.experiment_id.to_string()).await?;
        let location = format!("{}/traces/{}/artifacts", exp.artifact_location, info.trace_id);
        info.tags.retain(|t| t.key != "mlflow.artifactLocation");
        info.tags.push(Tag::new("mlflow.artifactLocation", location));
        info.metadata.retain(|t| t.key != "mlflow.trace.infoFinalized");
        info.metadata.push(Tag::new("mlflow.trace.infoFinalized", "true"));
        self.store.put_trace(&info).await?;
        self.get_trace(&info.trace_id).await
    }

    pub async fn get_trace(&self, trace_id: &str) -> Result<TraceInfo> {
        self.store
            .get_trace(trace_id)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("Trace with ID '{trace_id}' not found.")))
    }

    pub async fn get_traces(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>> {
        Ok(self.store.get_traces(trace_ids).await?)
    }

    pub async fn search_traces(&self, experiment_ids: &[String], req: &SearchRequest) -> Result<Paged<TraceInfo>> {
        let ids = experiment_ids.iter().map(|e| parse_experiment_id(e)).collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            return Err(ServiceError::invalid("At least one experiment location must be specified."));
        }
        let search = self.search(req, &search::TRACES, 100, 500)?;
        Ok(self.store.search_traces(&ids, &search).await?.into())
    }

    pub async fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()> {
        validate_key(key, "key")?;
        self.get_trace(trace_id).await?;
        Ok(self.store.set_trace_tag(trace_id, &Tag::new(key, truncate(value, MAX_TAG_VAL_LENGTH))).await?)
    }

    pub async fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()> {
        self.get_trace(trace_id).await?;
        if !self.store.delete_trace_tag(trace_id, key).await? {
            return Err(ServiceError::not_found(format!("No trace tag with key '{key}'")));
        }
        Ok(())
    }

    /// Deletes traces and their stored `traces.json`; returns how many went.
    pub async fn delete_traces(
        &self,
        experiment_id: &str,
        trace_ids: &[String],
        max_timestamp_ms: Option<i64>,
        max_traces: Option<i64>,
    ) -> Result<usize> {
        let exp = self.get_experiment(experiment_id).await?;
        if trace_ids.is_empty() && max_timestamp_ms.is_none() {
            return Err(ServiceError::invalid("Either `max_timestamp_millis` or `request_ids` must be specified."));
        }
        let deleted = self.store.delete_traces(exp.experiment_id, trace_ids, max_timestamp_ms, max_traces).await?;
        for id in &deleted {
            if let Some(path) = proxy_path(&format!("{}/traces/{id}", exp.artifact_location)) {
                let _ = self.blobs.delete(&path).await;
            }
        }
        Ok(deleted.len())
    }

    // ---- shared ------------------------------------------------------------------------

    fn search(&self, req: &SearchRequest, grammar: &search::Grammar, default_max: i64, max_max: i64) -> Result<Search> {
        let limit = req.max_results.unwrap_or(default_max);
        if limit <= 0 || limit > max_max {
            return Err(ServiceError::invalid(format!(
                "Invalid value {limit} for parameter 'max_results' supplied. It must be at most {max_max}, and at least 1."
            )));
        }
        Ok(Search {
            clauses: search::parse_filter(req.filter.as_deref().unwrap_or(""), grammar)?,
            order_by: search::parse_order_by(&req.order_by, grammar)?,
            view: req.view,
            offset: decode_page_token(req.page_token.as_deref())?,
            limit,
        })
    }
}

/// The artifact-store path of a `mlflow-artifacts:/…` URI; `None` for URIs the server does not
/// own (`s3://…` or `file://…` locations that clients write to themselves).
pub fn proxy_path(uri: &str) -> Option<ArtifactPath> {
    let rest = uri.strip_prefix(PROXY_SCHEME)?;
    // mlflow-artifacts:/x, mlflow-artifacts:///x and mlflow-artifacts://host/x all occur.
    let rest =
        if let Some(r) = rest.strip_prefix("//") { r.split_once('/').map(|(_, p)| p).unwrap_or("") } else { rest };
    ArtifactPath::parse(rest.trim_start_matches('/')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_in_mlflow_spelling() {
        assert_eq!(encode_page_token(1), "eyJvZmZzZXQiOjF9");
        assert_eq!(decode_page_token(Some("eyJvZmZzZXQiOiAxfQ==")).unwrap(), 1);
        assert_eq!(decode_page_token(Some(&encode_page_token(25000))).unwrap(), 25000);
        assert!(decode_page_token(Some("not base64!")).is_err());
        assert_eq!(decode_page_token(None).unwrap(), 0);
    }

    #[test]
    fn proxy_paths() {
        assert_eq!(proxy_path("mlflow-artifacts:/1/abc/artifacts").unwrap().as_str(), "1/abc/artifacts");
        assert_eq!(proxy_path("mlflow-artifacts://host:5000/1/x").unwrap().as_str(), "1/x");
        assert!(proxy_path("s3://b/1").is_none());
        assert!(proxy_path("mlflow-artifacts:/../x").is_none());
    }
}
