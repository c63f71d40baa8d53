//! `kiln bench sampler`: Kiln's samplers on standard test functions, for
//! `benches/sampler.py`, which runs Optuna beside it on the same functions and prints both.

use std::time::Instant;

use anyhow::{Result, bail};
use kiln_tune::bayes::BayesianSampler;
use kiln_tune::sample::{RandomSampler, Sampler, best};
use kiln_tune::{Distribution, Goal, Observation, Parameter, SearchSpace};

/// A test function: its box, its known minimum, and its value.
pub struct Problem {
    pub name: &'static str,
    pub bounds: Vec<(f64, f64)>,
    pub minimum: f64,
    pub f: fn(&[f64]) -> f64,
}

fn branin(x: &[f64]) -> f64 {
    let pi = std::f64::consts::PI;
    let (b, c, t) = (5.1 / (4.0 * pi * pi), 5.0 / pi, 1.0 / (8.0 * pi));
    (x[1] - b * x[0] * x[0] + c * x[0] - 6.0).powi(2) + 10.0 * (1.0 - t) * x[0].cos() + 10.0
}

fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    -(0..4).map(|i| ALPHA[i] * (-(0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum::<f64>()).exp()).sum::<f64>()
}

fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum()
}

pub fn problems() -> Vec<Problem> {
    vec![
        Problem { name: "branin", bounds: vec![(-5.0, 10.0), (0.0, 15.0)], minimum: 0.397_887_357_729_738, f: branin },
        Problem { name: "hartmann6", bounds: vec![(0.0, 1.0); 6], minimum: -3.322_368_011_415_51, f: hartmann6 },
        Problem { name: "rosenbrock5", bounds: vec![(-5.0, 10.0); 5], minimum: 0.0, f: rosenbrock },
    ]
}

fn space(p: &Problem) -> SearchSpace {
    SearchSpace {
        parameters: p
            .bounds
            .iter()
            .enumerate()
            .map(|(i, (lo, hi))| Parameter {
                name: format!("x{i}"),
                distribution: Distribution::Uniform { min: *lo, max: *hi },
            })
            .collect(),
    }
}

/// Best regret after `trials` trials, and the seconds each suggestion took.
fn run(p: &Problem, sampler: &mut dyn Sampler, trials: usize) -> Result<(f64, Vec<f64>)> {
    let mut done: Vec<Observation> = Vec::with_capacity(trials);
    let mut times = Vec::with_capacity(trials);
    for t in 0..trials {
        let start = Instant::now();
        let a = sampler.suggest(t, &done, &[])?;
        times.push(start.elapsed().as_secs_f64());
        let x: Vec<f64> = a.iter().map(|(_, v)| v.as_f64().unwrap_or(f64::NAN)).collect();
        done.push(Observation { assignment: a, value: Some((p.f)(&x)) });
    }
    let (_, b) = best(Goal::Minimize, &done).unwrap_or((0, f64::NAN));
    Ok((b - p.minimum, times))
}

/// Prints one JSON line per (function, seed): the best regret, and the mean time per
/// suggestion; then the time per suggestion at trial `timing_at` on Hartmann-6.
pub fn sampler(sampler_name: &str, trials: usize, seeds: u64, timing_at: usize) -> Result<()> {
    let make = |p: &Problem, seed: u64| -> Result<Box<dyn Sampler>> {
        Ok(match sampler_name {
            "bayesian" => Box::new(BayesianSampler::new(space(p), Goal::Minimize, seed)?),
            "random" => Box::new(RandomSampler::new(space(p), seed)?),
            other => bail!("unknown sampler '{other}' (bayesian or random)"),
        })
    };
    for p in problems() {
        for seed in 0..seeds {
            let (regret, times) = run(&p, make(&p, seed)?.as_mut(), trials)?;
            let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
            println!(
                "{}",
                serde_json::json!({"function": p.name, "seed": seed, "regret": regret, "mean_suggest_s": mean})
            );
        }
    }
    if timing_at > 0 {
        let p = &problems()[1];
        let (_, times) = run(p, make(p, 0)?.as_mut(), timing_at)?;
        let tail = &times[times.len().saturating_sub(10)..];
        let at = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
        println!("{}", serde_json::json!({"timing_trials": timing_at, "suggest_s": at}));
    }
    Ok(())
}
