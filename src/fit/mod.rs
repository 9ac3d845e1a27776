//! `boughtby fit`: the score's weights fitted on the backtest's split.
//!
//! At the cut `T − D` the nightly job's candidates (with every filter) and
//! their four terms are the rows, the holdout's purchases the labels
//! (`data`); an L2-regularised logistic regression on the standardised
//! terms gives `w_proof`, `w_buyers`, `w_popularity`, `w_price` in the
//! score's units (`logistic`); for each `half_life_days` and `mutual_bonus`
//! of a small grid (the terms depend on them) `min_score` is then chosen
//! on the same split to maximise an objective subject to a user-coverage
//! floor (`sweep`), and the grid point with the best objective wins. The
//! result is compared, with intervals, to the job as it is and the
//! baselines; `report` writes best.toml and report.html.

pub mod data;
pub mod logistic;
pub mod report;
pub mod sweep;

use crate::config::{Job, ModelConfig, SelectionConfig};
use crate::error::{Error, Result};
use crate::eval::{self, Bootstrap, Evaluation, World, bootstrap};
use crate::tune::grid::minimised;

pub use data::{Rows, TERMS, Training};
pub use logistic::{Fit, Scaling};
pub use sweep::Threshold;

/// What `fit` is asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub holdout_days: i64,
    /// A metric of eval: what `min_score` (and the grid point) maximises
    /// (merchant_gini: minimises).
    pub objective: &'static str,
    pub min_user_coverage: f64,
    pub bootstrap: Bootstrap,
    /// The L2 penalty on the standardised coefficients.
    pub l2: f64,
    /// At most this many unbought rows are fitted on (a seeded sample; 0:
    /// all): see [`Rows::training`].
    pub max_negatives: usize,
    /// The grid of shape settings; empty: the job's own.
    pub half_life_days: Vec<f64>,
    pub mutual_bonus: Vec<f64>,
}

/// One point of the shape grid, fitted and swept.
#[derive(Debug, Clone)]
pub struct Trial {
    pub half_life_days: f64,
    pub mutual_bonus: f64,
    pub rows: usize,
    pub positives: usize,
    /// Rows fitted on, and the share of unbought rows among them.
    pub fitted_rows: usize,
    pub rate: f64,
    pub scaling: Scaling,
    pub fit: Fit,
    /// Mean log-loss of the fit on its rows.
    pub log_loss: f64,
    /// `min_score` candidates, ascending, with their backtest figures.
    pub sweep: Vec<Threshold>,
    /// The chosen threshold (index into `sweep`).
    pub chosen: usize,
    /// Whether the chosen threshold reaches the coverage floor.
    pub meets_floor: bool,
}

impl Trial {
    /// The objective at the chosen threshold.
    pub fn objective(&self, objective: &str) -> f64 {
        self.sweep
            .get(self.chosen)
            .and_then(|t| t.metrics.get(objective))
            .unwrap_or(f64::NAN)
    }
}

/// A calibration bin: rows by predicted probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    pub rows: usize,
    pub predicted: f64,
    pub observed: f64,
}

/// The result of `fit`.
pub struct Fitted {
    pub job: Job,
    pub options: Options,
    pub trials: Vec<Trial>,
    /// The winning trial.
    pub best: usize,
    /// The job's settings with the fitted ones.
    pub model: ModelConfig,
    pub selection: SelectionConfig,
    /// Per term: 95% intervals of the weight (score units) and of the
    /// standardised coefficient, from refits on resampled users.
    pub weight_ci: Option<[[f64; 2]; 4]>,
    pub beta_ci: Option<[[f64; 2]; 4]>,
    /// Resamples whose refit was impossible (one class only), left out.
    pub resamples_skipped: usize,
    /// Ten equal-count bins of the winning fit's rows.
    pub calibration: Vec<Bin>,
    /// The fitted settings, the job as it is and the baselines, on the
    /// split, with intervals and the fitted figures' paired differences.
    pub comparison: Evaluation,
}

/// The names of the comparison's rows.
pub const FITTED: &str = "fitted";
pub const JOB: &str = "job";

