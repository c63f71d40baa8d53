//! The pages: each gathers what it shows from the services into a plain view, then renders
//! its template.

use std::collections::BTreeSet;

use askama::Template;
use kiln_orchestrator::ListJobs;
use kiln_store::{Run, ViewType};
use kiln_tracking::SearchRequest;

use crate::{Result, Studio, chart};

fn time(ms: Option<i64>) -> String {
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".into(),
    }
}

fn duration(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) if e >= s => {
            let ms = e.saturating_sub(s);
            if ms < 1000 { format!("{ms} ms") } else { format!("{:.1} s", ms as f64 / 1000.0) }
        }
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

/// A CSS class for a status, so every page colours it the same way.
fn status_class(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "completed" | "finished" | "succeeded" => "ok",
        "failed" => "bad",
        "canceled" | "killed" => "off",
        _ => "live",
    }
}

pub struct JobRow {
    pub name: String,
    pub kind: String,
    pub status: String,
    pub status_class: &'static str,
    pub experiment: String,
    pub experiment_id: String,
    pub created: String,
}

pub struct ExperimentRow {
    pub id: String,
    pub name: String,
    pub created: String,
}

pub struct EndpointRow {
    pub name: String,
    pub traffic: String,
    pub scoring_path: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    running: Vec<JobRow>,
    recent: Vec<JobRow>,
    experiments: Vec<ExperimentRow>,
    models: Vec<(String, String)>,
    endpoints: Vec<EndpointRow>,
    empty: bool,
}

fn job_row(j: &kiln_orchestrator::Job) -> JobRow {
    let status = j.status.as_str().to_string();
    JobRow {
        name: j.name.clone(),
        kind: j.kind.clone(),
        status_class: status_class(&status),
        status,
        experiment: j.experiment_name.clone(),
        experiment_id: j.experiment_id.clone(),
        created: time(Some(j.created_at)),
    }
}

fn experiment_row(e: &kiln_store::Experiment) -> ExperimentRow {
    ExperimentRow { id: e.experiment_id.to_string(), name: e.name.clone(), created: time(Some(e.creation_time)) }
}

/// `?filter=…&order_by=…&page_token=…&metrics=a,b&params=x`.
#[derive(Debug, Clone, Default)]
pub struct ExperimentQuery {
    pub filter: Option<String>,
    pub order_by: Option<String>,
    pub page_token: Option<String>,
    /// `metrics.acc,params.lr,tags.team`: the table's columns (else the first metrics and
    /// params the runs have).
    pub columns: Option<String>,
}

/// A column of the runs table: `metrics`, `params` or `tags`, and a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub kind: &'static str,
    pub key: String,
}

impl Column {
    /// The `order_by` a click on this column's header asks for: descending first, then
    /// ascending. Keys with spaces or dots are quoted with backticks, as the grammar wants.
    pub fn sort_next(&self, current: &str) -> String {
        let key = if self.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.key.clone()
        } else {
            format!("`{}`", self.key)
        };
        let desc = format!("{}.{key} DESC", self.kind);
        if current == desc { format!("{}.{key} ASC", self.kind) } else { desc }
    }

    /// An arrow when the table is sorted by this column.
    pub fn sort_mark(&self, current: &str) -> &'static str {
        let asc = self.sort_next("");
        let base = asc.trim_end_matches(" DESC");
        if current == format!("{base} DESC") {
            " ▼"
        } else if current == format!("{base} ASC") {
            " ▲"
        } else {
            ""
        }
    }
}

fn parse_columns(text: &str) -> std::result::Result<Vec<Column>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let (kind, key) =
                c.split_once('.').ok_or_else(|| format!("column '{c}': write metrics.KEY, params.KEY or tags.KEY"))?;
            let kind = match kind {
                "metrics" | "metric" => "metrics",
                "params" | "param" => "params",
                "tags" | "tag" => "tags",
                other => return Err(format!("column '{c}': '{other}' is not metrics, params or tags")),
            };
            Ok(Column { kind, key: key.to_string() })
        })
        .collect()
}

pub struct RunRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub status_class: &'static str,
    pub start: String,
    pub duration: String,
    /// One per column: the text, and whether it is a number (right-aligned).
    pub cells: Vec<(String, bool)>,
}

