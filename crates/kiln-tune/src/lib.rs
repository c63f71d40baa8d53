//! Kiln's hyperparameter tuning, as pure computation: search spaces ([`space`]), samplers that
//! suggest the next trial's values from what earlier trials scored ([`sample`], [`bayes`]), and
//! early-termination policies that pick the trials to stop ([`early`]). The sweep driver in the
//! orchestrator runs the trials and feeds their metrics back; nothing here does I/O.

pub mod bayes;
pub mod early;
pub mod sample;
pub mod space;

pub use space::{Assignment, Distribution, Parameter, SearchSpace};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TuneError {
    /// A search space the sampler cannot use.
    #[error("{0}")]
    Space(String),
    /// Every point of a finite space was suggested.
    #[error("the search space is exhausted after {0} trials")]
    Exhausted(usize),
}

/// Whether the primary metric is to be made large or small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Maximize,
    Minimize,
}

impl Goal {
    /// The metric as a loss (smaller is better), whatever the goal.
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Goal::Minimize => value,
            Goal::Maximize => -value,
        }
    }

    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        self.loss(a) < self.loss(b)
    }

    /// The best of `values` (the first of equals), ignoring values that are not finite.
    pub fn best(self, values: &[f64]) -> Option<f64> {
        values.iter().copied().filter(|v| v.is_finite()).fold(None, |b, v| match b {
            Some(b) if !self.better(v, b) => Some(b),
            _ => Some(v),
        })
    }
}

/// A finished trial: its values and its primary metric (`None`: it reported none, failed or
/// was stopped before reporting).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub assignment: Assignment,
    pub value: Option<f64>,
}
