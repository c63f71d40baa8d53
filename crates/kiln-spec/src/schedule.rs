//! Schedules: a trigger (a cron expression or a recurrence, in a time zone, between a start
//! and an end time) and the job to create each time it fires; and the calendar that says
//! when a trigger fires.
//!
//! The Azure ML SDK writes `time_zone` and `schedule` where the docs write `timezone` and
//! `pattern`; both spellings are read. Times written without an offset are in the
//! schedule's time zone, as the original service reads them.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::read::{MapReader, Result, Source, describe, scalar_text};
use crate::yaml::{Entry, Kind, Node, Resolved};

/// A schedule spec.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// `is_enabled` as written (read-only in the original service; taken here as the state a
    /// new schedule starts in).
    pub is_enabled: Option<bool>,
    pub trigger: Trigger,
    pub create_job: CreateJob,
}

/// When a schedule fires.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub rule: Rule,
    /// The zone as written (`Pacific Standard Time`, `UTC`, `Europe/Paris`).
    pub time_zone_name: String,
    pub time_zone: Tz,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub enum Rule {
    /// A 5-field crontab expression, `MIN HOUR DOM MON DOW`.
    Cron {
        expression: String,
        cron: Box<croner::Cron>,
    },
    Recurrence(Recurrence),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recurrence {
    pub frequency: Frequency,
    pub interval: u32,
    pub pattern: Option<Pattern>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Frequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Minute => "minute",
            Frequency::Hour => "hour",
            Frequency::Day => "day",
            Frequency::Week => "week",
            Frequency::Month => "month",
        }
    }
}

/// The times within each period of a recurrence (`schedule:`): hours × minutes on the given
/// week days (weekly) or month days (monthly). Sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pattern {
    pub hours: Vec<u32>,
    pub minutes: Vec<u32>,
    pub week_days: Vec<Weekday>,
    pub month_days: Vec<u32>,
}

/// The job a schedule creates: a base job and what to change in it at each fire.
#[derive(Debug, Clone)]
pub struct CreateJob {
    pub base: JobBase,
    /// How the schedule named its job file before the client inlined it (`$source`).
    pub source: Option<String>,
    /// Fields that replace the base job's (`inputs`, `outputs`, `settings` and `tags` entry
    /// by entry; `experiment_name`, `display_name`, `description`, `compute` whole).
    pub overrides: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub enum JobBase {
    /// A job file (`./pipeline.yml`, `file:./pipeline.yml`), relative to the schedule's file.
    File { path: String, pos: crate::Pos },
    /// `azureml:<job name>`: the spec of a job submitted before.
    Existing { name: String, pos: crate::Pos },
    /// A job written in the schedule.
    Inline(Node),
}

/// The override fields `create_job` may hold beside `job`.
const OVERRIDES: &[&str] =
    &["inputs", "outputs", "settings", "experiment_name", "tags", "display_name", "description", "compute"];
/// Merged entry by entry rather than replaced whole.
const MERGED: &[&str] = &["inputs", "outputs", "settings", "tags"];

/// Reads a schedule spec.
pub fn schedule(src: &Source, root: &Node) -> Result<Schedule> {
    let m = MapReader::new(src, root, "")?;
    m.accept(&["$schema", "provisioning_state", "creation_context", "properties"]);
    let name = m.req_str("name")?;
    if name.trim().is_empty() || name.contains('/') || name.len() > 255 {
        return Err(src.error(m.pos_of("name"), "name", format!("'{name}' is not a valid schedule name")));
    }
    if let Some(n) = m.get("import_data") {
        return Err(src.error(n.pos, "import_data", "data-import schedules are not supported by Kiln"));
    }
    let trigger = trigger(src, &m)?;
    let create_job = create_job(src, m.req("create_job")?)?;
    let spec = Schedule {
        name,
        display_name: m.str("display_name")?,
        description: m.str("description")?,
        tags: m.string_map("tags")?,
        is_enabled: m.bool("is_enabled")?,
        trigger,
        create_job,
    };
    m.warn_unknown();
    Ok(spec)
}

fn trigger(src: &Source, schedule: &MapReader) -> Result<Trigger> {
    let m = schedule.map("trigger")?.ok_or_else(|| {
        src.error(schedule.node.pos, "trigger", "missing required field 'trigger' (a cron or recurrence trigger)")
    })?;
    let kind = m
        .choice("type", &["cron", "recurrence"])?
        .ok_or_else(|| src.error(m.node.pos, &m.field("type"), "missing required field 'type' (cron or recurrence)"))?;
    let (tz_key, tz_node) = match (m.get("time_zone"), m.get("timezone")) {
        (Some(a), Some(_)) => {
            return Err(src.error(a.pos, &m.field("time_zone"), "write time_zone or timezone, not both"));
        }
        (Some(n), None) => ("time_zone", Some(n)),
        (None, Some(n)) => ("timezone", Some(n)),
        (None, None) => ("time_zone", None),
    };
    let (time_zone_name, time_zone) = match tz_node {
        None => ("UTC".to_string(), Tz::UTC),
        Some(n) => {
            let written = scalar_text(src, n, &m.field(tz_key))?;
            let tz = parse_time_zone(&written).ok_or_else(|| {
                src.error(
                    n.pos,
                    &m.field(tz_key),
                    format!(
                        "unknown time zone '{written}': write a Windows time zone name such as \
                         'Pacific Standard Time', an IANA name such as 'America/Los_Angeles', or UTC"
                    ),
                )
            })?;
            (written, tz)
        }
    };
    let time = |key: &str| -> Result<Option<DateTime<Utc>>> {
        let Some(n) = m.get(key) else { return Ok(None) };
        let written = scalar_text(src, n, &m.field(key))?;
        parse_time(&written, time_zone).map(Some).ok_or_else(|| {
            src.error(
                n.pos,
                &m.field(key),
                format!("'{written}' is not a date and time (expected ISO 8601, such as 2026-01-31T09:00:00)"),
            )
        })
    };
    let start = time("start_time")?;
    let end = time("end_time")?;
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(src.error(m.pos_of("end_time"), &m.field("end_time"), "end_time is not after start_time"));
    }
    let rule = if kind == "cron" {
        let n = m.get("expression").ok_or_else(|| {
            src.error(m.node.pos, &m.field("expression"), "missing required field 'expression' (MIN HOUR DOM MON DOW)")
        })?;
        let expression = scalar_text(src, n, &m.field("expression"))?;
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Disallowed).build();
        let cron = parser.parse(expression.trim()).map_err(|e| {
            src.error(
                n.pos,
                &m.field("expression"),
                format!("'{expression}' is not a cron expression (MIN HOUR DOM MON DOW): {e}"),
            )
        })?;
        for key in ["frequency", "interval", "schedule", "pattern"] {
            if let Some(n) = m.get(key) {
                src.warn(n.pos, &m.field(key), format!("'{key}' belongs to recurrence triggers (ignored)"));
            }
        }
        Rule::Cron { expression: expression.trim().to_string(), cron: Box::new(cron) }
    } else {
        Rule::Recurrence(recurrence(src, &m)?)
    };
    m.warn_unknown();
    Ok(Trigger { rule, time_zone_name, time_zone, start, end })
}