#[derive(Template)]
#[template(path = "experiment.html")]
struct ExperimentPage {
    id: String,
    name: String,
    filter: String,
    order_by: String,
    error: Option<String>,
    columns_text: String,
    columns: Vec<Column>,
    runs: Vec<RunRow>,
    next_page: Option<String>,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ExperimentsPage {
    experiments: Vec<ExperimentRow>,
}

pub struct MetricChart {
    pub key: String,
    pub last: String,
    pub svg: String,
}

pub struct ArtifactEntry {
    pub name: String,
    pub path: String,
    pub is_dir: bool,
    pub size: String,
}

/// What a selected artifact file shows.
pub enum Preview {
    Text(String),
    Table(Vec<String>, Vec<Vec<String>>),
    Image(String),
    TooBig(String),
    Binary,
}

pub struct DiffRow {
    pub key: String,
    pub values: Vec<String>,
    pub differs: bool,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    runs: Vec<(String, String)>,
    experiment_id: String,
    params: Vec<DiffRow>,
    metrics: Vec<DiffRow>,
    charts: Vec<MetricChart>,
}

/// Previews are read whole; larger files are offered as downloads only.
const PREVIEW_LIMIT: u64 = 1024 * 1024;
/// Runs one comparison shows at most.
pub const COMPARE_LIMIT: usize = 10;

/// A path segment for a URL: everything but unreserved characters percent-encoded.
fn url_segment(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn human_size(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KB", n as f64 / 1024.0),
        n => format!("{:.1} MB", n as f64 / 1048576.0),
    }
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    id: String,
    name: String,
    status: String,
    status_class: &'static str,
    live: bool,
    experiment_id: String,
    start: String,
    end: String,
    duration: String,
    user: String,
    parent: Option<String>,
    /// The job this run is the run of, when it is one, and whether it still runs.
    job: Option<String>,
    job_live: bool,
    children: Vec<(String, String, String)>,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    charts: Vec<MetricChart>,
    by_time: bool,
    log_scale: bool,
    smoothing: String,
    /// The artifact folder shown, and its entries.
    folder: String,
    folder_parent: Option<String>,
    artifacts: Vec<ArtifactEntry>,
    /// The artifact file selected, its download URL and preview.
    selected: Option<(String, String, Preview)>,
}

/// How many metric and param columns the runs table shows when not told.
const DEFAULT_COLUMNS: usize = 8;

fn cell(v: Option<f64>) -> String {
    v.map(chart::short).unwrap_or_default()
}

impl Studio {
    pub async fn home(&self) -> Result<String> {
        let jobs = self.orchestrator.list(&ListJobs { archived_only: None, limit: Some(200), parent: None }).await?;
        let running: Vec<JobRow> = jobs.iter().filter(|j| !j.status.is_terminal()).map(job_row).collect();
        let recent: Vec<JobRow> = jobs.iter().take(10).map(job_row).collect();
        let req =
            SearchRequest { max_results: Some(10), order_by: vec!["creation_time DESC".into()], ..Default::default() };
        let experiments: Vec<ExperimentRow> =
            self.tracking.search_experiments(&req).await?.items.iter().map(experiment_row).collect();
        let models = self
            .orchestrator
            .list_models(None, Some(false))
            .await?
            .into_iter()
            .take(10)
            .map(|m| (m.name, m.version))
            .collect();
        let endpoints = self
            .serving
            .list_endpoints()
            .await?
            .into_iter()
            .map(|e| EndpointRow {
                traffic: e.traffic.iter().map(|(d, p)| format!("{d} {p}%")).collect::<Vec<_>>().join(", "),
                name: e.name,
                scoring_path: e.scoring_path,
            })
            .collect();
        let any_runs = !self
            .tracking
            .search_runs(
                &experiments.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
                &SearchRequest { max_results: Some(1), ..Default::default() },
            )
            .await?
            .items
            .is_empty();
        let empty = jobs.is_empty() && !any_runs;
        Ok(HomePage { running, recent, experiments, models, endpoints, empty }.render()?)
    }

    pub async fn experiments(&self) -> Result<String> {
        let req = SearchRequest { max_results: Some(1000), view: ViewType::ActiveOnly, ..Default::default() };
        let experiments = self.tracking.search_experiments(&req).await?.items.iter().map(experiment_row).collect();
        Ok(ExperimentsPage { experiments }.render()?)
    }

    /// The runs of an experiment as a table. A filter the grammar refuses is shown on the
    /// page with its message (and `Ok`), so the user can fix it there.
    pub async fn experiment(&self, id: &str, q: &ExperimentQuery) -> Result<String> {
        let exp = self.tracking.get_experiment(id).await?;
        let req = SearchRequest {
            filter: q.filter.clone().filter(|f| !f.trim().is_empty()),
            order_by: q.order_by.iter().filter(|o| !o.trim().is_empty()).cloned().collect(),
            view: ViewType::ActiveOnly,
            max_results: Some(100),
            page_token: q.page_token.clone(),
        };
        let (runs, next_page, error) = match self.tracking.search_runs(&[id.to_string()], &req).await {
            Ok(page) => (page.items, page.next_page_token, None),
            Err(e) if e.kind == kiln_tracking::ErrorKind::InvalidParameter => (Vec::new(), None, Some(e.message)),
            Err(e) => return Err(e.into()),
        };
        let (columns, error) = match q.columns.as_deref().filter(|c| !c.trim().is_empty()).map(parse_columns) {
            Some(Ok(c)) => (c, error),
            Some(Err(e)) => (Vec::new(), error.or(Some(e))),
            None => {
                let mut metric_keys = BTreeSet::new();
                let mut param_keys = BTreeSet::new();
                for r in &runs {
                    metric_keys.extend(r.metrics.iter().map(|m| m.key.clone()));
                    param_keys.extend(r.params.iter().map(|p| p.key.clone()));
                }
                let metrics = metric_keys.into_iter().take(DEFAULT_COLUMNS).map(|key| Column { kind: "metrics", key });
                let params = param_keys.into_iter().take(DEFAULT_COLUMNS).map(|key| Column { kind: "params", key });
                (metrics.chain(params).collect(), error)
            }
        };
        let rows = runs.iter().map(|r| run_row(r, &columns)).collect();
        Ok(ExperimentPage {
            id: exp.experiment_id.to_string(),
            name: exp.name,
            filter: q.filter.clone().unwrap_or_default(),
            order_by: q.order_by.clone().unwrap_or_default(),
            error,
            columns_text: q.columns.clone().unwrap_or_default(),
            columns,
            runs: rows,
            next_page,
        }
        .render()?)
    }

