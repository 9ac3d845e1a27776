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
//! - `bootstrap`: intervals and paired differences over resampled users.

pub mod baselines;
pub mod bootstrap;
pub mod metrics;
pub mod slates;
pub mod split;
pub mod world;

use serde::Serialize;

pub use bootstrap::{Bootstrap, Diff, Diffs, Intervals};
pub use metrics::{Contributions, METRICS, Metrics, Truth};
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
    /// Per metric, its 95% interval (when the bootstrap is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<Intervals>,
    /// For every result but the first: the first's figures minus these, on
    /// the same resampled users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_to_model: Option<Diffs>,
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
    /// The resamples behind the intervals.
    #[serde(skip)]
    pub bootstrap: Bootstrap,
}

/// Scores every user of the world's context with these settings (the
/// context must be prepared for `model`) and measures the slots.
pub fn score_model(
    world: &World,
    model: &ModelConfig,
    selection: &SelectionConfig,
) -> Result<(Metrics, Slates)> {
    let (contributions, slates) = contribute(world, model, selection)?;
    Ok((contributions.metrics(world.users_scored(), |_| 1), slates))
}

/// Scores as [`score_model`] and keeps each user's share of the metrics.
pub fn contribute(
    world: &World,
    model: &ModelConfig,
    selection: &SelectionConfig,
) -> Result<(Contributions, Slates)> {
    let scoring = pipeline::score_all(&world.ctx, model, selection)?;
    let slates = Slates::of_scoring(&scoring, &world.ctx)?;
    Ok((world.contributions(&slates, selection), slates))
}

/// Backtests `job` with a holdout of the last `holdout_days` days.
pub fn evaluate(job: &Job, holdout_days: i64, bootstrap: Bootstrap) -> Result<Evaluation> {
    let mut world = World::load(job, holdout_days)?;
    evaluate_world(&mut world, &job.model, &job.selection, bootstrap)
}

/// The slate sets of a backtest: the model's, then the baselines'.
pub fn baseline_sets(
    world: &mut World,
    model: &ModelConfig,
    selection: &SelectionConfig,
) -> Result<Vec<(String, Contributions)>> {
    world.prepare(model)?;
    let (model_set, slates) = contribute(world, model, selection)?;

    let counts = baselines::buyer_counts(&world.rows, &world.ctx, &world.cut, model);
    let popular = baselines::popular(&world.ctx, &counts, model, selection, slates.users());
    let popular_set = world.contributions(&popular, selection);

    // Only weights change: the prepared context serves as it is.
    let count_model = baselines::social_count(model);
    let (count_set, _) = contribute(world, &count_model, selection)?;
    Ok(vec![
        (SocialV1::NAME.to_string(), model_set),
        ("popular".to_string(), popular_set),
        ("social_count".to_string(), count_set),
    ])
}

/// Backtests `model` and `selection` on a loaded world, with the baselines.
pub fn evaluate_world(
    world: &mut World,
    model: &ModelConfig,
    selection: &SelectionConfig,
    bootstrap: Bootstrap,
) -> Result<Evaluation> {
    let sets = baseline_sets(world, model, selection)?;
    Ok(world.evaluation(compare(world, &sets, bootstrap), bootstrap))
}

/// The figures of `sets`, with intervals when the bootstrap is on and,
/// for every set but the first, the first's figures minus its own on the
/// same resampled users.
pub fn compare(
    world: &World,
    sets: &[(String, Contributions)],
    bootstrap: Bootstrap,
) -> Vec<Named> {
    let n = world.users_scored();
    let metrics: Vec<Metrics> = sets.iter().map(|(_, c)| c.metrics(n, |_| 1)).collect();
    let draws = if bootstrap.on() {
        let refs: Vec<&Contributions> = sets.iter().map(|(_, c)| c).collect();
        bootstrap.metrics(&refs, &world.ctx.scored_users, world.ctx.users.len())
    } else {
        Vec::new()
    };
    sets.iter()
        .zip(&metrics)
        .enumerate()
        .map(|(i, ((name, _), m))| Named {
            name: name.clone(),
            metrics: *m,
            ci: bootstrap.on().then(|| Intervals::of(&draws, i)),
            diff_to_model: (i > 0).then(|| Diffs::of(&metrics[0], m, &draws, (0, i))),
        })
        .collect()
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
        text.push_str(&confidence_tables(
            &self.results,
            self.bootstrap,
            self.users_scored,
        ));
        text
    }
}

