//! Search spaces: the distributions of an Azure ML sweep (hyperopt's conventions) and the map
//! between a parameter's values and the unit interval the samplers work in.
//!
//! Every distribution is the image of U(0, 1) under its own map (`from_unit`): a uniform draw
//! of `u` gives a draw of the distribution, and `to_unit` takes a value back to where it came
//! from. The random sampler draws `u`; the Bayesian sampler models the objective over `u`.

use serde_json::Value;

use crate::TuneError;

/// A parameter's prior.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// A uniform pick among `values` (numbers, strings or booleans).
    Choice { values: Vec<Value> },
    /// A uniform integer in `[0, upper)`.
    Randint { upper: i64 },
    /// U(min, max).
    Uniform { min: f64, max: f64 },
    /// exp(U(min, max)): the bounds are exponents.
    LogUniform { min: f64, max: f64 },
    /// round(U(min, max) / q)·q.
    QUniform { min: f64, max: f64, q: f64 },
    /// round(exp(U(min, max)) / q)·q.
    QLogUniform { min: f64, max: f64, q: f64 },
    /// N(mu, sigma).
    Normal { mu: f64, sigma: f64 },
    /// exp(N(mu, sigma)).
    LogNormal { mu: f64, sigma: f64 },
    /// round(N(mu, sigma) / q)·q.
    QNormal { mu: f64, sigma: f64, q: f64 },
    /// round(exp(N(mu, sigma)) / q)·q.
    QLogNormal { mu: f64, sigma: f64, q: f64 },
}

/// A named parameter of a search space.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub distribution: Distribution,
}

/// Parameters in the order the spec wrote them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchSpace {
    pub parameters: Vec<Parameter>,
}

/// One value per parameter, in the space's order.
pub type Assignment = Vec<(String, Value)>;

/// Keeps `u` off the ends of the interval, where the normal quantile is infinite.
const U_EDGE: f64 = 1e-12;

/// The standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// The standard normal density.
pub fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The standard normal quantile, by bisection on the CDF (exact to the last bits, and fast
/// enough: a sampler calls it a few times per suggestion).
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(U_EDGE, 1.0 - U_EDGE);
    let (mut lo, mut hi) = (-40.0_f64, 40.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// `x` rounded to a multiple of `q`, kept within `[lo, hi]` when a multiple lies there.
fn quantize(x: f64, q: f64, lo: f64, hi: f64) -> f64 {
    let mut v = (x / q).round() * q;
    if v < lo {
        v = (lo / q).ceil() * q;
    }
    if v > hi {
        v = (hi / q).floor() * q;
    }
    // Multiples such as 0.1·3 print as 0.30000000000000004; keep the digits of q.
    let digits = decimals(q);
    let scale = 10f64.powi(digits as i32);
    (v * scale).round() / scale
}

fn decimals(q: f64) -> u32 {
    let mut d = 0;
    let mut x = q.abs();
    while d < 12 && (x - x.round()).abs() > 1e-9 {
        x *= 10.0;
        d += 1;
    }
    d
}

/// A number as a value: an integer when `integral` and it is whole.
fn number(v: f64, integral: bool) -> Value {
    if integral && v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)
    }
}

fn is_whole(x: f64) -> bool {
    x.fract() == 0.0
}