    pub async fn run(&self, id: &str, artifact: Option<&str>, options: &chart::ChartOptions) -> Result<String> {
        let r = self.tracking.get_run(id).await?;
        let (folder, folder_parent, artifacts, selected) =
            self.artifacts(&r.info.artifact_uri, artifact.unwrap_or("")).await?;
        let mut charts = Vec::new();
        let mut keys: Vec<&kiln_store::Metric> = r.metrics.iter().collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        for m in keys {
            // Down-sampled on the server: a million-point metric draws as fast as a short one.
            let sampled =
                self.tracking.metric_history_bulk_interval(&[id.to_string()], &m.key, None, None, Some(320)).await?;
            let raw: Vec<(i64, i64, f64)> =
                sampled.iter().map(|p| (p.metric.step, p.metric.timestamp, p.metric.value)).collect();
            let points = chart::shape(&raw, options);
            let x_label = if options.by_time { "seconds" } else { "step" };
            let title = if options.log_scale { format!("{} (log10)", m.key) } else { m.key.clone() };
            charts.push(MetricChart {
                key: m.key.clone(),
                last: chart::short(m.value),
                svg: chart::line(&title, x_label, &points, 460.0, 220.0),
            });
        }
        let tag = |k: &str| r.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
        let status = r.info.status.clone();
        let job_record = self.orchestrator.get(id).await.ok();
        let job_live = job_record.as_ref().is_some_and(|j| !j.status.is_terminal());
        let job = job_record.map(|j| j.name);
        let children_req = SearchRequest {
            filter: Some(format!("tags.mlflow.parentRunId = '{}'", id.replace('\'', "''"))),
            order_by: vec!["attributes.start_time ASC".into()],
            max_results: Some(200),
            ..Default::default()
        };
        let children = self
            .tracking
            .search_runs(&[r.info.experiment_id.to_string()], &children_req)
            .await?
            .items
            .into_iter()
            .map(|c| (c.info.run_id, c.info.run_name, c.info.status))
            .collect();
        Ok(RunPage {
            id: r.info.run_id.clone(),
            name: r.info.run_name.clone(),
            status_class: status_class(&status),
            live: status == "RUNNING" || status == "SCHEDULED",
            status,
            experiment_id: r.info.experiment_id.to_string(),
            start: time(r.info.start_time),
            end: time(r.info.end_time),
            duration: duration(r.info.start_time, r.info.end_time),
            user: r.info.user_id.clone(),
            parent: tag("mlflow.parentRunId"),
            job,
            job_live,
            children,
            params: r.params.iter().map(|p| (p.key.clone(), p.value.clone())).collect(),
            tags: r
                .tags
                .iter()
                .filter(|t| !t.key.starts_with("mlflow."))
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
            charts,
            by_time: options.by_time,
            log_scale: options.log_scale,
            smoothing: format!("{}", options.smoothing),
            folder,
            folder_parent,
            artifacts,
            selected,
        }
        .render()?)
    }

