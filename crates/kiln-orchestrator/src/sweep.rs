//! Sweep jobs: trials of one command, each a child job (and child MLflow run) of the sweep,
//! with values suggested by `kiln-tune`'s samplers from what earlier trials scored.
//!
//! As with pipelines, nothing lives only in memory: the sweep's document holds its spec and
//! the seed its sampler draws with, every trial is a job whose properties say its number and
//! values, and its scores are the primary metric its run logged. `advance_sweep` reads those
//! and does what is due (stop trials the early-termination policy picks, start trials up to
//! the concurrency limit, end the sweep with its best trial); it runs when the sweep is
//! submitted, when a trial ends, every second while the sweep runs (metrics arrive without
//! telling anyone), and after a restart.
//!
//! A trial's score is the best value it reported (by the goal), as the bandit policy's
//! "best so far" reads it; the best trial is the completed trial with the best score.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_spec::job::CommandJob;
use kiln_spec::sweep::{Sampling, SweepJob, SweepSettings};
use kiln_store::{JobFilter, JobRecord, now_ms};
use kiln_tracking::ServiceError;
use kiln_tune::early::Curve;
use kiln_tune::sample::{GridSampler, RandomSampler, Sampler};
use kiln_tune::{Assignment, Goal, Observation, TuneError};
use serde::{Deserialize, Serialize};

use crate::{JobOutput, JobStatus, Orchestrator, Result, StepRecord, Submission};

/// How often a running sweep looks at its trials' metrics (early termination) and its clock.
const SWEEP_TICK: Duration = Duration::from_secs(1);

