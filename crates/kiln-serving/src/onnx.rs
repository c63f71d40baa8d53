//! The native runtime: ONNX models run in the server's process with tract (pure Rust), so a
//! request never leaves Rust. Requests speak MLflow's scoring protocol; answers are what
//! MLflow's own `onnx` flavor gives: a table of outputs per row for a DataFrame request, and
//! `{output name: tensor}` for tensor requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::protocol::{Payload, ScoringError, ScoringErrorKind};

/// What a model input or output is: its name, element type and shape (`None` for a dimension
/// the model leaves open, such as the batch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: String,
    pub shape: Vec<Option<usize>>,
}

impl TensorSpec {
    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.map_or("N".to_string(), |d| d.to_string())).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// A model that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// Runs that take longer than this move off the request threads (a large network would
/// otherwise hold one of the server's few threads).
const INLINE_RUN_LIMIT: Duration = Duration::from_millis(2);

pub struct OnnxModel {
    plan: Arc<TypedSimplePlan>,
    inputs: Vec<(TensorSpec, DatumType)>,
    outputs: Vec<String>,
    slow: AtomicBool,
}

fn dtype_name(dt: DatumType) -> String {
    match dt {
        DatumType::F32 => "float32".into(),
        DatumType::F64 => "float64".into(),
        DatumType::I64 => "int64".into(),
        DatumType::I32 => "int32".into(),
        DatumType::Bool => "bool".into(),
        DatumType::String => "string".into(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

impl OnnxModel {
    /// Loads and optimizes a model. Dimensions the file leaves open (a scikit-learn export's
    /// batch) become one symbol, so one plan serves every batch size.
    pub fn load(bytes: &[u8]) -> Result<OnnxModel, LoadError> {
        let fail = |what: &str, e: TractError| LoadError(format!("{what}: {e:#}"));
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| fail("not an ONNX model tract can read", e))?;
        let batch = model.symbols.sym("N");
        let mut inputs = Vec::new();
        let input_count = model.input_outlets().map_err(|e| fail("no inputs", e))?.len();
        for i in 0..input_count {
            let outlet = model.input_outlets().map_err(|e| fail("no inputs", e))?[i];
            let name = model.node(outlet.node).name.clone();
            let fact = model.input_fact(i).map_err(|e| fail("input", e))?.clone();
            let dt =
                fact.datum_type.concretize().ok_or_else(|| LoadError(format!("input '{name}' has no element type")))?;
            let dims: Vec<Option<usize>> =
                fact.shape.dims().map(|d| d.concretize().and_then(|d| d.to_i64().ok()).map(|d| d as usize)).collect();
            // The first dimension is the batch, shared by every input; any other open
            // dimension (a sequence length) is its own.
            let shape: TVec<TDim> = dims
                .iter()
                .enumerate()
                .map(|(axis, d)| match d {
                    Some(d) => TDim::from(*d),
                    None if axis == 0 => batch.clone().into(),
                    None => model.symbols.sym(&format!("{name}_{axis}")).into(),
                })
                .collect();
            model.set_input_fact(i, InferenceFact::dt_shape(dt, shape)).map_err(|e| fail("input", e))?;
            inputs.push((TensorSpec { name, dtype: dtype_name(dt), shape: dims }, dt));
        }
        let outputs = model
            .output_outlets()
            .map_err(|e| fail("no outputs", e))?
            .iter()
            .map(|o| model.outlet_label(*o).map(str::to_string).unwrap_or_else(|| model.node(o.node).name.clone()))
            .collect();
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| fail("the model cannot run in tract", e))?;
        Ok(OnnxModel { plan, inputs, outputs, slow: AtomicBool::new(false) })
    }

    pub fn inputs(&self) -> Vec<TensorSpec> {
        self.inputs.iter().map(|(s, _)| s.clone()).collect()
    }

    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// Scores a decoded request; the answer is the `predictions` value.
    pub async fn predict(self: &Arc<Self>, payload: Payload) -> Result<Value, ScoringError> {
        let frame = payload.is_frame();
        let tensors = self.tensors(payload)?;
        let outputs = if self.slow.load(Ordering::Relaxed) {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.run(tensors))
                .await
                .map_err(|e| model_failed(format!("the model run was lost: {e}")))??
        } else {
            let started = Instant::now();
            let out = self.run(tensors)?;
            if started.elapsed() > INLINE_RUN_LIMIT {
                self.slow.store(true, Ordering::Relaxed);
            }
            out
        };
        self.answer(outputs, frame)
    }

    fn run(&self, tensors: TVec<TValue>) -> Result<TVec<TValue>, ScoringError> {
        self.plan.run(tensors).map_err(|e| model_failed(format!("the model failed: {e:#}")))
    }

    /// The model's input tensors from a request.
    fn tensors(&self, payload: Payload) -> Result<TVec<TValue>, ScoringError> {
        let names = || self.inputs.iter().map(|(s, _)| format!("'{}'", s.name)).collect::<Vec<_>>().join(", ");
        match payload {
            Payload::Tensor(value) => {
                if self.inputs.len() != 1 {
                    return Err(ScoringError::bad_request(format!(
                        "the model has {} inputs ({}); send them by name: {{\"inputs\": {{\"<name>\": …}}}}",
                        self.inputs.len(),
                        names()
                    )));
                }
                let (spec, dt) = &self.inputs[0];
                Ok(tvec![tensor_from_json(spec, *dt, &value)?.into()])
            }
            Payload::Named(mut named) => {
                let unknown: Vec<&str> = named
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| !self.inputs.iter().any(|(s, _)| s.name == *n))
                    .collect();
                if !unknown.is_empty() {
                    return Err(ScoringError::bad_request(format!(
                        "the model has no input {}; its inputs are {}",
                        unknown.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "),
                        names()
                    )));
                }
                let mut tensors = TVec::new();
                let mut batch: Option<(&str, usize)> = None;
                for (spec, dt) in &self.inputs {
                    let at = named.iter().position(|(n, _)| *n == spec.name).ok_or_else(|| {
                        ScoringError::bad_request(format!("Model is missing inputs ['{}']", spec.name))
                    })?;
                    let (_, value) = named.swap_remove(at);
                    let t = tensor_from_json(spec, *dt, &value)?;
                    // Inputs share the batch dimension: their first dimensions must agree.
                    if spec.shape.first() == Some(&None) && t.rank() > 0 {
                        let n = t.shape()[0];
                        match batch {
                            Some((other, m)) if m != n => {
                                return Err(ScoringError::bad_request(format!(
                                    "inputs '{other}' and '{}' have different batch sizes ({m} and {n})",
                                    spec.name
                                )));
                            }
                            None => batch = Some((spec.name.as_str(), n)),
                            _ => {}
                        }
                    }
                    tensors.push(t.into());
                }
                Ok(tensors)
            }
            Payload::Frame { columns, rows } => {
                if self.inputs.len() == 1 {
                    // One input takes the whole table as a matrix, columns in the order sent.
                    let (spec, dt) = &self.inputs[0];
                    let matrix = Value::Array(rows.into_iter().map(Value::Array).collect());
                    let mut value = matrix;
                    if spec.shape.len() == 1 && columns.len() == 1 {
                        value = Value::Array(match value {
                            Value::Array(rows) => rows.into_iter().map(first).collect(),
                            other => vec![other],
                        });
                    }
                    return Ok(tvec![tensor_from_json(spec, *dt, &value)?.into()]);
                }
                // Several inputs take one column each, by name.
                let missing: Vec<String> = self
                    .inputs
                    .iter()
                    .filter(|(s, _)| !columns.contains(&s.name))
                    .map(|(s, _)| format!("'{}'", s.name))
                    .collect();
                if !missing.is_empty() {
                    return Err(ScoringError::bad_request(format!("Model is missing inputs [{}]", missing.join(", "))));
                }
                self.inputs
                    .iter()
                    .map(|(spec, dt)| {
                        let c = columns.iter().position(|x| *x == spec.name).unwrap_or_default();
                        let column: Vec<Value> = rows.iter().map(|r| r[c].clone()).collect();
                        let column = if spec.shape.len() == 2 && spec.shape[1] == Some(1) {
                            column.into_iter().map(|v| Value::Array(vec![v])).collect()
                        } else {
                            column
                        };
                        Ok(tensor_from_json(spec, *dt, &Value::Array(column))?.into())
                    })
                    .collect()
            }
        }
    }

    fn answer(&self, outputs: TVec<TValue>, frame: bool) -> Result<Value, ScoringError> {
        let mut named = Vec::with_capacity(outputs.len());
        for (name, t) in self.outputs.iter().zip(outputs.iter()) {
            named.push((name.clone(), tensor_to_json(t)?));
        }
        if !frame {
            return Ok(Value::Object(named.into_iter().collect()));
        }
        // A table request gets one record per row: {output: that row's value}.
        let rows = named.iter().map(|(_, v)| v.as_array().map_or(0, Vec::len)).max().unwrap_or(0);
        let mut records = Vec::with_capacity(rows);
        for i in 0..rows {
            let mut record = Map::new();
            for (name, v) in &named {
                let cell = match v {
                    Value::Array(items) => items.get(i).cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                record.insert(name.clone(), cell);
            }
            records.push(Value::Object(record));
        }
        Ok(Value::Array(records))
    }
}