impl Distribution {
    /// Checks the parameters (`what` names the parameter in messages).
    pub fn check(&self, what: &str) -> Result<(), TuneError> {
        let bad = |m: String| Err(TuneError::Space(format!("{what}: {m}")));
        let finite = |xs: &[f64]| xs.iter().all(|x| x.is_finite());
        match self {
            Distribution::Choice { values } if values.is_empty() => bad("choice needs at least one value".into()),
            Distribution::Choice { .. } => Ok(()),
            Distribution::Randint { upper } if *upper < 1 => {
                bad(format!("randint upper must be 1 or more, not {upper}"))
            }
            Distribution::Randint { .. } => Ok(()),
            Distribution::Uniform { min, max }
            | Distribution::LogUniform { min, max }
            | Distribution::QUniform { min, max, .. }
            | Distribution::QLogUniform { min, max, .. }
                if !finite(&[*min, *max]) || min > max =>
            {
                bad(format!("min_value {min} is above max_value {max}"))
            }
            Distribution::LogUniform { max, .. } | Distribution::QLogUniform { max, .. } if *max > 700.0 => {
                bad(format!("max_value {max} is an exponent: exp({max}) overflows"))
            }
            Distribution::Normal { sigma, .. }
            | Distribution::LogNormal { sigma, .. }
            | Distribution::QNormal { sigma, .. }
            | Distribution::QLogNormal { sigma, .. }
                if !(sigma.is_finite() && *sigma > 0.0) =>
            {
                bad(format!("sigma must be above 0, not {sigma}"))
            }
            _ => match self.q() {
                Some(q) if !(q.is_finite() && q > 0.0) => bad(format!("q must be above 0, not {q}")),
                _ => Ok(()),
            },
        }
    }

    fn q(&self) -> Option<f64> {
        match self {
            Distribution::QUniform { q, .. }
            | Distribution::QLogUniform { q, .. }
            | Distribution::QNormal { q, .. }
            | Distribution::QLogNormal { q, .. } => Some(*q),
            _ => None,
        }
    }

    /// Its spec name (`uniform`, `choice`, …) and its parameters as the spec names them
    /// (`min_value`, `values`, `mu`, …).
    pub fn describe(&self) -> (&'static str, Value) {
        use serde_json::json;
        match self {
            Distribution::Choice { values } => ("choice", json!({ "values": values })),
            Distribution::Randint { upper } => ("randint", json!({ "upper": upper })),
            Distribution::Uniform { min, max } => ("uniform", json!({ "min_value": min, "max_value": max })),
            Distribution::LogUniform { min, max } => ("loguniform", json!({ "min_value": min, "max_value": max })),
            Distribution::QUniform { min, max, q } => {
                ("quniform", json!({ "min_value": min, "max_value": max, "q": q }))
            }
            Distribution::QLogUniform { min, max, q } => {
                ("qloguniform", json!({ "min_value": min, "max_value": max, "q": q }))
            }
            Distribution::Normal { mu, sigma } => ("normal", json!({ "mu": mu, "sigma": sigma })),
            Distribution::LogNormal { mu, sigma } => ("lognormal", json!({ "mu": mu, "sigma": sigma })),
            Distribution::QNormal { mu, sigma, q } => ("qnormal", json!({ "mu": mu, "sigma": sigma, "q": q })),
            Distribution::QLogNormal { mu, sigma, q } => ("qlognormal", json!({ "mu": mu, "sigma": sigma, "q": q })),
        }
    }

    /// Whether its values are picked among a list (the samplers treat those as categories).
    pub fn categories(&self) -> Option<usize> {
        match self {
            Distribution::Choice { values } => Some(values.len()),
            _ => None,
        }
    }

    /// The value `u ∈ (0, 1)` maps to. A quantized distribution with a whole `q` (and whole
    /// bounds for the uniform ones) gives integers, as a trial's `--batch-size 32` expects.
    pub fn from_unit(&self, u: f64) -> Value {
        let u = u.clamp(U_EDGE, 1.0 - U_EDGE);
        match self {
            Distribution::Choice { values } => {
                let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
                values[i].clone()
            }
            Distribution::Randint { upper } => Value::from(((u * *upper as f64) as i64).min(upper - 1)),
            Distribution::Uniform { min, max } => number(min + u * (max - min), false),
            Distribution::LogUniform { min, max } => number((min + u * (max - min)).exp(), false),
            Distribution::QUniform { min, max, q } => {
                let v = quantize(min + u * (max - min), *q, *min, *max);
                number(v, is_whole(*q) && is_whole(*min) && is_whole(*max))
            }
            Distribution::QLogUniform { min, max, q } => {
                let (lo, hi) = (min.exp(), max.exp());
                number(quantize((min + u * (max - min)).exp(), *q, lo, hi), is_whole(*q))
            }
            Distribution::Normal { mu, sigma } => number(mu + sigma * normal_quantile(u), false),
            Distribution::LogNormal { mu, sigma } => number((mu + sigma * normal_quantile(u)).exp(), false),
            Distribution::QNormal { mu, sigma, q } => {
                let x = mu + sigma * normal_quantile(u);
                number(quantize(x, *q, f64::MIN, f64::MAX), is_whole(*q))
            }
            Distribution::QLogNormal { mu, sigma, q } => {
                let x = (mu + sigma * normal_quantile(u)).exp();
                number(quantize(x, *q, 0.0, f64::MAX), is_whole(*q))
            }
        }
    }

