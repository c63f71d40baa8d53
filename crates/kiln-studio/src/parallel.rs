//! Parallel coordinates for a sweep: one vertical axis per hyperparameter and one for the
//! objective; each trial is a line across them. Numbers get a linear axis, anything else an
//! axis of evenly spaced categories. Lines are coloured by the objective (better is darker
//! blue) and the best trial is drawn last, thick.

use std::fmt::Write;

use serde_json::Value;

use crate::chart::{escape, short};

pub struct Trial {
    pub job: String,
    pub values: Vec<Value>,
    pub metric: Option<f64>,
}

enum Axis {
    Numeric(f64, f64),
    Categories(Vec<String>),
}

fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn axis(values: impl Iterator<Item = Value>) -> Axis {
    let values: Vec<Value> = values.collect();
    if !values.is_empty() && values.iter().all(|v| v.as_f64().is_some_and(f64::is_finite)) {
        let (lo, hi) =
            values.iter().filter_map(Value::as_f64).fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let span = hi - lo;
        if span.is_finite() && span > 0.0 {
            return Axis::Numeric(lo, hi);
        }
        let pad = (lo.abs() * 1e-9).max(1.0);
        return Axis::Numeric(lo - pad, lo + pad);
    }
    let mut cats: Vec<String> = values.iter().map(label).collect();
    cats.sort();
    cats.dedup();
    Axis::Categories(cats)
}

/// `names` are the hyperparameters (the trials' values in that order); `objective` names the
/// metric; `maximize` says which end is better.
pub fn svg(names: &[String], objective: &str, maximize: bool, trials: &[Trial], best: Option<&str>) -> String {
    let (w, h, top, bottom, side) = (760.0, 300.0, 34.0, 30.0, 60.0);
    let columns = names.len() + 1;
    let mut axes: Vec<Axis> =
        (0..names.len()).map(|i| axis(trials.iter().filter_map(|t| t.values.get(i).cloned()))).collect();
    axes.push(axis(trials.iter().filter_map(|t| t.metric.filter(|m| m.is_finite()).map(Value::from))));
    let x = |i: usize| if columns == 1 { w / 2.0 } else { side + i as f64 * (w - 2.0 * side) / (columns - 1) as f64 };
    let ph = h - top - bottom;
    let y = |a: &Axis, v: &Value| -> Option<f64> {
        match a {
            Axis::Numeric(lo, hi) => {
                v.as_f64().filter(|x| x.is_finite()).map(|x| top + (1.0 - (x - lo) / (hi - lo)) * ph)
            }
            Axis::Categories(c) => {
                let k = c.iter().position(|x| *x == label(v))?;
                Some(if c.len() == 1 { top + ph / 2.0 } else { top + k as f64 / (c.len() - 1) as f64 * ph })
            }
        }
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="parallel" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" data-trials="{}"><title>trials in parallel coordinates</title>"#,
        trials.len()
    );
    let metric_range = match &axes[columns - 1] {
        Axis::Numeric(lo, hi) => Some((*lo, *hi)),
        _ => None,
    };
    let mut order: Vec<&Trial> = trials.iter().collect();
    // The best last, so it is on top.
    order.sort_by_key(|t| best == Some(t.job.as_str()));
    for t in order {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, a) in axes.iter().enumerate() {
            let v = if i < names.len() { t.values.get(i).cloned() } else { t.metric.map(Value::from) };
            match v.as_ref().and_then(|v| y(a, v)) {
                Some(py) => {
                    let _ = write!(d, "{}{:.1},{:.1}", if pen_down { " L" } else { " M" }, x(i), py);
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        // Better trials are darker.
        let shade = match (metric_range, t.metric) {
            (Some((lo, hi)), Some(m)) if m.is_finite() => {
                let q = (m - lo) / (hi - lo);
                if maximize { q } else { 1.0 - q }
            }
            _ => 0.0,
        };
        let shade = if shade.is_finite() { shade.clamp(0.0, 1.0) } else { 0.0 };
        let light = 85.0 - 55.0 * shade;
        let is_best = best == Some(t.job.as_str());
        let _ = write!(
            out,
            r#"<path class="trial{}" data-job="{}" d="{}" style="stroke: hsl(212, 80%, {light:.0}%)"><title>{} {}</title></path>"#,
            if is_best { " best" } else { "" },
            escape(&t.job),
            d.trim(),
            escape(&t.job),
            t.metric.map(short).unwrap_or_else(|| "no metric".into())
        );
    }
    for (i, a) in axes.iter().enumerate() {
        let name = if i < names.len() { names[i].as_str() } else { objective };
        let _ = write!(out, r#"<line class="axis" x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1}"/>"#, x(i), top + ph);
        let _ = write!(
            out,
            r#"<text class="axis-name" x="{:.1}" y="16" text-anchor="middle">{}</text>"#,
            x(i),
            escape(name)
        );
        let (hi_label, lo_label) = match a {
            Axis::Numeric(lo, hi) => (short(*hi), short(*lo)),
            Axis::Categories(c) => (c.first().cloned().unwrap_or_default(), c.last().cloned().unwrap_or_default()),
        };
        let _ = write!(
            out,
            r#"<text class="tick" x="{0:.1}" y="{1}" text-anchor="middle">{2}</text><text class="tick" x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"#,
            x(i),
            top - 4.0,
            escape(&hi_label),
            top + ph + 14.0,
            escape(&lo_label)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_line_per_trial_and_the_best_on_top() {
        let trials = vec![
            Trial { job: "s_0".into(), values: vec![json!(0.1), json!("gini")], metric: Some(0.8) },
            Trial { job: "s_1".into(), values: vec![json!(0.5), json!("entropy")], metric: Some(0.9) },
            Trial { job: "s_2".into(), values: vec![json!(0.9), json!("gini")], metric: None },
        ];
        let svg = svg(&["lr".into(), "criterion".into()], "accuracy", true, &trials, Some("s_1"));
        assert_eq!(svg.matches(r#"<path class="trial"#).count(), 3);
        assert!(svg.rfind(r#"data-job="s_1""#) > svg.rfind(r#"data-job="s_0""#), "the best is drawn last");
        assert!(svg.contains(r#"class="trial best""#));
        assert!(svg.contains(">criterion<") && svg.contains(">accuracy<"));
        assert!(svg.contains("no metric"));
    }
}
