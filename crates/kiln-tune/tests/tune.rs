//! Samplers and early termination on synthetic spaces and curves.

use kiln_tune::bayes::BayesianSampler;
use kiln_tune::early::{Curve, EarlyTermination, Policy, Slack};
use kiln_tune::sample::{GridSampler, RandomSampler, Sampler, best};
use kiln_tune::space::render;
use kiln_tune::{Distribution, Goal, Observation, Parameter, SearchSpace, TuneError};
use serde_json::{Value, json};

fn space(params: Vec<(&str, Distribution)>) -> SearchSpace {
    SearchSpace { parameters: params.into_iter().map(|(n, d)| Parameter { name: n.into(), distribution: d }).collect() }
}

fn every_distribution() -> SearchSpace {
    space(vec![
        ("choice", Distribution::Choice { values: vec![json!(16), json!("adam"), json!(0.5)] }),
        ("randint", Distribution::Randint { upper: 5 }),
        ("uniform", Distribution::Uniform { min: -1.0, max: 3.0 }),
        ("loguniform", Distribution::LogUniform { min: -6.0, max: -1.0 }),
        ("quniform", Distribution::QUniform { min: 8.0, max: 64.0, q: 8.0 }),
        ("quniform_f", Distribution::QUniform { min: 0.05, max: 0.95, q: 0.1 }),
        ("qloguniform", Distribution::QLogUniform { min: 0.0, max: 5.0, q: 2.0 }),
        ("normal", Distribution::Normal { mu: 10.0, sigma: 2.0 }),
        ("lognormal", Distribution::LogNormal { mu: 0.0, sigma: 0.5 }),
        ("qnormal", Distribution::QNormal { mu: 100.0, sigma: 20.0, q: 5.0 }),
        ("qlognormal", Distribution::QLogNormal { mu: 2.0, sigma: 0.5, q: 0.5 }),
    ])
}

#[test]
fn every_distribution_stays_in_range_with_its_type_and_quantization() {
    let mut sampler = RandomSampler::new(every_distribution(), 7).unwrap();
    let mut normals = Vec::new();
    for t in 0..2000 {
        let a = sampler.suggest(t, &[], &[]).unwrap();
        let get = |n: &str| a.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
        assert!([json!(16), json!("adam"), json!(0.5)].contains(&get("choice")));
        let r = get("randint").as_i64().expect("randint gives integers");
        assert!((0..5).contains(&r));
        let u = get("uniform").as_f64().unwrap();
        assert!((-1.0..=3.0).contains(&u));
        let l = get("loguniform").as_f64().unwrap();
        assert!(((-6.0f64).exp()..=(-1.0f64).exp()).contains(&l), "{l}");
        let q = get("quniform").as_i64().expect("whole q and bounds give integers");
        assert!((8..=64).contains(&q) && q % 8 == 0, "{q}");
        let qf = get("quniform_f").as_f64().unwrap();
        assert!((0.05..=0.95).contains(&qf) && ((qf * 10.0).round() - qf * 10.0).abs() < 1e-9, "{qf}");
        assert!(render(&get("quniform_f")).len() <= 4, "{}", render(&get("quniform_f")));
        let ql = get("qloguniform").as_i64().unwrap();
        assert!((2..=(5.0f64.exp() as i64)).contains(&ql) && ql % 2 == 0, "{ql}");
        normals.push(get("normal").as_f64().unwrap());
        assert!(get("lognormal").as_f64().unwrap() > 0.0);
        assert_eq!(get("qnormal").as_i64().unwrap() % 5, 0);
        let qln = get("qlognormal").as_f64().unwrap();
        assert!(qln >= 0.0 && ((qln * 2.0).round() - qln * 2.0).abs() < 1e-9);
    }
    let mean = normals.iter().sum::<f64>() / normals.len() as f64;
    let sd = (normals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / normals.len() as f64).sqrt();
    assert!((mean - 10.0).abs() < 0.2 && (sd - 2.0).abs() < 0.2, "N(10, 2) sampled as mean {mean}, sd {sd}");
}

#[test]
fn a_seeded_random_sweep_is_reproducible_in_any_order() {
    let mut a = RandomSampler::new(every_distribution(), 42).unwrap();
    let mut b = RandomSampler::new(every_distribution(), 42).unwrap();
    let forward: Vec<_> = (0..20).map(|t| a.suggest(t, &[], &[]).unwrap()).collect();
    let backward: Vec<_> = (0..20).rev().map(|t| b.suggest(t, &[], &[]).unwrap()).collect();
    assert_eq!(forward, backward.into_iter().rev().collect::<Vec<_>>());
    let mut c = RandomSampler::new(every_distribution(), 43).unwrap();
    assert_ne!(forward[0], c.suggest(0, &[], &[]).unwrap());
}

