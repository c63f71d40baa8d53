//! The sampling algorithms of a sweep behind one interface: random (seeded), grid, and
//! Bayesian (see [`crate::bayes`]).

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use crate::space::{Assignment, Distribution, SearchSpace};
use crate::{Goal, Observation, TuneError};

/// What suggests the values of the next trial.
pub trait Sampler: Send {
    /// The values of trial number `trial` (0-based), given the trials that finished and the
    /// ones still running (`pending`).
    fn suggest(
        &mut self,
        trial: usize,
        finished: &[Observation],
        pending: &[Assignment],
    ) -> Result<Assignment, TuneError>;
}

/// The stream of trial `trial` of a sweep seeded with `seed`: the same values whatever order
/// trials are asked for in.
pub fn trial_rng(seed: u64, trial: usize) -> Pcg64 {
    let mut rng = Pcg64::seed_from_u64(seed);
    rng.advance(trial as u128 * (1 << 40));
    rng
}

/// Independent uniform draws of every parameter.
pub struct RandomSampler {
    pub space: SearchSpace,
    pub seed: u64,
}

impl RandomSampler {
    pub fn new(space: SearchSpace, seed: u64) -> Result<RandomSampler, TuneError> {
        space.check()?;
        Ok(RandomSampler { space, seed })
    }
}

impl Sampler for RandomSampler {
    fn suggest(&mut self, trial: usize, _: &[Observation], _: &[Assignment]) -> Result<Assignment, TuneError> {
        let mut rng = trial_rng(self.seed, trial);
        let u: Vec<f64> = self.space.parameters.iter().map(|_| rng.random::<f64>()).collect();
        Ok(self.space.from_unit(&u))
    }
}

/// Every combination of choice values, in order (the first parameter varies slowest).
pub struct GridSampler {
    choices: Vec<(String, Vec<serde_json::Value>)>,
    size: usize,
}

impl GridSampler {
    pub fn new(space: SearchSpace) -> Result<GridSampler, TuneError> {
        space.check()?;
        let mut choices = Vec::with_capacity(space.parameters.len());
        for p in space.parameters {
            let Distribution::Choice { values } = p.distribution else {
                return Err(TuneError::Space(format!(
                    "{}: grid sampling takes choice parameters only (use random or bayesian)",
                    p.name
                )));
            };
            choices.push((p.name, values));
        }
        let size = choices.iter().fold(1usize, |n, (_, v)| n.saturating_mul(v.len()));
        Ok(GridSampler { choices, size })
    }

    /// How many points the grid has.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl Sampler for GridSampler {
    fn suggest(&mut self, trial: usize, _: &[Observation], _: &[Assignment]) -> Result<Assignment, TuneError> {
        if trial >= self.size {
            return Err(TuneError::Exhausted(self.size));
        }
        let mut rest = trial;
        let mut out = Vec::with_capacity(self.choices.len());
        for (i, (name, values)) in self.choices.iter().enumerate() {
            let below: usize = self.choices[i + 1..].iter().map(|(_, v)| v.len()).product();
            out.push((name.clone(), values[rest / below].clone()));
            rest %= below;
        }
        Ok(out)
    }
}

/// The best finished trial by `goal` (first of equals), if any reported a value.
pub fn best(goal: Goal, finished: &[Observation]) -> Option<(usize, f64)> {
    finished.iter().enumerate().filter_map(|(i, o)| o.value.filter(|v| v.is_finite()).map(|v| (i, v))).fold(
        None,
        |acc, (i, v)| match acc {
            Some((_, b)) if !goal.better(v, b) => acc,
            _ => Some((i, v)),
        },
    )
}