fn recurrence(src: &Source, m: &MapReader) -> Result<Recurrence> {
    let frequency = match m.choice("frequency", &["minute", "hour", "day", "week", "month"])?.as_deref() {
        Some("minute") => Frequency::Minute,
        Some("hour") => Frequency::Hour,
        Some("day") => Frequency::Day,
        Some("week") => Frequency::Week,
        Some("month") => Frequency::Month,
        _ => {
            return Err(src.error(
                m.node.pos,
                &m.field("frequency"),
                "missing required field 'frequency' (minute, hour, day, week or month)",
            ));
        }
    };
    let interval = match m.int("interval")? {
        None => {
            return Err(src.error(m.node.pos, &m.field("interval"), "missing required field 'interval'"));
        }
        Some(i) if !(1..=100_000).contains(&i) => {
            return Err(src.error(
                m.pos_of("interval"),
                &m.field("interval"),
                format!("expected 1 or more, found {i}"),
            ));
        }
        Some(i) => i as u32,
    };
    if m.get("expression").is_some() {
        src.warn(m.pos_of("expression"), &m.field("expression"), "'expression' belongs to cron triggers (ignored)");
    }
    let key = match (m.has("schedule"), m.has("pattern")) {
        (true, true) => {
            return Err(src.error(m.pos_of("pattern"), &m.field("pattern"), "write schedule or pattern, not both"));
        }
        (false, true) => "pattern",
        _ => "schedule",
    };
    let pattern = match m.map(key)? {
        None => None,
        Some(p) if frequency == Frequency::Minute => {
            src.warn(p.node.pos, &p.path, "a minute recurrence has no schedule (ignored)");
            p.accept(&["hours", "minutes", "week_days", "month_days"]);
            None
        }
        Some(p) => {
            let list = |name: &str, max: u32| -> Result<Vec<u32>> {
                let Some(n) = p.get(name) else { return Ok(Vec::new()) };
                let field = p.field(name);
                let mut out = Vec::new();
                for item in one_or_many(n) {
                    match item.resolve() {
                        Some(Resolved::Int(i)) if (0..=max as i64).contains(&i) => out.push(i as u32),
                        _ => {
                            return Err(src.error(
                                item.pos,
                                &field,
                                format!("expected an integer from 0 to {max}, found {}", describe(item)),
                            ));
                        }
                    }
                }
                out.sort_unstable();
                out.dedup();
                Ok(out)
            };
            let hours = list("hours", 23)?;
            let minutes = list("minutes", 59)?;
            let month_days = list("month_days", 31)?;
            if let Some(zero) = month_days.first().filter(|d| **d == 0) {
                return Err(src.error(
                    p.pos_of("month_days"),
                    &p.field("month_days"),
                    format!("day {zero} of a month"),
                ));
            }
            let mut week_days = Vec::new();
            if let Some(n) = p.get("week_days") {
                for item in one_or_many(n) {
                    let text = scalar_text(src, item, &p.field("week_days"))?;
                    let day = parse_week_day(&text).ok_or_else(|| {
                        src.error(
                            item.pos,
                            &p.field("week_days"),
                            format!("'{text}' is not a week day (monday, tuesday, … sunday)"),
                        )
                    })?;
                    if !week_days.contains(&day) {
                        week_days.push(day);
                    }
                }
            }
            for (name, empty) in [("hours", hours.is_empty()), ("minutes", minutes.is_empty())] {
                if empty && frequency != Frequency::Hour && !p.has(name) {
                    return Err(src.error(p.node.pos, &p.field(name), format!("missing required field '{name}'")));
                }
            }
            if frequency == Frequency::Hour && !hours.is_empty() {
                src.warn(p.pos_of("hours"), &p.field("hours"), "an hourly recurrence runs every hour (hours ignored)");
            }
            if frequency != Frequency::Week && !week_days.is_empty() {
                src.warn(
                    p.pos_of("week_days"),
                    &p.field("week_days"),
                    "week_days apply to weekly recurrences (ignored)",
                );
            }
            if frequency != Frequency::Month && !month_days.is_empty() {
                src.warn(
                    p.pos_of("month_days"),
                    &p.field("month_days"),
                    "month_days apply to monthly recurrences (ignored)",
                );
            }
            p.warn_unknown();
            Some(Pattern { hours, minutes, week_days, month_days })
        }
    };
    Ok(Recurrence { frequency, interval, pattern })
}