    /// Where a value sits in the unit interval (the middle of its cell for a category, an
    /// integer or a quantized value); `None` for a value the distribution cannot give.
    pub fn to_unit(&self, v: &Value) -> Option<f64> {
        let x = v.as_f64();
        let u = match self {
            Distribution::Choice { values } => {
                let i = values.iter().position(|c| c == v || (c.as_f64().is_some() && c.as_f64() == x))?;
                (i as f64 + 0.5) / values.len() as f64
            }
            Distribution::Randint { upper } => (x? + 0.5) / *upper as f64,
            Distribution::Uniform { min, max } | Distribution::QUniform { min, max, .. } => {
                if max > min {
                    (x? - min) / (max - min)
                } else {
                    0.5
                }
            }
            Distribution::LogUniform { min, max } | Distribution::QLogUniform { min, max, .. } => {
                let x = x?;
                if x <= 0.0 {
                    return None;
                }
                if max > min { (x.ln() - min) / (max - min) } else { 0.5 }
            }
            Distribution::Normal { mu, sigma } | Distribution::QNormal { mu, sigma, .. } => {
                normal_cdf((x? - mu) / sigma)
            }
            Distribution::LogNormal { mu, sigma } | Distribution::QLogNormal { mu, sigma, .. } => {
                let x = x?;
                if x <= 0.0 {
                    return None;
                }
                normal_cdf((x.ln() - mu) / sigma)
            }
        };
        Some(u.clamp(0.0, 1.0))
    }
}

impl SearchSpace {
    pub fn check(&self) -> Result<(), TuneError> {
        if self.parameters.is_empty() {
            return Err(TuneError::Space("the search space has no parameters".into()));
        }
        for p in &self.parameters {
            p.distribution.check(&p.name)?;
        }
        Ok(())
    }

    /// The assignment a point of the unit cube (one coordinate per parameter) maps to.
    pub fn from_unit(&self, u: &[f64]) -> Assignment {
        self.parameters.iter().zip(u).map(|(p, u)| (p.name.clone(), p.distribution.from_unit(*u))).collect()
    }

    /// Where an assignment sits in the unit cube; `None` when a value does not fit.
    pub fn to_unit(&self, a: &Assignment) -> Option<Vec<f64>> {
        self.parameters
            .iter()
            .map(|p| {
                let v = a.iter().find(|(n, _)| *n == p.name).map(|(_, v)| v)?;
                p.distribution.to_unit(v)
            })
            .collect()
    }
}

/// A value as a trial's command line and its run's params get it: integers as integers,
/// floats as Python's `repr` writes them (`0.01`, `1e-05`, `100.0`), strings bare, booleans as
/// `True`/`False`. Python's form matters: a script that logs the value it parsed
/// (`mlflow.log_param("lr", args.lr)`) must log the very text the sweep logged, or MLflow
/// refuses the param as changed.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Number(n) if n.is_f64() => python_float(n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

/// Python's `repr(float)`: the shortest digits that read back the same, positional when the
/// decimal exponent is in -4..16, scientific (`1e-05`, `1.5e+16`) otherwise.
pub fn python_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.2345e-5`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if x < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        format!("{sign}{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}