/// The metrics whose intervals and differences the tables show: all but
/// the two counts of slots and users.
pub const SHOWN: &[&str] = metrics::METRICS.split_at(2).1;

/// A figure as the interval tables print it: counts whole where they are.
pub fn figure(metric: &str, x: f64, signed: bool) -> String {
    let count = matches!(metric, "slots" | "users_with_slots" | "hits");
    // An interpolated percentile of counts may miss a whole number by a bit.
    let whole = (x - x.round()).abs() < 1e-9;
    let x = if count && whole { x.round() } else { x };
    match (count && whole, count, signed) {
        (true, _, false) => format!("{x:.0}"),
        (true, _, true) => format!("{x:+.0}"),
        (false, true, false) => format!("{x:.1}"),
        (false, true, true) => format!("{x:+.1}"),
        (false, false, false) => format!("{x:.6}"),
        (false, false, true) => format!("{x:+.6}"),
    }
}

/// `[low, high]` as the tables print it.
pub fn bracket(metric: &str, ci: [f64; 2], signed: bool) -> String {
    format!(
        "[{}, {}]",
        figure(metric, ci[0], signed),
        figure(metric, ci[1], signed)
    )
}

/// The intervals of every result, then the first result minus each other
/// on the same resampled users, each difference marked "not
/// distinguishable" when its interval contains 0; nothing when the
/// bootstrap is off.
pub fn confidence_tables(results: &[Named], bootstrap: Bootstrap, users_scored: u64) -> String {
    if !bootstrap.on() {
        return String::new();
    }
    let mut text = format!(
        "\n95% intervals: a bootstrap of the {users_scored} users scored, {} resamples, seed {}\n",
        bootstrap.resamples, bootstrap.seed
    );
    text.push_str(&format!("{:<14}", "name"));
    for &m in SHOWN {
        text.push_str(&format!(" {:>22}", short(m)));
    }
    text.push('\n');
    for r in results {
        text.push_str(&format!("{:<14}", r.name));
        for &m in SHOWN {
            let ci = r.ci.as_ref().and_then(|c| c.get(m));
            let cell = ci.map(|ci| bracket(m, ci, false)).unwrap_or_default();
            text.push_str(&format!(" {cell:>22}"));
        }
        text.push('\n');
    }
    let (Some(first), others) = (results.first(), results.get(1..).unwrap_or_default()) else {
        return text;
    };
    if others.is_empty() {
        return text;
    }
    text.push_str(&format!(
        "\n{} minus each, on the same resampled users (95% interval; \
         not distinguishable when it contains 0)\n{:<17}",
        first.name, "metric"
    ));
    for r in others {
        text.push_str(&format!(" {:<56}", r.name));
    }
    text.truncate(text.trim_end().len());
    text.push('\n');
    for &m in SHOWN {
        text.push_str(&format!("{m:<17}"));
        for r in others {
            let Some(d) = r.diff_to_model.as_ref().and_then(|d| d.get(m)) else {
                continue;
            };
            let mut cell = figure(m, d.value, true);
            if let Some(ci) = d.ci {
                cell.push_str(&format!(" {}", bracket(m, ci, true)));
            }
            if d.distinguishable() == Some(false) {
                cell.push_str(" not distinguishable");
            }
            text.push_str(&format!(" {cell:<56}"));
        }
        text.truncate(text.trim_end().len());
        text.push('\n');
    }
    text
}

/// The column heading of a metric in the tables.
fn short(metric: &str) -> &str {
    match metric {
        "user_coverage" => "user_cov",
        "catalog_coverage" => "catalog",
        "merchant_gini" => "m_gini",
        other => other,
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
