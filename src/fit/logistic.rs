//! Defines the regression of `fit`: an L2-regularised logistic regression
//! of the label on the four standardised terms, by `smartcore` (its L-BFGS
//! minimises `Σ log-loss + alpha/2·|β|²`, the intercept not penalised),
//! and the weights in the score's units.
//!
//! With `z_j = (x_j − mean_j) / sd_j`, the fitted log-odds are
//! `b0 + Σ β_j·z_j = Σ (β_j / sd_j)·x_j + constant`, so `w_j = β_j / sd_j`
//! makes the score the fitted log-odds less a constant: the order of
//! candidates is the regression's, and `min_score` is chosen afterwards. A
//! term with no spread (every row equal) gets the weight 0.

use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

use crate::error::{Error, Result};
use crate::fit::data::Training;

/// Below this spread a term counts as constant.
const NO_SPREAD: f64 = 1e-12;

/// The means and standard deviations (population) of the four terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    pub mean: [f64; 4],
    pub sd: [f64; 4],
}

impl Scaling {
    /// The scaling of `x`.
    pub fn of(x: &[[f64; 4]]) -> Scaling {
        let n = x.len().max(1) as f64;
        let mut mean = [0.0; 4];
        for row in x {
            for j in 0..4 {
                mean[j] += row[j];
            }
        }
        mean = mean.map(|s| s / n);
        let mut var = [0.0; 4];
        for row in x {
            for j in 0..4 {
                var[j] += (row[j] - mean[j]).powi(2);
            }
        }
        Scaling {
            mean,
            sd: var.map(|v| (v / n).sqrt()),
        }
    }

    /// `x` standardised (a constant term becomes 0).
    pub fn z(&self, x: &[f64; 4]) -> [f64; 4] {
        std::array::from_fn(|j| {
            if self.sd[j] < NO_SPREAD {
                0.0
            } else {
                (x[j] - self.mean[j]) / self.sd[j]
            }
        })
    }
}

/// A fitted regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub intercept: f64,
    /// Per standardised term.
    pub beta: [f64; 4],
    /// In the score's units: `beta / sd` (0 for a constant term).
    pub weights: [f64; 4],
}

impl Fit {
    /// The fitted probability of a purchase for terms `x`.
    pub fn probability(&self, scaling: &Scaling, x: &[f64; 4]) -> f64 {
        let z = scaling.z(x);
        let logit = self.intercept + (0..4).map(|j| self.beta[j] * z[j]).sum::<f64>();
        1.0 / (1.0 + (-logit).exp())
    }
}

/// Fits the rows `x`, `y`, each taken `times(i)` times (a bootstrap's
/// repeats; 1 for the plain fit), standardised by `scaling`, with the L2
/// penalty `l2` on the standardised coefficients.
pub fn fit(
    x: &[[f64; 4]],
    y: &[bool],
    times: impl Fn(usize) -> usize,
    scaling: &Scaling,
    l2: f64,
) -> Result<Fit> {
    let mut values: Vec<f64> = Vec::new();
    let mut labels: Vec<i32> = Vec::new();
    for (i, (row, &label)) in x.iter().zip(y).enumerate() {
        for _ in 0..times(i) {
            values.extend(scaling.z(row));
            labels.push(i32::from(label));
        }
    }
    let positives = labels.iter().filter(|&&l| l == 1).count();
    if positives == 0 || positives == labels.len() {
        return Err(Error::Usage(format!(
            "cannot fit: of {} candidates at the cut, {positives} were bought in the holdout; \
             a fit needs both bought and not bought (a longer holdout may help)",
            labels.len()
        )));
    }
    let failed = |e: smartcore::error::Failed| Error::Internal(format!("logistic regression: {e}"));
    let matrix = DenseMatrix::new(labels.len(), 4, values, false).map_err(failed)?;
    let params = LogisticRegressionParameters::default().with_alpha(l2);
    let model = LogisticRegression::fit(&matrix, &labels, params).map_err(failed)?;
    let beta: [f64; 4] = std::array::from_fn(|j| *model.coefficients().get((0, j)));
    let intercept = *model.intercept().get((0, 0));
    let weights = std::array::from_fn(|j| {
        if scaling.sd[j] < NO_SPREAD {
            0.0
        } else {
            beta[j] / scaling.sd[j]
        }
    });
    if !beta
        .iter()
        .chain(&weights)
        .chain([&intercept])
        .all(|v| v.is_finite())
    {
        return Err(Error::Internal(format!(
            "logistic regression did not converge: coefficients {beta:?}"
        )));
    }
    Ok(Fit {
        intercept,
        beta,
        weights,
    })
}

/// [`fit`] on a training sample, its intercept moved back to the whole
/// rows' odds (`+ ln(rate)`).
pub fn fit_training(
    training: &Training,
    times: impl Fn(usize) -> usize,
    scaling: &Scaling,
    l2: f64,
) -> Result<Fit> {
    let mut fit = fit(&training.x, &training.y, times, scaling, l2)?;
    fit.intercept += training.rate.ln();
    Ok(fit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;

    #[test]
    fn a_planted_logistic_signal_is_recovered() {
        // log-odds = -1 + 2·x0 - 1·x2 (x1, x3 pure noise), x on various scales.
        let mut rng = Rng(3);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            let row = [
                rng.normal() * 3.0,
                rng.normal(),
                rng.normal() * 0.5 + 4.0,
                rng.normal(),
            ];
            let logit = -1.0 + 2.0 * row[0] / 3.0 - (row[2] - 4.0) / 0.5;
            y.push(rng.chance(1.0 / (1.0 + (-logit).exp())));
            x.push(row);
        }
        let scaling = Scaling::of(&x);
        let f = fit(&x, &y, |_| 1, &scaling, 1.0).unwrap();
        assert!((f.beta[0] - 2.0).abs() < 0.25, "{f:?}");
        assert!((f.beta[2] + 1.0).abs() < 0.2, "{f:?}");
        assert!(f.beta[1].abs() < 0.15 && f.beta[3].abs() < 0.15, "{f:?}");
        // Score units: beta / sd.
        assert!((f.weights[0] - f.beta[0] / scaling.sd[0]).abs() < 1e-12);
    }
}
