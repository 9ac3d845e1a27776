//! The data scientists' commands: `eval`, `tune`, `explain`, `fit`. Clap
//! types stop here: each command turns its arguments into plain library
//! calls ([`crate::eval`], [`crate::tune`], [`crate::explain`],
//! [`crate::fit`]) and prints.

use std::path::PathBuf;

use clap::Args;

use crate::config::Job;
use crate::error::{Error, Result};
use crate::eval::{self, Bootstrap};
use crate::explain;
use crate::fit;
use crate::progress::Progress;
use crate::tune::{Grid, Tuning};

use super::{parse_as_of, say as print};

/// Backtest the job's model against two baselines on a time split.
///
/// The cut is T = as_of - D days. The model runs exactly as the nightly job
/// would at T, on rows before T only (follows, users and blocks taken as
/// given); the truth is every non-refunded purchase, any visibility, with
/// T <= purchased_at < as_of. Baselines: `popular` (products by distinct
/// buyers in the lookback window, same caps and positions, for the users
/// the model gives slots to) and `social_count` (only w_buyers non-zero).
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The job file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// D: the holdout, the last D days before as_of.
    #[arg(long, value_name = "D")]
    pub holdout_days: i64,
    /// The end of the holdout, RFC 3339 or a date; overrides [run] as_of.
    #[arg(long, value_name = "T", value_parser = parse_as_of)]
    pub as_of: Option<i64>,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
    /// Worker threads (default: one per core). The figures do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// The intervals' bootstrap, shared by eval, tune and fit.
#[derive(Debug, Clone, Copy, Args)]
pub struct BootstrapArgs {
    /// B: resamples of the users scored at the cut behind every 95%
    /// interval (a percentile bootstrap); 0 turns the intervals off.
    #[arg(long, value_name = "B", default_value_t = 1000)]
    pub bootstrap: usize,
    /// The bootstrap's seed: the same seed gives the same intervals.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
}

impl BootstrapArgs {
    fn get(self) -> Bootstrap {
        Bootstrap {
            resamples: self.bootstrap,
            seed: self.seed,
        }
    }
}

/// Search [model] and [selection] settings on the eval backtest.
///
/// Writes, into --output: leaderboard.parquet and leaderboard.csv (one row
/// per candidate, best first: settings and every metric), best.toml (the
/// best candidate within the guard rails as a complete job file with
/// absolute paths) and report.html (SVG charts).
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The job file (TOML) whose settings the grid varies.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The grid file (TOML): objective, guard rails, search, and the values
    /// or ranges of [model] and [selection] keys.
    #[arg(long, value_name = "FILE")]
    pub grid: PathBuf,
    /// D: the holdout, the last D days before as_of.
    #[arg(long, value_name = "D")]
    pub holdout_days: i64,
    /// The folder to write the leaderboard, best.toml and report.html into.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// The end of the holdout, RFC 3339 or a date; overrides [run] as_of.
    #[arg(long, value_name = "T", value_parser = parse_as_of)]
    pub as_of: Option<i64>,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
    /// Worker threads (default: one per core). The results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Explain one user's slots, or why a product is or is not among them.
///
/// For each slot: its features, each feature's contribution to the score
/// and the buyers shown. With --product: every reason, buyer by buyer and
/// for the product, and its rank among the user's candidates. A buyer whose
/// purchase is private is never named, only counted.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The job file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The user id.
    #[arg(long, value_name = "ID")]
    pub user: i64,
    /// A product id: why it is or is not in the user's slots.
    #[arg(long, value_name = "ID")]
    pub product: Option<i64>,
    /// The run's reference instant, RFC 3339 or a date; overrides [run] as_of.
    #[arg(long, value_name = "T", value_parser = parse_as_of)]
    pub as_of: Option<i64>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Fit the score's weights on the backtest's split.
///
/// The cut is T - D days (T: --as-of, else the job's as_of). The rows are
/// the candidates the nightly job would score at the cut (every filter and
/// min_buyers, rows before the cut only) with the four terms the weights
/// multiply (proof, ln(1+n), popularity, price_fit); the label is whether
/// the user bought the product in [T - D, T), as eval's truth. An
/// L2-regularised logistic regression on the standardised terms gives
/// w_proof, w_buyers, w_popularity and w_price in the score's units; for
/// each half_life_days and mutual_bonus given (default: the job's),
/// min_score is chosen on the same split to maximise --objective with user
/// coverage >= --min-user-coverage, and the best grid point wins. Writes
/// DIR/best.toml (the job with the fitted settings, absolute paths) and
/// DIR/report.html, and prints the fitted figures beside the job's own and
/// the baselines', with intervals. Check on a later split with
/// `eval --config DIR/best.toml --as-of LATER`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// The job file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// D: the holdout, the last D days before as_of.
    #[arg(long, value_name = "D")]
    pub holdout_days: i64,
    /// The end of the holdout, RFC 3339 or a date; overrides [run] as_of.
    #[arg(long, value_name = "T", value_parser = parse_as_of)]
    pub as_of: Option<i64>,
    /// The metric min_score maximises (merchant_gini: minimises).
    #[arg(long, value_name = "M", default_value = "precision")]
    pub objective: String,
    /// The least user coverage min_score may leave.
    #[arg(long, value_name = "C", default_value_t = 0.5)]
    pub min_user_coverage: f64,
    /// The L2 penalty on the standardised coefficients (alpha/2 * |beta|^2
    /// added to the summed log-loss).
    #[arg(long, value_name = "ALPHA", default_value_t = 1.0)]
    pub l2: f64,
    /// At most this many candidates not bought are fitted on, a seeded
    /// sample (0: all). Leaving out only unbought rows moves the
    /// regression's intercept, not its slopes, so the weights keep their
    /// expectation; it bounds the fit's time.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_negatives: usize,
    /// half_life_days values to try, comma-separated (default: the job's).
    #[arg(long, value_name = "H,...", value_delimiter = ',')]
    pub half_life_days: Vec<f64>,
    /// mutual_bonus values to try, comma-separated (default: the job's).
    #[arg(long, value_name = "B,...", value_delimiter = ',')]
    pub mutual_bonus: Vec<f64>,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
    /// The folder to write best.toml and report.html into.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Worker threads (default: one per core). The results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