/// Fits `job`'s weights on its backtest split.
pub fn fit(job: &Job, options: Options) -> Result<Fitted> {
    if eval::METRICS.iter().all(|m| *m != options.objective) {
        return Err(Error::Usage(format!(
            "--objective must be one of {}, not {}",
            eval::METRICS.join(", "),
            options.objective
        )));
    }
    if !(options.l2.is_finite() && options.l2 >= 0.0) {
        return Err(Error::Usage(format!(
            "--l2 must be a finite number >= 0, not {}",
            options.l2
        )));
    }
    let halves = or_job(&options.half_life_days, job.model.half_life_days);
    let bonuses = or_job(&options.mutual_bonus, job.model.mutual_bonus);
    if let Some(h) = halves.iter().find(|h| !(h.is_finite() && **h > 0.0)) {
        return Err(Error::Usage(format!(
            "--half-life-days must be finite and > 0, not {h}"
        )));
    }
    if let Some(m) = bonuses.iter().find(|m| !m.is_finite()) {
        return Err(Error::Usage(format!(
            "--mutual-bonus must be finite, not {m}"
        )));
    }
    let mut world = World::load(job, options.holdout_days)?;

    let mut trials = Vec::new();
    for &half_life_days in &halves {
        for &mutual_bonus in &bonuses {
            let shape = ModelConfig {
                half_life_days,
                mutual_bonus,
                ..job.model.clone()
            };
            world.prepare(&shape)?;
            let rows = data::rows(&world, &shape, &job.selection);
            let scaling = Scaling::of(&rows.x);
            let training = rows.training(options.max_negatives, options.bootstrap.seed);
            let fit = logistic::fit_training(&training, |_| 1, &scaling, options.l2)?;
            let model = with_weights(&shape, &fit);
            let sweep = sweep::sweep(&world, &rows, &model, &job.selection)?;
            let (chosen, meets_floor) =
                sweep::choose(&sweep, options.objective, options.min_user_coverage);
            let trial = Trial {
                half_life_days,
                mutual_bonus,
                rows: rows.len(),
                positives: rows.positives(),
                fitted_rows: training.y.len(),
                rate: training.rate,
                log_loss: log_loss(&fit, &scaling, &rows),
                scaling,
                fit,
                sweep,
                chosen,
                meets_floor,
            };
            trials.push(trial);
        }
    }
    let best = best_of(&trials, &options);
    let trial = trials
        .get(best)
        .ok_or_else(|| Error::Internal("fit: no grid point".into()))?;
    let shape = ModelConfig {
        half_life_days: trial.half_life_days,
        mutual_bonus: trial.mutual_bonus,
        ..job.model.clone()
    };
    let model = with_weights(&shape, &trial.fit);
    world.prepare(&shape)?;
    let best_rows = data::rows(&world, &shape, &job.selection);
    let selection = SelectionConfig {
        min_score: trial
            .sweep
            .get(trial.chosen)
            .map(|t| t.min_score)
            .unwrap_or(job.selection.min_score),
        ..job.selection.clone()
    };

    // Refits on resampled users: the coefficients' intervals.
    let (weight_ci, beta_ci, resamples_skipped) = if options.bootstrap.on() {
        let training = best_rows.training(options.max_negatives, options.bootstrap.seed);
        refit_intervals(&world, &training, &trial.scaling, &options)
    } else {
        (None, None, 0)
    };
    let calibration = calibration(&trial.fit, &trial.scaling, &best_rows);

    // The fitted settings, the job as it is, `popular` for the fitted
    // settings' users and `social_count` for the job's settings (with the
    // fitted min_score, in the fitted score's units, it would say little).
    let job_sets = eval::baseline_sets(&mut world, &job.model, &job.selection)?;
    let fitted_sets = eval::baseline_sets(&mut world, &model, &selection)?;
    let mut sets = Vec::new();
    for (name, set, from) in [
        (FITTED, 0, &fitted_sets),
        (JOB, 0, &job_sets),
        ("popular", 1, &fitted_sets),
        ("social_count", 2, &job_sets),
    ] {
        let (_, contributions) = from
            .get(set)
            .ok_or_else(|| Error::Internal("fit: a baseline is missing".into()))?;
        sets.push((name.to_string(), contributions.clone()));
    }
    let results = eval::compare(&world, &sets, options.bootstrap);
    let comparison = world.evaluation(results, options.bootstrap);

    Ok(Fitted {
        job: job.clone(),
        options,
        trials,
        best,
        model,
        selection,
        weight_ci,
        beta_ci,
        resamples_skipped,
        calibration,
        comparison,
    })
}