/// `hours: 9` and `hours: [9, 17]` alike.
fn one_or_many(n: &Node) -> Vec<&Node> {
    match &n.kind {
        Kind::Seq(items) => items.iter().collect(),
        _ => vec![n],
    }
}

fn parse_week_day(text: &str) -> Option<Weekday> {
    let t = text.trim().to_ascii_lowercase();
    let days = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];
    days.iter().find(|(name, _)| *name == t || (t.len() == 3 && name.starts_with(&t))).map(|(_, d)| *d)
}

/// A Windows time zone name (what the original service takes), an IANA name, or UTC.
pub fn parse_time_zone(written: &str) -> Option<Tz> {
    let w = written.trim();
    if w.eq_ignore_ascii_case("utc") || w.eq_ignore_ascii_case("coordinated universal time") {
        return Some(Tz::UTC);
    }
    if let Some(iana) = localzone::win_zone_to_iana(w, None) {
        return iana.parse().ok();
    }
    w.parse().ok()
}

/// An ISO 8601 date and time: with an offset (`Z`, `+02:00`) it is that instant; without, it
/// is a wall-clock time in `tz`.
pub fn parse_time(written: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let w = written.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(w) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(w, f).ok())
        .or_else(|| NaiveDate::parse_from_str(w, "%Y-%m-%d").ok().map(|d| d.and_time(NaiveTime::MIN)))?;
    local_to_utc(tz, naive)
}

/// A wall-clock time in `tz` as an instant: the earlier one when the clock shows it twice,
/// the first instant after the gap when it never shows it (spring forward).
fn local_to_utc(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => Some(t.with_timezone(&Utc)),
        None => (1..=4)
            .find_map(|h| tz.from_local_datetime(&(naive + chrono::Duration::minutes(30 * h))).earliest())
            .map(|t| t.with_timezone(&Utc)),
    }
}