    /// The folder to list (the selected path, or the folder of the selected file), its
    /// entries, and the selected file's preview.
    #[allow(clippy::type_complexity)]
    async fn artifacts(
        &self,
        root_uri: &str,
        selected: &str,
    ) -> Result<(String, Option<String>, Vec<ArtifactEntry>, Option<(String, String, Preview)>)> {
        let blobs = self.tracking.blobs();
        let Some(root) = kiln_tracking::proxy_path(root_uri) else {
            return Ok((String::new(), None, Vec::new(), None));
        };
        let invalid = |e: kiln_blobs::BlobError| kiln_tracking::ServiceError::invalid(format!("artifact: {e}"));
        let rel = kiln_blobs::ArtifactPath::parse(selected.trim_matches('/')).map_err(invalid)?;
        let target = if rel.is_root() { root.clone() } else { root.join(rel.as_str()).map_err(invalid)? };
        let size =
            if rel.is_root() { None } else { blobs.size(&target).await.map_err(kiln_tracking::ServiceError::from)? };
        let (folder, preview) = match size {
            Some(size) => {
                let parent = rel.as_str().rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default();
                let encoded: Vec<String> = target.as_str().split('/').map(url_segment).collect();
                let url = format!("/api/2.0/mlflow-artifacts/artifacts/{}", encoded.join("/"));
                let name = rel.file_name().to_ascii_lowercase();
                let ext = name.rsplit('.').next().unwrap_or("");
                let preview = if matches!(ext, "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp") {
                    Preview::Image(url.clone())
                } else if size > PREVIEW_LIMIT {
                    Preview::TooBig(human_size(size))
                } else {
                    let bytes =
                        blobs.get_bytes(&target).await.map_err(kiln_tracking::ServiceError::from)?.unwrap_or_default();
                    match String::from_utf8(bytes.to_vec()) {
                        Err(_) => Preview::Binary,
                        Ok(text) if ext == "json" => Preview::Text(
                            serde_json::from_str::<serde_json::Value>(&text)
                                .ok()
                                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                                .unwrap_or(text),
                        ),
                        Ok(text) if ext == "csv" => {
                            let mut lines = text.lines().map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
                            let header = lines.next().unwrap_or_default();
                            Preview::Table(header, lines.take(100).collect())
                        }
                        Ok(text) => Preview::Text(text),
                    }
                };
                (parent, Some((rel.as_str().to_string(), url, preview)))
            }
            None => (rel.as_str().to_string(), None),
        };
        let dir = if folder.is_empty() { root.clone() } else { root.join(&folder).map_err(invalid)? };
        let listed = blobs.list_dir(&dir).await.map_err(kiln_tracking::ServiceError::from)?;
        if listed.is_empty() && !folder.is_empty() && preview.is_none() {
            return Err(kiln_tracking::ServiceError::not_found(format!("the run has no artifact '{folder}'")).into());
        }
        let mut entries: Vec<ArtifactEntry> = listed
            .into_iter()
            .filter(|e| !e.name.starts_with(".kiln"))
            .map(|e| ArtifactEntry {
                path: if folder.is_empty() { e.name.clone() } else { format!("{folder}/{}", e.name) },
                name: e.name,
                is_dir: e.is_dir,
                size: e.size.map(human_size).unwrap_or_default(),
            })
            .collect();
        entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then(a.name.cmp(&b.name)));
        let folder_parent =
            (!folder.is_empty()).then(|| folder.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default());
        Ok((folder, folder_parent, entries, preview))
    }

    /// Runs side by side: overlaid metric charts and the params and metrics that differ.
    pub async fn compare(&self, run_ids: &[String]) -> Result<String> {
        if run_ids.is_empty() || run_ids.len() > COMPARE_LIMIT {
            return Err(kiln_tracking::ServiceError::invalid(format!(
                "select between 1 and {COMPARE_LIMIT} runs to compare ({} selected)",
                run_ids.len()
            ))
            .into());
        }
        let mut runs = Vec::new();
        for id in run_ids {
            runs.push(self.tracking.get_run(id).await?);
        }
        let names: Vec<(String, String)> =
            runs.iter().map(|r| (r.info.run_id.clone(), r.info.run_name.clone())).collect();
        let diff = |keys: BTreeSet<String>, value: &dyn Fn(&Run, &str) -> String| -> Vec<DiffRow> {
            keys.into_iter()
                .map(|k| {
                    let values: Vec<String> = runs.iter().map(|r| value(r, &k)).collect();
                    let differs = values.iter().any(|v| *v != values[0]);
                    DiffRow { key: k, values, differs }
                })
                .collect()
        };
        let param_keys: BTreeSet<String> = runs.iter().flat_map(|r| r.params.iter().map(|p| p.key.clone())).collect();
        let metric_keys: BTreeSet<String> = runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.key.clone())).collect();
        let params =
            diff(param_keys, &|r, k| r.params.iter().find(|p| p.key == k).map(|p| p.value.clone()).unwrap_or_default());
        let metrics = diff(metric_keys.clone(), &|r, k| cell(r.metrics.iter().find(|m| m.key == k).map(|m| m.value)));
        let mut charts = Vec::new();
        for key in metric_keys {
            let sampled = self.tracking.metric_history_bulk_interval(run_ids, &key, None, None, Some(320)).await?;
            let series: Vec<(String, Vec<(f64, f64)>)> = names
                .iter()
                .map(|(id, name)| {
                    let pts = sampled
                        .iter()
                        .filter(|p| p.run_id == *id)
                        .map(|p| (p.metric.step as f64, p.metric.value))
                        .collect();
                    (name.clone(), pts)
                })
                .collect();
            charts.push(MetricChart {
                key: key.clone(),
                last: String::new(),
                svg: chart::lines(&key, "step", &series, 560.0, 260.0),
            });
        }
        let experiment_id = runs[0].info.experiment_id.to_string();
        Ok(ComparePage { runs: names, experiment_id, params, metrics, charts }.render()?)
    }
}