fn or_job(given: &[f64], job: f64) -> Vec<f64> {
    if given.is_empty() {
        vec![job]
    } else {
        given.to_vec()
    }
}

/// `shape` with the fitted weights.
pub fn with_weights(shape: &ModelConfig, fit: &Fit) -> ModelConfig {
    let [w_proof, w_buyers, w_popularity, w_price] = fit.weights;
    ModelConfig {
        w_proof,
        w_buyers,
        w_popularity,
        w_price,
        ..shape.clone()
    }
}

/// Whether trial `a` beats `b`: reaching the floor first, then the
/// objective (strictly; the earlier grid point keeps a tie).
fn beats(a: &Trial, b: &Trial, options: &Options) -> bool {
    if a.meets_floor != b.meets_floor {
        return a.meets_floor;
    }
    let (x, y) = (
        a.objective(options.objective),
        b.objective(options.objective),
    );
    if minimised(options.objective) {
        x < y
    } else {
        x > y
    }
}

fn best_of(trials: &[Trial], options: &Options) -> usize {
    let mut best = 0;
    for (i, t) in trials.iter().enumerate().skip(1) {
        if let Some(b) = trials.get(best)
            && beats(t, b, options)
        {
            best = i;
        }
    }
    best
}

/// The mean log-loss of `fit` on `rows`.
fn log_loss(fit: &Fit, scaling: &Scaling, rows: &Rows) -> f64 {
    let total: f64 = rows
        .x
        .iter()
        .zip(&rows.y)
        .map(|(x, &y)| {
            let p = fit.probability(scaling, x).clamp(1e-15, 1.0 - 1e-15);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / rows.len().max(1) as f64
}

/// Ten bins of equal row counts by predicted probability: mean predicted
/// against observed rate.
fn calibration(fit: &Fit, scaling: &Scaling, rows: &Rows) -> Vec<Bin> {
    let mut scored: Vec<(f64, bool)> = rows
        .x
        .iter()
        .zip(&rows.y)
        .map(|(x, &y)| (fit.probability(scaling, x), y))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = scored.len();
    (0..10)
        .filter_map(|k| {
            let part = scored.get(k * n / 10..(k + 1) * n / 10)?;
            if part.is_empty() {
                return None;
            }
            let m = part.len() as f64;
            Some(Bin {
                rows: part.len(),
                predicted: part.iter().map(|r| r.0).sum::<f64>() / m,
                observed: part.iter().filter(|r| r.1).count() as f64 / m,
            })
        })
        .collect()
}

/// The weights' and coefficients' 95% intervals from refits on resampled
/// users (each user's candidates taken as often as the user is drawn),
/// and how many resamples could not be refitted.
#[allow(clippy::type_complexity)]
fn refit_intervals(
    world: &World,
    training: &Training,
    scaling: &Scaling,
    options: &Options,
) -> (Option<[[f64; 2]; 4]>, Option<[[f64; 2]; 4]>, usize) {
    let refits =
        options
            .bootstrap
            .resample(&world.ctx.scored_users, world.ctx.users.len(), |weights| {
                let times = |i: usize| {
                    training
                        .user
                        .get(i)
                        .and_then(|&u| weights.get(u as usize))
                        .map_or(0, |&w| w as usize)
                };
                logistic::fit_training(training, times, scaling, options.l2).ok()
            });
    let done: Vec<Fit> = refits.iter().flatten().copied().collect();
    let skipped = refits.len() - done.len();
    if done.is_empty() {
        return (None, None, skipped);
    }
    let ci = |of: &dyn Fn(&Fit) -> [f64; 4]| -> [[f64; 2]; 4] {
        std::array::from_fn(|j| {
            let mut values: Vec<f64> = done.iter().map(|f| of(f)[j]).collect();
            bootstrap::interval(&mut values)
        })
    };
    (Some(ci(&|f| f.weights)), Some(ci(&|f| f.beta)), skipped)
}
