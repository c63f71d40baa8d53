//! The Bayesian sampler: a Gaussian process over the unit cube of the search space, with
//! expected improvement.
//!
//! - The first trials are a Latin hypercube (every parameter's range covered evenly).
//! - The model: a Matérn-5/2 kernel with one length scale per parameter (categories are at
//!   distance 1 from each other), fitted by maximizing the marginal likelihood with a
//!   coordinate search in log space, warm-started from the last fit. Scores are modelled as
//!   they are or as their logarithm (for scores spanning orders of magnitude: a diverged run,
//!   Rosenbrock's walls), whichever has the higher likelihood in the scores' own units;
//!   failed trials count as the worst.
//! - The next point maximizes expected improvement over random candidates and perturbations
//!   of the best points, refined locally. Trials still running count as if they scored the
//!   current best ("constant liar"), so concurrent suggestions spread out.

use rand::RngExt;

use crate::sample::{Sampler, trial_rng};
use crate::space::{Assignment, SearchSpace, normal_cdf, normal_pdf};
use crate::{Goal, Observation, TuneError};

/// At most this many finished trials train the model (the best ones): the cost of a fit
/// grows with the cube of the count.
const MAX_POINTS: usize = 300;
const MIN_LENGTHSCALE: f64 = 0.05;
const MAX_LENGTHSCALE: f64 = 20.0;
const MIN_NOISE: f64 = 1e-6;
const MAX_NOISE: f64 = 0.1;

pub struct BayesianSampler {
    space: SearchSpace,
    goal: Goal,
    seed: u64,
    /// Trials drawn from the Latin hypercube before the model takes over.
    pub initial: usize,
    /// The fit in use: length scales per parameter, and the noise.
    lengthscales: Vec<f64>,
    noise: f64,
    /// The last fit under each transform, where the next fit starts.
    fits: [(Vec<f64>, f64); 2],
}

/// How scores are turned into what the model is fitted to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transform {
    Linear = 0,
    Log = 1,
}

impl Transform {
    /// The standardized transformed scores, and the log of the transform's Jacobian
    /// (`Σ ln |dz/dy|`), which makes likelihoods under different transforms comparable.
    fn apply(self, y: &[f64]) -> (Vec<f64>, f64) {
        let n = y.len() as f64;
        let min = y.iter().copied().fold(f64::INFINITY, f64::min);
        let max = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let shift = ((max - min) * 1e-3).max(1e-12);
        let t: Vec<f64> = match self {
            Transform::Linear => y.to_vec(),
            Transform::Log => y.iter().map(|v| (v - min + shift).ln()).collect(),
        };
        let mean = t.iter().sum::<f64>() / n;
        let sd = (t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-12);
        let z = t.iter().map(|x| (x - mean) / sd).collect();
        let log_jacobian = match self {
            Transform::Linear => -n * sd.ln(),
            Transform::Log => -n * sd.ln() - y.iter().map(|v| (v - min + shift).ln()).sum::<f64>(),
        };
        (z, log_jacobian)
    }
}

impl BayesianSampler {
    pub fn new(space: SearchSpace, goal: Goal, seed: u64) -> Result<BayesianSampler, TuneError> {
        space.check()?;
        let d = space.parameters.len();
        Ok(BayesianSampler {
            initial: (2 * d).clamp(5, 10),
            lengthscales: vec![0.3; d],
            noise: 1e-3,
            fits: [(vec![0.3; d], 1e-3), (vec![0.3; d], 1e-3)],
            space,
            goal,
            seed,
        })
    }

    fn categorical(&self) -> Vec<bool> {
        self.space.parameters.iter().map(|p| p.distribution.categories().is_some()).collect()
    }

