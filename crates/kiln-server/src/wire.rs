//! Kiln entities in MLflow's JSON shapes: snake_case names, int64 as numbers, enums as names,
//! NaN as "NaN", unset fields and empty lists left out.

use kiln_registry::{Model, Version};
use kiln_tracking::{Experiment, LoggedModel, Metric, Run, RunInfo, RunMetric, Tag, TraceInfo};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// A JSON object that leaves out what MLflow leaves out.
#[derive(Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Obj {
        Obj(Map::new())
    }
    pub fn set(mut self, k: &str, v: impl Into<Value>) -> Obj {
        self.0.insert(k.to_string(), v.into());
        self
    }
    pub fn opt<V: Into<Value>>(mut self, k: &str, v: Option<V>) -> Obj {
        if let Some(v) = v {
            self.0.insert(k.to_string(), v.into());
        }
        self
    }
    /// Sets a list unless it is empty.
    pub fn list(mut self, k: &str, items: Vec<Value>) -> Obj {
        if !items.is_empty() {
            self.0.insert(k.to_string(), Value::Array(items));
        }
        self
    }
    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// A JSON response written into a buffer sized up front: a large page (a 25k-point history is
/// 3 MB) otherwise grows by doubling and is copied about twice over.
pub fn json_response<T: Serialize>(body: &T, size_hint: usize) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut buf = Vec::with_capacity(size_hint.max(128));
    match serde_json::to_writer(&mut buf, body) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, "application/json")], buf).into_response(),
        // Only a type that cannot be JSON fails here; axum's Json answers the same way.
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub fn number(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v.is_infinite() {
        json!(if v > 0.0 { f64::MAX } else { f64::MIN })
    } else {
        json!(v)
    }
}

pub fn tags(tags: &[Tag]) -> Vec<Value> {
    tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect()
}

pub fn experiment(e: &Experiment) -> Value {
    Obj::new()
        .set("experiment_id", e.experiment_id.to_string())
        .set("name", e.name.clone())
        .set("artifact_location", e.artifact_location.clone())
        .set("lifecycle_stage", e.lifecycle_stage.clone())
        .set("last_update_time", e.last_update_time)
        .set("creation_time", e.creation_time)
        .list("tags", tags(&e.tags))
        .build()
}

pub fn run_info(r: &RunInfo) -> Value {
    Obj::new()
        .set("run_id", r.run_id.clone())
        .set("run_uuid", r.run_id.clone())
        .set("run_name", r.run_name.clone())
        .set("experiment_id", r.experiment_id.to_string())
        .set("user_id", r.user_id.clone())
        .set("status", r.status.clone())
        .opt("start_time", r.start_time)
        .opt("end_time", r.end_time)
        .set("artifact_uri", r.artifact_uri.clone())
        .set("lifecycle_stage", r.lifecycle_stage.clone())
        .build()
}

/// A metric value as MLflow writes it: NaN as "NaN", infinities clamped to ±f64::MAX.
pub struct MetricValue(pub f64);

impl Serialize for MetricValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_f64(if v > 0.0 { f64::MAX } else { f64::MIN })
        } else {
            s.serialize_f64(v)
        }
    }
}

/// A metric serialized straight from the entity: long histories are the largest answers the
/// server writes, so they skip the intermediate `Value` tree.
#[derive(Serialize)]
pub struct MetricOut<'a> {
    key: &'a str,
    value: MetricValue,
    timestamp: i64,
    step: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset_digest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
}

impl<'a> MetricOut<'a> {
    pub fn new(m: &'a Metric, run_id: Option<&'a str>) -> Self {
        MetricOut {
            key: &m.key,
            value: MetricValue(m.value),
            timestamp: m.timestamp,
            step: m.step,
            dataset_name: m.dataset_name.as_deref(),
            dataset_digest: m.dataset_digest.as_deref(),
            model_id: m.model_id.as_deref(),
            run_id,
        }
    }
}

