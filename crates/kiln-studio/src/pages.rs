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
            let ms = e - s;
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
}

pub struct RunRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub status_class: &'static str,
    pub start: String,
    pub duration: String,
    pub metrics: Vec<String>,
    pub params: Vec<String>,
}

#[derive(Template)]
#[template(path = "experiment.html")]
struct ExperimentPage {
    id: String,
    name: String,
    filter: String,
    order_by: String,
    error: Option<String>,
    metric_keys: Vec<String>,
    param_keys: Vec<String>,
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
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    charts: Vec<MetricChart>,
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
        let mut metric_keys = BTreeSet::new();
        let mut param_keys = BTreeSet::new();
        for r in &runs {
            metric_keys.extend(r.metrics.iter().map(|m| m.key.clone()));
            param_keys.extend(r.params.iter().map(|p| p.key.clone()));
        }
        let metric_keys: Vec<String> = metric_keys.into_iter().take(DEFAULT_COLUMNS).collect();
        let param_keys: Vec<String> = param_keys.into_iter().take(DEFAULT_COLUMNS).collect();
        let rows = runs.iter().map(|r| run_row(r, &metric_keys, &param_keys)).collect();
        Ok(ExperimentPage {
            id: exp.experiment_id.to_string(),
            name: exp.name,
            filter: q.filter.clone().unwrap_or_default(),
            order_by: q.order_by.clone().unwrap_or_default(),
            error,
            metric_keys,
            param_keys,
            runs: rows,
            next_page,
        }
        .render()?)
    }

    pub async fn run(&self, id: &str) -> Result<String> {
        let r = self.tracking.get_run(id).await?;
        let mut charts = Vec::new();
        let mut keys: Vec<&kiln_store::Metric> = r.metrics.iter().collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        for m in keys {
            // Down-sampled on the server: a million-point metric draws as fast as a short one.
            let sampled =
                self.tracking.metric_history_bulk_interval(&[id.to_string()], &m.key, None, None, Some(320)).await?;
            let points: Vec<(f64, f64)> = sampled.iter().map(|p| (p.metric.step as f64, p.metric.value)).collect();
            charts.push(MetricChart {
                key: m.key.clone(),
                last: chart::short(m.value),
                svg: chart::line(&m.key, "step", &points, 460.0, 220.0),
            });
        }
        let tag = |k: &str| r.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
        let status = r.info.status.clone();
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
            params: r.params.iter().map(|p| (p.key.clone(), p.value.clone())).collect(),
            tags: r
                .tags
                .iter()
                .filter(|t| !t.key.starts_with("mlflow."))
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
            charts,
        }
        .render()?)
    }
}

fn run_row(r: &Run, metric_keys: &[String], param_keys: &[String]) -> RunRow {
    RunRow {
        id: r.info.run_id.clone(),
        name: r.info.run_name.clone(),
        status_class: status_class(&r.info.status),
        status: r.info.status.clone(),
        start: time(r.info.start_time),
        duration: duration(r.info.start_time, r.info.end_time),
        metrics: metric_keys.iter().map(|k| cell(r.metrics.iter().find(|m| m.key == *k).map(|m| m.value))).collect(),
        params: param_keys
            .iter()
            .map(|k| r.params.iter().find(|p| p.key == *k).map(|p| p.value.clone()).unwrap_or_default())
            .collect(),
    }
}
