//! Reading MLflow requests the way its server does (protobuf `ParseDict` semantics): fields
//! from the query string for GET and from the JSON body otherwise; int64 as number or string;
//! doubles as numbers or "NaN"/"Infinity"; enums by name or number; snake_case or camelCase
//! names (not both); unknown fields ignored. Type errors get MLflow's exact message.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::ApiError;
use kiln_tracking::Tag;

/// The fields of one request (or of one nested message), already decoded from query string
/// or body. Nested messages borrow from their parent: a 1000-metric batch copies nothing.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a>(pub Cow<'a, Map<String, Value>>);

/// Whether `candidate` is the camelCase spelling of the snake_case `name` (`model_id` →
/// `modelId`), compared without building the camel string: this runs for every field of every
/// metric in a batch.
fn is_camel_of(candidate: &str, name: &str) -> bool {
    let mut want = name.chars();
    let mut got = candidate.chars();
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some('_'), Some(g)) => match want.next() {
                Some(w) if w.to_uppercase().eq(std::iter::once(g)) => {}
                _ => return false,
            },
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// "Invalid value 31 for parameter 'run_id' supplied:  Hint: Value was of type 'int'. …"
fn type_error(name: &str, v: &Value) -> ApiError {
    ApiError::invalid(format!(
        "Invalid value {} for parameter '{name}' supplied:  Hint: Value was of type '{}'. See the API docs for more \
         information about request parameters.",
        serde_json::to_string(v).unwrap_or_default(),
        python_type(v)
    ))
}

/// Text with a NUL character cannot be stored (PostgreSQL refuses it); say so instead of failing.
fn no_nul(name: &str, value: String) -> Result<String, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(format!("Invalid value for parameter '{name}': it contains a NUL character")));
    }
    Ok(value)
}

pub fn missing(name: &str) -> ApiError {
    ApiError::invalid(format!(
        "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
    ))
}