pub fn fit_command(args: FitArgs) -> Result<()> {
    super::set_threads(args.threads)?;
    let job = load_job(&args.config, args.as_of)?;
    let objective = eval::METRICS
        .iter()
        .copied()
        .find(|m| *m == args.objective)
        .ok_or_else(|| {
            Error::Usage(format!(
                "--objective must be one of {}, not {}",
                eval::METRICS.join(", "),
                args.objective
            ))
        })?;
    let fitted = fit::fit(
        &job,
        fit::Options {
            holdout_days: args.holdout_days,
            objective,
            min_user_coverage: args.min_user_coverage,
            bootstrap: args.bootstrap.get(),
            l2: args.l2,
            max_negatives: args.max_negatives,
            half_life_days: args.half_life_days,
            mutual_bonus: args.mutual_bonus,
        },
    )?;
    let written = fitted.write(&args.output)?;
    print(&fitted.text(&written))
}

fn load_job(config: &std::path::Path, as_of: Option<i64>) -> Result<Job> {
    let overrides = super::overrides(as_of, None);
    Job::load(config, &overrides)
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map(|s| s + "\n")
        .map_err(|e| Error::Internal(format!("cannot write JSON: {e}")))
}

pub fn eval_command(args: EvalArgs) -> Result<()> {
    super::set_threads(args.threads)?;
    let job = load_job(&args.config, args.as_of)?;
    let evaluation = eval::evaluate(&job, args.holdout_days, args.bootstrap.get())?;
    if args.json {
        print(&json(&evaluation)?)
    } else {
        print(&evaluation.table())
    }
}

pub fn tune_command(args: TuneArgs) -> Result<()> {
    super::set_threads(args.threads)?;
    let job = load_job(&args.config, args.as_of)?;
    let grid = Grid::load(&args.grid)?;
    let tuning = Tuning::prepare(&job, grid, args.holdout_days)?;
    let bar = Progress::on_terminal().bar(tuning.candidates.len() as u64, "candidates");
    let tuned = tuning.run(args.bootstrap.get(), &|| bar.inc(1))?;
    bar.finish_and_clear();
    let written = tuned.write(&args.output)?;

    let mut text = format!(
        "tuned {} candidates on the backtest (cut {}, holdout {} days) by {}\n\n",
        tuned.candidates.len(),
        tuned.reference.cut,
        tuned.reference.holdout_days,
        tuned.grid.objective
    );
    let best = tuned.best();
    let mut rows: Vec<(String, &eval::Metrics)> = Vec::new();
    if let Some(b) = best {
        rows.push((
            format!("best #{}", tuned.candidates[b].id),
            &tuned.metrics[b],
        ));
    }
    for r in &tuned.reference.results {
        let name = if r.name == "social_v1" {
            "job as is".to_string()
        } else {
            r.name.clone()
        };
        rows.push((name, &r.metrics));
    }
    text.push_str(&eval::metrics_table(
        rows.iter().map(|(n, m)| (n.as_str(), *m)),
    ));
    text.push_str(&eval::confidence_tables(
        &tuned.reference.results,
        args.bootstrap.get(),
        tuned.reference.users_scored,
    ));
    match best {
        Some(b) => {
            text.push_str(&format!(
                "\nbest: candidate {} ({})\n",
                tuned.candidates[b].id,
                tuned.grid.label(&tuned.candidates[b].values)
            ));
            if let Some(c) = &tuned.confidence {
                let objective = tuned.grid.objective;
                let ties = (0..tuned.candidates.len())
                    .filter(|&i| i != b && c.ties_best(i))
                    .count();
                text.push_str(&format!(
                    "its {objective}: {} {}; {ties} other candidate(s) not distinguishable \
                     from it (the paired interval of the difference contains 0; see report.html)\n",
                    eval::figure(
                        objective,
                        tuned.metrics[b].get(objective).unwrap_or(0.0),
                        false
                    ),
                    eval::bracket(objective, c.objective[b], false),
                ));
            }
        }
        None => text.push_str("\nno candidate keeps within the guard rails: no best.toml\n"),
    }
    text.push_str(&format!(
        "wrote {}, {}, {}{}\n",
        written.leaderboard_parquet.display(),
        written.leaderboard_csv.display(),
        written.report_html.display(),
        written
            .best_toml
            .as_ref()
            .map(|p| format!(", {}", p.display()))
            .unwrap_or_default()
    ));
    print(&text)
}

pub fn explain_command(args: ExplainArgs) -> Result<()> {
    let job = load_job(&args.config, args.as_of)?;
    let explanation = explain::explain(&job, args.user, args.product)?;
    if args.json {
        print(&json(&explanation)?)
    } else {
        print(&explain::render::text(&explanation, &job.model))
    }
}
