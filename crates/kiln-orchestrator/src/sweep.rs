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

use kiln_spec::graph::GraphStep;
use kiln_spec::job::{CommandJob, JobInput, Literal, LiteralKind, Located};
use kiln_spec::pipeline::PortKind;
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
    /// A pipeline's sweep node: the step its trial and settings come from (`spec` is then
    /// the step's summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<SweepStepOrigin>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SweepKind {
    Sweep,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SweepStepOrigin {
    pub pipeline: String,
    /// The step's path in the pipeline's graph.
    pub step: String,
    /// The jobs of the steps it reads from (graph index → job), as when it started.
    pub upstream: BTreeMap<usize, String>,
}

/// What a sweep runs: the trials' command job and the search, however the sweep was written.
pub(crate) struct SweepPlan {
    pub trial: CommandJob,
    pub settings: SweepSettings,
    /// A pipeline sweep node's values go to the trial component's inputs (of these kinds);
    /// a standalone sweep's into its command's `${{search_space.x}}`.
    pub inputs: BTreeMap<String, LiteralKind>,
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

/// What a sweep job is recorded with.
struct NewSweep {
    name: String,
    display_name: String,
    description: Option<String>,
    tags: BTreeMap<String, String>,
    properties: BTreeMap<String, String>,
    user: Option<String>,
    /// The pipeline of a sweep node.
    parent: Option<String>,
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
    /// Running, not already being stopped, and not finalizing (its training is done: stopping
    /// it now saves nothing and may lose the best result).
    fn running(&self) -> bool {
        !self.status.is_terminal()
            && !matches!(self.status, JobStatus::CancelRequested | JobStatus::Finalizing)
            && self.early_terminated.is_none()
    }
}

fn invalid(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::invalid(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(e.to_string())
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
    /// What a sweep's document says to run: its own spec, or its pipeline's step.
    async fn sweep_plan(&self, doc: &SweepDocument) -> Result<SweepPlan> {
        let Some(origin) = &doc.step else {
            let root = kiln_spec::parse_with_overrides(&doc.source, &doc.spec, &[]).map_err(invalid)?;
            let (kiln_spec::JobSpec::Sweep(s), _) = kiln_spec::job_from_node(&doc.source, &root).map_err(invalid)?
            else {
                return Err(ServiceError::internal("the stored sweep is not a sweep"));
            };
            return Ok(SweepPlan { trial: s.trial, settings: s.sweep, inputs: BTreeMap::new() });
        };
        let pipeline = self.record(&origin.pipeline).await?;
        let pdoc: crate::pipeline::PipelineDocument = serde_json::from_str(&pipeline.spec).map_err(internal)?;
        let ended = JobStatus::parse(&pipeline.status).is_none_or(|s| s.is_terminal());
        let pg = if ended {
            std::sync::Arc::new(self.pipeline_graph(&pdoc)?)
        } else {
            self.running_pipeline_graph(&origin.pipeline, &pdoc)?
        };
        let step = pg.1.steps.iter().find(|s| s.path == origin.step).ok_or_else(|| {
            ServiceError::internal(format!("pipeline {} has no step '{}'", origin.pipeline, origin.step))
        })?;
        step_sweep_plan(step, &origin.upstream, &pdoc.experiment_name, &origin.pipeline)
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
        let plan = SweepPlan { trial: sweep.trial.clone(), settings: sweep.sweep.clone(), inputs: BTreeMap::new() };
        let doc = SweepDocument {
            kind: SweepKind::Sweep,
            spec: sub.spec.clone(),
            source,
            experiment_name: experiment.name.clone(),
            environment: String::new(),
            seed: 0,
            warnings,
            outputs: BTreeMap::new(),
            best: None,
            step: None,
        };
        let new = NewSweep {
            name: name.clone(),
            display_name: sweep.display_name.clone().unwrap_or_else(|| name.clone()),
            description: sweep.description.clone(),
            tags: sweep.tags.clone(),
            properties: sweep.properties.clone(),
            user: sub.user.clone(),
            parent: None,
        };
        self.record_sweep(new, &plan, doc, &experiment).await?;
        // Watched first: a sweep whose first advance fails is advanced again a second later.
        self.watch_sweep(&name);
        if let Err(e) = self.advance_sweep(&name).await {
            tracing::warn!(sweep = %name, error = %e, "cannot advance the sweep; will retry");
        }
        self.get(&name).await
    }

    /// Starts a pipeline's sweep node as a sweep job, child of the pipeline. Runs during the
    /// pipeline's turn, so the sweep's first advance waits for the next turn.
    pub(crate) async fn start_sweep_step(
        &self,
        pipeline: &JobRecord,
        pdoc: &crate::pipeline::PipelineDocument,
        step: &GraphStep,
        upstream: &std::collections::HashMap<usize, String>,
        experiment: &kiln_store::Experiment,
        attempt: u32,
    ) -> Result<()> {
        let upstream: BTreeMap<usize, String> = upstream.iter().map(|(k, v)| (*k, v.clone())).collect();
        let plan = step_sweep_plan(step, &upstream, &pdoc.experiment_name, &pipeline.name)?;
        let name = kiln_tracking::names::random_job_name();
        let summary = serde_json::json!({
            "type": "sweep",
            "step": step.path,
            "trial": step.component_label,
            "command": plan.trial.command.value,
            "search_space": plan.settings.search_space.parameters.iter().map(|p| {
                let (d, args) = p.distribution.describe();
                (p.name.clone(), serde_json::json!({"type": d, "arguments": args}))
            }).collect::<serde_json::Map<_, _>>(),
        })
        .to_string();
        let doc = SweepDocument {
            kind: SweepKind::Sweep,
            spec: summary,
            source: format!("{} (step {})", pdoc.source, step.path),
            experiment_name: pdoc.experiment_name.clone(),
            environment: String::new(),
            seed: 0,
            warnings: Vec::new(),
            outputs: BTreeMap::new(),
            best: None,
            step: Some(SweepStepOrigin { pipeline: pipeline.name.clone(), step: step.path.clone(), upstream }),
        };
        let properties = BTreeMap::from([
            ("kiln.step".to_string(), step.path.clone()),
            ("kiln.attempt".to_string(), attempt.to_string()),
            ("kiln.component".to_string(), step.component_label.clone()),
            ("kiln.reuse".to_string(), "ran: sweep steps are not reused (every sweep samples anew)".to_string()),
        ]);
        let new = NewSweep {
            name: name.clone(),
            display_name: step.display_name.clone().unwrap_or_else(|| step.path.clone()),
            description: step.component.description.clone(),
            tags: step.tags.clone(),
            properties,
            user: None,
            parent: Some(pipeline.name.clone()),
        };
        self.record_sweep(new, &plan, doc, experiment).await?;
        self.watch_sweep(&name);
        Ok(())
    }

    /// Records a sweep job and its run, running. The first trial is prepared (not recorded)
    /// first, so a sweep whose trials cannot run (a missing input, an unknown environment or
    /// compute) is refused before anything is recorded.
    async fn record_sweep(
        &self,
        new: NewSweep,
        plan: &SweepPlan,
        mut doc: SweepDocument,
        experiment: &kiln_store::Experiment,
    ) -> Result<()> {
        let s = &plan.settings;
        let seed = match s.sampling {
            Sampling::Random { seed: Some(seed) } => seed,
            _ => rand_seed(),
        };
        let name = new.name.clone();
        let first = sampler(s, seed)
            .and_then(|mut sampler| sampler.suggest(0, &[], &[]))
            .map_err(|e| ServiceError::invalid(format!("{}: search_space: {e}", doc.source)))?;
        let probe = trial_job(plan, &format!("{name}_0"), &name, &experiment.name, &first);
        let prepared = self.prepare_command(&probe, &doc.source, Some(experiment.clone()), None).await?;
        doc.seed = seed;
        doc.environment = prepared.resolved.plan.environment.label.clone();
        let mut tags = vec![
            kiln_tracking::Tag::new("mlflow.runName", new.display_name.clone()),
            kiln_tracking::Tag::new("mlflow.source.type", "JOB"),
            kiln_tracking::Tag::new("kiln.job.kind", "sweep"),
        ];
        if let Some(user) = &new.user {
            tags.push(kiln_tracking::Tag::new("mlflow.user", user.clone()));
        }
        if let Some(parent) = &new.parent {
            tags.push(kiln_tracking::Tag::new("mlflow.parentRunId", parent.clone()));
        }
        for (k, v) in &new.tags {
            tags.push(kiln_tracking::Tag::new(k.clone(), v.clone()));
        }
        if let Some(d) = &new.description {
            tags.push(kiln_tracking::Tag::new("mlflow.note.content", d.clone()));
        }
        let mut properties = new.properties.clone();
        properties.insert("kiln.sweep.sampling_algorithm".into(), s.sampling.name().into());
        properties.insert("kiln.sweep.seed".into(), seed.to_string());
        properties.insert("kiln.sweep.primary_metric".into(), s.objective.primary_metric.clone());
        properties.insert(
            "kiln.sweep.goal".into(),
            if s.objective.goal == Goal::Maximize { "maximize" } else { "minimize" }.into(),
        );
        self.inner
            .tracking
            .create_run(kiln_tracking::NewRun {
                run_id: Some(name.clone()),
                experiment_id: Some(experiment.experiment_id.to_string()),
                user_id: new.user.clone(),
                run_name: Some(new.display_name.clone()),
                start_time: None,
                tags,
            })
            .await?;
        let now = now_ms();
        let record = JobRecord {
            name: name.clone(),
            kind: "sweep".into(),
            display_name: Some(new.display_name),
            description: new.description,
            experiment_id: experiment.experiment_id,
            compute: prepared.compute,
            status: JobStatus::NotStarted.as_str().into(),
            failure: None,
            spec: serde_json::to_string(&doc).map_err(internal)?,
            tags: serde_json::to_string(&new.tags).unwrap_or_else(|_| "{}".into()),
            properties: serde_json::to_string(&properties).unwrap_or_else(|_| "{}".into()),
            created_at: now,
            updated_at: now,
            archived: false,
            runner: None,
            parent: new.parent,
            reuse_key: None,
            lineage: None,
            transitions: Vec::new(),
        };
        self.store().insert_job(&record).await?;
        // A sweep has no process of its own: its trials do the work.
        self.move_to(&name, JobStatus::Running, None).await?;
        self.mirror_run_status(&name, "RUNNING").await;
        Ok(())
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
    async fn trial_curve(&self, job: &str, metric: &str, keep: bool) -> Result<Vec<f64>> {
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
        if keep && let Ok(mut m) = self.inner.trial_curves.lock() {
            m.insert(job.to_string(), values.clone());
        }
        Ok(values)
    }

    /// The sweep's trials, in the order they were started.
    /// `running`: the sweep runs, so finished trials' curves are worth keeping (they are
    /// dropped when it ends); an ended sweep's are read and not kept.
    async fn sweep_trials(&self, name: &str, settings: &SweepSettings, running: bool) -> Result<Vec<Trial>> {
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
            let curve = self
                .trial_curve(&record.name, &settings.objective.primary_metric, running && status.is_terminal())
                .await?;
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
        let plan = match self.sweep_plan(&doc).await {
            Ok(p) => p,
            Err(e) => return self.end_sweep(name, &mut doc, JobStatus::Failed, Some(&e.message), &[], None).await,
        };
        let settings = &plan.settings;
        let goal = settings.objective.goal;
        let mut trials = self.sweep_trials(name, settings, true).await?;

        // A pipeline's sweep node stops with its pipeline (canceled, or failed fast).
        let mut status = status;
        if let Some(origin) = &doc.step
            && let Some(p) = self.store().get_job(&origin.pipeline).await?
            && JobStatus::parse(&p.status).is_none_or(|s| s.is_terminal() || s == JobStatus::CancelRequested)
            && status != JobStatus::CancelRequested
            && self.move_to(name, JobStatus::CancelRequested, None).await?
        {
            status = JobStatus::CancelRequested;
        }
        let timed_out = settings
            .limits
            .timeout_s
            .is_some_and(|t| now_ms().saturating_sub(record.created_at) >= (t as i64).saturating_mul(1000));
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
                    policy.policy.name(),
                    t.curve.len(),
                    settings.objective.primary_metric
                );
                // Stopped first, then marked, and only if the stop took (a trial that completed
                // meanwhile keeps its result and no mark).
                self.cancel_command(&job).await?;
                let now = self.record(&job).await?;
                if matches!(JobStatus::parse(&now.status), Some(JobStatus::CancelRequested | JobStatus::Canceled)) {
                    self.mark_early_terminated(&t.record, &reason).await?;
                    t.early_terminated = Some(reason);
                }
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
                    value: goal.best(&t.curve),
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
            let trial = match self.start_trial(&record, &doc, &plan, index, &values, &experiment).await {
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
        plan: &SweepPlan,
        index: usize,
        values: &Assignment,
        experiment: &kiln_store::Experiment,
    ) -> Result<JobRecord> {
        // `<sweep>_<n>`, unless that name is taken (a job of that name, or the run of a trial
        // the server recorded just before it was killed): the index is in the properties.
        let mut name = format!("{}_{index}", sweep.name);
        let mut attempt = 1;
        while self.store().get_job(&name).await?.is_some() || self.store().get_run_info(&name).await?.is_some() {
            attempt += 1;
            name = format!("{}_{index}_{attempt}", sweep.name);
        }
        let spec = trial_job(plan, &name, &sweep.name, &doc.experiment_name, values);
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
        // A sweep that fails (a trial that cannot start, a sampler error) leaves no trial behind.
        for t in trials.iter().filter(|t| !t.status.is_terminal()) {
            if let Err(e) = self.cancel_command(&t.record.name).await {
                tracing::warn!(trial = %t.record.name, error = %e, "cannot cancel the trial");
            }
        }
        let plan = self.sweep_plan(doc).await.ok();
        let mut status = status;
        let mut reason = reason.map(str::to_string);
        if let Some(plan) = &plan {
            let goal = plan.settings.objective.goal;
            let best = trials
                .iter()
                .filter(|t| t.status == JobStatus::Completed)
                .filter_map(|t| goal.best(&t.curve).map(|v| (t, v)))
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
                            if let Some(spec_out) = plan.trial.outputs.get(k) {
                                o.asset_name = spec_out.value.asset_name.clone();
                                o.asset_version = spec_out.value.asset_version.clone();
                            }
                        }
                    }
                }
                None if status == JobStatus::Completed => {
                    status = JobStatus::Failed;
                    let metric = &plan.settings.objective.primary_metric;
                    let by_status = |s: JobStatus| trials.iter().filter(|t| t.status == s).count();
                    let first_failure = trials.iter().find_map(|t| t.record.failure.clone());
                    let mut why = if trials.is_empty() {
                        "no trial ran".to_string()
                    } else if by_status(JobStatus::Failed) == trials.len() {
                        match first_failure {
                            Some(f) => format!("all {} trials failed (the first: {f})", trials.len()),
                            None => format!("all {} trials failed", trials.len()),
                        }
                    } else if by_status(JobStatus::Completed) == 0 {
                        format!(
                            "no trial completed ({} failed, {} canceled)",
                            by_status(JobStatus::Failed),
                            by_status(JobStatus::Canceled)
                        )
                    } else {
                        format!("no completed trial logged the primary metric '{metric}'")
                    };
                    if let Some(n) = &note {
                        why = format!("{why}; {n}");
                    }
                    reason = Some(why);
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
                    key: plan.settings.objective.primary_metric.clone(),
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
            // A pipeline's sweep node: the pipeline goes on (after this sweep's turn, since
            // both take the same turn).
            if let Some(parent) = &record.parent {
                self.advance_later(parent);
            }
        }
        Ok(())
    }

    /// Cancels a sweep: running trials are canceled and no new trial starts; the sweep ends
    /// when they have. Takes no turn, so a pipeline canceling its steps can call it.
    pub(crate) async fn cancel_sweep(&self, name: &str) -> Result<()> {
        if !self.move_to(name, JobStatus::CancelRequested, None).await? {
            return Ok(());
        }
        let children = self
            .store()
            .list_jobs(&JobFilter { parent: Some(name.to_string()), without_spec: true, ..Default::default() })
            .await?;
        for c in children {
            if JobStatus::parse(&c.status).is_some_and(|s| !s.is_terminal()) {
                self.cancel_command(&c.name).await?;
            }
        }
        self.advance_later(name);
        Ok(())
    }

    /// A sweep's trials with their values, metric and status, for `job show` and the studio.
    pub async fn sweep_view(&self, name: &str) -> Result<SweepView> {
        let record = self.record(name).await?;
        if record.kind != "sweep" {
            return Err(ServiceError::invalid(format!("job '{name}' is a {} job, not a sweep", record.kind)));
        }
        let doc: SweepDocument = serde_json::from_str(&record.spec).map_err(internal)?;
        let plan = self.sweep_plan(&doc).await?;
        let s = &plan.settings;
        let goal = s.objective.goal;
        let running = JobStatus::parse(&record.status).is_some_and(|st| !st.is_terminal());
        let trials = self.sweep_trials(name, s, running).await?;
        Ok(SweepView {
            primary_metric: s.objective.primary_metric.clone(),
            goal: if goal == Goal::Maximize { "maximize" } else { "minimize" }.into(),
            sampling_algorithm: s.sampling.name().into(),
            parameters: s
                .search_space
                .parameters
                .iter()
                .map(|p| {
                    let (distribution, arguments) = p.distribution.describe();
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
                    metric: goal.best(&t.curve),
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
fn trial_job(plan: &SweepPlan, name: &str, sweep: &str, experiment: &str, values: &Assignment) -> CommandJob {
    let template = &plan.trial;
    let mut spec = template.clone();
    for (k, v) in values {
        if let Some(kind) = plan.inputs.get(k) {
            let literal = Literal { kind: *kind, text: kiln_tune::space::render(v) };
            spec.inputs.insert(k.clone(), Located { value: JobInput::Literal(literal), pos: template.command.pos });
        }
    }
    spec.name = Some(name.to_string());
    spec.display_name = Some(name.to_string());
    spec.experiment_name = Some(experiment.to_string());
    spec.parent_job_name = Some(sweep.to_string());
    spec.command.value = kiln_spec::sweep::render_trial_command(&template.command.value, values);
    for v in spec.environment_variables.values_mut() {
        *v = kiln_spec::sweep::render_trial_command(v, values);
    }
    // Each trial writes its own outputs (a fixed path would have them overwrite each other);
    // the sweep registers the best trial's.
    for o in spec.outputs.values_mut() {
        o.value.asset_name = None;
        o.value.asset_version = None;
        if o.value.path.as_deref().is_some_and(|p| !p.contains("${{name}}")) {
            o.value.path = None;
        }
    }
    spec
}

/// A pipeline sweep node's plan: the step as a command job whose swept inputs each trial sets.
fn step_sweep_plan(
    step: &GraphStep,
    upstream: &BTreeMap<usize, String>,
    experiment: &str,
    pipeline: &str,
) -> Result<SweepPlan> {
    let settings =
        step.sweep.clone().ok_or_else(|| ServiceError::internal(format!("step '{}' is not a sweep", step.path)))?;
    let upstream: std::collections::HashMap<usize, String> = upstream.iter().map(|(k, v)| (*k, v.clone())).collect();
    let mut trial = crate::pipeline::step_command_job(step, &upstream, experiment, pipeline);
    trial.timeout_s = settings.limits.trial_timeout_s.or(trial.timeout_s);
    let inputs = settings
        .search_space
        .parameters
        .iter()
        .map(|p| {
            let kind = match step.component.inputs.get(&p.name).map(|port| &port.kind) {
                Some(PortKind::Literal(k)) => *k,
                _ => LiteralKind::String,
            };
            (p.name.clone(), kind)
        })
        .collect();
    Ok(SweepPlan { trial, settings, inputs })
}

/// A seed for a sweep that names none (kept in its document, so a restart draws the same
/// values; small enough to copy into a spec's `seed:` to draw them again).
fn rand_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 >> 32
}
