//! Schedules: a spec stored with its next fire time, and a ticker that sleeps until the
//! earliest enabled schedule is due (or a schedule changes), submits its job, and moves it to
//! its next time.
//!
//! A fire is due "on time" up to [`LATE_GRACE_MS`] after its time (a busy machine, a restart
//! in between). Times missed by more than that (the server was down) are recorded as skipped,
//! never run in a burst; only the latest of them still runs when it is within the grace.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use kiln_spec::schedule::{JobBase, Schedule};
use kiln_store::{ScheduleFire, ScheduleRecord, now_ms};
use kiln_tracking::ServiceError;
use serde::Serialize;

use crate::{Orchestrator, Result, Submission};

/// How late a fire may still run.
pub const LATE_GRACE_MS: i64 = 15_000;
/// Skipped times recorded one by one at most (a minute schedule down for a week would
/// otherwise write ten thousand rows); the oldest recorded one says how many more there were.
const MAX_SKIPPED_ROWS: usize = 50;
/// How many missed times are counted before the count gives up.
const MAX_MISSED_COUNTED: usize = 1_000_000;
/// The ticker looks again at least this often (clock changes, another server's updates).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Fires shown with a schedule.
const RECENT_FIRES: i64 = 20;

/// A schedule as users see it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub enabled: bool,
    /// `cron` or `recurrence`.
    pub trigger_type: String,
    /// The trigger in words: `cron 0 9 * * 1-5 (Pacific Standard Time)`.
    pub trigger: String,
    pub time_zone: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    /// The job it creates: `./pipeline.yml`, `azureml:<job>`, `inline`.
    pub create_job: String,
    /// `None` when disabled or past its end.
    pub next_fire_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The most recent fires, newest first.
    pub fires: Vec<Fire>,
    /// The stored spec, as JSON.
    pub spec: serde_json::Value,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fire {
    pub at: i64,
    /// `started`, `skipped` or `failed`.
    pub status: String,
    pub job_name: Option<String>,
    pub message: Option<String>,
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn iso(ms: i64) -> String {
    time(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse(source: &str, text: &str) -> Result<(Schedule, Vec<String>)> {
    let root = kiln_spec::parse_with_overrides(source, text, &[]).map_err(|e| ServiceError::invalid(e.to_string()))?;
    read(source, &root)
}

fn read(source: &str, root: &kiln_spec::Node) -> Result<(Schedule, Vec<String>)> {
    let src = kiln_spec::read::Source::new(source);
    let spec = kiln_spec::schedule::schedule(&src, root).map_err(|e| ServiceError::invalid(e.to_string()))?;
    Ok((spec, src.take_warnings().iter().map(ToString::to_string).collect()))
}

impl Orchestrator {
    /// Creates a schedule, or replaces the one of that name (its fire record and creation
    /// time stay; it does not fire at once again).
    pub async fn put_schedule(&self, spec_text: &str, source: &str) -> Result<ScheduleView> {
        let source = if source.is_empty() { "request" } else { source };
        let (spec, _) = parse(source, spec_text)?;
        let base = self.schedule_base(&spec).await?;
        // The job must read as a job now, not at 3 a.m.
        let job = kiln_spec::schedule::job_for_fire(&base, &spec.create_job, &spec.name, "check", &iso(now_ms()));
        kiln_spec::job_from_node(source, &job).map_err(|e| ServiceError::invalid(format!("create_job: {e}")))?;

        let now = now_ms();
        let existing = self.store().get_schedule(&spec.name).await?;
        let created_at = existing.as_ref().map_or(now, |e| e.created_at);
        let anchor = spec.trigger.start.map(|s| s.timestamp_millis()).unwrap_or(created_at);
        let enabled = spec.is_enabled.or(existing.as_ref().map(|e| e.enabled)).unwrap_or(true);
        let next = match &existing {
            None => spec.trigger.first_fire(time(now)),
            Some(_) => spec.trigger.next_at_or_after(time(anchor), time(now)),
        };
        let record = ScheduleRecord {
            name: spec.name.clone(),
            spec: spec_text.to_string(),
            source: source.to_string(),
            enabled,
            created_at,
            updated_at: now,
            anchor_at: anchor,
            next_fire_at: next.map(|t| t.timestamp_millis()),
        };
        self.store().put_schedule(&record).await?;
        self.inner.schedules_changed.notify_one();
        self.get_schedule(&spec.name).await
    }

    /// The job a schedule's base names: written inline (the client inlines job files), or
    /// the spec of a job submitted before.
    async fn schedule_base(&self, spec: &Schedule) -> Result<kiln_spec::Node> {
        match &spec.create_job.base {
            JobBase::Inline(node) => Ok(node.clone()),
            JobBase::File { path, .. } => Err(ServiceError::invalid(format!(
                "create_job: '{path}' is a file on the client's machine: `kiln schedule create` uploads it"
            ))),
            JobBase::Existing { name, .. } => {
                let record = self
                    .store()
                    .get_job(name)
                    .await?
                    .ok_or_else(|| ServiceError::invalid(format!("create_job: job '{name}' does not exist")))?;
                if let Some(parent) = &record.parent {
                    return Err(ServiceError::invalid(format!(
                        "create_job: '{name}' is a step of pipeline '{parent}'; schedule the pipeline"
                    )));
                }
                let doc: serde_json::Value = serde_json::from_str(&record.spec).unwrap_or_default();
                let text = doc
                    .get("spec")
                    .and_then(|s| s.as_str())
                    .ok_or_else(|| ServiceError::internal(format!("the stored spec of job '{name}' cannot be read")))?;
                kiln_spec::parse_with_overrides(name, text, &[]).map_err(|e| ServiceError::internal(e.to_string()))
            }
        }
    }

    async fn schedule_record(&self, name: &str) -> Result<ScheduleRecord> {
        self.store()
            .get_schedule(name)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("schedule '{name}' does not exist")))
    }

    pub async fn get_schedule(&self, name: &str) -> Result<ScheduleView> {
        let record = self.schedule_record(name).await?;
        let fires = self.store().schedule_fires(name, RECENT_FIRES).await?;
        Ok(view(record, fires))
    }

    /// Schedules by name; `enabled` filters on their state.
    pub async fn list_schedules(&self, enabled: Option<bool>) -> Result<Vec<ScheduleView>> {
        let mut out = Vec::new();
        for record in self.store().list_schedules(enabled).await? {
            let fires = self.store().schedule_fires(&record.name, 1).await?;
            out.push(view(record, fires));
        }
        Ok(out)
    }

    /// Turns a schedule on (its next time counted from now: what it missed while off is not
    /// run) or off.
    pub async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> Result<ScheduleView> {
        let record = self.schedule_record(name).await?;
        let next = if enabled {
            let (spec, _) = parse(&record.source, &record.spec)?;
            spec.trigger.next_at_or_after(time(record.anchor_at), time(now_ms())).map(|t| t.timestamp_millis())
        } else {
            None
        };
        self.store().set_schedule_enabled(name, enabled, next).await?;
        self.inner.schedules_changed.notify_one();
        self.get_schedule(name).await
    }

    /// Deletes a schedule; the jobs it created stay.
    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        if !self.store().delete_schedule(name).await? {
            return Err(ServiceError::not_found(format!("schedule '{name}' does not exist")));
        }
        self.inner.schedules_changed.notify_one();
        Ok(())
    }

    /// Fires schedules as they come due, for as long as the server runs.
    pub(crate) fn start_schedules(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let sleep = match this.fire_due_schedules().await {
                    Ok(Some(next)) => Duration::from_millis((next - now_ms()).clamp(0, i64::MAX) as u64),
                    Ok(None) => MAX_SLEEP,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot fire schedules; will retry");
                        Duration::from_secs(5)
                    }
                };
                tokio::select! {
                    _ = this.inner.schedules_changed.notified() => {},
                    _ = tokio::time::sleep(sleep.min(MAX_SLEEP)) => {},
                }
            }
        });
    }

    /// Fires what is due; returns when the next schedule is due.
    async fn fire_due_schedules(&self) -> Result<Option<i64>> {
        let now = now_ms();
        for record in self.store().due_schedules(now).await? {
            if let Err(e) = self.fire_schedule(&record, now).await {
                tracing::warn!(schedule = %record.name, error = %e, "cannot fire a schedule");
            }
        }
        Ok(self.store().next_schedule_fire().await?)
    }

    async fn fire_schedule(&self, record: &ScheduleRecord, now: i64) -> Result<()> {
        let Some(due) = record.next_fire_at else { return Ok(()) };
        let spec = match parse(&record.source, &record.spec) {
            Ok((spec, _)) => spec,
            Err(e) => {
                // A spec this version cannot read any more: stop it rather than retry forever.
                if self.store().claim_schedule_fire(&record.name, due, None).await? {
                    self.record_fire(&record.name, due, "failed", None, Some(e.message)).await?;
                }
                return Ok(());
            }
        };
        let anchor = time(record.anchor_at);
        let step = |t: i64| spec.trigger.next_at_or_after(anchor, time(t + 1)).map(|n| n.timestamp_millis());
        // Every time from `due` up to now; only the last can still be on time.
        let mut times: VecDeque<i64> = VecDeque::from([due]);
        let mut counted = 1usize;
        let mut last = due;
        while let Some(next) = step(last).filter(|n| *n <= now) {
            counted += 1;
            last = next;
            times.push_back(next);
            if times.len() > MAX_SKIPPED_ROWS + 1 {
                times.pop_front();
            }
            if counted >= MAX_MISSED_COUNTED {
                break;
            }
        }
        let next = spec.trigger.next_at_or_after(anchor, time(now.max(last) + 1)).map(|n| n.timestamp_millis());
        if !self.store().claim_schedule_fire(&record.name, due, next).await? {
            // Another server fired it, or the schedule changed meanwhile.
            return Ok(());
        }
        let on_time = now - last <= LATE_GRACE_MS;
        let fire = on_time.then(|| times.pop_back()).flatten();
        let mut skipped: Vec<ScheduleFire> = times
            .iter()
            .map(|at| ScheduleFire {
                schedule: record.name.clone(),
                fire_at: *at,
                status: "skipped".into(),
                job_name: None,
                message: Some("missed: no server was running".into()),
                recorded_at: now,
            })
            .collect();
        let unlisted = counted - skipped.len() - usize::from(fire.is_some());
        if let Some(first) = skipped.first_mut().filter(|_| unlisted > 0) {
            first.message = Some(format!("missed: no server was running (and {unlisted} earlier times)"));
        }
        if !skipped.is_empty() {
            tracing::info!(schedule = %record.name, missed = counted - usize::from(fire.is_some()), "schedule times missed");
            self.store().record_schedule_fires(&skipped).await?;
        }
        let Some(at) = fire else { return Ok(()) };
        match self.submit_scheduled_job(&spec, at).await {
            Ok(job) => {
                tracing::info!(schedule = %record.name, job = %job, "schedule fired");
                self.record_fire(&record.name, at, "started", Some(job), None).await
            }
            Err(e) => {
                tracing::warn!(schedule = %record.name, error = %e, "a schedule's job could not be submitted");
                self.record_fire(&record.name, at, "failed", None, Some(e.message)).await
            }
        }
    }

    async fn submit_scheduled_job(&self, spec: &Schedule, at: i64) -> Result<String> {
        let base = self.schedule_base(spec).await?;
        let name = kiln_tracking::names::random_job_name();
        let job = kiln_spec::schedule::job_for_fire(&base, &spec.create_job, &spec.name, &name, &iso(at));
        let source = format!("schedule '{}'", spec.name);
        let sub = Submission { spec: job.to_flow(), source, user: None };
        Ok(self.submit(sub).await?.name)
    }

    async fn record_fire(
        &self,
        schedule: &str,
        at: i64,
        status: &str,
        job_name: Option<String>,
        message: Option<String>,
    ) -> Result<()> {
        let fire = ScheduleFire {
            schedule: schedule.to_string(),
            fire_at: at,
            status: status.to_string(),
            job_name,
            message,
            recorded_at: now_ms(),
        };
        Ok(self.store().record_schedule_fires(&[fire]).await?)
    }
}