/// What the `spec` column of a sweep job holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SweepDocument {
    pub kind: SweepKind,
    /// The bundled spec as submitted.
    pub spec: String,
    pub source: String,
    pub experiment_name: String,
    /// The trials' environment, as the first trial resolved it.
    pub environment: String,
    /// What the sampler draws with: the spec's seed, or one picked at submission.
    pub seed: u64,
    pub warnings: Vec<String>,
    /// The best trial's outputs, once the sweep has ended.
    pub outputs: BTreeMap<String, JobOutput>,
    #[serde(default)]
    pub best: Option<BestTrial>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SweepKind {
    Sweep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestTrial {
    pub job: String,
    pub metric: f64,
}

/// A sweep as `job show` and the studio's parallel-coordinates view read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepView {
    pub primary_metric: String,
    /// `maximize` or `minimize`.
    pub goal: String,
    pub sampling_algorithm: String,
    pub parameters: Vec<SweepParameter>,
    pub max_total_trials: u32,
    pub max_concurrent_trials: u32,
    pub best: Option<BestTrial>,
    pub trials: Vec<SweepTrial>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepParameter {
    pub name: String,
    /// `uniform`, `choice`, …
    pub distribution: String,
    /// The distribution's parameters as written (`min_value`, `values`, `mu`, …).
    pub arguments: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepTrial {
    /// 0-based, in the order trials were started.
    pub index: usize,
    pub job: String,
    pub status: JobStatus,
    /// The trial's values, in the search space's order.
    pub values: Vec<(String, serde_json::Value)>,
    /// The best value of the primary metric it reported.
    pub metric: Option<f64>,
    /// How many times it reported the primary metric.
    pub reports: usize,
    /// Why the early-termination policy stopped it, when it did.
    pub early_terminated: Option<String>,
    pub failure: Option<String>,
}

/// A trial as the driver sees it.
struct Trial {
    index: usize,
    record: JobRecord,
    status: JobStatus,
    values: Assignment,
    curve: Vec<f64>,
    early_terminated: Option<String>,
}

impl Trial {
    /// Running and not already being stopped.
    fn running(&self) -> bool {
        !self.status.is_terminal() && self.status != JobStatus::CancelRequested && self.early_terminated.is_none()
    }
}

fn invalid(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::invalid(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(e.to_string())
}

/// The best of `values` by `goal`, ignoring values that are not finite.
fn best_value(goal: Goal, values: &[f64]) -> Option<f64> {
    values.iter().copied().filter(|v| v.is_finite()).fold(None, |b, v| match b {
        Some(b) if !goal.better(v, b) => Some(b),
        _ => Some(v),
    })
}

fn sampler(settings: &SweepSettings, seed: u64) -> std::result::Result<Box<dyn Sampler>, TuneError> {
    let space = settings.search_space.clone();
    Ok(match settings.sampling {
        Sampling::Random { .. } => Box::new(RandomSampler::new(space, seed)?),
        Sampling::Grid => Box::new(GridSampler::new(space)?),
        Sampling::Bayesian => Box::new(kiln_tune::bayes::BayesianSampler::new(space, settings.objective.goal, seed)?),
    })
}

/// A trial's values as stored in its properties (a JSON object) and back, in the space's order.
fn values_text(values: &Assignment) -> String {
    let map: serde_json::Map<String, serde_json::Value> = values.iter().cloned().collect();
    serde_json::Value::Object(map).to_string()
}

fn values_from_text(settings: &SweepSettings, text: &str) -> Assignment {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
    settings
        .search_space
        .parameters
        .iter()
        .filter_map(|p| map.get(&p.name).map(|v| (p.name.clone(), v.clone())))
        .collect()
}

impl Orchestrator {
    /// The checked sweep a document holds.
    fn sweep_spec(&self, doc: &SweepDocument) -> Result<SweepJob> {
        let root = kiln_spec::parse_with_overrides(&doc.source, &doc.spec, &[]).map_err(invalid)?;
        match kiln_spec::job_from_node(&doc.source, &root).map_err(invalid)? {
            (kiln_spec::JobSpec::Sweep(s), _) => Ok(s),
            _ => Err(ServiceError::internal("the stored sweep is not a sweep")),
        }
    }

    pub(crate) async fn submit_sweep(
        &self,
        sweep: SweepJob,
        sub: Submission,
        source: String,
        warnings: Vec<String>,
    ) -> Result<crate::Job> {
        let name = sweep.name.clone().unwrap_or_else(kiln_tracking::names::random_job_name);
        if self.store().get_job(&name).await?.is_some() || self.store().get_run_info(&name).await?.is_some() {
            return Err(ServiceError::exists(format!("a job named '{name}' already exists")));
        }
        let experiment = self.experiment(sweep.experiment_name.as_deref().unwrap_or("Default")).await?;
        let seed = match sweep.sweep.sampling {
            Sampling::Random { seed: Some(s) } => s,
            _ => rand_seed(),
        };
        // The first trial is prepared (not recorded) now, so a spec whose trials cannot run
        // (a missing input, an unknown environment or compute) is refused before anything is.
        let first = sampler(&sweep.sweep, seed)
            .and_then(|mut s| s.suggest(0, &[], &[]))
            .map_err(|e| ServiceError::invalid(format!("{source}: search_space: {e}")))?;
        let probe = trial_job(&sweep.trial, &format!("{name}_0"), &name, &experiment.name, &first);
        let prepared = self.prepare_command(&probe, &source, Some(experiment.clone()), None).await?;
        let compute = prepared.compute.clone();
        let display_name = sweep.display_name.clone().unwrap_or_else(|| name.clone());
        let mut tags = vec![
            kiln_tracking::Tag::new("mlflow.runName", display_name.clone()),
            kiln_tracking::Tag::new("mlflow.source.type", "JOB"),
            kiln_tracking::Tag::new("kiln.job.kind", "sweep"),
        ];
        if let Some(user) = &sub.user {
            tags.push(kiln_tracking::Tag::new("mlflow.user", user.clone()));
        }
        for (k, v) in &sweep.tags {
            tags.push(kiln_tracking::Tag::new(k.clone(), v.clone()));
        }
        if let Some(d) = &sweep.description {
            tags.push(kiln_tracking::Tag::new("mlflow.note.content", d.clone()));
        }
        let s = &sweep.sweep;
        let mut properties = sweep.properties.clone();
        properties.insert("kiln.sweep.sampling_algorithm".into(), s.sampling.name().into());
        properties.insert("kiln.sweep.seed".into(), seed.to_string());
        properties.insert("kiln.sweep.primary_metric".into(), s.objective.primary_metric.clone());
        properties.insert(
            "kiln.sweep.goal".into(),
            if s.objective.goal == Goal::Maximize { "maximize" } else { "minimize" }.into(),
        );
        let doc = SweepDocument {
            kind: SweepKind::Sweep,
            spec: sub.spec.clone(),
            source: source.clone(),
            experiment_name: experiment.name.clone(),
            environment: prepared.resolved.plan.environment.label.clone(),
            seed,
            warnings,
            outputs: BTreeMap::new(),
            best: None,
        };
        self.inner
            .tracking
            .create_run(kiln_tracking::NewRun {
                run_id: Some(name.clone()),
                experiment_id: Some(experiment.experiment_id.to_string()),
                user_id: sub.user.clone(),
                run_name: Some(display_name.clone()),
                start_time: None,
                tags,
            })
            .await?;
        let now = now_ms();
        let record = JobRecord {
            name: name.clone(),
            kind: "sweep".into(),
            display_name: Some(display_name),
            description: sweep.description.clone(),
            experiment_id: experiment.experiment_id,
            compute,
            status: JobStatus::NotStarted.as_str().into(),
            failure: None,
            spec: serde_json::to_string(&doc).map_err(internal)?,
            tags: serde_json::to_string(&sweep.tags).unwrap_or_else(|_| "{}".into()),
            properties: serde_json::to_string(&properties).unwrap_or_else(|_| "{}".into()),
            created_at: now,
            updated_at: now,
            archived: false,
            runner: None,
            parent: None,
            reuse_key: None,
            lineage: None,
            transitions: Vec::new(),
        };
        self.store().insert_job(&record).await?;
        // A sweep has no process of its own: its trials do the work.
        self.move_to(&name, JobStatus::Running, None).await?;
        self.mirror_run_status(&name, "RUNNING").await;
        self.advance_sweep(&name).await?;
        self.watch_sweep(&name);
        self.get(&name).await
    }

    /// Advances a running sweep every `SWEEP_TICK` until it ends.
    pub(crate) fn watch_sweep(&self, name: &str) {
        let this = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_TICK).await;
                match this.store().get_job(&name).await {
                    Ok(Some(r)) if JobStatus::parse(&r.status).is_some_and(|s| !s.is_terminal()) => {}
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(sweep = %name, error = %e, "cannot read the sweep");
                        continue;
                    }
                }
                if let Err(e) = this.advance_sweep(&name).await {
                    tracing::warn!(sweep = %name, error = %e, "cannot advance the sweep");
                }
            }
        });
    }

    /// A trial's reports of the primary metric, in step order. A finished trial's reports do
    /// not change, so they are read once.
    async fn trial_curve(&self, job: &str, metric: &str, terminal: bool) -> Result<Vec<f64>> {
        if let Some(c) = self.inner.trial_curves.lock().ok().and_then(|m| m.get(job).cloned()) {
            return Ok(c);
        }
        let mut values = Vec::new();
        let mut after = None;
        loop {
            let page = self.store().metric_history(job, metric, after, Some(10_000)).await?;
            values.extend(page.items.iter().map(|m| m.value));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        if terminal && let Ok(mut m) = self.inner.trial_curves.lock() {
            m.insert(job.to_string(), values.clone());
        }
        Ok(values)
    }

    /// The sweep's trials, in the order they were started.
    async fn sweep_trials(&self, name: &str, settings: &SweepSettings) -> Result<Vec<Trial>> {
        let children = self
            .store()
            .list_jobs(&JobFilter {
                parent: Some(name.to_string()),
                oldest_first: true,
                without_spec: true,
                ..Default::default()
            })
            .await?;
        let mut trials = Vec::with_capacity(children.len());
        for record in children {
            let props: BTreeMap<String, String> = serde_json::from_str(&record.properties).unwrap_or_default();
            let Some(index) = props.get("kiln.trial").and_then(|i| i.parse().ok()) else { continue };
            let status = JobStatus::parse(&record.status).unwrap_or(JobStatus::Failed);
            let curve =
                self.trial_curve(&record.name, &settings.objective.primary_metric, status.is_terminal()).await?;
            trials.push(Trial {
                index,
                values: values_from_text(settings, props.get("kiln.trial.values").map(String::as_str).unwrap_or("{}")),
                early_terminated: props.get("kiln.early_terminated").cloned(),
                status,
                curve,
                record,
            });
        }
        trials.sort_by_key(|t| t.index);
        Ok(trials)
    }

    /// Does what is due in a sweep: stops trials, starts trials, ends the sweep.
    pub(crate) async fn advance_sweep(&self, name: &str) -> Result<()> {
        let _serial = self.inner.pipelines.lock().await;
        let record = self.record(name).await?;
        let status = JobStatus::parse(&record.status).unwrap_or(JobStatus::Failed);
        if status.is_terminal() {
            return Ok(());
        }
        let mut doc: SweepDocument = serde_json::from_str(&record.spec).map_err(internal)?;
        let sweep = match self.sweep_spec(&doc) {
            Ok(s) => s,
            Err(e) => return self.end_sweep(name, &mut doc, JobStatus::Failed, Some(&e.message), &[], None).await,
        };
        let settings = &sweep.sweep;
        let goal = settings.objective.goal;
        let mut trials = self.sweep_trials(name, settings).await?;

        let timed_out = settings.limits.timeout_s.is_some_and(|t| now_ms() - record.created_at >= t as i64 * 1000);
        if status == JobStatus::CancelRequested || timed_out {
            let mut active = false;
            for t in trials.iter().filter(|t| !t.status.is_terminal()) {
                active = true;
                if t.status != JobStatus::CancelRequested {
                    self.cancel_command(&t.record.name).await?;
                }
            }
            if active {
                return Ok(());
            }
            let note = if status == JobStatus::CancelRequested {
                None
            } else {
                Some(format!("stopped at the sweep's timeout ({} s)", settings.limits.timeout_s.unwrap_or(0)))
            };
            let end = if status == JobStatus::CancelRequested { JobStatus::Canceled } else { JobStatus::Completed };
            return self.end_sweep(name, &mut doc, end, None, &trials, note).await;
        }

        if let Some(policy) = &settings.early_termination {
            let curves: Vec<Curve> = trials
                .iter()
                .filter(|t| !t.curve.is_empty())
                .map(|t| Curve { id: t.record.name.clone(), values: t.curve.clone(), running: t.running() })
                .collect();
            let stop: Vec<String> = policy.to_stop(goal, &curves).into_iter().map(str::to_string).collect();
            for job in stop {
                let Some(t) = trials.iter_mut().find(|t| t.record.name == job) else { continue };
                let reason = format!(
                    "stopped early by the {} policy after {} reports of {}",
                    policy_name(&policy.policy),
                    t.curve.len(),
                    settings.objective.primary_metric
                );
                self.mark_early_terminated(&t.record, &reason).await?;
                t.early_terminated = Some(reason);
                self.cancel_command(&job).await?;
            }
        }

        // Start trials up to the limits.
        let limits = settings.limits;
        let mut running = trials.iter().filter(|t| t.running()).count();
        let mut started = trials.len();
        let mut exhausted = false;
        let experiment = self.inner.tracking.get_experiment(&record.experiment_id.to_string()).await?;
        while running < limits.max_concurrent_trials as usize && started < limits.max_total_trials as usize {
            let finished: Vec<Observation> = trials
                .iter()
                .filter(|t| t.status.is_terminal())
                .map(|t| Observation {
                    assignment: t.values.clone(),
                    // What a trial reported counts even when it failed later (a trial
                    // timeout, a crash after the last epoch): the values were measured.
                    value: best_value(goal, &t.curve),
                })
                .collect();
            let pending: Vec<Assignment> =
                trials.iter().filter(|t| !t.status.is_terminal()).map(|t| t.values.clone()).collect();
            let mut s = match sampler(settings, doc.seed) {
                Ok(s) => s,
                Err(e) => {
                    return self
                        .end_sweep(name, &mut doc, JobStatus::Failed, Some(&e.to_string()), &trials, None)
                        .await;
                }
            };
            let index = started;
            // The Bayesian sampler fits a model: keep it off the async workers.
            let suggested =
                tokio::task::spawn_blocking(move || s.suggest(index, &finished, &pending)).await.map_err(internal)?;
            let values = match suggested {
                Ok(v) => v,
                Err(TuneError::Exhausted(_)) => {
                    exhausted = true;
                    break;
                }
                Err(e) => {
                    return self
                        .end_sweep(name, &mut doc, JobStatus::Failed, Some(&e.to_string()), &trials, None)
                        .await;
                }
            };
            let trial = match self.start_trial(&record, &doc, &sweep.trial, index, &values, &experiment).await {
                Ok(r) => r,
                Err(e) => {
                    let reason = format!("trial {index} could not start: {}", e.message);
                    return self.end_sweep(name, &mut doc, JobStatus::Failed, Some(&reason), &trials, None).await;
                }
            };
            trials.push(Trial {
                index,
                status: JobStatus::parse(&trial.status).unwrap_or(JobStatus::Queued),
                record: trial,
                values,
                curve: Vec::new(),
                early_terminated: None,
            });
            running += 1;
            started += 1;
        }
        if trials.iter().any(|t| !t.status.is_terminal()) {
            return Ok(());
        }
        let note = exhausted.then(|| format!("the grid's {started} points were all tried"));
        self.end_sweep(name, &mut doc, JobStatus::Completed, None, &trials, note).await
    }

    /// Records trial `index` with `values` as a child job of the sweep and queues it.
    async fn start_trial(
        &self,
        sweep: &JobRecord,
        doc: &SweepDocument,
        template: &CommandJob,
        index: usize,
        values: &Assignment,
        experiment: &kiln_store::Experiment,
    ) -> Result<JobRecord> {
        let name = format!("{}_{index}", sweep.name);
        let spec = trial_job(template, &name, &sweep.name, &doc.experiment_name, values);
        let source = format!("{} (trial {index})", doc.source);
        let prepared = self.prepare_command(&spec, &source, Some(experiment.clone()), None).await?;
        let properties = BTreeMap::from([
            ("kiln.trial".to_string(), index.to_string()),
            ("kiln.trial.values".to_string(), values_text(values)),
        ]);
        let summary = serde_json::json!({
            "type": "command",
            "trial": index,
            "sweep": sweep.name,
            "command": spec.command.value,
            "search_space": values_text(values),
        })
        .to_string();
        let step = StepRecord {
            parent: sweep.name.clone(),
            lineage: format!("{}/{}/trial", experiment.experiment_id, sweep.name),
            reuse_key: None,
            reuse_parts: BTreeMap::new(),
            properties,
            params: values.iter().map(|(k, v)| (k.clone(), kiln_tune::space::render(v))).collect(),
        };
        self.record_command(&spec, summary, prepared, Vec::new(), None, Some(step)).await?;
        self.record(&name).await
    }

    async fn mark_early_terminated(&self, trial: &JobRecord, reason: &str) -> Result<()> {
        let mut record = self.record(&trial.name).await?;
        let mut props: BTreeMap<String, String> = serde_json::from_str(&record.properties).unwrap_or_default();
        props.insert("kiln.early_terminated".into(), reason.to_string());
        record.properties = serde_json::to_string(&props).map_err(internal)?;
        self.store().update_job_meta(&record).await?;
        self.inner.tracking.set_tag(&trial.name, "kiln.early_terminated", "true").await?;
        Ok(())
    }

    /// Ends a sweep: the best completed trial (if any) gives its outputs and metric; a sweep
    /// meant to complete fails when no trial completed with a score.
    async fn end_sweep(
        &self,
        name: &str,
        doc: &mut SweepDocument,
        status: JobStatus,
        reason: Option<&str>,
        trials: &[Trial],
        note: Option<String>,
    ) -> Result<()> {
        let sweep = self.sweep_spec(doc).ok();
        let mut status = status;
        let mut reason = reason.map(str::to_string);
        if let Some(sweep) = &sweep {
            let goal = sweep.sweep.objective.goal;
            let best = trials
                .iter()
                .filter(|t| t.status == JobStatus::Completed)
                .filter_map(|t| best_value(goal, &t.curve).map(|v| (t, v)))
                .fold(None::<(&Trial, f64)>, |b, (t, v)| match b {
                    Some((_, bv)) if !goal.better(v, bv) => b,
                    _ => Some((t, v)),
                });
            match best {
                Some((t, v)) => {
                    doc.best = Some(BestTrial { job: t.record.name.clone(), metric: v });
                    if let Ok(job) = self.get(&t.record.name).await {
                        doc.outputs = job.outputs.clone();
                        // Outputs the sweep registers as assets are registered from the best trial.
                        for (k, o) in doc.outputs.iter_mut() {
                            if let Some(spec_out) = sweep.trial.outputs.get(k) {
                                o.asset_name = spec_out.value.asset_name.clone();
                                o.asset_version = spec_out.value.asset_version.clone();
                            }
                        }
                    }
                }
                None if status == JobStatus::Completed => {
                    status = JobStatus::Failed;
                    let metric = &sweep.sweep.objective.primary_metric;
                    reason = Some(if trials.is_empty() {
                        "no trial ran".to_string()
                    } else if trials.iter().all(|t| t.status == JobStatus::Failed) {
                        let first = trials.iter().find_map(|t| t.record.failure.clone()).unwrap_or_default();
                        format!("all {} trials failed (the first: {first})", trials.len())
                    } else {
                        format!("no completed trial logged the primary metric '{metric}'")
                    });
                }
                None => {}
            }
            if status == JobStatus::Completed
                && let Err(e) = self.register_job_outputs(name, &doc.outputs).await
            {
                status = JobStatus::Failed;
                reason = Some(format!("registering the outputs failed: {e}"));
            }
            if let Some(best) = &doc.best {
                let metric = kiln_tracking::Metric {
                    key: sweep.sweep.objective.primary_metric.clone(),
                    value: best.metric,
                    timestamp: now_ms(),
                    step: 0,
                    model_id: None,
                    dataset_name: None,
                    dataset_digest: None,
                };
                let tags = vec![kiln_tracking::Tag::new("best_child_run_id", best.job.clone())];
                if let Err(e) = self.inner.tracking.log_batch(name, vec![metric], Vec::new(), tags).await {
                    tracing::warn!(sweep = %name, error = %e, "cannot log the best trial on the sweep's run");
                }
            }
        }
        let mut record = self.record(name).await?;
        let mut props: BTreeMap<String, String> = serde_json::from_str(&record.properties).unwrap_or_default();
        if let Some(best) = &doc.best {
            props.insert("best_child_run_id".into(), best.job.clone());
            props.insert("kiln.sweep.best_metric".into(), kiln_tune::space::python_float(best.metric));
        }
        props.insert("kiln.sweep.trials".into(), trials.len().to_string());
        if let Some(note) = note {
            props.insert("kiln.sweep.stopped".into(), note);
        }
        record.properties = serde_json::to_string(&props).map_err(internal)?;
        self.store().update_job_meta(&record).await?;
        self.store().set_job_spec(name, &serde_json::to_string(&doc).map_err(internal)?).await?;
        if let Ok(mut curves) = self.inner.trial_curves.lock() {
            for t in trials {
                curves.remove(&t.record.name);
            }
        }
        if self.move_to(name, status, reason.as_deref()).await? {
            self.mirror_run_end(name, status).await;
        }
        Ok(())
    }

    /// Cancels a sweep: running trials are canceled, no new trial starts.
    pub(crate) async fn cancel_sweep(&self, name: &str) -> Result<()> {
        if !self.move_to(name, JobStatus::CancelRequested, None).await? {
            return Ok(());
        }
        self.advance_sweep(name).await
    }

    /// A sweep's trials with their values, metric and status, for `job show` and the studio.
    pub async fn sweep_view(&self, name: &str) -> Result<SweepView> {
        let record = self.record(name).await?;
        if record.kind != "sweep" {
            return Err(ServiceError::invalid(format!("job '{name}' is a {} job, not a sweep", record.kind)));
        }
        let doc: SweepDocument = serde_json::from_str(&record.spec).map_err(internal)?;
        let sweep = self.sweep_spec(&doc)?;
        let s = &sweep.sweep;
        let goal = s.objective.goal;
        let trials = self.sweep_trials(name, s).await?;
        Ok(SweepView {
            primary_metric: s.objective.primary_metric.clone(),
            goal: if goal == Goal::Maximize { "maximize" } else { "minimize" }.into(),
            sampling_algorithm: s.sampling.name().into(),
            parameters: s
                .search_space
                .parameters
                .iter()
                .map(|p| {
                    let (distribution, arguments) = describe_distribution(&p.distribution);
                    SweepParameter { name: p.name.clone(), distribution: distribution.into(), arguments }
                })
                .collect(),
            max_total_trials: s.limits.max_total_trials,
            max_concurrent_trials: s.limits.max_concurrent_trials,
            best: doc.best.clone(),
            trials: trials
                .into_iter()
                .map(|t| SweepTrial {
                    index: t.index,
                    status: t.status,
                    metric: best_value(goal, &t.curve),
                    reports: t.curve.len(),
                    early_terminated: t.early_terminated,
                    failure: t.record.failure.clone(),
                    job: t.record.name,
                    values: t.values,
                })
                .collect(),
        })
    }
}