fn run_row(r: &Run, columns: &[Column]) -> RunRow {
    RunRow {
        id: r.info.run_id.clone(),
        name: r.info.run_name.clone(),
        status_class: status_class(&r.info.status),
        status: r.info.status.clone(),
        start: time(r.info.start_time),
        duration: duration(r.info.start_time, r.info.end_time),
        cells: columns
            .iter()
            .map(|c| match c.kind {
                "metrics" => (cell(r.metrics.iter().find(|m| m.key == c.key).map(|m| m.value)), true),
                "params" => {
                    (r.params.iter().find(|p| p.key == c.key).map(|p| p.value.clone()).unwrap_or_default(), false)
                }
                _ => (r.tags.iter().find(|t| t.key == c.key).map(|t| t.value.clone()).unwrap_or_default(), false),
            })
            .collect(),
    }
}

// ---- Jobs -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    status: String,
    filters: Vec<(&'static str, &'static str)>,
    jobs: Vec<JobRow>,
}

pub struct StepRow {
    pub name: String,
    pub component: String,
    pub job: Option<String>,
    pub status: String,
    pub status_class: &'static str,
    pub reuse: String,
}

pub struct TrialRow {
    pub job: String,
    pub status: String,
    pub status_class: &'static str,
    pub values: Vec<String>,
    pub metric: String,
    pub best: bool,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    name: String,
    kind: String,
    display_name: String,
    status: String,
    status_class: &'static str,
    live: bool,
    failure: Option<String>,
    experiment: String,
    experiment_id: String,
    compute: String,
    command: String,
    environment: String,
    created: String,
    /// Name, what it is, and a link to its asset's page when it is an asset.
    inputs: Vec<(String, String, Option<String>)>,
    outputs: Vec<(String, String, Option<String>)>,
    transitions: Vec<(String, String)>,
    dag: Option<String>,
    steps: Vec<StepRow>,
    parallel: Option<String>,
    parameter_names: Vec<String>,
    objective: String,
    trials: Vec<TrialRow>,
}

/// The job statuses the list filters on, as links.
const STATUS_FILTERS: [(&str, &str); 5] =
    [("", "All"), ("active", "Active"), ("Completed", "Completed"), ("Failed", "Failed"), ("Canceled", "Canceled")];

/// The page of the asset an input names (`azureml:name:version`, `name@latest`), if any.
fn asset_link(v: &serde_json::Value) -> Option<String> {
    let m = v.as_object()?;
    let path = m.get("path")?.as_str()?;
    if !path.starts_with("azureml:") || path.starts_with("azureml://") {
        return None;
    }
    let kind = m.get("type").and_then(|t| t.as_str()).unwrap_or("uri_folder");
    let (page, prefix) = if kind.ends_with("_model") { ("models", "model") } else { ("data", "data") };
    // `azureml:name:version` links to that version's row; `name@latest` to the page.
    let reference = path.trim_start_matches("azureml:");
    Some(match reference.split_once(':') {
        Some((name, version)) if !reference.contains('@') => format!("/ui/{page}#{}", anchor(prefix, name, version)),
        _ => format!("/ui/{page}"),
    })
}