fn view(record: ScheduleRecord, fires: Vec<ScheduleFire>) -> ScheduleView {
    let root = kiln_spec::parse_with_overrides(&record.source, &record.spec, &[])
        .map_err(|e| ServiceError::invalid(e.to_string()));
    let spec_json = root.as_ref().map(|n| n.to_json()).unwrap_or(serde_json::Value::Null);
    let parsed = root.and_then(|n| read(&record.source, &n));
    let fires = fires
        .into_iter()
        .map(|f| Fire { at: f.fire_at, status: f.status, job_name: f.job_name, message: f.message })
        .collect();
    let next_fire_at = record.next_fire_at.filter(|_| record.enabled);
    match parsed {
        Ok((spec, warnings)) => ScheduleView {
            name: record.name,
            display_name: spec.display_name,
            description: spec.description,
            tags: spec.tags,
            enabled: record.enabled,
            trigger_type: match spec.trigger.rule {
                kiln_spec::schedule::Rule::Cron { .. } => "cron".into(),
                kiln_spec::schedule::Rule::Recurrence(_) => "recurrence".into(),
            },
            trigger: spec.trigger.describe(),
            time_zone: spec.trigger.time_zone_name.clone(),
            start_time: spec.trigger.start.map(|t| t.timestamp_millis()),
            end_time: spec.trigger.end.map(|t| t.timestamp_millis()),
            create_job: match (&spec.create_job.base, &spec.create_job.source) {
                (_, Some(source)) => source.clone(),
                (JobBase::Existing { name, .. }, _) => format!("azureml:{name}"),
                (JobBase::File { path, .. }, _) => path.clone(),
                (JobBase::Inline(_), None) => "inline".into(),
            },
            next_fire_at,
            created_at: record.created_at,
            updated_at: record.updated_at,
            fires,
            spec: spec_json,
            warnings,
        },
        Err(e) => ScheduleView {
            name: record.name,
            display_name: None,
            description: None,
            tags: BTreeMap::new(),
            enabled: record.enabled,
            trigger_type: String::new(),
            trigger: String::new(),
            time_zone: String::new(),
            start_time: None,
            end_time: None,
            create_job: String::new(),
            next_fire_at,
            created_at: record.created_at,
            updated_at: record.updated_at,
            fires,
            spec: spec_json,
            warnings: vec![format!("the stored spec cannot be read: {}", e.message)],
        },
    }
}
