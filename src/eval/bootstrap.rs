//! Defines the intervals of `eval`, `tune` and `fit`: a percentile
//! bootstrap over the users scored at the cut.
//!
//! Resample `b` (of B) draws as many users as were scored, with
//! replacement, each draw `scored[rng.below(n)]` from
//! `Rng::stream(seed, b)`; a user drawn k times counts k times in every
//! metric of that resample. Every set of slates compared (the model, the
//! baselines, tune's candidates) is measured on the same resampled users,
//! so differences are paired. The 95% interval of a figure is the 2.5th
//! and 97.5th percentiles of its B resampled values, by linear
//! interpolation between order statistics (the value at rank `q·(B − 1)`,
//! counted from 0). A difference whose interval contains 0 is "not
//! distinguishable".
//!
//! Nothing is scored again: each set's per-user figures are worked out
//! once ([`Contributions`]) and a resample only reweights them.

use rayon::prelude::*;
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::eval::metrics::{Contributions, METRICS, Metrics};
use crate::random::Rng;

/// The lower and upper percentiles of a 95% interval.
pub const QUANTILES: [f64; 2] = [0.025, 0.975];

/// How many resamples, from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootstrap {
    /// B; 0 turns the intervals off.
    pub resamples: usize,
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: 1000,
            seed: 0,
        }
    }
}

impl Bootstrap {
    /// Whether intervals are computed at all.
    pub fn on(&self) -> bool {
        self.resamples > 0
    }

    /// Calls `each(b, weight)` for every resample `b` in order, `weight`
    /// giving how many times each dense user (below `users`) was drawn from
    /// `scored`, and collects what it returns. Resamples run in parallel;
    /// each draws from its own stream, so the result does not depend on the
    /// thread count.
    pub fn resample<T: Send>(
        &self,
        scored: &[u32],
        users: usize,
        each: impl Fn(&[u32]) -> T + Sync,
    ) -> Vec<T> {
        (0..self.resamples as u64)
            .into_par_iter()
            .map_init(
                || vec![0u32; users],
                |weights, b| {
                    weights.fill(0);
                    let mut rng = Rng::stream(self.seed, b);
                    let n = scored.len() as u64;
                    for _ in 0..n {
                        // Below n, so an index of `scored`.
                        let u = scored[rng.below(n) as usize];
                        weights[u as usize] += 1;
                    }
                    each(weights)
                },
            )
            .collect()
    }

    /// The metrics of each of `sets`, per resample: `[b][set]`.
    pub fn metrics(
        &self,
        sets: &[&Contributions],
        scored: &[u32],
        users: usize,
    ) -> Vec<Vec<Metrics>> {
        let n = scored.len() as u64;
        self.resample(scored, users, |weights| {
            sets.iter()
                .map(|c| c.metrics(n, |u| u64::from(weights[u as usize])))
                .collect()
        })
    }
}

/// The 95% percentile interval of `values` (any order; sorted here), or
/// `[NaN, NaN]` for no values.
pub fn interval(values: &mut [f64]) -> [f64; 2] {
    values.sort_by(f64::total_cmp);
    QUANTILES.map(|q| quantile(values, q))
}

/// The `q` quantile of sorted `values`, interpolated linearly between the
/// order statistics around rank `q·(len − 1)`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let rank = q * last as f64;
    let below = (rank.floor() as usize).min(last);
    let above = (below + 1).min(last);
    let (a, b) = (sorted[below], sorted[above]);
    if a == b {
        a
    } else {
        a + (rank - below as f64) * (b - a)
    }
}

/// Whether an interval contains 0: the difference is not distinguishable.
pub fn contains_zero(ci: [f64; 2]) -> bool {
    ci[0] <= 0.0 && 0.0 <= ci[1]
}

/// Per metric, in eval's order, a 95% interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervals(pub Vec<(&'static str, [f64; 2])>);

/// A paired difference: the model's figure minus another's, and its
/// interval over the same resampled users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Diff {
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<[f64; 2]>,
}