fn describe_input(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let kind = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
            let what = m.get("path").or_else(|| m.get("value")).map(|p| match p {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            match (what, kind.is_empty()) {
                (Some(w), false) => format!("{w} ({kind})"),
                (Some(w), true) => w,
                (None, _) => serde_json::Value::Object(m.clone()).to_string(),
            }
        }
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Studio {
    /// Jobs, newest first; `status` is a status name or `active` (not ended).
    pub async fn jobs(&self, status: Option<&str>) -> Result<String> {
        let all = self.orchestrator.list(&ListJobs { archived_only: None, limit: Some(500), parent: None }).await?;
        let status = status.unwrap_or("").to_string();
        let jobs = all
            .iter()
            .filter(|j| match status.as_str() {
                "" => true,
                "active" => !j.status.is_terminal(),
                s => j.status.as_str().eq_ignore_ascii_case(s),
            })
            .map(job_row)
            .collect();
        Ok(JobsPage { status, filters: STATUS_FILTERS.to_vec(), jobs }.render()?)
    }

    pub async fn job(&self, name: &str) -> Result<String> {
        let j = self.orchestrator.get(name).await?;
        let status = j.status.as_str().to_string();
        let inputs = j
            .spec
            .get("inputs")
            .and_then(|i| i.as_object())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), describe_input(v), asset_link(v))).collect())
            .unwrap_or_default();
        let outputs = j
            .outputs
            .iter()
            .map(|(k, o)| {
                let asset = match (&o.asset_name, &o.asset_version) {
                    (Some(n), Some(v)) => format!(" → {n}:{v}"),
                    (Some(n), None) => format!(" → {n}"),
                    _ => String::new(),
                };
                let link = o.asset_name.as_ref().map(|_| {
                    if ["mlflow_model", "custom_model", "triton_model"].contains(&o.data_type.as_str()) {
                        "/ui/models".to_string()
                    } else {
                        "/ui/data".to_string()
                    }
                });
                (k.clone(), format!("{} ({}){asset}", o.uri, o.data_type), link)
            })
            .collect();
        let transitions = j.transitions.iter().map(|(s, at)| (s.as_str().to_string(), time(Some(*at)))).collect();
        let (mut dag, mut steps) = (None, Vec::new());
        if j.kind == "pipeline" {
            let pipeline = self.orchestrator.pipeline_steps(name).await?;
            let nodes: Vec<crate::dag::Node> = pipeline
                .iter()
                .map(|s| {
                    let st = s.status.map(|x| x.as_str().to_string());
                    let (class, detail) = match (&s.reused_from, &st) {
                        (Some(_), _) => ("reused".to_string(), "reused".to_string()),
                        (None, Some(st)) => (status_class(st).to_string(), st.clone()),
                        (None, None) => ("waiting".to_string(), "waiting".to_string()),
                    };
                    crate::dag::Node {
                        id: s.name.clone(),
                        label: s.name.clone(),
                        detail,
                        class,
                        href: s.job.as_ref().map(|jn| format!("/ui/jobs/{jn}")),
                    }
                })
                .collect();
            let edges: Vec<(String, String)> = pipeline
                .iter()
                .flat_map(|s| s.after.iter().map(|a| (a.clone(), s.name.clone())).collect::<Vec<_>>())
                .collect();
            dag = Some(crate::dag::svg(&nodes, &edges));
            steps = pipeline
                .into_iter()
                .map(|s| {
                    let st = s.status.map(|x| x.as_str().to_string()).unwrap_or_else(|| "waiting".into());
                    StepRow {
                        status_class: status_class(&st),
                        status: st,
                        name: s.name,
                        component: s.component,
                        job: s.job,
                        // The reason names the job it reused, when it reused one.
                        reuse: match (s.reused_from, s.reuse) {
                            (_, Some(why)) => why,
                            (Some(from), None) => format!("reused job {from}"),
                            (None, None) => String::new(),
                        },
                    }
                })
                .collect();
        }
        let (mut parallel, mut parameter_names, mut objective, mut trials) =
            (None, Vec::new(), String::new(), Vec::new());
        if j.kind == "sweep" {
            let v = self.orchestrator.sweep_view(name).await?;
            parameter_names = v.parameters.iter().map(|p| p.name.clone()).collect();
            objective = v.primary_metric.clone();
            let best = v.best.as_ref().map(|b| b.job.clone());
            let lines: Vec<crate::parallel::Trial> = v
                .trials
                .iter()
                .map(|t| crate::parallel::Trial {
                    job: t.job.clone(),
                    values: parameter_names
                        .iter()
                        .map(|n| t.values.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default())
                        .collect(),
                    metric: t.metric,
                })
                .collect();
            parallel =
                Some(crate::parallel::svg(&parameter_names, &objective, v.goal == "maximize", &lines, best.as_deref()));
            trials = v
                .trials
                .iter()
                .map(|t| {
                    let st = match &t.early_terminated {
                        Some(_) => "EarlyTerminated".to_string(),
                        None => t.status.as_str().to_string(),
                    };
                    TrialRow {
                        job: t.job.clone(),
                        status_class: status_class(t.status.as_str()),
                        status: st,
                        values: parameter_names
                            .iter()
                            .map(|n| {
                                t.values
                                    .iter()
                                    .find(|(k, _)| k == n)
                                    .map(|(_, v)| match v {
                                        serde_json::Value::String(s) => s.clone(),
                                        other => other.to_string(),
                                    })
                                    .unwrap_or_default()
                            })
                            .collect(),
                        metric: t.metric.map(chart::short).unwrap_or_default(),
                        best: best.as_deref() == Some(t.job.as_str()),
                    }
                })
                .collect();
        }
        Ok(JobPage {
            name: j.name.clone(),
            kind: j.kind.clone(),
            display_name: j.display_name.clone().unwrap_or_default(),
            status_class: status_class(&status),
            live: !j.status.is_terminal(),
            status,
            failure: j.failure.clone(),
            experiment: j.experiment_name.clone(),
            experiment_id: j.experiment_id.clone(),
            compute: j.compute.clone(),
            command: j.command.clone(),
            environment: j.environment.clone(),
            created: time(Some(j.created_at)),
            inputs,
            outputs,
            transitions,
            dag,
            steps,
            parallel,
            parameter_names,
            objective,
            trials,
        }
        .render()?)
    }

    /// Cancels a job (the page's button).
    pub async fn cancel_job(&self, name: &str) -> Result<()> {
        self.orchestrator.cancel(name).await?;
        Ok(())
    }
}

// ---- Endpoints and assets ------------------------------------------------------------------

pub struct DeploymentRow {
    pub name: String,
    pub state: String,
    pub state_class: &'static str,
    pub runtime: String,
    pub model: String,
    pub instances: String,
    pub healthy: bool,
    pub traffic: u32,
    pub mirror: u32,
    pub requests: u64,
    pub errors: u64,
    pub mean_latency: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "endpoints.html")]
struct EndpointsPage {
    online: Vec<(String, String, String, String)>,
    batch: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "endpoint.html")]
struct EndpointPage {
    name: String,
    auth_mode: String,
    scoring_path: String,
    deployments: Vec<DeploymentRow>,
    requests_chart: String,
    latency_chart: String,
    sample: String,
}

