//! `boughtby tune`: a grid or seeded random search over `[model]` and
//! `[selection]` keys, each candidate backtested as `eval` would, best
//! first by an objective within guard rails.
//!
//! - `grid`: the grid file: objective, guard rails, search, axes.
//! - `spell`: the candidates a grid spells, checked.
//! - `search`: candidates evaluated in parallel, files read once,
//!   re-derivation only where a swept key needs it.
//! - `leaderboard`: one row per candidate, Parquet and CSV.
//! - `best`: the winner as a complete job file.
//! - `report`, `charts`: report.html with SVG charts.

pub mod best;
pub mod charts;
pub mod grid;
pub mod leaderboard;
pub mod report;
pub mod search;
pub mod spell;

use std::fs;
use std::path::{Path, PathBuf};

pub use grid::Grid;
pub use leaderboard::Leaderboard;
pub use spell::Candidate;

use crate::config::Job;
use crate::error::{Error, Result};
use crate::eval::bootstrap::{self, Diff};
use crate::eval::{self, Bootstrap, Contributions, Cut, Evaluation, Metrics, World};

/// A tune ready to run: the world loaded, the candidates spelled.
pub struct Tuning {
    pub job: Job,
    pub grid: Grid,
    pub world: World,
    pub candidates: Vec<Candidate>,
}

/// A finished tune.
pub struct Tuned {
    pub job: Job,
    pub grid: Grid,
    pub cut: Cut,
    /// The job's own settings and the baselines, on the same backtest.
    pub reference: Evaluation,
    pub candidates: Vec<Candidate>,
    /// Per candidate, in candidate order.
    pub metrics: Vec<Metrics>,
    /// Per candidate: within every guard rail.
    pub eligible: Vec<bool>,
    /// Candidate indices, best first: eligible ones first, then by the
    /// objective, then by candidate id.
    pub ranking: Vec<usize>,
    /// The candidates' intervals, when the bootstrap is on.
    pub confidence: Option<Confidence>,
}

/// The intervals of a tune, every candidate on the same resampled users.
pub struct Confidence {
    pub bootstrap: Bootstrap,
    /// Per candidate, the 95% intervals of the objective, precision and
    /// user coverage.
    pub objective: Vec<[f64; 2]>,
    pub precision: Vec<[f64; 2]>,
    pub user_coverage: Vec<[f64; 2]>,
    /// Per candidate, the best's objective minus its own, paired (when
    /// there is a best).
    pub to_best: Option<Vec<Diff>>,
}

impl Confidence {
    /// Every candidate's intervals, and its paired difference to `best`.
    fn of(
        bootstrap: Bootstrap,
        world: &World,
        sets: &[Contributions],
        metrics: &[Metrics],
        objective: &str,
        best: Option<usize>,
    ) -> Confidence {
        let refs: Vec<&Contributions> = sets.iter().collect();
        let draws = bootstrap.metrics(&refs, &world.ctx.scored_users, world.ctx.users.len());
        let per = |metric: &str| -> Vec<[f64; 2]> {
            (0..sets.len())
                .map(|i| {
                    let mut values: Vec<f64> = draws
                        .iter()
                        .map(|d| d[i].get(metric).unwrap_or(f64::NAN))
                        .collect();
                    bootstrap::interval(&mut values)
                })
                .collect()
        };
        let to_best = best.map(|b| {
            (0..sets.len())
                .map(|i| bootstrap::diff(objective, &metrics[b], &metrics[i], &draws, (b, i)))
                .collect()
        });
        Confidence {
            bootstrap,
            objective: per(objective),
            precision: per("precision"),
            user_coverage: per("user_coverage"),
            to_best,
        }
    }

    /// Whether candidate `i`'s objective is not distinguishable from the
    /// best's (the best itself included).
    pub fn ties_best(&self, i: usize) -> bool {
        self.to_best
            .as_ref()
            .and_then(|d| d.get(i))
            .is_some_and(|d| d.distinguishable() == Some(false))
    }
}

/// The files a tune wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub leaderboard_parquet: PathBuf,
    pub leaderboard_csv: PathBuf,
    pub best_toml: Option<PathBuf>,
    pub report_html: PathBuf,
}

impl Tuning {
    /// Checks every candidate, then reads the job's inputs once.
    pub fn prepare(job: &Job, grid: Grid, holdout_days: i64) -> Result<Tuning> {
        let candidates = grid.candidates(job)?;
        let world = World::load(job, holdout_days)?;
        Ok(Tuning {
            job: job.clone(),
            grid,
            world,
            candidates,
        })
    }

