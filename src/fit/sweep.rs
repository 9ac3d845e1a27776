//! Defines the choice of `min_score` for fitted weights: the backtest at
//! a range of thresholds (the quantiles of the candidates' scores, so
//! every step drops about as many candidates), each scored by the
//! pipeline exactly as `eval` scores (caps, positions and all), and the
//! threshold that maximises the objective among those whose user coverage
//! reaches the floor.

use rayon::prelude::*;

use crate::config::{ModelConfig, SelectionConfig};
use crate::error::Result;
use crate::eval::{self, Metrics, World};
use crate::fit::data::Rows;
use crate::scoring::SocialV1;
use crate::tune::grid::minimised;

/// Thresholds tried: quantiles 0, 1/(STEPS−1), ..., 1 of the scores.
const STEPS: usize = 41;

/// One `min_score` and the backtest's figures with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub min_score: f64,
    pub metrics: Metrics,
}

/// The backtest at each threshold, ascending (the lowest lets every
/// candidate through).
pub fn sweep(
    world: &World,
    rows: &Rows,
    model: &ModelConfig,
    selection: &SelectionConfig,
) -> Result<Vec<Threshold>> {
    let scorer = SocialV1::new(model);
    let mut scores: Vec<f64> = rows.features.iter().map(|f| scorer.score(f)).collect();
    scores.sort_by(f64::total_cmp);
    scores.dedup();
    let mut thresholds: Vec<f64> = match scores.len() {
        0 => vec![selection.min_score],
        n => (0..STEPS)
            .filter_map(|k| scores.get(k * (n - 1) / (STEPS - 1)).copied())
            .collect(),
    };
    thresholds.dedup();
    thresholds
        .par_iter()
        .map(|&min_score| {
            let selection = SelectionConfig {
                min_score,
                ..selection.clone()
            };
            let (metrics, _) = eval::score_model(world, model, &selection)?;
            Ok(Threshold { min_score, metrics })
        })
        .collect()
}

/// The index of the best threshold for `objective` among those whose user
/// coverage is at least `floor` (the lowest such on a tie), and whether
/// any reaches it; when none does, the one with the most coverage.
pub fn choose(sweep: &[Threshold], objective: &str, floor: f64) -> (usize, bool) {
    let value = |t: &Threshold| t.metrics.get(objective).unwrap_or(f64::NAN);
    let mut best: Option<usize> = None;
    for (i, t) in sweep.iter().enumerate() {
        if t.metrics.user_coverage < floor {
            continue;
        }
        let better = match best.and_then(|b| sweep.get(b)) {
            None => true,
            Some(b) if minimised(objective) => value(t) < value(b),
            Some(b) => value(t) > value(b),
        };
        if better {
            best = Some(i);
        }
    }
    match best {
        Some(i) => (i, true),
        None => {
            let most = (0..sweep.len())
                .max_by(|&a, &b| {
                    sweep[a]
                        .metrics
                        .user_coverage
                        .total_cmp(&sweep[b].metrics.user_coverage)
                        .then(b.cmp(&a))
                })
                .unwrap_or(0);
            (most, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min_score: f64, precision: f64, user_coverage: f64) -> Threshold {
        Threshold {
            min_score,
            metrics: Metrics {
                precision,
                user_coverage,
                ..Metrics::default()
            },
        }
    }

    #[test]
    fn choose_keeps_to_the_floor() {
        let sweep = [t(0.0, 0.1, 0.9), t(1.0, 0.3, 0.6), t(2.0, 0.5, 0.2)];
        assert_eq!(choose(&sweep, "precision", 0.5), (1, true));
        assert_eq!(choose(&sweep, "precision", 0.0), (2, true));
        assert_eq!(choose(&sweep, "precision", 0.95), (0, false));
    }
}
