//! Pipeline jobs: a checked DAG of command steps, each run as a child job (and child MLflow
//! run) of the pipeline as soon as the steps it reads from have completed.
//!
//! Nothing about a running pipeline lives only in memory: its document holds the bundled spec
//! and the registered components it was submitted with, and its steps are jobs whose parent is
//! the pipeline. `advance` looks at both and does what is due (start ready steps, retry, fail
//! fast, end the pipeline); it runs when the pipeline is submitted, whenever one of its steps
//! ends, and after a restart, so a restart resumes a pipeline without re-running anything.
//!
//! Reuse: a step's key hashes what decides its result (the rendered command, code snapshot,
//! environment, variables, run settings, every resolved input and the output settings). A
//! completed job with the same key gives its outputs instead of running, and the step says
//! which job it reused; a step that runs says which part of the key changed since its last run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kiln_spec::graph::{Components, Graph, GraphError, GraphStep, Value};
use kiln_spec::job::{CommandJob, DataInput, JobInput, Located};
use kiln_spec::pipeline::{Component, ComponentRef, PipelineJob, render_optional_blocks};
use kiln_spec::{Pos, SpecError};
use kiln_store::{JobFilter, JobRecord, now_ms};
use kiln_tracking::ServiceError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{JobOutput, JobStatus, Orchestrator, Result, StepRecord, Submission};

/// What the `spec` column of a pipeline job holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PipelineDocument {
    pub kind: PipelineKind,
    /// The bundled spec as submitted (component files inlined, local paths uploaded).
    pub spec: String,
    pub source: String,
    pub experiment_name: String,
    /// Registered components as they were at submission (reference → spec text), so a later
    /// version or `@latest` does not change a running pipeline.
    pub components: BTreeMap<String, String>,
    pub warnings: Vec<String>,
    /// The pipeline's outputs, once the steps writing them completed.
    pub outputs: BTreeMap<String, JobOutput>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PipelineKind {
    Pipeline,
}

/// A step of a pipeline as `job show` and the graph API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineStep {
    /// `train`, or `outer/inner` inside a pipeline component.
    pub name: String,
    pub component: String,
    /// The step's job (its latest attempt); none before it starts.
    pub job: Option<String>,
    pub status: Option<JobStatus>,
    /// The job whose outputs this step took instead of running.
    pub reused_from: Option<String>,
    /// Why the step ran or was reused.
    pub reuse: Option<String>,
    pub attempts: u32,
    /// The steps it reads from.
    pub after: Vec<String>,
}

/// Registered components pinned at submission, parsed.
struct Pinned {
    parsed: HashMap<String, Arc<Component>>,
}

impl Pinned {
    fn new(texts: BTreeMap<String, String>) -> std::result::Result<Pinned, SpecError> {
        let mut parsed = HashMap::new();
        for (reference, text) in &texts {
            parsed.insert(reference.clone(), Arc::new(parse_component(reference, text)?));
        }
        Ok(Pinned { parsed })
    }
}

fn parse_component(label: &str, text: &str) -> std::result::Result<Component, SpecError> {
    let root = kiln_spec::parse_with_overrides(label, text, &[])?;
    let src = kiln_spec::read::Source::new(label);
    kiln_spec::pipeline::component(&src, &root)
}