fn create_job(src: &Source, node: &Node) -> Result<CreateJob> {
    let base_of = |n: &Node, field: &str| -> Result<JobBase> {
        if matches!(n.kind, Kind::Map(_)) {
            return Ok(JobBase::Inline(n.clone()));
        }
        let written = scalar_text(src, n, field)?;
        let w = written.trim();
        if let Some(name) = w.strip_prefix("azureml:") {
            if name.is_empty() || name.contains(['/', ':', '@']) {
                return Err(src.error(n.pos, field, format!("'{w}' does not name a job (azureml:<job name>)")));
            }
            return Ok(JobBase::Existing { name: name.to_string(), pos: n.pos });
        }
        if w.is_empty() {
            return Err(src.error(n.pos, field, "expected a job file, azureml:<job name> or a job"));
        }
        Ok(JobBase::File { path: w.strip_prefix("file:").unwrap_or(w).to_string(), pos: n.pos })
    };
    let Some(entries) = node.entries() else {
        return Ok(CreateJob { base: base_of(node, "create_job")?, source: None, overrides: Vec::new() });
    };
    let Some(job) = node.get("job") else {
        // The job itself, written inline.
        return Ok(CreateJob { base: JobBase::Inline(node.clone()), source: None, overrides: Vec::new() });
    };
    let (base, source) = match job.entries() {
        Some(job_entries) => {
            // A job file the client inlined keeps its name as `$source`.
            let source = job.get("$source").and_then(|n| n.resolve()).and_then(|r| match r {
                Resolved::Str(s) => Some(s.to_string()),
                _ => None,
            });
            let kept: Vec<Entry> = job_entries.iter().filter(|e| e.key != "$source").cloned().collect();
            (JobBase::Inline(Node { kind: Kind::Map(kept), pos: job.pos }), source)
        }
        None => (base_of(job, "create_job.job")?, None),
    };
    let mut overrides = Vec::new();
    for e in entries {
        let field = format!("create_job.{}", e.key);
        match e.key.as_str() {
            "job" | "$schema" => {}
            "type" => {
                let t = scalar_text(src, &e.value, &field)?;
                if !matches!(t.trim().to_ascii_lowercase().as_str(), "pipeline" | "command") {
                    return Err(src.error(e.value.pos, &field, format!("'{t}' jobs cannot be scheduled by Kiln")));
                }
            }
            k if OVERRIDES.contains(&k) => {
                if MERGED.contains(&k) && !e.value.is_null() && !matches!(e.value.kind, Kind::Map(_)) {
                    return Err(src.error(
                        e.value.pos,
                        &field,
                        format!("expected a mapping, found {}", e.value.type_name()),
                    ));
                }
                overrides.push(e.clone());
            }
            k => src.warn(e.key_pos, &field, format!("unknown field '{k}' (ignored)")),
        }
    }
    Ok(CreateJob { base, source, overrides })
}

/// The job a schedule submits when it fires at `trigger_time`: the base job with the
/// overrides applied, named `job_name`, `${{name}}` and `${{creation_context.trigger_time}}`
/// resolved, in the schedule's experiment unless it names one, and marked with the schedule
/// (properties `kiln.schedule`, `kiln.trigger_time`).
pub fn job_for_fire(base: &Node, create: &CreateJob, schedule: &str, job_name: &str, trigger_time: &str) -> Node {
    let mut job = base.clone();
    if !matches!(job.kind, Kind::Map(_)) {
        return job;
    }
    apply_overrides(&mut job, &create.overrides);
    expand_fire_expressions(&mut job, job_name, trigger_time);
    let text = |v: &str| Node::scalar(v, false, crate::Pos::default());
    let Kind::Map(entries) = &mut job.kind else { return job };
    entries.retain(|e| e.key != "name" && e.key != "$source");
    entries.push(Entry { key: "name".into(), key_pos: crate::Pos::default(), value: text(job_name) });
    if !entries.iter().any(|e| e.key == "experiment_name" && !e.value.is_null()) {
        entries.retain(|e| e.key != "experiment_name");
        entries.push(Entry { key: "experiment_name".into(), key_pos: crate::Pos::default(), value: text(schedule) });
    }
    let marks = [("kiln.schedule", schedule), ("kiln.trigger_time", trigger_time)];
    match entries.iter_mut().find(|e| e.key == "properties" && matches!(e.value.kind, Kind::Map(_))) {
        Some(Entry { value: Node { kind: Kind::Map(props), .. }, .. }) => {
            props.retain(|p| !marks.iter().any(|(k, _)| *k == p.key));
            props.extend(marks.iter().map(|(k, v)| Entry {
                key: k.to_string(),
                key_pos: crate::Pos::default(),
                value: text(v),
            }));
        }
        _ => {
            entries.retain(|e| e.key != "properties");
            let props =
                marks.iter().map(|(k, v)| Entry { key: k.to_string(), key_pos: crate::Pos::default(), value: text(v) });
            entries.push(Entry {
                key: "properties".into(),
                key_pos: crate::Pos::default(),
                value: Node { kind: Kind::Map(props.collect()), pos: crate::Pos::default() },
            });
        }
    }
    job
}