fn first(v: Value) -> Value {
    match v {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    }
}

fn model_failed(message: String) -> ScoringError {
    ScoringError { kind: ScoringErrorKind::ModelFailed, message }
}

/// The shape of nested lists, and their leaves in order; ragged lists are refused.
/// The shape nested lists claim by their first elements (checked by [`leaves`]).
fn shape_of(v: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(items) = cur {
        shape.push(items.len());
        match items.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    shape
}

/// The leaves of nested lists of `shape`, in order; ragged lists are refused. Memory grows
/// with the leaves actually there, never with what a first row claims.
fn leaves<'v>(value: &'v Value, shape: &[usize], name: &str) -> Result<Vec<&'v Value>, ScoringError> {
    fn walk<'v>(v: &'v Value, shape: &[usize], depth: usize, out: &mut Vec<&'v Value>) -> bool {
        if depth == shape.len() {
            if v.is_array() {
                return false;
            }
            out.push(v);
            return true;
        }
        match v {
            Value::Array(items) if items.len() == shape[depth] => items.iter().all(|i| walk(i, shape, depth + 1, out)),
            _ => false,
        }
    }
    let mut out = Vec::new();
    if !walk(value, shape, 0, &mut out) {
        return Err(ScoringError::bad_request(format!(
            "input '{name}': the lists are ragged; every row must have the same length"
        )));
    }
    Ok(out)
}