impl Diff {
    /// Whether the interval (when there is one) contains 0.
    pub fn distinguishable(&self) -> Option<bool> {
        self.ci.map(|ci| !contains_zero(ci))
    }
}

/// Per metric, in eval's order, a paired difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Diffs(pub Vec<(&'static str, Diff)>);

impl Intervals {
    /// The intervals of set `set` over `draws` (`[b][set]`).
    pub fn of(draws: &[Vec<Metrics>], set: usize) -> Intervals {
        Intervals(
            METRICS
                .iter()
                .map(|&name| {
                    let mut values: Vec<f64> = draws
                        .iter()
                        .map(|d| d[set].get(name).unwrap_or(f64::NAN))
                        .collect();
                    (name, interval(&mut values))
                })
                .collect(),
        )
    }

    /// The interval of `metric`.
    pub fn get(&self, metric: &str) -> Option<[f64; 2]> {
        self.0.iter().find(|(n, _)| *n == metric).map(|(_, ci)| *ci)
    }
}

/// One metric of set `a` minus set `b`, on the same resamples: the value
/// from the full figures, the interval from `draws` (none when empty).
pub fn diff(
    metric: &str,
    a: &Metrics,
    b: &Metrics,
    draws: &[Vec<Metrics>],
    sets: (usize, usize),
) -> Diff {
    let of = |m: &Metrics| m.get(metric).unwrap_or(f64::NAN);
    let ci = (!draws.is_empty()).then(|| {
        let mut values: Vec<f64> = draws
            .iter()
            .map(|d| of(&d[sets.0]) - of(&d[sets.1]))
            .collect();
        interval(&mut values)
    });
    Diff {
        value: of(a) - of(b),
        ci,
    }
}

impl Diffs {
    /// Every metric of set `a` minus set `b`.
    pub fn of(a: &Metrics, b: &Metrics, draws: &[Vec<Metrics>], sets: (usize, usize)) -> Diffs {
        Diffs(
            METRICS
                .iter()
                .map(|&name| (name, diff(name, a, b, draws, sets)))
                .collect(),
        )
    }

    /// The difference of `metric`.
    pub fn get(&self, metric: &str) -> Option<Diff> {
        self.0.iter().find(|(n, _)| *n == metric).map(|(_, d)| *d)
    }
}

/// Both serialise as a JSON object keyed by metric, in eval's order.
fn map<S: serde::Serializer, V: Serialize>(
    serializer: S,
    entries: &[(&'static str, V)],
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(entries.len()))?;
    for (k, v) in entries {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl Serialize for Intervals {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        map(serializer, &self.0)
    }
}

impl Serialize for Diffs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        map(serializer, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_order_statistics() {
        // B = 5: ranks 0.1 and 3.9.
        let mut v = [5.0, 1.0, 4.0, 2.0, 3.0];
        let [lo, hi] = interval(&mut v);
        assert!(
            (lo - 1.1).abs() < 1e-12 && (hi - 4.9).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(interval(&mut [2.0; 7]), [2.0, 2.0]);
        assert!(interval(&mut []).iter().all(|x| x.is_nan()));
        assert!(contains_zero([-1.0, 0.0]) && !contains_zero([0.1, 0.2]));
    }

    #[test]
    fn resamples_draw_as_many_users_as_scored_and_do_not_depend_on_threads() {
        let boot = Bootstrap {
            resamples: 50,
            seed: 7,
        };
        let scored = [1, 3, 4];
        let draws = boot.resample(&scored, 5, |w| w.to_vec());
        assert_eq!(draws.len(), 50);
        for w in &draws {
            assert_eq!(w.iter().sum::<u32>(), 3);
            assert_eq!((w[0], w[2]), (0, 0), "only scored users are drawn");
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let single = pool.install(|| boot.resample(&scored, 5, |w| w.to_vec()));
        assert_eq!(draws, single);
    }
}