    /// The Latin-hypercube point of trial `trial` (< `initial`).
    fn initial_point(&self, trial: usize) -> Vec<f64> {
        let n = self.initial;
        let mut rng = trial_rng(self.seed ^ 0x9e37_79b9_7f4a_7c15, 0);
        let mut point = Vec::with_capacity(self.space.parameters.len());
        for _ in &self.space.parameters {
            // A seeded permutation of the n strata for this parameter.
            let mut strata: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                let j = rng.random_range(0..=i);
                strata.swap(i, j);
            }
            let jitter: f64 = trial_rng(self.seed, trial).random::<f64>();
            point.push((strata[trial] as f64 + jitter) / n as f64);
        }
        point
    }
}

impl Sampler for BayesianSampler {
    fn suggest(
        &mut self,
        trial: usize,
        finished: &[Observation],
        pending: &[Assignment],
    ) -> Result<Assignment, TuneError> {
        let mut rng = trial_rng(self.seed, trial);
        // Finished trials as points of the unit cube and their losses.
        let mut points: Vec<(Vec<f64>, Option<f64>)> = finished
            .iter()
            .filter_map(|o| {
                let u = self.space.to_unit(&o.assignment)?;
                Some((u, o.value.filter(|v| v.is_finite()).map(|v| self.goal.loss(v))))
            })
            .collect();
        let scored = points.iter().filter(|(_, v)| v.is_some()).count();
        if trial < self.initial || scored < 2 {
            let u = if trial < self.initial {
                self.initial_point(trial)
            } else {
                self.space.parameters.iter().map(|_| rng.random::<f64>()).collect()
            };
            return Ok(self.space.from_unit(&u));
        }
        // Failed trials count as the worst seen.
        let worst = points.iter().filter_map(|(_, v)| *v).fold(f64::MIN, f64::max);
        for (_, v) in points.iter_mut() {
            v.get_or_insert(worst);
        }
        let mut data: Vec<(Vec<f64>, f64)> = points.into_iter().map(|(u, v)| (u, v.unwrap_or(worst))).collect();
        if data.len() > MAX_POINTS {
            data.sort_by(|a, b| a.1.total_cmp(&b.1));
            data.truncate(MAX_POINTS);
        }
        let losses: Vec<f64> = data.iter().map(|(_, v)| *v).collect();
        let xs: Vec<Vec<f64>> = data.into_iter().map(|(u, _)| u).collect();
        let categorical = self.categorical();
        let d = self.space.parameters.len();

        // The scores as the model sees them: standardized as they are, or their logarithm
        // standardized (for scores spanning orders of magnitude, such as a loss that
        // diverges), whichever explains the data better (likelihoods compared in the scores'
        // own units, so the transform's stretch counts). Each is fitted from its last fit and,
        // while fits are cheap, from a fresh start too.
        let fresh_too = xs.len() <= 100;
        let mut candidates: Vec<(f64, Vec<f64>, Transform)> = Vec::with_capacity(2);
        for (slot, transform) in [Transform::Linear, Transform::Log].into_iter().enumerate() {
            let (z, log_jacobian) = transform.apply(&losses);
            let (start_ls, start_noise) = &self.fits[slot];
            let mut fitted = fit(&xs, &z, &categorical, start_ls, *start_noise);
            if fresh_too {
                let fresh = fit(&xs, &z, &categorical, &vec![0.3; d], 1e-3);
                if fresh.2 > fitted.2 {
                    fitted = fresh;
                }
            }
            let score = fitted.2 + log_jacobian;
            self.fits[slot] = (fitted.0, fitted.1);
            candidates.push((score, z, transform));
        }
        let linear = candidates.remove(0);
        let (_, z, transform) = match candidates.pop() {
            Some(log) if log.0 > linear.0 => log,
            _ => linear,
        };
        let slot = transform as usize;
        self.lengthscales = self.fits[slot].0.clone();
        self.noise = self.fits[slot].1;

        // Running trials as if they scored the best so far.
        let best_z = z.iter().copied().fold(f64::INFINITY, f64::min);
        let mut train_x = xs.clone();
        let mut train_z = z.clone();
        for a in pending {
            if let Some(u) = self.space.to_unit(a) {
                train_x.push(u);
                train_z.push(best_z);
            }
        }
        let Some(model) = Gp::new(&train_x, &train_z, &categorical, &self.lengthscales, self.noise) else {
            let u: Vec<f64> = self.space.parameters.iter().map(|_| rng.random::<f64>()).collect();
            return Ok(self.space.from_unit(&u));
        };
        let ei = |u: &[f64]| {
            let (mean, var) = model.predict(u);
            expected_improvement(best_z, mean, var.sqrt())
        };

        // Candidates: random points, and perturbations of the best points.
        let mut order: Vec<usize> = (0..xs.len()).collect();
        order.sort_by(|a, b| z[*a].total_cmp(&z[*b]));
        let mut candidates: Vec<Vec<f64>> = (0..512).map(|_| (0..d).map(|_| rng.random::<f64>()).collect()).collect();
        for &i in order.iter().take(5) {
            for scale in [0.15, 0.05, 0.01] {
                for _ in 0..40 {
                    candidates.push(perturb(&xs[i], scale, &categorical, &mut rng));
                }
            }
        }
        let mut scored: Vec<(f64, Vec<f64>)> = candidates.into_iter().map(|c| (ei(&c), c)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(5);
        // Local refinement of the best few.
        for (value, point) in scored.iter_mut() {
            let mut scale = 0.05;
            for _ in 0..4 {
                for _ in 0..12 {
                    let c = perturb(point, scale, &categorical, &mut rng);
                    let v = ei(&c);
                    if v > *value {
                        *value = v;
                        *point = c;
                    }
                }
                scale *= 0.4;
            }
        }
        let best = scored.into_iter().max_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, p)| p);
        let u = best.unwrap_or_else(|| (0..d).map(|_| rng.random::<f64>()).collect());
        Ok(self.space.from_unit(&u))
    }
}