fn tensor_from_json(spec: &TensorSpec, dt: DatumType, value: &Value) -> Result<Tensor, ScoringError> {
    let shape = shape_of(value);
    let fits = shape.len() == spec.shape.len()
        && shape.iter().zip(&spec.shape).all(|(got, want)| want.is_none_or(|w| w == *got));
    if !fits {
        let got: Vec<String> = shape.iter().map(usize::to_string).collect();
        return Err(ScoringError::bad_request(format!(
            "input '{}' expects shape {} of {}, got [{}]",
            spec.name,
            spec.shape_text(),
            spec.dtype,
            got.join(", ")
        )));
    }
    let leaves = leaves(value, &shape, &spec.name)?;
    let bad = |i: usize, v: &Value| {
        ScoringError::bad_request(format!(
            "input '{}' holds {} values; value {} is {}",
            spec.name,
            spec.dtype,
            i,
            match v {
                Value::Null => "missing (null)".to_string(),
                Value::String(s) => format!("the string {s:?}"),
                other => other.to_string(),
            }
        ))
    };
    fn build<T: Datum>(shape: &[usize], data: Vec<T>) -> Result<Tensor, ScoringError> {
        tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), data)
            .map(Tensor::from)
            .map_err(|e| ScoringError::bad_request(format!("cannot shape the input: {e}")))
    }
    match dt {
        DatumType::F32 => {
            let data = leaves.iter().enumerate().map(|(i, v)| v.as_f64().map(|f| f as f32).ok_or_else(|| bad(i, v)));
            build(&shape, data.collect::<Result<Vec<f32>, _>>()?)
        }
        DatumType::F64 => {
            let data = leaves.iter().enumerate().map(|(i, v)| v.as_f64().ok_or_else(|| bad(i, v)));
            build(&shape, data.collect::<Result<Vec<f64>, _>>()?)
        }
        DatumType::I64 => {
            let data = leaves.iter().enumerate().map(|(i, v)| v.as_i64().ok_or_else(|| bad(i, v)));
            build(&shape, data.collect::<Result<Vec<i64>, _>>()?)
        }
        DatumType::I32 => {
            let data = leaves
                .iter()
                .enumerate()
                .map(|(i, v)| v.as_i64().and_then(|x| i32::try_from(x).ok()).ok_or_else(|| bad(i, v)));
            build(&shape, data.collect::<Result<Vec<i32>, _>>()?)
        }
        DatumType::Bool => {
            let data = leaves.iter().enumerate().map(|(i, v)| v.as_bool().ok_or_else(|| bad(i, v)));
            build(&shape, data.collect::<Result<Vec<bool>, _>>()?)
        }
        DatumType::String => {
            let data = leaves.iter().enumerate().map(|(i, v)| v.as_str().map(str::to_string).ok_or_else(|| bad(i, v)));
            build(&shape, data.collect::<Result<Vec<String>, _>>()?)
        }
        other => Err(ScoringError::bad_request(format!(
            "input '{}' has element type {other:?}, which requests cannot be decoded into",
            spec.name
        ))),
    }
}

