//! Defines the training rows of `fit`: every (user, product) candidate the
//! nightly job would score at the cut, with the four features the score's
//! weights multiply, labelled by whether the user bought the product in
//! the holdout.
//!
//! Nothing here re-derives a rule: the candidates come from the pipeline's
//! own candidate source ([`Accumulator::collect`], which applies every
//! filter), the features from [`Features::of`] and [`SocialV1::terms`],
//! all over the world's context at the cut (rows before the cut only); the
//! label from eval's truth (non-refunded purchases in `[cut, as_of)`). The
//! selection's `min_buyers` applies (a candidate below it is never shown,
//! whatever its score); `min_score` is what fit chooses afterwards.

use rayon::prelude::*;

use crate::candidates::Accumulator;
use crate::config::{ModelConfig, SelectionConfig};
use crate::eval::World;
use crate::random::Rng;
use crate::scoring::{Features, SocialV1};

/// Users per unit of parallel work.
const CHUNK: usize = 512;

/// The names of the four terms, in the formula's order, with their weights.
pub const TERMS: [&str; 4] = ["proof", "ln(1+n)", "popularity", "price_fit"];

/// The candidates at the cut: per row, its user, its four terms and label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Dense user of each row, ascending (then product ascending).
    pub user: Vec<u32>,
    pub product: Vec<u32>,
    /// The candidate's features, as the pipeline scores them.
    pub features: Vec<Features>,
    /// The terms the weights multiply: proof, ln(1 + n), popularity,
    /// price_fit.
    pub x: Vec<[f64; 4]>,
    /// Bought in the holdout.
    pub y: Vec<bool>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Rows bought in the holdout.
    pub fn positives(&self) -> usize {
        self.y.iter().filter(|&&y| y).count()
    }

    /// The rows to fit on: every bought row and, when there are more than
    /// `max_negatives` others (0: no limit), each of those kept with
    /// probability `rate = max_negatives / others`, drawn from `seed`'s
    /// stream. Dropping only unbought rows leaves a logistic regression's
    /// slopes as they were and moves its intercept by `ln(rate)` (the odds
    /// of the sample are those of the whole divided by the rate), so the
    /// weights are unchanged in expectation.
    pub fn training(&self, max_negatives: usize, seed: u64) -> Training {
        let negatives = self.len() - self.positives();
        let rate = if max_negatives == 0 || negatives <= max_negatives {
            1.0
        } else {
            max_negatives as f64 / negatives as f64
        };
        let mut rng = Rng::stream(seed, SAMPLE_STREAM);
        let mut t = Training {
            rate,
            ..Training::default()
        };
        for ((&user, x), &y) in self.user.iter().zip(&self.x).zip(&self.y) {
            if y || rate == 1.0 || rng.chance(rate) {
                t.user.push(user);
                t.x.push(*x);
                t.y.push(y);
            }
        }
        t
    }
}

/// The rows a regression is fitted on (see [`Rows::training`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Training {
    pub user: Vec<u32>,
    pub x: Vec<[f64; 4]>,
    pub y: Vec<bool>,
    /// The share of unbought rows kept.
    pub rate: f64,
}

/// The stream of `seed` that samples unbought rows (the bootstrap's
/// resamples use streams 0, 1, ...).
const SAMPLE_STREAM: u64 = u64::MAX;

/// The candidates of every scored user of `world` (prepared for `model`).
pub fn rows(world: &World, model: &ModelConfig, selection: &SelectionConfig) -> Rows {
    let ctx = &world.ctx;
    let scorer = SocialV1::new(model);
    let chunks: Vec<Rows> = ctx
        .scored_users
        .par_chunks(CHUNK)
        .map(|users| {
            let mut accumulator = Accumulator::new(&ctx.catalog, &model.sensitive_categories);
            let mut rows = Rows::default();
            let mut mine: Vec<(u32, Features)> = Vec::new();
            for &u in users {
                mine.clear();
                accumulator.collect(ctx, &scorer, u, |c| {
                    if i64::from(c.buyers) >= selection.min_buyers {
                        let f = Features::of(ctx, u, c.product, c.proof, c.buyers);
                        mine.push((c.product, f));
                    }
                });
                mine.sort_unstable_by_key(|&(p, _)| p);
                for &(p, f) in &mine {
                    rows.user.push(u);
                    rows.product.push(p);
                    rows.features.push(f);
                    rows.x.push(SocialV1::terms(&f));
                    rows.y.push(world.truth.contains(u, p));
                }
            }
            rows
        })
        .collect();
    let mut all = Rows::default();
    for mut c in chunks {
        all.user.append(&mut c.user);
        all.product.append(&mut c.product);
        all.features.append(&mut c.features);
        all.x.append(&mut c.x);
        all.y.append(&mut c.y);
    }
    all
}