fn perturb(point: &[f64], scale: f64, categorical: &[bool], rng: &mut impl RngExt) -> Vec<f64> {
    point
        .iter()
        .zip(categorical)
        .map(|(x, cat)| {
            if *cat {
                if rng.random::<f64>() < 0.2 { rng.random::<f64>() } else { *x }
            } else {
                // A normal step by Box–Muller, reflected into [0, 1].
                let (a, b): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random::<f64>());
                let step = (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos() * scale;
                let mut y = x + step;
                if y < 0.0 {
                    y = -y;
                }
                if y > 1.0 {
                    y = 2.0 - y;
                }
                y.clamp(0.0, 1.0)
            }
        })
        .collect()
}

fn expected_improvement(best: f64, mean: f64, sd: f64) -> f64 {
    if sd <= 1e-12 {
        return (best - mean).max(0.0);
    }
    let g = (best - mean) / sd;
    (best - mean) * normal_cdf(g) + sd * normal_pdf(g)
}

/// The Matérn-5/2 kernel between two points (unit signal variance).
fn kernel(a: &[f64], b: &[f64], categorical: &[bool], lengthscales: &[f64]) -> f64 {
    let mut r2 = 0.0;
    for i in 0..a.len() {
        let d = if categorical[i] {
            // Same cell of the unit interval: the same category.
            if cell(a[i]) == cell(b[i]) { 0.0 } else { 1.0 }
        } else {
            a[i] - b[i]
        };
        r2 += d * d / (lengthscales[i] * lengthscales[i]);
    }
    let r = (5.0 * r2).sqrt();
    (1.0 + r + r * r / 3.0) * (-r).exp()
}

/// Categorical coordinates are compared by a fine grid, enough for any choice list.
fn cell(u: f64) -> i64 {
    (u * 1e6) as i64
}

struct Gp<'a> {
    xs: &'a [Vec<f64>],
    categorical: &'a [bool],
    lengthscales: &'a [f64],
    chol: Vec<f64>,
    alpha: Vec<f64>,
    n: usize,
    /// The mean the data was centred on.
    mean: f64,
}