    /// Backtests the job's own settings and every candidate; `done` is
    /// called as each candidate finishes.
    pub fn run(mut self, bootstrap: Bootstrap, done: &(dyn Fn() + Sync)) -> Result<Tuned> {
        let reference = eval::evaluate_world(
            &mut self.world,
            &self.job.model,
            &self.job.selection,
            bootstrap,
        )?;
        let (metrics, sets): (Vec<Metrics>, Vec<Contributions>) =
            search::evaluate_all(&mut self.world, &self.candidates, done)?
                .into_iter()
                .unzip();
        let eligible: Vec<bool> = metrics
            .iter()
            .map(|m| {
                self.grid
                    .guards
                    .iter()
                    .all(|g| g.admits(m.get(g.metric).unwrap_or(f64::NAN)))
            })
            .collect();
        let ranking = rank(&metrics, &eligible, self.grid.objective);
        let best = ranking.first().copied().filter(|&i| eligible[i]);
        let confidence = bootstrap.on().then(|| {
            Confidence::of(
                bootstrap,
                &self.world,
                &sets,
                &metrics,
                self.grid.objective,
                best,
            )
        });
        Ok(Tuned {
            job: self.job,
            grid: self.grid,
            cut: self.world.cut,
            reference,
            candidates: self.candidates,
            metrics,
            eligible,
            ranking,
            confidence,
        })
    }
}

/// Candidate indices, best first: eligible first, then the objective
/// (higher is better but for merchant_gini), then the lower index.
pub fn rank(metrics: &[Metrics], eligible: &[bool], objective: &str) -> Vec<usize> {
    let value = |i: usize| metrics[i].get(objective).unwrap_or(f64::NAN);
    let mut order: Vec<usize> = (0..metrics.len()).collect();
    order.sort_by(|&a, &b| {
        let by_value = if grid::minimised(objective) {
            value(a).total_cmp(&value(b))
        } else {
            value(b).total_cmp(&value(a))
        };
        eligible[b].cmp(&eligible[a]).then(by_value).then(a.cmp(&b))
    });
    order
}

impl Tuned {
    /// The best eligible candidate, if any keeps within the guard rails.
    pub fn best(&self) -> Option<usize> {
        self.ranking.first().copied().filter(|&i| self.eligible[i])
    }

    /// The leaderboard, best first.
    pub fn leaderboard(&self) -> Leaderboard {
        Leaderboard::new(
            &self.candidates,
            &self.metrics,
            &self.eligible,
            &self.ranking,
        )
    }

    /// Writes the leaderboard (Parquet, CSV), best.toml (when a candidate
    /// keeps within the guard rails) and report.html into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Written> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let board = self.leaderboard();
        let written = Written {
            leaderboard_parquet: dir.join("leaderboard.parquet"),
            leaderboard_csv: dir.join("leaderboard.csv"),
            best_toml: self.best().map(|_| dir.join("best.toml")),
            report_html: dir.join("report.html"),
        };
        board.write_parquet(&written.leaderboard_parquet)?;
        write(&written.leaderboard_csv, &board.csv())?;
        if let (Some(i), Some(path)) = (self.best(), &written.best_toml) {
            let text = best::best_toml(
                &self.job,
                &self.grid,
                &self.cut,
                &self.candidates[i],
                &self.metrics[i],
                self.candidates.len(),
            )?;
            write(path, &text)?;
        } else {
            // A best.toml of an earlier tune must not pass for this one's.
            let stale = dir.join("best.toml");
            if stale.exists() {
                fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
            }
        }
        write(&written.report_html, &report::html(self)?)?;
        Ok(written)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(precision: f64, gini: f64) -> Metrics {
        Metrics {
            precision,
            merchant_gini: gini,
            ..Metrics::default()
        }
    }

    #[test]
    fn ranking_puts_eligible_first_then_objective_then_id() {
        let metrics = [m(0.2, 0.5), m(0.9, 0.1), m(0.2, 0.3), m(0.5, 0.9)];
        let eligible = [true, false, true, true];
        assert_eq!(rank(&metrics, &eligible, "precision"), vec![3, 0, 2, 1]);
        assert_eq!(rank(&metrics, &eligible, "merchant_gini"), vec![2, 0, 3, 1]);
    }
}
