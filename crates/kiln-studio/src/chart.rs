//! Metric charts as SVG, drawn on the server from (already down-sampled) points: a frame,
//! the range of each axis, the line, and one hover target per point (`<title>` shows its
//! step and value).

use std::fmt::Write;

/// A number as axis labels show it: short, without noise digits.
pub fn short(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Text for SVG and HTML: markup characters and quotes escaped.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// How a metric chart is drawn: by step or by time, raw or smoothed, linear or log scale.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChartOptions {
    /// Seconds since the first point instead of steps.
    pub by_time: bool,
    /// Exponential moving average weight (0: none, up to 0.99), as TensorBoard smooths.
    pub smoothing: f64,
    /// Log-10 y axis (points at or below zero are left out).
    pub log_scale: bool,
}

/// Applies the options to `(step, timestamp ms, value)` points: the x to draw, and the y.
pub fn shape(points: &[(i64, i64, f64)], o: &ChartOptions) -> Vec<(f64, f64)> {
    let t0 = points.iter().map(|p| p.1).min().unwrap_or(0);
    let mut out = Vec::with_capacity(points.len());
    let w = o.smoothing.clamp(0.0, 0.99);
    let mut ema: Option<f64> = None;
    for &(step, ts, v) in points {
        if !v.is_finite() {
            continue;
        }
        let y = match ema {
            Some(prev) if w > 0.0 => prev * w + v * (1.0 - w),
            _ => v,
        };
        ema = Some(y);
        let y = if o.log_scale {
            if y <= 0.0 {
                continue;
            }
            y.log10()
        } else {
            y
        };
        let x = if o.by_time { (ts as f64 - t0 as f64) / 1000.0 } else { step as f64 };
        out.push((x, y));
    }
    out
}

/// Colours of the series of a chart, in order (distinct for readers with colour-blindness).
const PALETTE: [&str; 8] = ["#0550ae", "#bc4c00", "#116329", "#8250df", "#a40e26", "#1b7c83", "#7d4e00", "#57606a"];

/// A line chart of `(x, y)` points (x ascending), `w`×`h` pixels. Non-finite values are
/// left out of the line.
pub fn line(title: &str, x_label: &str, points: &[(f64, f64)], w: f64, h: f64) -> String {
    lines(title, x_label, &[(String::new(), points.to_vec())], w, h)
}