impl Components for Pinned {
    fn load(&mut self, r: &ComponentRef, from: &str) -> std::result::Result<Option<Arc<Component>>, SpecError> {
        match r {
            ComponentRef::Inline(c) => Ok(Some(Arc::new((**c).clone()))),
            ComponentRef::Registered { reference, .. } => Ok(self.parsed.get(reference).cloned()),
            ComponentRef::File { path, pos } => Err(kiln_spec::read::Source::new(from).error(
                *pos,
                "component",
                format!("'{path}' is a local file: send the component inline (`kiln job create` does)"),
            )),
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::invalid(e.to_string())
}

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Orchestrator {
    /// A running pipeline's flattened graph, read once and kept until it ends: `advance` runs
    /// on every step's end, and re-reading a 100-step spec each time made a chain quadratic.
    pub(crate) fn running_pipeline_graph(
        &self,
        name: &str,
        doc: &PipelineDocument,
    ) -> Result<Arc<(PipelineJob, Graph)>> {
        if let Some(g) = self.inner.pipeline_graphs.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(g);
        }
        let g = Arc::new(self.pipeline_graph(doc)?);
        if let Ok(mut m) = self.inner.pipeline_graphs.lock() {
            m.insert(name.to_string(), g.clone());
        }
        Ok(g)
    }

    /// A pipeline's spec read and flattened with its pinned components.
    pub(crate) fn pipeline_graph(&self, doc: &PipelineDocument) -> Result<(PipelineJob, Graph)> {
        let root = kiln_spec::parse_with_overrides(&doc.source, &doc.spec, &[]).map_err(invalid)?;
        let (kiln_spec::JobSpec::Pipeline(p), _) = kiln_spec::job_from_node(&doc.source, &root).map_err(invalid)?
        else {
            return Err(ServiceError::internal("the stored pipeline is not a pipeline"));
        };
        let mut pinned = Pinned::new(doc.components.clone()).map_err(invalid)?;
        let (graph, _) = kiln_spec::graph::flatten(&p, &mut pinned).map_err(invalid)?;
        Ok((p, graph))
    }

    /// A registered component's stored spec text, by reference.
    async fn registered_component(&self, reference: &str) -> Result<Option<String>> {
        let Some(r) = kiln_spec::reference::asset_reference(reference, true) else { return Ok(None) };
        let record = match r.version {
            Some(v) => self.store().get_asset("component", r.name, v).await?,
            None => self.store().latest_asset("component", r.name).await?,
        };
        Ok(record.map(|r| r.spec))
    }

    pub(crate) async fn submit_pipeline(
        &self,
        p: PipelineJob,
        sub: Submission,
        source: String,
        mut warnings: Vec<String>,
    ) -> Result<crate::Job> {
        // Flatten, fetching each registered component the spec names until all are known.
        let mut texts = BTreeMap::new();
        let graph = loop {
            let mut pinned = Pinned::new(texts.clone()).map_err(invalid)?;
            match kiln_spec::graph::flatten(&p, &mut pinned) {
                Ok((g, w)) => {
                    warnings.extend(w.iter().map(|d| d.to_string()));
                    break g;
                }
                Err(GraphError::Unknown { reference, file, pos }) => match self.registered_component(&reference).await?
                {
                    Some(text) => {
                        texts.insert(reference, text);
                    }
                    None => {
                        return Err(ServiceError::not_found(format!(
                            "{file}:{}:{}: component: '{reference}' is not a registered component \
                             (register it with `kiln component create -f FILE`)",
                            pos.line, pos.col
                        )));
                    }
                },
                Err(e) => return Err(invalid(e)),
            }
        };
        for step in &graph.steps {
            self.compute_for(step.compute.as_deref())
                .await
                .map_err(|e| ServiceError { message: format!("{source}: jobs.{}: {}", step.path, e.message), ..e })?;
        }
        let name = p.name.clone().unwrap_or_else(kiln_tracking::names::random_job_name);
        if self.store().get_job(&name).await?.is_some() || self.store().get_run_info(&name).await?.is_some() {
            return Err(ServiceError::exists(format!("a job named '{name}' already exists")));
        }
        let experiment = self.experiment(p.experiment_name.as_deref().unwrap_or("Default")).await?;
        let compute = self.compute_for(p.settings.default_compute.as_deref().or(p.compute.as_deref())).await?;
        let display_name = p.display_name.clone().unwrap_or_else(|| name.clone());
        let mut tags = vec![
            kiln_tracking::Tag::new("mlflow.runName", display_name.clone()),
            kiln_tracking::Tag::new("mlflow.source.type", "PIPELINE"),
            kiln_tracking::Tag::new("kiln.job.kind", "pipeline"),
        ];
        if let Some(user) = &sub.user {
            tags.push(kiln_tracking::Tag::new("mlflow.user", user.clone()));
        }
        for (k, v) in &p.tags {
            tags.push(kiln_tracking::Tag::new(k.clone(), v.clone()));
        }
        // Settings are echoed as properties, as the original service does.
        let mut properties = p.properties.clone();
        properties.insert(
            "azureml.continue_on_step_failure".into(),
            if p.settings.continue_on_step_failure { "True" } else { "False" }.into(),
        );
        if p.settings.force_rerun {
            properties.insert("azureml.force_rerun".into(), "True".into());
        }
        for (k, v) in &p.settings.extra {
            properties.insert(format!("azureml.{k}"), v.clone());
        }
        let doc = PipelineDocument {
            kind: PipelineKind::Pipeline,
            spec: sub.spec.clone(),
            source: source.clone(),
            experiment_name: experiment.name.clone(),
            components: texts,
            warnings,
            outputs: BTreeMap::new(),
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
            kind: "pipeline".into(),
            display_name: Some(display_name),
            description: p.description.clone(),
            experiment_id: experiment.experiment_id,
            compute,
            status: JobStatus::NotStarted.as_str().into(),
            failure: None,
            spec: serde_json::to_string(&doc).map_err(|e| ServiceError::internal(e.to_string()))?,
            tags: serde_json::to_string(&p.tags).unwrap_or_else(|_| "{}".into()),
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
        // A pipeline has no process of its own: it runs as soon as it is recorded.
        self.move_to(&name, JobStatus::Running, None).await?;
        self.advance(&name).await?;
        self.get(&name).await
    }

    /// The steps of a pipeline: latest attempt per step, oldest first.
    async fn pipeline_children(&self, name: &str) -> Result<(HashMap<String, JobRecord>, HashMap<String, u32>)> {
        let children = self
            .store()
            .list_jobs(&JobFilter {
                parent: Some(name.to_string()),
                oldest_first: true,
                without_spec: true,
                ..Default::default()
            })
            .await?;
        let mut latest = HashMap::new();
        let mut attempts: HashMap<String, u32> = HashMap::new();
        for c in children {
            let props: BTreeMap<String, String> = serde_json::from_str(&c.properties).unwrap_or_default();
            let Some(step) = props.get("kiln.step").cloned() else { continue };
            *attempts.entry(step.clone()).or_default() += 1;
            latest.insert(step, c);
        }
        Ok((latest, attempts))
    }

    /// Does what is due in a pipeline: starts (or reuses) steps whose inputs are ready,
    /// retries, fails fast, ends the pipeline when nothing more can run.
    pub(crate) async fn advance(&self, name: &str) -> Result<()> {
        let _serial = self.inner.pipelines.lock().await;
        let record = self.record(name).await?;
        let status = JobStatus::parse(&record.status).unwrap_or(JobStatus::Failed);
        if status.is_terminal() {
            return Ok(());
        }
        let mut doc: PipelineDocument =
            serde_json::from_str(&record.spec).map_err(|e| ServiceError::internal(e.to_string()))?;
        let pg = match self.running_pipeline_graph(name, &doc) {
            Ok(g) => g,
            Err(e) => return self.end_pipeline(name, JobStatus::Failed, Some(&e.message)).await,
        };
        let (p, graph) = (&pg.0, &pg.1);
        let experiment = self.inner.tracking.get_experiment(&record.experiment_id.to_string()).await?;
        let (mut latest, attempts) = self.pipeline_children(name).await?;

        #[derive(Clone, PartialEq)]
        enum State {
            Done(String),
            Active,
            Failed(String),
            Blocked,
            Waiting,
        }
        let mut states: Vec<State> = Vec::with_capacity(graph.steps.len());
        for (i, step) in graph.steps.iter().enumerate() {
            let tried = attempts.get(&step.path).copied().unwrap_or(0);
            let state = match latest.get(&step.path) {
                Some(c) => match JobStatus::parse(&c.status).unwrap_or(JobStatus::Failed) {
                    JobStatus::Completed => State::Done(c.name.clone()),
                    JobStatus::Failed | JobStatus::Canceled
                        if tried <= step.max_retries && status != JobStatus::CancelRequested =>
                    {
                        State::Waiting
                    }
                    JobStatus::Failed | JobStatus::Canceled => State::Failed(format!(
                        "step '{}' ({}) {}",
                        step.path,
                        c.name,
                        c.failure.clone().unwrap_or_else(|| c.status.to_lowercase())
                    )),
                    _ => State::Active,
                },
                None => State::Waiting,
            };
            let state = if state != State::Waiting {
                state
            } else if status == JobStatus::CancelRequested
                || step.upstream.iter().any(|u| matches!(states[*u], State::Failed(_) | State::Blocked))
            {
                State::Blocked
            } else if step.upstream.iter().all(|u| matches!(states[*u], State::Done(_))) {
                let upstream: HashMap<usize, String> = step
                    .upstream
                    .iter()
                    .filter_map(|u| match &states[*u] {
                        State::Done(n) => Some((*u, n.clone())),
                        _ => None,
                    })
                    .collect();
                match self.start_step(&record, &doc, p, graph, i, &upstream, &experiment, tried + 1).await {
                    Ok(Some(reused)) => State::Done(reused),
                    Ok(None) => State::Active,
                    Err(e) => State::Failed(format!("step '{}' could not start: {}", step.path, e.message)),
                }
            } else {
                State::Waiting
            };
            if let State::Done(n) = &state
                && !latest.contains_key(&step.path)
            {
                // Keep the map current for the outputs written below.
                if let Ok(r) = self.record(n).await {
                    latest.insert(step.path.clone(), r);
                }
            }
            states.push(state);
        }

        let failures: Vec<&str> = states
            .iter()
            .filter_map(|s| match s {
                State::Failed(why) => Some(why.as_str()),
                _ => None,
            })
            .collect();
        let active = states.contains(&State::Active);
        if status == JobStatus::CancelRequested {
            // Canceled steps are not failures; the pipeline ends once none runs.
            return if active { Ok(()) } else { self.end_pipeline(name, JobStatus::Canceled, Some("canceled")).await };
        }
        if !failures.is_empty() && !p.settings.continue_on_step_failure {
            let reason = failures[0].to_string();
            for c in latest.values() {
                if JobStatus::parse(&c.status).is_some_and(|s| !s.is_terminal()) {
                    let _ = self.cancel_step(c).await;
                }
            }
            return self.end_pipeline(name, JobStatus::Failed, Some(&reason)).await;
        }
        if active || (states.contains(&State::Waiting) && failures.is_empty()) {
            return Ok(());
        }
        if failures.is_empty() && states.iter().all(|s| matches!(s, State::Done(_))) {
            for (out, (i, step_out)) in &graph.outputs {
                let step = &graph.steps[*i];
                if let Some(job) = latest.get(&step.path)
                    && let Ok(j) = self.get(&job.name).await
                    && let Some(o) = j.outputs.get(step_out)
                {
                    doc.outputs.insert(out.clone(), o.clone());
                }
            }
            let text = serde_json::to_string(&doc).map_err(|e| ServiceError::internal(e.to_string()))?;
            self.store().set_job_spec(name, &text).await?;
            return self.end_pipeline(name, JobStatus::Completed, None).await;
        }
        let reason = if failures.is_empty() { "steps could not run".to_string() } else { failures.join("; ") };
        self.end_pipeline(name, JobStatus::Failed, Some(&reason)).await
    }

    async fn end_pipeline(&self, name: &str, status: JobStatus, reason: Option<&str>) -> Result<()> {
        if let Ok(mut m) = self.inner.pipeline_graphs.lock() {
            m.remove(name);
        }
        // A pipeline moves from Running (or CancelRequested) straight to its end.
        if self.move_to(name, status, reason).await? {
            self.mirror_run_end(name, status).await;
        }
        Ok(())
    }

    /// Cancels a step's job: a command, or a sweep node with its trials.
    async fn cancel_step(&self, step: &JobRecord) -> Result<()> {
        if step.kind == "sweep" { self.cancel_sweep(&step.name).await } else { self.cancel_command(&step.name).await }
    }

    /// Cancels a pipeline: its running steps are canceled and no new step starts.
    pub(crate) async fn cancel_pipeline(&self, name: &str) -> Result<()> {
        if !self.move_to(name, JobStatus::CancelRequested, None).await? {
            return Ok(());
        }
        let (latest, _) = self.pipeline_children(name).await?;
        for c in latest.values() {
            if JobStatus::parse(&c.status).is_some_and(|s| !s.is_terminal()) {
                self.cancel_step(c).await?;
            }
        }
        self.advance(name).await
    }

    /// Starts step `i` (its upstream steps' jobs given), or reuses an identical completed
    /// job: `Some(job)` when reused.
    #[allow(clippy::too_many_arguments)]
    async fn start_step(
        &self,
        pipeline: &JobRecord,
        doc: &PipelineDocument,
        p: &PipelineJob,
        graph: &Graph,
        i: usize,
        upstream: &HashMap<usize, String>,
        experiment: &kiln_store::Experiment,
        attempt: u32,
    ) -> Result<Option<String>> {
        let step = &graph.steps[i];
        let spec = step_command_job(step, upstream, &doc.experiment_name, &pipeline.name);
        if step.sweep.is_some() {
            self.start_sweep_step(pipeline, doc, step, upstream, experiment, attempt).await?;
            return Ok(None);
        }
        let source = format!("{} (step {})", doc.source, step.path);
        let prepared = self.prepare_command(&spec, &source, Some(experiment.clone()), None).await?;
        let parts = reuse_parts(&spec, &prepared.resolved.plan, &prepared.compute);
        let key = sha(&serde_json::to_string(&parts).unwrap_or_default());
        let lineage = format!("{}/{}", experiment.experiment_id, step.path);
        let reusable = step.component.is_deterministic && !p.settings.force_rerun;
        let mut properties = BTreeMap::from([
            ("kiln.step".to_string(), step.path.clone()),
            ("kiln.attempt".to_string(), attempt.to_string()),
            ("kiln.component".to_string(), step.component_label.clone()),
        ]);
        if reusable
            && attempt == 1
            && let Some(earlier) = self.store().find_reusable_job(&key).await?
        {
            properties.insert("kiln.reused_from".into(), earlier.name.clone());
            properties.insert(
                "kiln.reuse".into(),
                format!("reused job {}: same component, code, environment, inputs and settings", earlier.name),
            );
            let name = self
                .record_reused(pipeline, &earlier, &prepared.name, &step.path, experiment, properties, &key, &lineage)
                .await?;
            return Ok(Some(name));
        }
        let reason = if !step.component.is_deterministic {
            "ran: the component is not deterministic (is_deterministic: false)".to_string()
        } else if p.settings.force_rerun {
            "ran: settings.force_rerun is true".to_string()
        } else if attempt > 1 {
            format!("ran: retry {} of {}", attempt - 1, step.max_retries)
        } else {
            match self.store().latest_run_of_lineage(&lineage, &prepared.name).await? {
                None => "ran: no earlier run of this step".to_string(),
                Some(prev) => {
                    let prev_parts: BTreeMap<String, String> = serde_json::from_str::<crate::JobDocument>(&prev.spec)
                        .map(|d| d.reuse_parts)
                        .unwrap_or_default();
                    let changed = changed_parts(&prev_parts, &parts);
                    if changed.is_empty() {
                        format!("ran: {} did not complete", prev.name)
                    } else {
                        format!("ran: {} changed since {}", changed.join(", "), prev.name)
                    }
                }
            }
        };
        properties.insert("kiln.reuse".into(), reason);
        let spec_text = step_summary(step, &spec);
        let record = StepRecord {
            parent: pipeline.name.clone(),
            lineage,
            // Forced reruns are never reuse sources.
            reuse_key: reusable.then_some(key),
            reuse_parts: parts,
            properties,
            params: Vec::new(),
        };
        self.record_command(&spec, spec_text, prepared, Vec::new(), None, Some(record)).await?;
        Ok(None)
    }

    /// Records a step that took an earlier job's outputs: a completed job (and finished child
    /// run) that points at them.
    #[allow(clippy::too_many_arguments)]
    async fn record_reused(
        &self,
        pipeline: &JobRecord,
        earlier: &JobRecord,
        name: &str,
        step_path: &str,
        experiment: &kiln_store::Experiment,
        properties: BTreeMap<String, String>,
        key: &str,
        lineage: &str,
    ) -> Result<String> {
        let tags = vec![
            kiln_tracking::Tag::new("mlflow.runName", step_path),
            kiln_tracking::Tag::new("mlflow.parentRunId", pipeline.name.clone()),
            kiln_tracking::Tag::new("kiln.reused_from", earlier.name.clone()),
        ];
        self.inner
            .tracking
            .create_run(kiln_tracking::NewRun {
                run_id: Some(name.to_string()),
                experiment_id: Some(experiment.experiment_id.to_string()),
                user_id: None,
                run_name: Some(step_path.to_string()),
                start_time: None,
                tags,
            })
            .await?;
        self.store().update_run(name, Some("FINISHED"), Some(now_ms()), None).await?;
        let now = now_ms();
        let record = JobRecord {
            name: name.to_string(),
            kind: "command".into(),
            display_name: Some(step_path.to_string()),
            description: earlier.description.clone(),
            experiment_id: experiment.experiment_id,
            compute: earlier.compute.clone(),
            status: JobStatus::Completed.as_str().into(),
            failure: None,
            spec: earlier.spec.clone(),
            tags: earlier.tags.clone(),
            properties: serde_json::to_string(&properties).unwrap_or_else(|_| "{}".into()),
            created_at: now,
            updated_at: now,
            archived: false,
            runner: None,
            parent: Some(pipeline.name.clone()),
            reuse_key: Some(key.to_string()),
            lineage: Some(lineage.to_string()),
            transitions: Vec::new(),
        };
        self.store().insert_job(&record).await?;
        Ok(name.to_string())
    }

    /// A pipeline's steps with their jobs, statuses and reuse, in the DAG's order.
    pub async fn pipeline_steps(&self, name: &str) -> Result<Vec<PipelineStep>> {
        let record = self.record(name).await?;
        if record.kind != "pipeline" {
            return Err(ServiceError::invalid(format!("job '{name}' is a {} job, not a pipeline", record.kind)));
        }
        let doc: PipelineDocument =
            serde_json::from_str(&record.spec).map_err(|e| ServiceError::internal(e.to_string()))?;
        let (_, graph) = self.pipeline_graph(&doc)?;
        let (latest, attempts) = self.pipeline_children(name).await?;
        Ok(graph
            .steps
            .iter()
            .map(|s| {
                let job = latest.get(&s.path);
                let props: BTreeMap<String, String> =
                    job.map(|j| serde_json::from_str(&j.properties).unwrap_or_default()).unwrap_or_default();
                PipelineStep {
                    name: s.path.clone(),
                    component: s.component_label.clone(),
                    job: job.map(|j| j.name.clone()),
                    status: job.and_then(|j| JobStatus::parse(&j.status)),
                    reused_from: props.get("kiln.reused_from").cloned(),
                    reuse: props.get("kiln.reuse").cloned(),
                    attempts: attempts.get(&s.path).copied().unwrap_or(0),
                    after: s.upstream.iter().map(|u| graph.steps[*u].path.clone()).collect(),
                }
            })
            .collect())
    }
}

fn located<T>(value: T) -> Located<T> {
    Located { value, pos: Pos::default() }
}

/// A graph step as the command job its child runs (a sweep node's trials: without the swept
/// inputs, which each trial sets).
pub(crate) fn step_command_job(
    step: &GraphStep,
    upstream: &HashMap<usize, String>,
    experiment: &str,
    pipeline: &str,
) -> CommandJob {
    let c = &step.component;
    let mut inputs = BTreeMap::new();
    for (name, value) in &step.inputs {
        let input = match value {
            Value::Literal(l) => JobInput::Literal(l.clone()),
            Value::Data(d) => JobInput::Data(d.clone()),
            Value::Upstream { step: u, output, data_type, mode } => {
                let port_mode = c.inputs.get(name).and_then(|p| p.mode.clone());
                JobInput::Data(DataInput {
                    data_type: data_type.clone(),
                    path: format!(
                        "azureml://jobs/{}/outputs/{output}",
                        upstream.get(u).map(String::as_str).unwrap_or("")
                    ),
                    mode: mode.clone().or(port_mode).unwrap_or_else(|| "ro_mount".into()),
                    datastore: None,
                })
            }
        };
        inputs.insert(name.clone(), located(input));
    }
    CommandJob {
        name: None,
        display_name: Some(step.display_name.clone().unwrap_or_else(|| step.path.clone())),
        experiment_name: Some(experiment.to_string()),
        description: c.description.clone(),
        tags: step.tags.clone(),
        properties: BTreeMap::new(),
        command: Located {
            value: render_optional_blocks(&c.command.value, |n| {
                step.inputs.contains_key(n)
                    || step.sweep.as_ref().is_some_and(|s| s.search_space.parameters.iter().any(|p| p.name == n))
            }),
            pos: c.command.pos,
        },
        code: c.code.clone(),
        environment: c.environment.clone(),
        environment_variables: step.environment_variables.clone(),
        inputs,
        outputs: step.outputs.iter().map(|(k, o)| (k.clone(), located(o.clone()))).collect(),
        compute: step.compute.clone(),
        distribution: step.distribution.clone(),
        resources: step.resources.clone(),
        timeout_s: step.timeout_s,
        parent_job_name: Some(pipeline.to_string()),
    }
}

/// What `job show` displays as a step's spec.
fn step_summary(step: &GraphStep, spec: &CommandJob) -> String {
    let inputs: serde_json::Map<String, serde_json::Value> = spec
        .inputs
        .iter()
        .map(|(k, v)| {
            let shown = match &v.value {
                JobInput::Literal(l) => serde_json::Value::String(l.text.clone()),
                JobInput::Data(d) => serde_json::json!({"type": d.data_type, "path": d.path, "mode": d.mode}),
            };
            (k.clone(), shown)
        })
        .collect();
    serde_json::json!({
        "type": "command",
        "step": step.path,
        "component": step.component_label,
        "command": spec.command.value,
        "inputs": inputs,
    })
    .to_string()
}

/// The parts of a step's reuse key, each hashed on its own so a rerun can say what changed.
fn reuse_parts(spec: &CommandJob, plan: &kiln_launcher::LaunchPlan, compute: &str) -> BTreeMap<String, String> {
    let mut parts = BTreeMap::new();
    parts.insert("command".to_string(), sha(&plan.command));
    parts.insert("code".to_string(), sha(plan.code.as_deref().unwrap_or("")));
    parts.insert("environment".to_string(), plan.environment.hash.clone());
    parts.insert(
        "environment variables".to_string(),
        sha(&serde_json::to_string(&spec.environment_variables).unwrap_or_default()),
    );
    let settings = serde_json::json!({
        "compute": compute,
        "processes": plan.processes,
        "timeout": plan.timeout_s,
        "instance_type": spec.resources.instance_type,
    });
    parts.insert("run settings".to_string(), sha(&settings.to_string()));
    for (name, input) in &plan.inputs {
        parts.insert(format!("input '{name}'"), sha(&serde_json::to_string(input).unwrap_or_default()));
    }
    for (name, out) in &spec.outputs {
        // Where a default output goes includes the job's name: only what the spec says counts.
        let o = &out.value;
        let shown = serde_json::json!({
            "type": o.data_type, "mode": o.mode, "path": o.path, "name": o.asset_name, "version": o.asset_version,
        });
        parts.insert(format!("output '{name}'"), sha(&shown.to_string()));
    }
    parts
}

fn changed_parts(before: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let mut changed: Vec<String> =
        now.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    changed.extend(before.keys().filter(|k| !now.contains_key(*k)).cloned());
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_parts_name_what_differs() {
        let a = BTreeMap::from([("code".to_string(), "1".to_string()), ("input 'x'".to_string(), "2".to_string())]);
        let mut b = a.clone();
        b.insert("code".into(), "9".into());
        b.insert("input 'y'".into(), "3".into());
        assert_eq!(changed_parts(&a, &b), ["code", "input 'y'"]);
        assert!(changed_parts(&a, &a).is_empty());
    }
}
