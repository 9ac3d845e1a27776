//! The backtest behind `boughtby eval` (and `tune`): run the model as the
//! nightly job would have at the cut `T = as_of - D days`, on rows before
//! `T` only, and measure its slots against what users bought in `[T,
//! as_of)`, beside two baselines.
//!
//! - `split`: the cut, the job at the cut, the truth.
//! - `world`: the inputs, read once; re-derivation for other settings.
//! - `slates`: slots as dense per-user lists, the metrics' input.
//! - `metrics`: hits, precision, recall, nDCG, coverage, merchant Gini.
//! - `baselines`: `popular` and `social_count`.

pub mod baselines;
pub mod metrics;
pub mod slates;
pub mod split;
pub mod world;

use serde::Serialize;

pub use metrics::{METRICS, Metrics, Truth};
pub use slates::Slates;
pub use split::Cut;
pub use world::World;

use crate::config::{Job, ModelConfig, SelectionConfig};
use crate::error::Result;
use crate::pipeline;
use crate::scoring::SocialV1;

/// One named set of metrics, as `eval --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Named {
    pub name: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// A backtest's figures: the model, then the baselines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub as_of: String,
    pub cut: String,
    pub holdout_days: i64,
    pub results: Vec<Named>,
    /// Users scored at the cut.
    #[serde(skip)]
    pub users_scored: u64,
    /// Distinct (user, product) pairs of the truth, and their users.
    #[serde(skip)]
    pub truth_pairs: u64,
    #[serde(skip)]
    pub truth_users: u64,
}

/// Scores every user of the world's context with these settings (the
/// context must be prepared for `model`) and measures the slots.
pub fn score_model(
    world: &World,
    model: &ModelConfig,
    selection: &SelectionConfig,
) -> Result<(Metrics, Slates)> {
    let scoring = pipeline::score_all(&world.ctx, model, selection)?;
    let slates = Slates::of_scoring(&scoring, &world.ctx);
    let metrics = metrics::measure(
        slates.iter(),
        &world.truth,
        scoring.counts.users_scored,
        selection.positions.len(),
        world.shelf(),
    );
    Ok((metrics, slates))
}

/// Backtests `job` with a holdout of the last `holdout_days` days.
pub fn evaluate(job: &Job, holdout_days: i64) -> Result<Evaluation> {
    let mut world = World::load(job, holdout_days)?;
    evaluate_world(&mut world, &job.model, &job.selection)
}

/// Backtests `model` and `selection` on a loaded world, with the baselines.
pub fn evaluate_world(
    world: &mut World,
    model: &ModelConfig,
    selection: &SelectionConfig,
) -> Result<Evaluation> {
    world.prepare(model)?;
    let (model_metrics, slates) = score_model(world, model, selection)?;

    let counts = baselines::buyer_counts(&world.rows, &world.ctx, &world.cut, model);
    let popular = baselines::popular(&world.ctx, &counts, model, selection, slates.users());
    let popular_metrics = metrics::measure(
        popular.iter(),
        &world.truth,
        world.ctx.scored_users.len() as u64,
        selection.positions.len(),
        world.shelf(),
    );

    // Only weights change: the prepared context serves as it is.
    let count_model = baselines::social_count(model);
    let (count_metrics, _) = score_model(world, &count_model, selection)?;

    let truth_users = (0..world.ctx.users.len() as u32)
        .filter(|&u| !world.truth.of(u).is_empty())
        .count() as u64;
    let named = |name: &str, metrics| Named {
        name: name.to_string(),
        metrics,
    };
    Ok(Evaluation {
        as_of: world.cut.as_of_text(),
        cut: world.cut.cut_text(),
        holdout_days: world.cut.holdout_days,
        results: vec![
            named(SocialV1::NAME, model_metrics),
            named("popular", popular_metrics),
            named("social_count", count_metrics),
        ],
        users_scored: world.ctx.scored_users.len() as u64,
        truth_pairs: world.truth.pairs() as u64,
        truth_users,
    })
}

impl Evaluation {
    /// The figures as a readable table.
    pub fn table(&self) -> String {
        let mut text = format!(
            "backtest: model at the cut {}, truth = purchases from the cut to {} ({} days)\n",
            self.cut, self.as_of, self.holdout_days
        );
        text.push_str(&format!(
            "users scored at the cut: {}; truth: {} (user, product) pairs of {} users\n\n",
            self.users_scored, self.truth_pairs, self.truth_users
        ));
        text.push_str(&metrics_table(
            self.results.iter().map(|r| (r.name.as_str(), &r.metrics)),
        ));
        text
    }
}

/// Rows of metrics under a header, one per name.
pub fn metrics_table<'a>(rows: impl IntoIterator<Item = (&'a str, &'a Metrics)>) -> String {
    let mut text = format!(
        "{:<14} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "name",
        "slots",
        "users",
        "hits",
        "precision",
        "hit_rate",
        "recall",
        "ndcg",
        "user_cov",
        "catalog",
        "m_gini"
    );
    for (name, m) in rows {
        text.push_str(&format!(
            "{:<14} {:>9} {:>9} {:>7} {:>9.6} {:>9.6} {:>9.6} {:>9.6} {:>9.6} {:>9.6} {:>9.6}\n",
            name,
            m.slots,
            m.users_with_slots,
            m.hits,
            m.precision,
            m.hit_rate,
            m.recall,
            m.ndcg,
            m.user_coverage,
            m.catalog_coverage,
            m.merchant_gini
        ));
    }
    text
}