#[test]
fn grid_enumerates_exactly_and_refuses_other_distributions() {
    let s = space(vec![
        ("lr", Distribution::Choice { values: vec![json!(0.1), json!(0.01)] }),
        ("opt", Distribution::Choice { values: vec![json!("sgd"), json!("adam"), json!("rms")] }),
    ]);
    let mut g = GridSampler::new(s).unwrap();
    assert_eq!(g.size(), 6);
    let all: Vec<(Value, Value)> =
        (0..6).map(|t| g.suggest(t, &[], &[]).unwrap()).map(|a| (a[0].1.clone(), a[1].1.clone())).collect();
    let mut unique = all.clone();
    unique.sort_by_key(|p| p.0.to_string() + &p.1.to_string());
    unique.dedup();
    assert_eq!(unique.len(), 6);
    assert_eq!(all[0], (json!(0.1), json!("sgd")));
    assert_eq!(g.suggest(6, &[], &[]), Err(TuneError::Exhausted(6)));
    let err = GridSampler::new(space(vec![("x", Distribution::Uniform { min: 0.0, max: 1.0 })])).err().unwrap();
    assert!(err.to_string().contains("x: grid sampling takes choice parameters only"), "{err}");
}

fn curve(id: &str, values: &[f64], running: bool) -> Curve {
    Curve { id: id.into(), values: values.to_vec(), running }
}

#[test]
fn bandit_stops_trials_outside_the_slack_including_the_first_wave() {
    let policy =
        |slack| EarlyTermination { policy: Policy::Bandit { slack }, evaluation_interval: 1, delay_evaluation: 2 };
    // Three trials started together (no finished baseline): judged once they reach interval 2.
    let wave = [curve("good", &[0.5, 0.8], true), curve("close", &[0.5, 0.75], true), curve("bad", &[0.3, 0.4], true)];
    assert_eq!(policy(Slack::Factor(0.1)).to_stop(Goal::Maximize, &wave), vec!["bad"]);
    assert_eq!(policy(Slack::Amount(0.01)).to_stop(Goal::Maximize, &wave), vec!["close", "bad"]);
    // Not before delay_evaluation.
    let early = [curve("a", &[0.9], true), curve("b", &[0.1], true)];
    assert!(policy(Slack::Factor(0.1)).to_stop(Goal::Maximize, &early).is_empty());
    // Minimizing: a loss above best·(1 + f).
    let losses = [curve("a", &[1.0, 0.5], false), curve("b", &[2.0, 1.9], true)];
    assert_eq!(policy(Slack::Factor(0.2)).to_stop(Goal::Minimize, &losses), vec!["b"]);
    // Only at multiples of evaluation_interval.
    let every3 = EarlyTermination { evaluation_interval: 3, ..policy(Slack::Factor(0.1)) };
    let c = [curve("a", &[0.9, 0.9, 0.9, 0.9], false), curve("b", &[0.1, 0.1], true)];
    assert!(every3.to_stop(Goal::Maximize, &c).is_empty());
    // A trial running ahead of its peers is judged at the furthest interval a peer reached.
    let ahead = [curve("fast-bad", &[0.1; 12], true), curve("slow-good", &[0.9, 0.9, 0.9], true)];
    assert_eq!(policy(Slack::Factor(0.1)).to_stop(Goal::Maximize, &ahead), vec!["fast-bad"]);
    let behind = [curve("fast-bad", &[0.1; 12], true), curve("slow-good", &[0.9], true)];
    assert!(
        policy(Slack::Factor(0.1)).to_stop(Goal::Maximize, &behind).is_empty(),
        "no common interval past the delay"
    );
    // Negative metrics (neg_log_loss): the leader is never stopped, the far one is.
    let negative =
        [curve("lead", &[-0.3, -0.2], true), curve("near", &[-0.3, -0.21], true), curve("far", &[-0.9, -0.8], true)];
    assert_eq!(policy(Slack::Factor(0.1)).to_stop(Goal::Maximize, &negative), vec!["far"]);
    let below_zero = [curve("a", &[-1.0, -2.0], true), curve("b", &[-1.0, -1.5], true)];
    assert_eq!(policy(Slack::Factor(0.1)).to_stop(Goal::Minimize, &below_zero), vec!["b"]);
    // A diverged trial (NaN) is the worst, not a trial that can never be judged.
    let diverged = [curve("ok", &[0.5, 0.6], true), curve("nan", &[f64::NAN, f64::NAN], true)];
    assert_eq!(policy(Slack::Factor(0.1)).to_stop(Goal::Maximize, &diverged), vec!["nan"]);
}