impl<'a> Fields<'a> {
    pub fn from_query(query: &str) -> Fields<'static> {
        let mut map = Map::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let v = Value::String(v.into_owned());
            match map.get_mut(k.as_ref()) {
                Some(Value::Array(items)) => items.push(v),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, v]);
                }
                None => {
                    map.insert(k.into_owned(), v);
                }
            }
        }
        Fields(Cow::Owned(map))
    }

    pub fn from_body(body: &[u8]) -> Result<Fields<'static>, ApiError> {
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Fields::default());
        }
        let mut value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Malformed request: the body is not valid JSON ({e})")))?;
        // Old clients double-encode: a JSON string holding JSON.
        if let Value::String(s) = &value {
            value = serde_json::from_str(s)
                .map_err(|e| ApiError::bad_request(format!("Malformed request: the body is not valid JSON ({e})")))?;
        }
        match value {
            Value::Object(map) => Ok(Fields(Cow::Owned(map))),
            Value::Null => Ok(Fields::default()),
            other => Err(ApiError::bad_request(format!(
                "Malformed request: the body must be a JSON object, got {}",
                python_type(&other)
            ))),
        }
    }

    /// The raw value under the snake_case name or its camelCase spelling.
    pub fn raw(&self, name: &str) -> Result<Option<&Value>, ApiError> {
        let a = self.0.get(name).filter(|v| !v.is_null());
        let b =
            if name.contains('_') { self.0.iter().find(|(k, v)| !v.is_null() && is_camel_of(k, name)) } else { None };
        match (a, b.map(|(_, v)| v)) {
            (Some(_), Some(_)) => Err(ApiError::invalid(format!(
                "Invalid request: field '{name}' was given twice, as '{name}' and as '{}'",
                b.map(|(k, _)| k.as_str()).unwrap_or_default()
            ))),
            (Some(v), None) | (None, Some(v)) => Ok(Some(v)),
            (None, None) => Ok(None),
        }
    }

    /// A string field; a query value repeated takes its first occurrence.
    pub fn str(&self, name: &str) -> Result<Option<String>, ApiError> {
        let value = match self.raw(name)? {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                items.first().and_then(|v| v.as_str()).map(str::to_string)
            }
            Some(other) => return Err(type_error(name, other)),
        };
        match value {
            Some(v) => Ok(Some(no_nul(name, v)?)),
            None => Ok(None),
        }
    }

    /// A required string: absent or empty is MLflow's "Missing value" error.
    pub fn req_str(&self, name: &str) -> Result<String, ApiError> {
        match self.str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(missing(name)),
        }
    }

    /// `run_id`, or the `run_uuid` the client sends beside it.
    pub fn run_id(&self) -> Result<String, ApiError> {
        match self.str("run_id")?.filter(|s| !s.is_empty()) {
            Some(id) => Ok(id),
            None => self.str("run_uuid")?.filter(|s| !s.is_empty()).ok_or_else(|| missing("run_id")),
        }
    }

    pub fn i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let v = match self.raw(name)? {
            None => return Ok(None),
            Some(Value::Array(items)) if !items.is_empty() => &items[0],
            Some(v) => v,
        };
        match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| type_error(name, v)),
            Value::String(s) => s.trim().parse::<i64>().map(Some).map_err(|_| type_error(name, v)),
            other => Err(type_error(name, other)),
        }
    }

    pub fn f64(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.raw(name)? {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(v @ Value::String(s)) => match s.as_str() {
                "NaN" | "nan" => Ok(Some(f64::NAN)),
                "Infinity" | "inf" => Ok(Some(f64::INFINITY)),
                "-Infinity" | "-inf" => Ok(Some(f64::NEG_INFINITY)),
                s => s.trim().parse::<f64>().map(Some).map_err(|_| type_error(name, v)),
            },
            Some(other) => Err(type_error(name, other)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.raw(name)? {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v @ Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(type_error(name, v)),
            },
            Some(other) => Err(type_error(name, other)),
        }
    }

    /// A repeated string field (a single value counts as a list of one).
    pub fn str_list(&self, name: &str) -> Result<Vec<String>, ApiError> {
        match self.raw(name)? {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![no_nul(name, s.clone())?]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => no_nul(name, s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(type_error(name, other)),
                })
                .collect(),
            Some(other) => Err(type_error(name, other)),
        }
    }

    /// A repeated message field.
    pub fn objects(&self, name: &str) -> Result<Vec<Fields<'_>>, ApiError> {
        match self.raw(name)? {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(Fields(Cow::Borrowed(m))),
                    other => Err(type_error(name, other)),
                })
                .collect(),
            Some(other) => Err(type_error(name, other)),
        }
    }

    pub fn object(&self, name: &str) -> Result<Option<Fields<'_>>, ApiError> {
        match self.raw(name)? {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields(Cow::Borrowed(m)))),
            Some(other) => Err(type_error(name, other)),
        }
    }

    /// `[{key, value}]` lists (tags, params).
    pub fn tags(&self, name: &str) -> Result<Vec<Tag>, ApiError> {
        self.objects(name)?
            .into_iter()
            .map(|f| Ok(Tag::new(f.req_str("key")?, f.str("value")?.unwrap_or_default())))
            .collect()
    }

    /// A `map<string,string>` field, given as an object.
    pub fn map(&self, name: &str) -> Result<Vec<Tag>, ApiError> {
        match self.raw(name)? {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    let value = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                    Ok(Tag::new(no_nul(name, k.clone())?, no_nul(name, value)?))
                })
                .collect(),
            Some(other) => Err(type_error(name, other)),
        }
    }

    /// An enum given by name or number; returns the name.
    pub fn enum_name(&self, name: &str, values: &[(&'static str, i64)]) -> Result<Option<&'static str>, ApiError> {
        let v = match self.raw(name)? {
            None => return Ok(None),
            Some(v) => v,
        };
        let found = match v {
            Value::String(s) => values
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(s))
                .or_else(|| s.parse::<i64>().ok().and_then(|i| values.iter().find(|(_, n)| *n == i))),
            Value::Number(n) => n.as_i64().and_then(|i| values.iter().find(|(_, n)| *n == i)),
            _ => None,
        };
        found.map(|(n, _)| Some(*n)).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value {} for parameter '{name}' supplied. Valid values are {:?}",
                serde_json::to_string(v).unwrap_or_default(),
                values.iter().map(|(n, _)| *n).collect::<Vec<_>>()
            ))
        })
    }
}