/// A cell of a generic table page, with an optional link.
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
}

fn cell_text(t: impl Into<String>) -> Cell {
    Cell { text: t.into(), href: None }
}

#[derive(Template)]
#[template(path = "table.html")]
struct TablePage {
    title: String,
    table_id: String,
    empty: String,
    headers: Vec<&'static str>,
    /// Each row's anchor (`#model-iris-3`): a deep link to one object of the list.
    rows: Vec<(String, Vec<Cell>)>,
}

/// A row anchor: the object's kind, name and version, with anything but letters, digits, `-`
/// and `_` replaced.
fn anchor(kind: &str, name: &str, version: &str) -> String {
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect::<String>()
    };
    if version.is_empty() {
        format!("{kind}-{}", clean(name))
    } else {
        format!("{kind}-{}-{}", clean(name), clean(version))
    }
}

impl Studio {
    pub async fn endpoints(&self) -> Result<String> {
        let online = self
            .serving
            .list_endpoints()
            .await?
            .into_iter()
            .map(|e| {
                let traffic = e.traffic.iter().map(|(d, p)| format!("{d} {p}%")).collect::<Vec<_>>().join(", ");
                (e.name, e.auth_mode, traffic, e.scoring_path)
            })
            .collect();
        let batch = self
            .serving
            .list_batch_endpoints()
            .await?
            .into_iter()
            .map(|e| (e.name, e.default_deployment.unwrap_or_default(), e.deployments.join(", ")))
            .collect();
        Ok(EndpointsPage { online, batch }.render()?)
    }