/// Applies a schedule's overrides to its base job's tree.
pub fn apply_overrides(job: &mut Node, overrides: &[Entry]) {
    for o in overrides {
        if o.value.is_null() {
            continue;
        }
        let Kind::Map(entries) = &mut job.kind else { return };
        let at = entries.iter().rposition(|e| e.key == o.key);
        match (at, MERGED.contains(&o.key.as_str())) {
            (Some(i), true) if matches!(entries[i].value.kind, Kind::Map(_)) => {
                let Kind::Map(target) = &mut entries[i].value.kind else { continue };
                for item in o.value.entries().unwrap_or_default() {
                    match target.iter().rposition(|t| t.key == item.key) {
                        Some(j) => target[j].value = item.value.clone(),
                        None => target.push(item.clone()),
                    }
                }
            }
            (Some(i), _) => entries[i].value = o.value.clone(),
            (None, _) => entries.push(o.clone()),
        }
    }
}

/// Resolves what a schedule's job may say about its own firing, in the job's `inputs` and
/// `outputs`: `${{name}}` (the new job's name) and `${{creation_context.trigger_time}}`.
pub fn expand_fire_expressions(job: &mut Node, name: &str, trigger_time: &str) {
    fn walk(node: &mut Node, name: &str, time: &str) {
        match &mut node.kind {
            Kind::Scalar { text, .. } if text.contains("${{") => {
                let mut out = String::with_capacity(text.len());
                let mut rest = text.as_str();
                while let Some(i) = rest.find("${{") {
                    out.push_str(&rest[..i]);
                    let after = &rest[i + 3..];
                    let Some(j) = after.find("}}") else {
                        out.push_str(&rest[i..]);
                        rest = "";
                        break;
                    };
                    match after[..j].trim() {
                        "name" => out.push_str(name),
                        "creation_context.trigger_time" => out.push_str(time),
                        _ => out.push_str(&rest[i..i + 3 + j + 2]),
                    }
                    rest = &after[j + 2..];
                }
                out.push_str(rest);
                *text = out;
            }
            Kind::Scalar { .. } => {}
            Kind::Seq(items) => items.iter_mut().for_each(|i| walk(i, name, time)),
            Kind::Map(entries) => entries.iter_mut().for_each(|e| walk(&mut e.value, name, time)),
        }
    }
    if let Kind::Map(entries) = &mut job.kind {
        for e in entries.iter_mut().filter(|e| e.key == "inputs" || e.key == "outputs") {
            walk(&mut e.value, name, trigger_time);
        }
    }
}

/// How many periods the calendar looks ahead for a pattern's next time before it gives up
/// (a `month_days: [31]` every 12 months from April never fires).
const MAX_PERIODS: u64 = 5_000;

impl Trigger {
    /// When a schedule made (or enabled) at `now` fires first: at once when it has no start
    /// time (as the original service does), else at the first time of its series from
    /// `max(start, now)`. `None`: it never fires (its end is past).
    pub fn first_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.start {
            None => self.within_end(now),
            Some(start) => self.next_at_or_after(start, start.max(now)),
        }
    }

    fn within_end(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.end {
            Some(end) if t > end => None,
            _ => Some(t),
        }
    }

    /// The first time of the series at or after `t`, the series counted from `anchor` (the
    /// start time, else when the schedule was made); `None` past the end time.
    pub fn next_at_or_after(&self, anchor: DateTime<Utc>, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = t.max(self.start.unwrap_or(t));
        let next = match &self.rule {
            Rule::Cron { cron, .. } => {
                let local = t.with_timezone(&self.time_zone);
                cron.find_next_occurrence(&local, true).ok().map(|n| n.with_timezone(&Utc))
            }
            Rule::Recurrence(r) => r.next_at_or_after(self.time_zone, anchor, t),
        }?;
        self.within_end(next)
    }
}