/// Several named series on one chart (a legend when there is more than one).
pub fn lines(title: &str, x_label: &str, series: &[(String, Vec<(f64, f64)>)], w: f64, h: f64) -> String {
    let (left, right, top, bottom) = (56.0, 12.0, 24.0, 28.0);
    let finite: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| {
            (name.as_str(), pts.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect())
        })
        .collect();
    let total: usize = finite.iter().map(|(_, p)| p.len()).sum();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" data-points="{total}" data-series="{}"><title>{}</title>"#,
        series.len(),
        escape(title)
    );
    let _ = write!(svg, r#"<text class="chart-title" x="{left}" y="15">{}</text>"#, escape(title));
    let (pw, ph) = (w - left - right, h - top - bottom);
    let _ = write!(svg, r#"<rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}"/>"#);
    if total == 0 {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{}" y="{}">no finite values</text></svg>"#,
            left + 8.0,
            top + ph / 2.0
        );
        return svg;
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, pts) in &finite {
        for (x, y) in pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y0 = y0.min(*y);
            y1 = y1.max(*y);
        }
    }
    if !(x1 - x0).is_finite() || x1 - x0 <= 0.0 {
        // One x (or a span too large or too small for f64): room either side of it.
        let pad = (x0.abs() * 1e-9).max(1.0);
        x0 -= pad;
        x1 += pad;
    }
    if !(y1 - y0).is_finite() || y1 - y0 <= 0.0 {
        // One value: centred, with room either side.
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        y0 -= pad;
        y1 += pad;
    }
    if !(x1 - x0).is_finite() || !(y1 - y0).is_finite() {
        // Values near f64's limits: nothing sensible to draw.
        let _ = write!(
            svg,
            r#"<text class="empty" x="{}" y="{}">values out of range</text></svg>"#,
            left + 8.0,
            top + ph / 2.0
        );
        return svg;
    }
    let px = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| top + (1.0 - (y - y0) / (y1 - y0)) * ph;
    for (k, (name, pts)) in finite.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let mut d = String::new();
        for (i, (x, y)) in pts.iter().enumerate() {
            let _ = write!(d, "{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, px(*x), py(*y));
        }
        let _ = write!(svg, r#"<path class="line" data-series="{}" style="stroke: {colour}" d="{d}"/>"#, escape(name));
        // A single point has no line to show it: it is drawn as a dot.
        let class = if pts.len() == 1 { "pt solo" } else { "pt" };
        let who = if name.is_empty() { String::new() } else { format!("{} ", escape(name)) };
        for (x, y) in pts {
            let _ = write!(
                svg,
                r#"<circle class="{class}" style="--c: {colour}" cx="{:.1}" cy="{:.1}" r="3"><title>{who}{x_label} {}: {}</title></circle>"#,
                px(*x),
                py(*y),
                short(*x),
                short(*y)
            );
        }
        if finite.len() > 1 {
            let _ = write!(
                svg,
                r#"<text class="legend" x="{:.1}" y="{:.1}" style="fill: {colour}">{}</text>"#,
                left + pw - 4.0,
                top + 14.0 + 13.0 * k as f64,
                escape(name)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text class="tick" x="{}" y="{}" text-anchor="end">{}</text><text class="tick" x="{}" y="{}" text-anchor="end">{}</text>"#,
        left - 4.0,
        top + 10.0,
        short(y1),
        left - 4.0,
        top + ph,
        short(y0)
    );
    let _ = write!(
        svg,
        r#"<text class="tick" x="{left}" y="{}">{}</text><text class="tick" x="{}" y="{}" text-anchor="end">{}</text><text class="tick" x="{}" y="{}" text-anchor="middle">{}</text></svg>"#,
        h - 8.0,
        short(x0),
        left + pw,
        h - 8.0,
        short(x1),
        left + pw / 2.0,
        h - 8.0,
        escape(x_label)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_with_hover_points_and_ranges() {
        let svg = line("loss", "step", &[(0.0, 1.0), (1.0, 0.5), (2.0, f64::NAN), (3.0, 0.25)], 400.0, 200.0);
        assert!(svg.contains(r#"data-points="3""#), "{svg}");
        assert!(svg.contains("<title>step 3: 0.25</title>"));
        assert!(svg.contains(">1</text>") && svg.contains(">0.25</text>"));
        assert_eq!(line("x", "step", &[], 10.0, 10.0).matches("no finite values").count(), 1);
        assert!(line("a<b", "step", &[(0.0, 1.0)], 10.0, 10.0).contains("a&lt;b"));
        let two = lines(
            "loss",
            "step",
            &[("a".into(), vec![(0.0, 1.0)]), ("b".into(), vec![(0.0, 2.0), (1.0, 3.0)])],
            400.0,
            200.0,
        );
        assert!(two.contains(r#"data-series="2""#) && two.contains(r#"class="legend""#), "{two}");
        assert!(two.contains("<title>b step 1: 3</title>"));
    }

    #[test]
    fn extreme_values_draw_no_nan() {
        for pts in [vec![(1e17, 1.0)], vec![(0.0, -1e308), (1.0, 1e308)], vec![(0.0, 5.0), (0.0, 5.0)]] {
            let svg = line("x", "step", &pts, 200.0, 100.0);
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{pts:?}: {svg}");
        }
    }

    #[test]
    fn options_smooth_log_and_time() {
        let pts = [(0, 1000, 10.0), (1, 3000, 0.0), (2, 6000, 1000.0)];
        assert_eq!(shape(&pts, &ChartOptions::default()), vec![(0.0, 10.0), (1.0, 0.0), (2.0, 1000.0)]);
        let log = shape(&pts, &ChartOptions { log_scale: true, ..Default::default() });
        assert_eq!(log, vec![(0.0, 1.0), (2.0, 3.0)], "non-positive values have no log");
        let timed = shape(&pts, &ChartOptions { by_time: true, ..Default::default() });
        assert_eq!(timed.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0.0, 2.0, 5.0]);
        let smooth = shape(&pts, &ChartOptions { smoothing: 0.5, ..Default::default() });
        assert_eq!(smooth[1].1, 5.0);
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(123.0), "123");
        assert_eq!(short(1e-7), "1.000e-7");
    }
}