/// The extractor: query string for GET and HEAD, JSON body for everything else (DELETE and
/// PATCH included, as MLflow's client sends bodies with them).
pub struct Req(pub Fields<'static>);

impl<S: Send + Sync> FromRequest<S> for Req {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        RawReq::from_request(req, state).await?.fields().map(Req)
    }
}

/// A request before its fields are decoded: for handlers with a fast path for the plain form
/// of a large body (a metric batch), which fall back to [`RawReq::fields`] for anything else.
pub struct RawReq {
    /// The body, empty for GET and HEAD.
    pub body: Bytes,
    pub query: String,
}

impl RawReq {
    /// The request's fields, as [`Req`] reads them.
    pub fn fields(&self) -> Result<Fields<'static>, ApiError> {
        if self.body.is_empty() {
            return Ok(Fields::from_query(&self.query));
        }
        let mut fields = Fields::from_body(&self.body)?;
        // Some clients put fields in the query even on POST; the body wins.
        for (k, v) in Fields::from_query(&self.query).0.into_owned() {
            fields.0.to_mut().entry(k).or_insert(v);
        }
        Ok(fields)
    }
}

impl<S: Send + Sync> FromRequest<S> for RawReq {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = req.method().clone();
        let query = req.uri().query().unwrap_or("").to_string();
        if method == Method::GET || method == Method::HEAD {
            return Ok(RawReq { body: Bytes::new(), query });
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))?;
        if (method == Method::POST || method == Method::PUT)
            && !body.is_empty()
            && content_type.as_deref() != Some("application/json")
        {
            return Err(ApiError::invalid("Bad Request. Content-Type must be one of ['application/json']"));
        }
        Ok(RawReq { body, query })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_spellings_match_without_allocating() {
        assert!(is_camel_of("modelId", "model_id"));
        assert!(is_camel_of("datasetDigest", "dataset_digest"));
        assert!(!is_camel_of("model_id", "model_id"));
        assert!(!is_camel_of("modelid", "model_id"));
        assert!(!is_camel_of("modelIdx", "model_id"));
        assert!(!is_camel_of("model", "model_id"));
        let f = Fields::from_body(br#"{"model_id":"a","modelId":"b"}"#).unwrap();
        assert!(f.str("model_id").is_err(), "one field given twice");
    }

    #[test]
    fn proto_json_leniency() {
        let f = Fields::from_body(br#"{"run_id":"a","step":"7","value":"NaN","flag":"True","maxResults":5}"#).unwrap();
        assert_eq!(f.i64("step").unwrap(), Some(7));
        assert!(f.f64("value").unwrap().unwrap().is_nan());
        assert_eq!(f.bool("flag").unwrap(), Some(true));
        assert_eq!(f.i64("max_results").unwrap(), Some(5));
        let both = Fields::from_body(br#"{"max_results":1,"maxResults":2}"#).unwrap();
        assert!(both.i64("max_results").is_err());
    }

    #[test]
    fn type_errors_use_mlflow_wording() {
        let f = Fields::from_body(br#"{"run_id":31}"#).unwrap();
        assert_eq!(
            f.str("run_id").unwrap_err().message,
            "Invalid value 31 for parameter 'run_id' supplied:  Hint: Value was of type 'int'. See the API docs for more information about request parameters."
        );
    }

    #[test]
    fn nul_characters_are_refused_not_stored() {
        let f = Fields::from_body(br#"{"value":"a\u0000b","tags":[{"key":"k","value":"\u0000"}]}"#).unwrap();
        assert_eq!(f.str("value").unwrap_err().status, axum::http::StatusCode::BAD_REQUEST);
        assert!(f.tags("tags").is_err());
    }

    #[test]
    fn query_strings_repeat_keys_into_lists() {
        let f = Fields::from_query("run_id=a&run_id=b&metric_key=m");
        assert_eq!(f.str_list("run_id").unwrap(), vec!["a", "b"]);
        assert_eq!(f.str("metric_key").unwrap().as_deref(), Some("m"));
        let double = Fields::from_body(br#""{\"a\": \"b\"}""#).unwrap();
        assert_eq!(double.str("a").unwrap().as_deref(), Some("b"));
    }
}
