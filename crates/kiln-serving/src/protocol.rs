//! MLflow's scoring protocol, as `mlflow models serve` reads a request: a JSON object with
//! exactly one of `dataframe_split`, `dataframe_records`, `instances` or `inputs` (and
//! optional `params`), or a CSV table. Requests are decoded into a [`Payload`] that a runtime
//! turns into its own inputs; a request that cannot be decoded is a [`ScoringError`] that
//! says what is wrong, with the status MLflow's server gives it.

use serde_json::{Map, Value};

/// A request the runtime cannot score, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ScoringError {
    pub kind: ScoringErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoringErrorKind {
    /// The body is not a request the model can take (400, BAD_REQUEST).
    BadRequest,
    /// The content type is not one the runtime reads (415).
    UnsupportedMediaType,
    /// The model failed on a request it accepted (500).
    ModelFailed,
}

impl ScoringError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ScoringError { kind: ScoringErrorKind::BadRequest, message: message.into() }
    }
}

/// The input fields of the protocol.
pub const INPUT_FIELDS: [&str; 4] = ["dataframe_split", "dataframe_records", "instances", "inputs"];

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A table (`dataframe_split`, `dataframe_records`, CSV): named columns, rows of values.
    Frame { columns: Vec<String>, rows: Vec<Vec<Value>> },
    /// One unnamed tensor as nested lists (`{"inputs": [[…]]}`, `{"instances": [[…]]}`).
    Tensor(Value),
    /// Named tensors (`{"inputs": {"x": …}}`, `{"instances": [{"x": …}, …]}`).
    Named(Vec<(String, Value)>),
}

impl Payload {
    /// Whether the answer is a table (records), as MLflow answers a DataFrame.
    pub fn is_frame(&self) -> bool {
        matches!(self, Payload::Frame { .. })
    }
}

/// Decodes a request body by its content type (`None` is read as JSON, as curl's default
/// form-encoded type is by nobody).
pub fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Payload, ScoringError> {
    let (mime, params) = match content_type {
        None => ("application/json".to_string(), Vec::new()),
        Some(ct) => {
            let mut parts = ct.split(';');
            let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            (mime, parts.map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty()).collect())
        }
    };
    let charset_ok = params.iter().all(|p| p == "charset=utf-8" || p == "charset=\"utf-8\"");
    match mime.as_str() {
        "application/json" if charset_ok => decode_json(body),
        "text/csv" if charset_ok => decode_csv(body),
        _ => Err(ScoringError {
            kind: ScoringErrorKind::UnsupportedMediaType,
            message: format!(
                "This predictor only supports the following content types: Types: ['application/json', 'text/csv'] \
                 (with charset=utf-8 at most). Got '{}'.",
                content_type.unwrap_or("")
            ),
        }),
    }
}

fn decode_json(body: &[u8]) -> Result<Payload, ScoringError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ScoringError::bad_request(format!("Failed to parse input as JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(wrong_fields(&[]));
    };
    let present: Vec<&str> = INPUT_FIELDS.iter().copied().filter(|f| object.contains_key(*f)).collect();
    let others: Vec<String> =
        object.keys().filter(|k| *k != "params" && !INPUT_FIELDS.contains(&k.as_str())).cloned().collect();
    if present.len() != 1 || !others.is_empty() {
        let keys: Vec<String> = object.keys().cloned().collect();
        return Err(wrong_fields(&keys));
    }
    let field = present[0];
    let data = object.remove(field).unwrap_or(Value::Null);
    match field {
        "dataframe_split" => split_frame(data),
        // Records are read again in their written key order: pandas takes the columns in the
        // order of the first record, and a single-input model takes the columns in that order.
        "dataframe_records" => match serde_json::from_slice::<OrderedRecords>(body) {
            Ok(r) => records_frame(r.dataframe_records),
            Err(_) => Err(ScoringError::bad_request("dataframe_records: expected a list of records ({column: value})")),
        },
        _ => tensors(field, data),
    }
}

fn wrong_fields(keys: &[String]) -> ScoringError {
    let fields = INPUT_FIELDS.iter().map(|f| format!("'{f}'")).collect::<Vec<_>>().join(", ");
    let got = keys.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
    ScoringError::bad_request(format!(
        "The input must be a JSON dictionary with exactly one of the input fields {{{fields}}} (and optionally \
         'params'). Received dictionary with input fields: [{got}]."
    ))
}