impl Recurrence {
    fn next_at_or_after(&self, tz: Tz, anchor: DateTime<Utc>, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let interval = self.interval as i64;
        let local_anchor = anchor.with_timezone(&tz).naive_local();
        let elapsed = (t - anchor).num_seconds().max(0);
        match (self.frequency, &self.pattern) {
            (Frequency::Minute, _) | (Frequency::Hour, None) => {
                let step = if self.frequency == Frequency::Minute { 60 } else { 3600 } * interval;
                let step_ms = step * 1000;
                let since = (t - anchor).num_milliseconds().max(0);
                let k = (since + step_ms - 1) / step_ms;
                Some(anchor + chrono::Duration::milliseconds(k * step_ms))
            }
            (Frequency::Hour, Some(p)) => {
                // Periods of `interval` hours from the anchor's hour, at the pattern's minutes.
                let hour_start = local_anchor.with_minute(0)?.with_second(0)?.with_nanosecond(0)?;
                let first = local_to_utc(tz, hour_start)?;
                let step = 3600 * interval;
                let k0 = ((t - first).num_seconds().max(0) / step - 1).max(0);
                let minutes = if p.minutes.is_empty() { vec![local_anchor.minute()] } else { p.minutes.clone() };
                for k in k0..k0 + MAX_PERIODS as i64 {
                    let period = first + chrono::Duration::seconds(k * step);
                    let hit = minutes
                        .iter()
                        .map(|m| period + chrono::Duration::minutes(*m as i64))
                        .find(|c| *c >= t && *c >= anchor);
                    if hit.is_some() {
                        return hit;
                    }
                }
                None
            }
            (_, None) => {
                // Whole days, weeks or months on the wall clock, so 09:00 stays 09:00 across
                // daylight-saving changes.
                let approx_days = match self.frequency {
                    Frequency::Day => interval,
                    Frequency::Week => 7 * interval,
                    _ => 31 * interval,
                };
                let k0 = (elapsed / 86_400 / approx_days - 1).max(0) as u64;
                for k in k0..k0 + MAX_PERIODS {
                    let local = self.shift(local_anchor, k)?;
                    if let Some(c) = local_to_utc(tz, local).filter(|c| *c >= t) {
                        return Some(c);
                    }
                }
                None
            }
            (_, Some(p)) => {
                let day0 = local_anchor.date();
                let period_start = match self.frequency {
                    Frequency::Week => day0 - Days::new(day0.weekday().num_days_from_monday() as u64),
                    Frequency::Month => day0.with_day(1)?,
                    _ => day0,
                };
                let approx_days = match self.frequency {
                    Frequency::Day => interval,
                    Frequency::Week => 7 * interval,
                    _ => 31 * interval,
                };
                let k0 = (elapsed / 86_400 / approx_days - 1).max(0) as u64;
                for k in k0..k0 + MAX_PERIODS {
                    let start = self.shift(period_start.and_time(NaiveTime::MIN), k)?.date();
                    let days: Vec<NaiveDate> = match self.frequency {
                        Frequency::Week => {
                            let wanted =
                                if p.week_days.is_empty() { vec![day0.weekday()] } else { p.week_days.clone() };
                            let mut d: Vec<NaiveDate> =
                                wanted.iter().map(|w| start + Days::new(w.num_days_from_monday() as u64)).collect();
                            d.sort();
                            d
                        }
                        Frequency::Month => {
                            let wanted = if p.month_days.is_empty() { vec![day0.day()] } else { p.month_days.clone() };
                            wanted.iter().filter_map(|d| start.with_day(*d)).collect()
                        }
                        _ => vec![start],
                    };
                    let mut hits: Vec<DateTime<Utc>> = Vec::new();
                    for day in days {
                        for h in &p.hours {
                            for m in &p.minutes {
                                let Some(local) = day.and_hms_opt(*h, *m, 0) else { continue };
                                if let Some(c) = local_to_utc(tz, local).filter(|c| *c >= t && *c >= anchor) {
                                    hits.push(c);
                                }
                            }
                        }
                    }
                    if let Some(first) = hits.into_iter().min() {
                        return Some(first);
                    }
                }
                None
            }
        }
    }

    /// The anchor moved `k` periods of `interval` days, weeks or months on the wall clock.
    fn shift(&self, local: NaiveDateTime, k: u64) -> Option<NaiveDateTime> {
        let n = k.checked_mul(self.interval as u64)?;
        match self.frequency {
            Frequency::Day => local.checked_add_days(Days::new(n)),
            Frequency::Week => local.checked_add_days(Days::new(n.checked_mul(7)?)),
            Frequency::Month => local.checked_add_months(Months::new(u32::try_from(n).ok()?)),
            Frequency::Minute | Frequency::Hour => None,
        }
    }
}

