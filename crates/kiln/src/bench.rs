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

/// `kiln bench load`: `concurrency` workers, each on its own kept-alive connection, POST the
/// same body back to back; after `warmup` seconds, every answer's latency is recorded for
/// `duration` seconds. The same generator drives every peer in `benches/serving.py`.
pub async fn load(
    url: &str,
    body_file: &std::path::Path,
    headers: &[String],
    concurrency: usize,
    duration: f64,
    warmup: f64,
) -> Result<()> {
    let body = bytes::Bytes::from(std::fs::read(body_file)?);
    let mut header_map = reqwest::header::HeaderMap::new();
    header_map.insert(reqwest::header::CONTENT_TYPE, "application/json".parse()?);
    for h in headers {
        let Some((name, value)) = h.split_once(':') else { bail!("--header '{h}': expected 'Name: value'") };
        header_map.insert(reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?, value.trim().parse()?);
    }
    let start = Instant::now();
    let measure_from = start + std::time::Duration::from_secs_f64(warmup);
    let until = measure_from + std::time::Duration::from_secs_f64(duration);
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        // One client per worker: one connection each, as separate clients would hold.
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let (url, body, headers) = (url.to_string(), body.clone(), header_map.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let answer = client.post(&url).headers(headers.clone()).body(body.clone()).send().await;
                let ok = match answer {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let done = Instant::now();
                if sent >= measure_from && done <= until {
                    if ok {
                        latencies_us.push(done.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies_us, errors)
        }));
    }
    let mut all: Vec<u32> = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?;
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all[i] as f64 / 1000.0
    };
    let line = serde_json::json!({
        "requests": all.len(),
        "errors": errors,
        "seconds": duration,
        "rps": all.len() as f64 / duration,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": all.last().map(|x| *x as f64 / 1000.0),
        "concurrency": concurrency,
    });
    println!("{line}");
    Ok(())
}