fn split_frame(data: Value) -> Result<Payload, ScoringError> {
    let Value::Object(mut split) = data else {
        return Err(ScoringError::bad_request(
            "dataframe_split: expected an object with 'columns' and 'data' (pandas' split orient)",
        ));
    };
    let rows = match split.remove("data") {
        Some(Value::Array(rows)) => rows,
        _ => return Err(ScoringError::bad_request("dataframe_split.data: expected a list of rows")),
    };
    let rows: Vec<Vec<Value>> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Value::Array(values) => Ok(values),
            // A one-column frame may be written as a flat list.
            scalar if !scalar.is_object() => Ok(vec![scalar]),
            _ => Err(ScoringError::bad_request(format!("dataframe_split.data[{i}]: expected a list of values"))),
        })
        .collect::<Result<_, _>>()?;
    let width = rows.first().map_or(0, Vec::len);
    let columns: Vec<String> = match split.remove("columns") {
        None => (0..width).map(|i| i.to_string()).collect(),
        Some(Value::Array(cols)) => cols
            .into_iter()
            .map(|c| match c {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        Some(_) => return Err(ScoringError::bad_request("dataframe_split.columns: expected a list of column names")),
    };
    check_widths(&columns, &rows, "dataframe_split.data")?;
    Ok(Payload::Frame { columns, rows })
}

fn check_widths(columns: &[String], rows: &[Vec<Value>], field: &str) -> Result<(), ScoringError> {
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != columns.len()) {
        return Err(ScoringError::bad_request(format!(
            "{field}[{i}]: {} values for {} columns",
            r.len(),
            columns.len()
        )));
    }
    Ok(())
}

/// `{"dataframe_records": [...]}` with each record's keys in the order written.
#[derive(serde::Deserialize)]
struct OrderedRecords {
    dataframe_records: Vec<Record>,
}

/// A record, or something else (refused with its index).
enum Record {
    Pairs(Vec<(String, Value)>),
    Other,
}