/// A page of metrics, `{"metrics": [...], "next_page_token": ...}` with MLflow's omissions,
/// as the bytes [`MetricOut`] would serialize to.
///
/// Why by hand: a history page is the largest answer the server writes (25,000 points), and
/// every point repeats the same key and run id and the same five field names, which serde
/// escapes afresh each time; here each distinct string is escaped once. Numbers still go
/// through serde_json, so they are written exactly as everywhere else.
pub fn metric_page_json(metrics: &[Metric], run_id: Option<&str>, next_page_token: Option<&str>) -> Vec<u8> {
    fn escaped(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap_or_default()
    }
    fn number<T: Serialize>(buf: &mut Vec<u8>, v: T) {
        // Writing a number into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, &v);
    }
    let mut buf = Vec::with_capacity(64 + metrics.len() * (96 + run_id.map_or(0, str::len)));
    buf.push(b'{');
    if !metrics.is_empty() {
        let run_id = run_id.map(escaped);
        let mut key: (&str, Vec<u8>) = ("", escaped(""));
        buf.extend_from_slice(b"\"metrics\":[");
        for (i, m) in metrics.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            if key.0 != m.key {
                key = (&m.key, escaped(&m.key));
            }
            buf.extend_from_slice(b"{\"key\":");
            buf.extend_from_slice(&key.1);
            buf.extend_from_slice(b",\"value\":");
            number(&mut buf, MetricValue(m.value));
            buf.extend_from_slice(b",\"timestamp\":");
            number(&mut buf, m.timestamp);
            buf.extend_from_slice(b",\"step\":");
            number(&mut buf, m.step);
            for (name, v) in [
                (&b",\"dataset_name\":"[..], &m.dataset_name),
                (b",\"dataset_digest\":", &m.dataset_digest),
                (b",\"model_id\":", &m.model_id),
            ] {
                if let Some(v) = v {
                    buf.extend_from_slice(name);
                    buf.extend_from_slice(&escaped(v));
                }
            }
            if let Some(run_id) = &run_id {
                buf.extend_from_slice(b",\"run_id\":");
                buf.extend_from_slice(run_id);
            }
            buf.push(b'}');
        }
        buf.push(b']');
    }
    if let Some(token) = next_page_token {
        if !metrics.is_empty() {
            buf.push(b',');
        }
        buf.extend_from_slice(b"\"next_page_token\":");
        buf.extend_from_slice(&escaped(token));
    }
    buf.push(b'}');
    buf
}

pub fn metric(m: &Metric, run_id: Option<&str>) -> Value {
    serde_json::to_value(MetricOut::new(m, run_id)).unwrap_or(Value::Null)
}

pub fn run_metric(m: &RunMetric) -> Value {
    json!({
        "key": m.metric.key,
        "value": number(m.metric.value),
        "timestamp": m.metric.timestamp,
        "step": m.metric.step,
        "run_id": m.run_id,
    })
}

#[derive(Serialize)]
struct TagOut<'a> {
    key: &'a str,
    value: &'a str,
}

fn tag_outs(tags: &[Tag]) -> Vec<TagOut<'_>> {
    tags.iter().map(|t| TagOut { key: &t.key, value: &t.value }).collect()
}

#[derive(Serialize)]
struct RunInfoOut<'a> {
    run_id: &'a str,
    run_uuid: &'a str,
    run_name: &'a str,
    experiment_id: String,
    user_id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    artifact_uri: &'a str,
    lifecycle_stage: &'a str,
}

#[derive(Serialize)]
struct RunDataOut<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<TagOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<TagOut<'a>>,
}

#[derive(Serialize)]
struct DatasetOut<'a> {
    name: &'a str,
    digest: &'a str,
    source_type: &'a str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
}

#[derive(Serialize)]
struct DatasetInputOut<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<TagOut<'a>>,
    dataset: DatasetOut<'a>,
}

#[derive(Serialize)]
struct ModelIdOut<'a> {
    model_id: &'a str,
}

#[derive(Serialize)]
struct ModelOutputOut<'a> {
    model_id: &'a str,
    step: i64,
}

#[derive(Serialize)]
struct RunInputsOut<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dataset_inputs: Vec<DatasetInputOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_inputs: Vec<ModelIdOut<'a>>,
}

#[derive(Serialize)]
struct RunOutputsOut<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_outputs: Vec<ModelOutputOut<'a>>,
}

/// A run in MLflow's shape, serialized straight from the entity (search pages carry
/// thousands of these).
#[derive(Serialize)]
pub struct RunOut<'a> {
    info: RunInfoOut<'a>,
    data: RunDataOut<'a>,
    inputs: RunInputsOut<'a>,
    /// MLflow's create answer has no outputs block; every other answer has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<RunOutputsOut<'a>>,
}