impl Trigger {
    /// A short description for listings: `cron 0 9 * * 1-5 (UTC)`, `every 2 days at 09:00`.
    pub fn describe(&self) -> String {
        let what = match &self.rule {
            Rule::Cron { expression, .. } => format!("cron {expression}"),
            Rule::Recurrence(r) => {
                let unit = r.frequency.as_str();
                let mut s =
                    if r.interval == 1 { format!("every {unit}") } else { format!("every {} {unit}s", r.interval) };
                if let Some(p) = &r.pattern {
                    if !p.week_days.is_empty() {
                        let days: Vec<String> = p.week_days.iter().map(|d| d.to_string()).collect();
                        s.push_str(&format!(" on {}", days.join(",")));
                    }
                    if !p.month_days.is_empty() {
                        let days: Vec<String> = p.month_days.iter().map(|d| d.to_string()).collect();
                        s.push_str(&format!(" on day {}", days.join(",")));
                    }
                    if r.frequency == Frequency::Hour {
                        let m: Vec<String> = p.minutes.iter().map(|m| format!(":{m:02}")).collect();
                        s.push_str(&format!(" at {}", m.join(",")));
                    } else {
                        let mut times = Vec::new();
                        for h in &p.hours {
                            for m in &p.minutes {
                                times.push(format!("{h:02}:{m:02}"));
                            }
                        }
                        s.push_str(&format!(" at {}", times.join(",")));
                    }
                }
                s
            }
        };
        format!("{what} ({})", self.time_zone_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> std::result::Result<(Schedule, Vec<crate::Diagnostic>), String> {
        let root = crate::parse_with_overrides("s.yml", text, &[]).map_err(|e| e.to_string())?;
        let src = Source::new("s.yml");
        let s = schedule(&src, &root).map_err(|e| e.to_string())?;
        Ok((s, src.take_warnings()))
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn trigger(yaml: &str) -> Trigger {
        read(&format!("name: s\ncreate_job: ./p.yml\ntrigger:\n{yaml}")).unwrap().0.trigger
    }

    fn series(t: &Trigger, anchor: &str, from: &str, n: usize) -> Vec<String> {
        let anchor = utc(anchor);
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(next) = t.next_at_or_after(anchor, at) else { break };
            out.push(next.to_rfc3339());
            at = next + chrono::Duration::seconds(1);
        }
        out
    }

    #[test]
    fn cron_in_a_windows_time_zone_follows_the_wall_clock() {
        let t = trigger("  type: cron\n  expression: \"0 9 * * 1-5\"\n  time_zone: Pacific Standard Time\n");
        assert_eq!(t.time_zone, chrono_tz::America::Los_Angeles);
        // Friday 2026-03-06 → Monday 2026-03-09, across the spring-forward weekend (PST → PDT).
        let s = series(&t, "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z", 2);
        assert_eq!(s, ["2026-03-06T17:00:00+00:00", "2026-03-09T16:00:00+00:00"]);
    }

    #[test]
    fn docs_spellings_are_aliases() {
        let t = trigger(
            "  type: recurrence\n  frequency: week\n  interval: 1\n  timezone: UTC\n  pattern: {hours: 10, minutes: [0, 30], week_days: [monday, friday]}\n",
        );
        let Rule::Recurrence(r) = &t.rule else { panic!() };
        assert_eq!(r.pattern.as_ref().unwrap().week_days, vec![Weekday::Mon, Weekday::Fri]);
        // 2026-11-23 is a Monday.
        let s = series(&t, "2026-11-22T00:00:00Z", "2026-11-22T00:00:00Z", 5);
        assert_eq!(
            s,
            [
                "2026-11-23T10:00:00+00:00",
                "2026-11-23T10:30:00+00:00",
                "2026-11-27T10:00:00+00:00",
                "2026-11-27T10:30:00+00:00",
                "2026-11-30T10:00:00+00:00"
            ]
        );
    }

    #[test]
    fn plain_recurrence_counts_from_the_start_time() {
        let t =
            trigger("  type: recurrence\n  frequency: minute\n  interval: 5\n  start_time: \"2026-11-22T10:02:00\"\n");
        assert_eq!(t.first_fire(utc("2026-11-22T09:00:00Z")), Some(utc("2026-11-22T10:02:00Z")));
        // A past start: the next time of the series, not a burst of the missed ones.
        assert_eq!(t.first_fire(utc("2026-11-22T10:13:00Z")), Some(utc("2026-11-22T10:17:00Z")));
        let days = trigger(
            "  type: recurrence\n  frequency: day\n  interval: 2\n  start_time: 2026-03-07T09:00:00\n  time_zone: W. Europe Standard Time\n",
        );
        // 09:00 Berlin stays 09:00 after the clocks change on 2026-03-29.
        let s = series(&days, "2026-03-07T08:00:00Z", "2026-03-26T00:00:00Z", 3);
        assert_eq!(s, ["2026-03-27T08:00:00+00:00", "2026-03-29T07:00:00+00:00", "2026-03-31T07:00:00+00:00"]);
    }

    #[test]
    fn monthly_days_skip_months_without_them_and_the_end_stops_the_series() {
        let t = trigger(
            "  type: recurrence\n  frequency: month\n  interval: 1\n  schedule: {hours: [6], minutes: [0], month_days: [31]}\n  end_time: \"2026-06-01T00:00:00Z\"\n",
        );
        let s = series(&t, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", 10);
        assert_eq!(s, ["2026-01-31T06:00:00+00:00", "2026-03-31T06:00:00+00:00", "2026-05-31T06:00:00+00:00"]);
    }

    #[test]
    fn no_start_time_fires_at_once() {
        let t = trigger("  type: cron\n  expression: \"0 0 1 1 *\"\n");
        let now = utc("2026-11-22T10:00:00Z");
        assert_eq!(t.first_fire(now), Some(now));
    }

    #[test]
    fn mistakes_name_their_line_and_field() {
        let cases = [
            (
                "  type: cron\n  expression: \"* * *\"\n",
                "s.yml:5:15: trigger.expression: '* * *' is not a cron expression",
            ),
            (
                "  type: cron\n  expression: \"* * * * *\"\n  time_zone: Mars Standard Time\n",
                "trigger.time_zone: unknown time zone 'Mars Standard Time'",
            ),
            (
                "  type: recurrence\n  frequency: fortnight\n  interval: 1\n",
                "trigger.frequency: expected one of minute, hour, day, week, month",
            ),
            ("  type: recurrence\n  frequency: day\n  interval: 0\n", "trigger.interval: expected 1 or more"),
            (
                "  type: recurrence\n  frequency: day\n  interval: 1\n  schedule: {hours: [25], minutes: 0}\n",
                "trigger.schedule.hours: expected an integer from 0 to 23",
            ),
            (
                "  type: recurrence\n  frequency: day\n  interval: 1\n  schedule: {minutes: 0}\n",
                "trigger.schedule.hours: missing required field 'hours'",
            ),
            (
                "  type: recurrence\n  frequency: week\n  interval: 1\n  schedule: {hours: 1, minutes: 0, week_days: [funday]}\n",
                "'funday' is not a week day",
            ),
            (
                "  type: cron\n  expression: \"* * * * *\"\n  start_time: tomorrow\n",
                "trigger.start_time: 'tomorrow' is not a date and time",
            ),
            (
                "  type: cron\n  expression: \"* * * * *\"\n  start_time: 2026-01-02T00:00:00\n  end_time: 2026-01-01T00:00:00\n",
                "trigger.end_time: end_time is not after start_time",
            ),
        ];
        for (yaml, want) in cases {
            let err = read(&format!("name: s\ncreate_job: ./p.yml\ntrigger:\n{yaml}")).unwrap_err();
            assert!(err.contains(want), "{err}\n  does not contain\n{want}");
        }
        let err = read("name: s\ntrigger: {type: cron, expression: '* * * * *'}\n").unwrap_err();
        assert!(err.contains("missing required field 'create_job'"), "{err}");
    }

    #[test]
    fn overrides_merge_into_the_job_and_fire_expressions_resolve() {
        let (s, warnings) = read(
            "name: nightly\ntrigger: {type: cron, expression: '0 1 * * *'}\ncreate_job:\n  type: pipeline\n  job: ./p.yml\n  inputs: {day: '${{creation_context.trigger_time}}', out_name: 'x-${{name}}'}\n  settings: {continue_on_step_failure: true}\n  experiment_name: nightly-runs\n  colour: blue\n",
        )
        .unwrap();
        assert!(matches!(&s.create_job.base, JobBase::File { path, .. } if path == "./p.yml"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let job = crate::parse_with_overrides(
            "p.yml",
            "type: pipeline\ninputs: {day: x, keep: 1}\nsettings: {default_compute: local}\njobs: {}\noutputs: {o: {path: '${{name}}'}}\n",
            &[],
        )
        .unwrap();
        let fired = job_for_fire(&job, &s.create_job, "nightly", "job_1", "2026-11-22T01:00:00Z");
        assert_eq!(
            fired.to_flow(),
            r#"{"type": "pipeline", "inputs": {"day": "2026-11-22T01:00:00Z", "keep": 1, "out_name": "x-job_1"}, "settings": {"default_compute": "local", "continue_on_step_failure": true}, "jobs": {}, "outputs": {"o": {"path": "job_1"}}, "experiment_name": "nightly-runs", "name": "job_1", "properties": {"kiln.schedule": "nightly", "kiln.trigger_time": "2026-11-22T01:00:00Z"}}"#
        );
        // Without an experiment of its own, the job goes to the schedule's.
        let plain = CreateJob { base: JobBase::Inline(job.clone()), source: None, overrides: Vec::new() };
        let fired = job_for_fire(&job, &plain, "nightly", "job_2", "t");
        assert_eq!(fired.get("experiment_name").and_then(|n| n.resolve()), Some(Resolved::Str("nightly")));
    }
}