impl<'de> serde::Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Record;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    pairs.push((k, v));
                }
                Ok(Record::Pairs(pairs))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Record::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Record, E> {
                Ok(Record::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Record, E> {
                Ok(Record::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Record, E> {
                Ok(Record::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Record, E> {
                Ok(Record::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Record, E> {
                Ok(Record::Other)
            }
            fn visit_unit<E>(self) -> Result<Record, E> {
                Ok(Record::Other)
            }
        }
        d.deserialize_any(Visit)
    }
}

fn records_frame(records: Vec<Record>) -> Result<Payload, ScoringError> {
    let mut columns: Vec<String> = Vec::new();
    let mut maps: Vec<Map<String, Value>> = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let Record::Pairs(pairs) = r else {
            return Err(ScoringError::bad_request(format!(
                "dataframe_records[{i}]: expected a record ({{column: value}})"
            )));
        };
        for (k, _) in &pairs {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        maps.push(pairs.into_iter().collect());
    }
    // Columns a record leaves out are missing values, as pandas reads them.
    let rows =
        maps.into_iter().map(|mut m| columns.iter().map(|c| m.remove(c).unwrap_or(Value::Null)).collect()).collect();
    Ok(Payload::Frame { columns, rows })
}

fn tensors(field: &str, data: Value) -> Result<Payload, ScoringError> {
    match data {
        Value::Object(map) => Ok(Payload::Named(map.into_iter().collect())),
        // Records of named tensors become one tensor per name, stacked.
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut names: Vec<String> = Vec::new();
            let mut columns: Vec<Vec<Value>> = Vec::new();
            let n = items.len();
            for (i, item) in items.into_iter().enumerate() {
                let Value::Object(map) = item else { unreachable!("checked above") };
                if i > 0 && map.len() != names.len() {
                    return Err(ScoringError::bad_request(format!(
                        "{field}[{i}]: every instance must name the same inputs ({})",
                        names.join(", ")
                    )));
                }
                for (k, v) in map {
                    match names.iter().position(|x| *x == k) {
                        Some(p) => columns[p].push(v),
                        None if i == 0 => {
                            names.push(k);
                            columns.push(vec![v]);
                        }
                        None => {
                            return Err(ScoringError::bad_request(format!(
                                "{field}[{i}]: input '{k}' is not in the first instance"
                            )));
                        }
                    }
                }
            }
            debug_assert!(columns.iter().all(|c| c.len() == n));
            Ok(Payload::Named(names.into_iter().zip(columns.into_iter().map(Value::Array)).collect()))
        }
        Value::Array(_) => Ok(Payload::Tensor(data)),
        other => Ok(Payload::Tensor(other)),
    }
}

fn decode_csv(body: &[u8]) -> Result<Payload, ScoringError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(body);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| ScoringError::bad_request(format!("CSV: cannot read the header row: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| ScoringError::bad_request(format!("CSV row {}: {e}", i + 1)))?;
        rows.push(record.iter().map(csv_value).collect());
    }
    Ok(Payload::Frame { columns, rows })
}

/// A CSV field as pandas would type it: a number when it reads as one, empty as missing.
fn csv_value(field: &str) -> Value {
    let t = field.trim();
    if t.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::from(f),
        _ => match t {
            "True" | "true" => Value::Bool(true),
            "False" | "false" => Value::Bool(false),
            _ => Value::String(field.to_string()),
        },
    }
}

/// The body of an error answer, as MLflow's scoring server writes it.
pub fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error_code": code, "message": message })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_payload(v: Value) -> Result<Payload, ScoringError> {
        decode(Some("application/json"), v.to_string().as_bytes())
    }

    #[test]
    fn the_four_input_fields() {
        let split =
            json_payload(json!({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}})).unwrap();
        assert_eq!(
            split,
            Payload::Frame {
                columns: vec!["a".into(), "b".into()],
                rows: vec![vec![json!(1), json!(2)], vec![json!(3), json!(4)]]
            }
        );
        let records = json_payload(json!({"dataframe_records": [{"a": 1, "b": 2}, {"b": 4, "a": 3}]})).unwrap();
        assert_eq!(records, split, "later records may write their keys in any order");
        let written = decode(None, br#"{"dataframe_records": [{"z": 1, "a": 2}]}"#).unwrap();
        assert_eq!(
            written,
            Payload::Frame { columns: vec!["z".into(), "a".into()], rows: vec![vec![json!(1), json!(2)]] },
            "columns keep the first record's order"
        );
        assert_eq!(json_payload(json!({"inputs": [[1, 2]]})).unwrap(), Payload::Tensor(json!([[1, 2]])));
        assert_eq!(
            json_payload(json!({"instances": [[1, 2]], "params": {}})).unwrap(),
            Payload::Tensor(json!([[1, 2]]))
        );
        assert_eq!(
            json_payload(json!({"inputs": {"x": [[1, 2]]}})).unwrap(),
            Payload::Named(vec![("x".into(), json!([[1, 2]]))])
        );
        assert_eq!(
            json_payload(json!({"instances": [{"x": [1, 2], "y": 1}, {"x": [3, 4], "y": 2}]})).unwrap(),
            Payload::Named(vec![("x".into(), json!([[1, 2], [3, 4]])), ("y".into(), json!([1, 2]))])
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        for (body, expect) in [
            (json!({"data": [[1]]}), "exactly one of the input fields"),
            (
                json!({"inputs": [[1]], "instances": [[1]]}),
                "Received dictionary with input fields: ['inputs', 'instances']",
            ),
            (json!([[1, 2]]), "must be a JSON dictionary"),
            (json!({"dataframe_split": [1]}), "dataframe_split: expected an object"),
            (
                json!({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}),
                "dataframe_split.data[0]: 2 values for 1 columns",
            ),
            (json!({"dataframe_records": [1]}), "dataframe_records[0]: expected a record"),
            (json!({"instances": [{"x": 1}, {"z": 2}]}), "instances[1]: input 'z' is not in the first instance"),
        ] {
            let e = json_payload(body.clone()).unwrap_err();
            assert_eq!(e.kind, ScoringErrorKind::BadRequest);
            assert!(e.message.contains(expect), "{body}: {}", e.message);
        }
        let e = decode(Some("application/json"), b"{not json").unwrap_err();
        assert!(e.message.starts_with("Failed to parse input as JSON"), "{}", e.message);
        let e = decode(Some("application/xml"), b"<x/>").unwrap_err();
        assert_eq!(e.kind, ScoringErrorKind::UnsupportedMediaType);
        let e = decode(Some("application/json; charset=latin-1"), b"{}").unwrap_err();
        assert_eq!(e.kind, ScoringErrorKind::UnsupportedMediaType);
        assert!(decode(Some("application/json; charset=UTF-8"), b"{\"inputs\": [1]}").is_ok());
    }

    #[test]
    fn csv_is_a_table() {
        let p = decode(Some("text/csv"), b"a,b,c\n1,2.5,x\n3,,True\n").unwrap();
        assert_eq!(
            p,
            Payload::Frame {
                columns: vec!["a".into(), "b".into(), "c".into()],
                rows: vec![vec![json!(1), json!(2.5), json!("x")], vec![json!(3), Value::Null, json!(true)]],
            }
        );
        let e = decode(Some("text/csv"), b"a,b\n1,2,3\n").unwrap_err();
        assert!(e.message.starts_with("CSV row 1"), "{}", e.message);
    }
}