impl<'a> RunOut<'a> {
    pub fn new(r: &'a Run, with_outputs: bool) -> Self {
        let i = &r.info;
        RunOut {
            info: RunInfoOut {
                run_id: &i.run_id,
                run_uuid: &i.run_id,
                run_name: &i.run_name,
                experiment_id: i.experiment_id.to_string(),
                user_id: &i.user_id,
                status: &i.status,
                start_time: i.start_time,
                end_time: i.end_time,
                artifact_uri: &i.artifact_uri,
                lifecycle_stage: &i.lifecycle_stage,
            },
            data: RunDataOut {
                metrics: r.metrics.iter().map(|m| MetricOut::new(m, None)).collect(),
                params: tag_outs(&r.params),
                tags: tag_outs(&r.tags),
            },
            inputs: RunInputsOut {
                dataset_inputs: r
                    .dataset_inputs
                    .iter()
                    .map(|d| DatasetInputOut {
                        tags: tag_outs(&d.tags),
                        dataset: DatasetOut {
                            name: &d.dataset.name,
                            digest: &d.dataset.digest,
                            source_type: &d.dataset.source_type,
                            source: &d.dataset.source,
                            schema: d.dataset.schema.as_deref(),
                            profile: d.dataset.profile.as_deref(),
                        },
                    })
                    .collect(),
                model_inputs: r.model_inputs.iter().map(|m| ModelIdOut { model_id: m }).collect(),
            },
            outputs: with_outputs.then(|| RunOutputsOut {
                model_outputs: r
                    .model_outputs
                    .iter()
                    .map(|m| ModelOutputOut { model_id: &m.model_id, step: m.step })
                    .collect(),
            }),
        }
    }
}

/// A page of runs: `{"runs": [...], "next_page_token": ...}` with MLflow's omissions.
#[derive(Serialize)]
pub struct RunPage<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

pub fn run(r: &Run) -> Value {
    serde_json::to_value(RunOut::new(r, true)).unwrap_or(Value::Null)
}

pub fn logged_model(m: &LoggedModel) -> Value {
    let registrations: Vec<Value> = m
        .tags
        .iter()
        .find(|t| t.key == "mlflow.modelVersions")
        .and_then(|t| serde_json::from_str::<Vec<Value>>(&t.value).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            let name = v.get("name")?.as_str()?.to_string();
            let version = match v.get("version")? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(json!({"name": name, "version": version}))
        })
        .collect();
    let info = Obj::new()
        .set("model_id", m.model_id.clone())
        .set("experiment_id", m.experiment_id.to_string())
        .set("name", m.name.clone())
        .set("creation_timestamp_ms", m.creation_timestamp)
        .set("last_updated_timestamp_ms", m.last_updated_timestamp)
        .set("artifact_uri", m.artifact_uri.clone())
        .set("status", m.status.clone())
        .set("model_type", m.model_type.clone().unwrap_or_default())
        .opt("source_run_id", m.source_run_id.clone())
        .opt("status_message", m.status_message.clone())
        .list("tags", tags(&m.tags))
        .list("registrations", registrations)
        .build();
    let data = Obj::new()
        .list("params", tags(&m.params))
        .list("metrics", m.metrics.iter().map(|x| metric(x, None)).collect())
        .build();
    json!({"info": info, "data": data})
}

pub fn model_version(v: &Version) -> Value {
    Obj::new()
        .set("name", v.name.clone())
        .set("version", v.version.to_string())
        .set("creation_timestamp", v.creation_timestamp)
        .set("last_updated_timestamp", v.last_updated_timestamp)
        .opt("user_id", v.user_id.clone())
        .set("current_stage", v.current_stage.clone())
        .set("description", v.description.clone().unwrap_or_default())
        .set("source", v.source.clone())
        .set("run_id", v.run_id.clone().unwrap_or_default())
        .set("status", v.status.clone())
        .opt("status_message", v.status_message.clone())
        .list("tags", tags(&v.tags))
        .set("run_link", v.run_link.clone().unwrap_or_default())
        .list("aliases", v.aliases.iter().map(|a| json!(a)).collect())
        .opt("model_id", v.model_id.clone())
        .build()
}

pub fn registered_model(m: &Model) -> Value {
    Obj::new()
        .set("name", m.name.clone())
        .set("creation_timestamp", m.creation_timestamp)
        .set("last_updated_timestamp", m.last_updated_timestamp)
        .opt("user_id", m.user_id.clone())
        .set("description", m.description.clone().unwrap_or_default())
        .list("latest_versions", m.latest_versions.iter().map(model_version).collect())
        .list("tags", tags(&m.tags))
        .list("aliases", m.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect())
        .build()
}

fn kv_map(items: &[Tag]) -> Value {
    Value::Object(items.iter().map(|t| (t.key.clone(), Value::String(t.value.clone()))).collect())
}