/// A tensor as nested JSON lists (NaN and infinities, which JSON lacks, as null).
fn tensor_to_json(t: &Tensor) -> Result<Value, ScoringError> {
    fn nest<T: Datum>(t: &Tensor, leaf: impl Fn(&T) -> Value) -> Result<Value, ScoringError> {
        let view = t.to_plain_array_view::<T>().map_err(|e| model_failed(format!("cannot read an output: {e}")))?;
        let shape = view.shape().to_vec();
        let flat: Vec<Value> = view.iter().map(leaf).collect();
        Ok(nest_values(&shape, flat))
    }
    match t.datum_type() {
        DatumType::F32 => nest::<f32>(t, |x| float(*x as f64)),
        DatumType::F64 => nest::<f64>(t, |x| float(*x)),
        DatumType::I64 => nest::<i64>(t, |x| Value::from(*x)),
        DatumType::I32 => nest::<i32>(t, |x| Value::from(*x)),
        DatumType::I16 => nest::<i16>(t, |x| Value::from(*x)),
        DatumType::I8 => nest::<i8>(t, |x| Value::from(*x)),
        DatumType::U8 => nest::<u8>(t, |x| Value::from(*x)),
        DatumType::U16 => nest::<u16>(t, |x| Value::from(*x)),
        DatumType::U32 => nest::<u32>(t, |x| Value::from(*x)),
        DatumType::U64 => nest::<u64>(t, |x| Value::from(*x)),
        DatumType::Bool => nest::<bool>(t, |x| Value::from(*x)),
        DatumType::String => nest::<String>(t, |x| Value::from(x.as_str())),
        other => Err(model_failed(format!("an output has element type {other:?}, which has no JSON form"))),
    }
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn nest_values(shape: &[usize], flat: Vec<Value>) -> Value {
    if shape.is_empty() {
        return flat.into_iter().next().unwrap_or(Value::Null);
    }
    let mut level = flat;
    for &dim in shape[1..].iter().rev() {
        let mut grouped = Vec::with_capacity(level.len() / dim.max(1));
        let mut it = level.into_iter();
        loop {
            let chunk: Vec<Value> = it.by_ref().take(dim).collect();
            if chunk.is_empty() {
                break;
            }
            grouped.push(Value::Array(chunk));
        }
        level = grouped;
    }
    Value::Array(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decode;
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx").join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn expected() -> Value {
        serde_json::from_slice(&fixture("expected.json")).unwrap()
    }

    async fn predict(model: &Arc<OnnxModel>, body: Value) -> Result<Value, ScoringError> {
        model.predict(decode(Some("application/json"), body.to_string().as_bytes())?).await
    }

    #[tokio::test]
    async fn scikit_learn_classifiers_answer_as_mlflow_does() {
        let want = expected();
        let probe = want["probe"].clone();
        for name in ["iris_logreg", "iris_tree"] {
            let model = Arc::new(OnnxModel::load(&fixture(&format!("{name}.onnx"))).unwrap());
            assert_eq!(
                model.inputs(),
                vec![TensorSpec { name: "X".into(), dtype: "float32".into(), shape: vec![None, Some(4)] }]
            );
            assert_eq!(model.outputs(), ["label", "probabilities"]);

            let out = predict(&model, json!({"inputs": probe})).await.unwrap();
            assert_eq!(out["label"], want[name]["label"], "{name}");
            let probs = out["probabilities"].as_array().unwrap();
            for (row, want_row) in probs.iter().zip(want[name]["probabilities"].as_array().unwrap()) {
                for (p, w) in row.as_array().unwrap().iter().zip(want_row.as_array().unwrap()) {
                    assert!((p.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-5, "{name}: {p} vs {w}");
                }
            }

            // A table gets one record per row.
            let cols = json!(["sepal_length", "sepal_width", "petal_length", "petal_width"]);
            let out = predict(&model, json!({"dataframe_split": {"columns": cols, "data": probe}})).await.unwrap();
            let records = out.as_array().unwrap();
            assert_eq!(records.len(), 3);
            assert_eq!(records[2]["label"], json!(2));
            assert_eq!(records[0]["probabilities"].as_array().unwrap().len(), 3);
        }
    }

    #[tokio::test]
    async fn a_regressor_and_every_batch_size() {
        let want = expected();
        let model = Arc::new(OnnxModel::load(&fixture("diabetes_linreg.onnx")).unwrap());
        let out = predict(&model, json!({"instances": want["diabetes_linreg"]["probe"]})).await.unwrap();
        let got: Vec<f64> = out["variable"].as_array().unwrap().iter().map(|r| r[0].as_f64().unwrap()).collect();
        for (g, w) in got.iter().zip(want["diabetes_linreg"]["variable"].as_array().unwrap()) {
            assert!((g - w.as_f64().unwrap()).abs() < 1e-3, "{g} vs {w}");
        }
        let one = predict(&model, json!({"inputs": [want["diabetes_linreg"]["probe"][0]]})).await.unwrap();
        assert_eq!(one["variable"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn bad_inputs_are_400s_that_say_why() {
        let model = Arc::new(OnnxModel::load(&fixture("iris_logreg.onnx")).unwrap());
        for (body, expect) in [
            (json!({"inputs": [[1, 2, 3]]}), "input 'X' expects shape [N, 4] of float32, got [1, 3]"),
            (json!({"inputs": [1, 2, 3, 4]}), "expects shape [N, 4] of float32, got [4]"),
            (json!({"inputs": [[1, 2, 3, 4], [1, 2]]}), "ragged"),
            (json!({"inputs": [[1, 2, "x", 4]]}), "value 2 is the string \"x\""),
            (json!({"inputs": {"Y": [[1, 2, 3, 4]]}}), "the model has no input 'Y'; its inputs are 'X'"),
            (json!({"dataframe_records": [{"a": 1, "b": null, "c": 1, "d": 1}]}), "value 1 is missing (null)"),
        ] {
            let e = predict(&model, body.clone()).await.unwrap_err();
            assert_eq!(e.kind, ScoringErrorKind::BadRequest, "{body}");
            assert!(e.message.contains(expect), "{body}: {}", e.message);
        }
        assert!(OnnxModel::load(b"not a model").is_err());

        // First rows that claim a huge shape cost nothing: the claim is checked first, and
        // leaves are collected as they are found.
        let mut claim = json!(1.0);
        for _ in 0..4 {
            claim = Value::Array(std::iter::once(claim).chain((0..999).map(|_| json!(0))).collect());
        }
        let e = predict(&model, json!({ "inputs": claim })).await.unwrap_err();
        assert!(e.message.contains("got [1000, 1000, 1000, 1000]"), "{}", e.message);
        let mut rows = vec![json!([1, 2, 3, 4])];
        rows.extend((0..5000).map(|_| json!(0)));
        let e = predict(&model, json!({ "inputs": rows })).await.unwrap_err();
        assert!(e.message.contains("ragged"), "{}", e.message);
    }

    #[test]
    fn nesting_follows_the_shape() {
        let flat: Vec<Value> = (0..6).map(Value::from).collect();
        assert_eq!(nest_values(&[2, 3], flat.clone()), json!([[0, 1, 2], [3, 4, 5]]));
        assert_eq!(nest_values(&[6], flat.clone()), json!([0, 1, 2, 3, 4, 5]));
        assert_eq!(nest_values(&[1, 2, 3], flat), json!([[[0, 1, 2], [3, 4, 5]]]));
    }
}