    pub async fn endpoint(&self, name: &str) -> Result<String> {
        let e = self.serving.get_endpoint(name).await?;
        let deployments = self.serving.list_deployments(name).await?;
        let traffic = self.serving.deployment_traffic(name);
        let mut rows = Vec::new();
        let mut requests_series = Vec::new();
        let mut latency_series = Vec::new();
        let start = traffic.first().and_then(|(_, r)| r.seconds().first().map(|s| s.second)).unwrap_or(0);
        for d in &deployments {
            let recent = traffic.iter().find(|(n, _)| *n == d.name).map(|(_, r)| r.clone());
            let (requests, errors, latency_us) = recent
                .as_ref()
                .map(|r| {
                    use std::sync::atomic::Ordering::Relaxed;
                    (r.total.load(Relaxed), r.errors.load(Relaxed), r.latency_us.load(Relaxed))
                })
                .unwrap_or((0, 0, 0));
            if let Some(r) = &recent {
                let secs = r.seconds();
                requests_series.push((
                    d.name.clone(),
                    secs.iter().map(|s| ((s.second - start) as f64, s.requests as f64)).collect(),
                ));
                latency_series.push((
                    d.name.clone(),
                    secs.iter()
                        .filter(|s| s.requests > 0)
                        .map(|s| ((s.second - start) as f64, s.mean_latency_ms))
                        .collect(),
                ));
            }
            let healthy = d.provisioning_state == "Succeeded" && d.ready_instances > 0;
            rows.push(DeploymentRow {
                name: d.name.clone(),
                state_class: status_class(&d.provisioning_state),
                state: d.provisioning_state.clone(),
                runtime: d.runtime.clone(),
                model: match &d.model {
                    Some(m) => match (&m.name, &m.version) {
                        (Some(n), Some(v)) => format!("{n}:{v}"),
                        _ => m.label.clone(),
                    },
                    None => "-".into(),
                },
                instances: format!("{} of {}", d.ready_instances, d.instance_count),
                healthy,
                traffic: e.traffic.get(&d.name).copied().unwrap_or(0),
                mirror: e.mirror_traffic.get(&d.name).copied().unwrap_or(0),
                requests,
                errors,
                mean_latency: if requests == 0 {
                    "-".into()
                } else {
                    format!("{:.2} ms", latency_us as f64 / requests as f64 / 1000.0)
                },
                message: d.message.clone().unwrap_or_default(),
            });
        }
        // A request body to start from: the first ONNX deployment's inputs, else MLflow's
        // table form.
        let sample = deployments
            .iter()
            .find(|d| !d.inputs.is_empty())
            .map(|d| {
                let inputs: serde_json::Map<String, serde_json::Value> = d
                    .inputs
                    .iter()
                    .map(|i| {
                        // A row of the input's shape; open dimensions (and any input too big
                        // to show, past 1,000 values) are given one element each.
                        let total = i.shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(d.unwrap_or(1)));
                        let small = total.is_some_and(|t| t <= 1000);
                        let mut v = serde_json::json!(0.0);
                        for dim in i.shape.iter().rev() {
                            let n = if small { dim.unwrap_or(1) } else { 1 };
                            v = serde_json::Value::Array(vec![v; n]);
                        }
                        (i.name.clone(), v)
                    })
                    .collect();
                serde_json::json!({ "inputs": inputs })
            })
            .unwrap_or_else(|| serde_json::json!({"dataframe_split": {"columns": ["x"], "data": [[0]]}}));
        Ok(EndpointPage {
            name: e.name.clone(),
            auth_mode: e.auth_mode.clone(),
            scoring_path: e.scoring_path.clone(),
            deployments: rows,
            requests_chart: chart::lines("requests per second", "seconds", &requests_series, 520.0, 220.0),
            latency_chart: chart::lines("mean latency (ms)", "seconds", &latency_series, 520.0, 220.0),
            sample: serde_json::to_string_pretty(&sample).unwrap_or_default(),
        }
        .render()?)
    }

    pub async fn models(&self) -> Result<String> {
        // Aliases live on the registered model: `name` → [(alias, version)].
        let registered = self.registry.search_registered_models(None, &[], Some(1000), None).await?.items;
        let aliases = |name: &str, version: &str| -> String {
            registered
                .iter()
                .filter(|r| r.name == name)
                .flat_map(|r| r.aliases.iter())
                .filter(|(_, v)| v.to_string() == version)
                .map(|(a, _)| format!("@{a}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let rows = self
            .orchestrator
            .list_models(None, None)
            .await?
            .into_iter()
            .map(|m| {
                let id = anchor("model", &m.name, &m.version);
                (
                    id,
                    vec![
                        cell_text(aliases(&m.name, &m.version)),
                        cell_text(m.name),
                        cell_text(m.version),
                        cell_text(m.model_type),
                        cell_text(if m.archived { "archived".to_string() } else { m.stage }),
                        Cell {
                            text: m.run_id.clone().unwrap_or_else(|| "-".into()),
                            href: m.run_id.map(|r| format!("/ui/runs/{r}")),
                        },
                        cell_text(time(Some(m.created_at))),
                    ],
                )
            })
            .collect();
        table_page(
            "Models",
            "models",
            "No registered models.",
            vec!["Aliases", "Name", "Version", "Type", "Stage", "Run", "Created"],
            rows,
        )
    }

    pub async fn data(&self) -> Result<String> {
        let rows = self
            .orchestrator
            .list_data(None, None)
            .await?
            .into_iter()
            .map(|d| {
                let id = anchor("data", &d.name, &d.version);
                (
                    id,
                    vec![
                        cell_text(d.name),
                        cell_text(d.version),
                        cell_text(d.data_type),
                        cell_text(d.uri),
                        cell_text(time(Some(d.created_at))),
                    ],
                )
            })
            .collect();
        table_page("Data", "data", "No data assets.", vec!["Name", "Version", "Type", "Path", "Created"], rows)
    }

    pub async fn environments(&self) -> Result<String> {
        let rows = self
            .orchestrator
            .list_environments(None, None)
            .await?
            .into_iter()
            .map(|e| {
                let what = match &e.definition.requirements {
                    Some(r) => r.join(" "),
                    None => format!("{} (the host's Python)", e.definition.image.clone().unwrap_or_default()),
                };
                let id = anchor("environment", &e.name, &e.version);
                (
                    id,
                    vec![cell_text(e.name), cell_text(e.version), cell_text(what), cell_text(time(Some(e.created_at)))],
                )
            })
            .collect();
        table_page(
            "Environments",
            "environments",
            "No environments.",
            vec!["Name", "Version", "Packages", "Created"],
            rows,
        )
    }

    pub async fn components(&self) -> Result<String> {
        let rows = self
            .orchestrator
            .list_components(None, None)
            .await?
            .into_iter()
            .map(|c| {
                let id = anchor("component", &c.name, &c.version);
                (
                    id,
                    vec![
                        cell_text(c.name),
                        cell_text(c.version),
                        cell_text(c.kind),
                        cell_text(c.inputs.join(", ")),
                        cell_text(c.outputs.join(", ")),
                    ],
                )
            })
            .collect();
        table_page(
            "Components",
            "components",
            "No components.",
            vec!["Name", "Version", "Type", "Inputs", "Outputs"],
            rows,
        )
    }

    pub async fn schedules(&self) -> Result<String> {
        let rows = self
            .orchestrator
            .list_schedules(None)
            .await?
            .into_iter()
            .map(|s| {
                let id = anchor("schedule", &s.name, "");
                (
                    id,
                    vec![
                        cell_text(s.name),
                        cell_text(if s.enabled { "enabled" } else { "disabled" }),
                        cell_text(s.trigger),
                        cell_text(s.time_zone),
                        cell_text(s.next_fire_at.map(|t| time(Some(t))).unwrap_or_else(|| "-".into())),
                    ],
                )
            })
            .collect();
        table_page(
            "Schedules",
            "schedules",
            "No schedules.",
            vec!["Name", "State", "Trigger", "Time zone", "Next (UTC)"],
            rows,
        )
    }
}

fn table_page(
    title: &str,
    id: &str,
    empty: &str,
    headers: Vec<&'static str>,
    rows: Vec<(String, Vec<Cell>)>,
) -> Result<String> {
    Ok(TablePage { title: title.into(), table_id: id.into(), empty: empty.into(), headers, rows }.render()?)
}