/// The command job of one trial: the template with its name, values and parent.
fn trial_job(template: &CommandJob, name: &str, sweep: &str, experiment: &str, values: &Assignment) -> CommandJob {
    let mut spec = template.clone();
    spec.name = Some(name.to_string());
    spec.display_name = Some(name.to_string());
    spec.experiment_name = Some(experiment.to_string());
    spec.parent_job_name = Some(sweep.to_string());
    spec.command.value = kiln_spec::sweep::render_trial_command(&template.command.value, values);
    for v in spec.environment_variables.values_mut() {
        *v = kiln_spec::sweep::render_trial_command(v, values);
    }
    // Each trial writes its own outputs; the sweep registers the best trial's.
    for o in spec.outputs.values_mut() {
        o.value.asset_name = None;
        o.value.asset_version = None;
    }
    spec
}

fn policy_name(p: &kiln_tune::early::Policy) -> &'static str {
    match p {
        kiln_tune::early::Policy::Bandit { .. } => "bandit",
        kiln_tune::early::Policy::MedianStopping => "median stopping",
        kiln_tune::early::Policy::TruncationSelection { .. } => "truncation selection",
    }
}

fn describe_distribution(d: &kiln_tune::Distribution) -> (&'static str, serde_json::Value) {
    use kiln_tune::Distribution as D;
    use serde_json::json;
    match d {
        D::Choice { values } => ("choice", json!({ "values": values })),
        D::Randint { upper } => ("randint", json!({ "upper": upper })),
        D::Uniform { min, max } => ("uniform", json!({ "min_value": min, "max_value": max })),
        D::LogUniform { min, max } => ("loguniform", json!({ "min_value": min, "max_value": max })),
        D::QUniform { min, max, q } => ("quniform", json!({ "min_value": min, "max_value": max, "q": q })),
        D::QLogUniform { min, max, q } => ("qloguniform", json!({ "min_value": min, "max_value": max, "q": q })),
        D::Normal { mu, sigma } => ("normal", json!({ "mu": mu, "sigma": sigma })),
        D::LogNormal { mu, sigma } => ("lognormal", json!({ "mu": mu, "sigma": sigma })),
        D::QNormal { mu, sigma, q } => ("qnormal", json!({ "mu": mu, "sigma": sigma, "q": q })),
        D::QLogNormal { mu, sigma, q } => ("qlognormal", json!({ "mu": mu, "sigma": sigma, "q": q })),
    }
}

/// A seed for a sweep that names none (kept in its document, so a restart draws the same
/// values; small enough to copy into a spec's `seed:` to draw them again).
fn rand_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 >> 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_value_follows_the_goal_and_skips_nan() {
        assert_eq!(best_value(Goal::Maximize, &[0.1, f64::NAN, 0.7, 0.3]), Some(0.7));
        assert_eq!(best_value(Goal::Minimize, &[0.1, f64::NAN, 0.7, 0.3]), Some(0.1));
        assert_eq!(best_value(Goal::Minimize, &[]), None);
    }
}
