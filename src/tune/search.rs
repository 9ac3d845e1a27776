//! Defines the evaluation of a tune's candidates on one loaded world.
//!
//! Candidates are grouped by what the context depends on (the purchase
//! arrays: lookback_days, half_life_days; the fatigued pairs:
//! fatigue_days, fatigue_max_impressions). Each group re-derives only that,
//! once, and its candidates — weights, tie bonus, selection — are scored in
//! parallel against the same context. Files are read once, by the world.

use rayon::prelude::*;

use crate::error::Result;
use crate::eval::world::{fatigue_key, purchase_key};
use crate::eval::{self, Contributions, Metrics, World};
use crate::tune::spell::Candidate;

/// What a candidate's context depends on: the purchase and fatigue keys.
type ContextKey = ((i64, u64), (i64, i64));

/// The metrics of every candidate, and each user's share of them (for the
/// bootstrap), in candidate order; `done` is called once per candidate as
/// it finishes (from any thread).
pub fn evaluate_all(
    world: &mut World,
    candidates: &[Candidate],
    done: &(dyn Fn() + Sync),
) -> Result<Vec<(Metrics, Contributions)>> {
    let mut groups: Vec<(ContextKey, Vec<usize>)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let key = (purchase_key(&c.model), fatigue_key(&c.model));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let mut results = vec![(Metrics::default(), Contributions::default()); candidates.len()];
    for (_, members) in groups {
        world.prepare(&candidates[members[0]].model)?;
        let world = &*world;
        let measured: Vec<(usize, Contributions)> = members
            .par_iter()
            .map(|&i| {
                let c = &candidates[i];
                let (contributions, _slates) = eval::contribute(world, &c.model, &c.selection)?;
                done();
                Ok((i, contributions))
            })
            .collect::<Result<_>>()?;
        for (i, contributions) in measured {
            results[i] = (
                contributions.metrics(world.users_scored(), |_| 1),
                contributions,
            );
        }
    }
    Ok(results)
}
