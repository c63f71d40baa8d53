//! Early termination: which running trials to stop, from every trial's reports of the
//! primary metric so far.
//!
//! One report (one `log_metric` of the primary metric) is one interval. A policy looks at a
//! running trial at the latest interval `k` that is a multiple of `evaluation_interval`, at
//! least `delay_evaluation`, and reached both by the trial and by some other trial (running
//! or finished), and compares it with every other trial that reached `k`. It is asked again
//! whenever a report arrives, so a first wave of trials started together is judged as soon as
//! its members reach a common interval (the original service lets the first wave run out, a
//! known complaint), and a trial that runs ahead of the others (it started first, or its
//! peers are slow) is judged where they are, not left alone until they catch up.

use crate::Goal;

#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Stop a trial whose best so far is worse than the best of all trials by more than the
    /// slack: `best / (1 + factor)` when maximizing (`best · (1 + factor)` when minimizing), or
    /// `best ∓ amount`.
    Bandit { slack: Slack },
    /// Stop a trial whose best so far is worse than the median of the other trials' running
    /// averages at the same interval.
    MedianStopping,
    /// At each interval, stop the running trials in the worst `percentage` of all trials.
    TruncationSelection { percentage: u32, exclude_finished: bool },
}

impl Policy {
    /// As messages name it.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Bandit { .. } => "bandit",
            Policy::MedianStopping => "median stopping",
            Policy::TruncationSelection { .. } => "truncation selection",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slack {
    Factor(f64),
    Amount(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct EarlyTermination {
    pub policy: Policy,
    /// Judge every this many reports (at least 1).
    pub evaluation_interval: u32,
    /// Judge no trial before this many reports.
    pub delay_evaluation: u32,
}

/// A trial's reports of the primary metric, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub id: String,
    pub values: Vec<f64>,
    pub running: bool,
}

impl EarlyTermination {
    /// The interval at which `reports` reports are judged, if any: the latest multiple of
    /// `evaluation_interval` that is at least `delay_evaluation` (and at least 1).
    fn judged_at(&self, reports: usize) -> Option<usize> {
        let every = self.evaluation_interval.max(1) as usize;
        let k = reports / every * every;
        (k >= 1 && k >= self.delay_evaluation as usize).then_some(k)
    }

    /// The running trials to stop now.
    pub fn to_stop<'a>(&self, goal: Goal, curves: &'a [Curve]) -> Vec<&'a str> {
        // A report that is not a number (a diverged run's NaN) counts as the worst value.
        let worst = match goal {
            Goal::Maximize => f64::NEG_INFINITY,
            Goal::Minimize => f64::INFINITY,
        };
        let clean: Vec<Curve> = curves
            .iter()
            .map(|c| Curve {
                values: c.values.iter().map(|v| if v.is_nan() { worst } else { *v }).collect(),
                ..c.clone()
            })
            .collect();
        let mut out = Vec::new();
        for (index, c) in clean.iter().enumerate().filter(|(_, c)| c.running) {
            let furthest_peer = clean.iter().filter(|o| o.id != c.id).map(|o| o.values.len()).max().unwrap_or(0);
            // No interval both reached yet: no baseline.
            let Some(k) = self.judged_at(c.values.len().min(furthest_peer)) else { continue };
            let peers: Vec<&Curve> = clean.iter().filter(|o| o.id != c.id && o.values.len() >= k).collect();
            let best_so_far = |curve: &Curve| best_of(goal, &curve.values[..k]);
            let stop = match &self.policy {
                Policy::Bandit { slack } => {
                    let mine = best_so_far(c);
                    let best =
                        peers.iter().map(|p| best_so_far(p)).fold(mine, |b, v| if goal.better(v, b) { v } else { b });
                    // The factor scales the best's size, so negative metrics (`neg_log_loss`)
                    // get the same slack as positive ones: best / (1 + f) when best > 0.
                    let bound = match (goal, slack) {
                        (Goal::Maximize, Slack::Factor(f)) => best - best.abs() * f / (1.0 + f),
                        (Goal::Minimize, Slack::Factor(f)) => best + best.abs() * f,
                        (Goal::Maximize, Slack::Amount(a)) => best - a,
                        (Goal::Minimize, Slack::Amount(a)) => best + a,
                    };
                    goal.better(bound, mine)
                }
                Policy::MedianStopping => {
                    let mut averages: Vec<f64> =
                        peers.iter().map(|p| p.values[..k].iter().sum::<f64>() / k as f64).collect();
                    averages.sort_by(f64::total_cmp);
                    let n = averages.len();
                    let median =
                        if n % 2 == 1 { averages[n / 2] } else { 0.5 * (averages[n / 2 - 1] + averages[n / 2]) };
                    goal.better(median, best_so_far(c))
                }
                Policy::TruncationSelection { percentage, exclude_finished } => {
                    let mut field: Vec<(f64, &str)> = peers
                        .iter()
                        .filter(|p| p.running || !exclude_finished)
                        .map(|p| (p.values[k - 1], p.id.as_str()))
                        .collect();
                    field.push((c.values[k - 1], c.id.as_str()));
                    // Best first; the last `cut` are truncated.
                    field.sort_by(|a, b| goal.loss(a.0).total_cmp(&goal.loss(b.0)));
                    let cut = field.len() * (*percentage as usize) / 100;
                    field[field.len() - cut..].iter().any(|(_, id)| *id == c.id)
                }
            };
            if stop {
                out.push(curves[index].id.as_str());
            }
        }
        out
    }
}

fn best_of(goal: Goal, values: &[f64]) -> f64 {
    values.iter().copied().fold(values[0], |b, v| if goal.better(v, b) { v } else { b })
}