impl<'a> Gp<'a> {
    fn new(
        xs: &'a [Vec<f64>],
        z: &[f64],
        categorical: &'a [bool],
        lengthscales: &'a [f64],
        noise: f64,
    ) -> Option<Gp<'a>> {
        let n = xs.len();
        let mean = z.iter().sum::<f64>() / n as f64;
        let y: Vec<f64> = z.iter().map(|v| v - mean).collect();
        let chol = cholesky(&gram(xs, categorical, lengthscales, noise), n)?;
        let alpha = solve(&chol, n, &y);
        Some(Gp { xs, categorical, lengthscales, chol, alpha, n, mean })
    }

    /// The posterior mean and variance at `u`.
    fn predict(&self, u: &[f64]) -> (f64, f64) {
        let k: Vec<f64> = self.xs.iter().map(|x| kernel(x, u, self.categorical, self.lengthscales)).collect();
        let mean = self.mean + k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum::<f64>();
        let v = forward(&self.chol, self.n, &k);
        let var = (1.0 - v.iter().map(|x| x * x).sum::<f64>()).max(1e-12);
        (mean, var)
    }
}

fn gram(xs: &[Vec<f64>], categorical: &[bool], lengthscales: &[f64], noise: f64) -> Vec<f64> {
    let n = xs.len();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = kernel(&xs[i], &xs[j], categorical, lengthscales);
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
        k[i * n + i] += noise + 1e-8;
    }
    k
}

/// The lower Cholesky factor of a symmetric positive-definite `n × n` matrix (row-major);
/// `None` when it is not positive definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[i * n + j];
            let (ri, rj) = (&l[i * n..i * n + j], &l[j * n..j * n + j]);
            sum -= ri.iter().zip(rj).map(|(x, y)| x * y).sum::<f64>();
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L v = b`.
fn forward(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut v = vec![0.0; n];
    for i in 0..n {
        let s: f64 = l[i * n..i * n + i].iter().zip(&v[..i]).map(|(x, y)| x * y).sum();
        v[i] = (b[i] - s) / l[i * n + i];
    }
    v
}

/// Solves `L Lᵀ x = b`.
fn solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let v = forward(l, n, b);
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = v[i];
        for k in i + 1..n {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
    x
}

/// The log marginal likelihood of centred data under the kernel (up to a constant).
fn log_likelihood(xs: &[Vec<f64>], y: &[f64], categorical: &[bool], lengthscales: &[f64], noise: f64) -> f64 {
    let n = xs.len();
    let Some(l) = cholesky(&gram(xs, categorical, lengthscales, noise), n) else { return f64::NEG_INFINITY };
    let alpha = solve(&l, n, y);
    let fit: f64 = y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
    let log_det: f64 = (0..n).map(|i| l[i * n + i].ln()).sum();
    -0.5 * fit - log_det
}

/// Length scales and noise by coordinate search on the log likelihood, from `start`.
fn fit(xs: &[Vec<f64>], z: &[f64], categorical: &[bool], start: &[f64], noise: f64) -> (Vec<f64>, f64, f64) {
    let n = xs.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let y: Vec<f64> = z.iter().map(|v| v - mean).collect();
    let mut ls = start.to_vec();
    let mut noise = noise;
    let mut best = log_likelihood(xs, &y, categorical, &ls, noise);
    // Fewer rounds when each likelihood costs more.
    let rounds = if xs.len() > 120 { 1 } else { 2 };
    let mut step = 2.0_f64;
    for _ in 0..rounds {
        for i in 0..=ls.len() {
            for factor in [step, 1.0 / step] {
                let mut trial_ls = ls.clone();
                let mut trial_noise = noise;
                if i < ls.len() {
                    trial_ls[i] = (ls[i] * factor).clamp(MIN_LENGTHSCALE, MAX_LENGTHSCALE);
                } else {
                    trial_noise = (noise * factor * factor).clamp(MIN_NOISE, MAX_NOISE);
                }
                let v = log_likelihood(xs, &y, categorical, &trial_ls, trial_noise);
                if v > best {
                    best = v;
                    ls = trial_ls;
                    noise = trial_noise;
                    break;
                }
            }
        }
        step = step.sqrt();
    }
    (ls, noise, best)
}