#[test]
fn median_stopping_and_truncation_selection() {
    let median = EarlyTermination { policy: Policy::MedianStopping, evaluation_interval: 1, delay_evaluation: 0 };
    let curves = [
        curve("a", &[0.6, 0.7, 0.8], false),
        curve("b", &[0.5, 0.6, 0.7], false),
        curve("c", &[0.2, 0.3], true),
        curve("d", &[0.6, 0.9], true),
    ];
    // At interval 2, the others' running averages are 0.65, 0.55, 0.75 (c, judged by d's too).
    assert_eq!(median.to_stop(Goal::Maximize, &curves), vec!["c"]);
    let trunc = |exclude_finished| EarlyTermination {
        policy: Policy::TruncationSelection { percentage: 50, exclude_finished },
        evaluation_interval: 1,
        delay_evaluation: 0,
    };
    let field =
        [curve("f1", &[0.9], false), curve("f2", &[0.8], false), curve("r1", &[0.7], true), curve("r2", &[0.1], true)];
    // Worst half of four: r1 and r2.
    assert_eq!(trunc(false).to_stop(Goal::Maximize, &field), vec!["r1", "r2"]);
    // Among running trials only, one of two is cut: r2.
    assert_eq!(trunc(true).to_stop(Goal::Maximize, &field), vec!["r2"]);
}

/// Branin on [-5, 10] × [0, 15]; its minimum is 0.397887.
fn branin(x: f64, y: f64) -> f64 {
    let pi = std::f64::consts::PI;
    let (a, b, c, r, s, t) = (1.0, 5.1 / (4.0 * pi * pi), 5.0 / pi, 6.0, 10.0, 1.0 / (8.0 * pi));
    a * (y - b * x * x + c * x - r).powi(2) + s * (1.0 - t) * x.cos() + s
}

fn run(sampler: &mut dyn Sampler, trials: usize) -> f64 {
    let mut done: Vec<Observation> = Vec::new();
    for t in 0..trials {
        let a = sampler.suggest(t, &done, &[]).unwrap();
        let v = branin(a[0].1.as_f64().unwrap(), a[1].1.as_f64().unwrap());
        done.push(Observation { assignment: a, value: Some(v) });
    }
    best(Goal::Minimize, &done).unwrap().1 - 0.397887
}

#[test]
fn the_bayesian_sampler_beats_random_search_on_branin() {
    let s = space(vec![
        ("x", Distribution::Uniform { min: -5.0, max: 10.0 }),
        ("y", Distribution::Uniform { min: 0.0, max: 15.0 }),
    ]);
    let mut bayes = Vec::new();
    let mut random = Vec::new();
    for seed in 0..5 {
        bayes.push(run(&mut BayesianSampler::new(s.clone(), Goal::Minimize, seed).unwrap(), 30));
        random.push(run(&mut RandomSampler::new(s.clone(), seed).unwrap(), 30));
    }
    bayes.sort_by(f64::total_cmp);
    random.sort_by(f64::total_cmp);
    assert!(bayes[2] < random[2] / 5.0, "median regret: bayesian {} vs random {}", bayes[2], random[2]);
}

#[test]
fn values_render_as_python_writes_them() {
    // What `repr(float(x))` prints in CPython, for the same doubles.
    let cases = [
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (0.1, "0.1"),
        (100.0, "100.0"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (123456789012345.6, "123456789012345.6"),
        (2.5e-7, "2.5e-07"),
        (-0.03, "-0.03"),
        (1e15, "1000000000000000.0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1234.5, "1234.5"),
    ];
    for (x, want) in cases {
        assert_eq!(render(&json!(x)), want, "{x:e}");
    }
    assert_eq!(render(&json!(32)), "32");
    assert_eq!(render(&json!(true)), "True");
    assert_eq!(render(&json!("adam")), "adam");
}

#[test]
fn the_best_value_follows_the_goal_and_skips_nan() {
    assert_eq!(Goal::Maximize.best(&[0.1, f64::NAN, 0.7, 0.3]), Some(0.7));
    assert_eq!(Goal::Minimize.best(&[0.1, f64::NAN, 0.7, 0.3]), Some(0.1));
    assert_eq!(Goal::Minimize.best(&[]), None);
}