pub fn trace_info_v3(t: &TraceInfo) -> Value {
    Obj::new()
        .set("trace_id", t.trace_id.clone())
        .opt("client_request_id", t.client_request_id.clone())
        .set(
            "trace_location",
            json!({"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": t.experiment_id.to_string()}}),
        )
        .opt("request_preview", t.request_preview.clone())
        .opt("response_preview", t.response_preview.clone())
        .set("request_time", rfc3339_from_ms(t.request_time))
        .opt("execution_duration", t.execution_duration.map(|ms| format!("{}s", ms as f64 / 1000.0)))
        .set("state", t.state.clone())
        .set("trace_metadata", kv_map(&t.metadata))
        .set("tags", kv_map(&t.tags))
        .build()
}

/// The v2 `TraceInfo` shape, for the legacy routes.
pub fn trace_info_v2(t: &TraceInfo) -> Value {
    let status = match t.state.as_str() {
        "OK" => "OK",
        "ERROR" => "ERROR",
        "IN_PROGRESS" => "IN_PROGRESS",
        _ => "TRACE_STATUS_UNSPECIFIED",
    };
    Obj::new()
        .set("request_id", t.trace_id.clone())
        .set("experiment_id", t.experiment_id.to_string())
        .set("timestamp_ms", t.request_time)
        .opt("execution_time_ms", t.execution_duration)
        .set("status", status)
        .list("request_metadata", tags(&t.metadata))
        .list("tags", tags(&t.tags))
        .build()
}

// ---- time ------------------------------------------------------------------------------

pub fn rfc3339_from_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp (`2026-11-22T15:33:38.296Z`, offsets allowed) to epoch ms.
pub fn ms_from_rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp_millis())
}

/// Parses a protobuf Duration (`"0.001s"`) to ms.
pub fn ms_from_duration(s: &str) -> Option<i64> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    Some((secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_pages_are_what_serde_writes() {
        use kiln_tracking::Metric;
        let point = |key: &str, value: f64, step: i64| Metric {
            key: key.into(),
            value,
            timestamp: 1_700_000_000_000_i64.wrapping_add(step),
            step,
            model_id: None,
            dataset_name: None,
            dataset_digest: None,
        };
        let mut with_extras = point("loss", 0.1, 7);
        with_extras.model_id = Some("m-1".into());
        with_extras.dataset_name = Some("train \"set\"".into());
        with_extras.dataset_digest = Some("d".into());
        let metrics = [
            point("loss", 1.0 / 3.0, 0),
            point("loss", f64::NAN, 1),
            point("loss", f64::INFINITY, 2),
            point("loss", f64::NEG_INFINITY, 3),
            point("acc\u{e9}\n", -0.0, -4),
            point("loss", 1e-300, i64::MAX),
            with_extras,
        ];
        for run_id in [None, Some("0123abcd")] {
            for (items, token) in
                [(&metrics[..], None), (&metrics[..], Some("tok\"en")), (&[][..], Some("t")), (&[][..], None)]
            {
                let expected = serde_json::json!({
                    "metrics": items.iter().map(|m| super::MetricOut::new(m, run_id)).collect::<Vec<_>>(),
                    "next_page_token": token,
                });
                let mut expected = expected.as_object().unwrap().clone();
                expected.retain(|_, v| !(v.is_null() || v.as_array().is_some_and(|a| a.is_empty())));
                let written = super::metric_page_json(items, run_id, token);
                let parsed: serde_json::Value = serde_json::from_slice(&written).unwrap();
                assert_eq!(
                    parsed,
                    serde_json::Value::Object(expected.clone()),
                    "{}",
                    String::from_utf8_lossy(&written)
                );
                // Byte for byte too: the same field order and number forms as serde's.
                let reference = serde_json::to_string(&serde_json::Value::Object(expected)).unwrap();
                assert_eq!(String::from_utf8(written).unwrap().len(), reference.len());
            }
        }
    }

    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let ms = ms_from_rfc3339("2026-11-22T15:33:38.296Z").unwrap();
        assert_eq!(rfc3339_from_ms(ms), "2026-11-22T15:33:38.296Z");
        assert_eq!(ms_from_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(ms_from_duration("0.001s"), Some(1));
        assert_eq!(ms_from_duration("12s"), Some(12000));
    }

    #[test]
    fn nan_and_infinity_are_spelled_as_mlflow_does() {
        assert_eq!(number(f64::NAN), json!("NaN"));
        assert_eq!(number(f64::INFINITY), json!(f64::MAX));
    }
}
