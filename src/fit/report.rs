//! Defines what `fit` writes and prints: best.toml (the job with the
//! fitted settings), report.html (coefficients with intervals, the grid,
//! calibration, precision against coverage) and the text summary.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::eval::{self, bracket};
use crate::fit::{Fitted, TERMS};
use crate::tune::best::job_toml;
use crate::tune::charts::{self, Bar, Extras, Mark, Point};
use crate::tune::report::{STYLE, escape, file_name};

/// The files `fit` wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub best_toml: PathBuf,
    pub report_html: PathBuf,
}

/// The job's weights, in the terms' order.
fn job_weights(f: &Fitted) -> [f64; 4] {
    let m = &f.job.model;
    [m.w_proof, m.w_buyers, m.w_popularity, m.w_price]
}

/// The fitted weights, in the terms' order.
fn fitted_weights(f: &Fitted) -> [f64; 4] {
    let m = &f.model;
    [m.w_proof, m.w_buyers, m.w_popularity, m.w_price]
}

const WEIGHT_KEYS: [&str; 4] = ["w_proof", "w_buyers", "w_popularity", "w_price"];

impl Fitted {
    /// Writes best.toml and report.html into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Written> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let written = Written {
            best_toml: dir.join("best.toml"),
            report_html: dir.join("report.html"),
        };
        let toml = job_toml(&self.job, &self.header(), &self.model, &self.selection)?;
        fs::write(&written.best_toml, toml).map_err(|e| Error::io(&written.best_toml, e))?;
        fs::write(&written.report_html, self.html()?)
            .map_err(|e| Error::io(&written.report_html, e))?;
        Ok(written)
    }

    fn fitted_metrics(&self) -> Option<&eval::Metrics> {
        self.comparison.results.first().map(|r| &r.metrics)
    }

    /// best.toml's comment lines.
    fn header(&self) -> String {
        let c = &self.comparison;
        let mut h = format!(
            "# Written by `boughtby fit` for the job {}: weights fitted by a logistic\n\
             # regression (L2 {}) of holdout purchases on the candidates at the cut {},\n\
             # holdout {} days to {}; min_score chosen for {} with user coverage >= {}.\n",
            file_name(&self.job.path),
            self.options.l2,
            c.cut,
            c.holdout_days,
            c.as_of,
            self.options.objective,
            self.options.min_user_coverage,
        );
        if let Some(m) = self.fitted_metrics() {
            let _ = write!(
                h,
                "# Backtest: precision {}, hit_rate {}, recall {}, ndcg {},\n\
                 #   user_coverage {}, catalog_coverage {}, merchant_gini {}, slots {}.\n",
                m.precision,
                m.hit_rate,
                m.recall,
                m.ndcg,
                m.user_coverage,
                m.catalog_coverage,
                m.merchant_gini,
                m.slots
            );
        }
        let _ = write!(
            h,
            "# Reproduce: boughtby eval --config best.toml --holdout-days {}\n\
             # Check on a later split: boughtby eval --config best.toml --as-of LATER --holdout-days {}\n\
             # Paths are absolute so that this file runs from anywhere.\n\n",
            c.holdout_days, c.holdout_days
        );
        h
    }

    /// The summary `fit` prints.
    pub fn text(&self, written: &Written) -> String {
        let c = &self.comparison;
        let t = &self.trials[self.best];
        let mut text = format!(
            "fit: candidates at the cut {} ({} rows, {} bought in the {}-day holdout to {}); \
             users scored: {}\n\n",
            c.cut, t.rows, t.positives, c.holdout_days, c.as_of, c.users_scored
        );
        let _ = writeln!(
            text,
            "{:<14} {:>12} {:>14} {:>28}",
            "setting", "job", "fitted", "95% interval"
        );
        let job = job_weights(self);
        let fitted = fitted_weights(self);
        for j in 0..4 {
            let ci = self
                .weight_ci
                .map(|ci| bracket("w", ci[j], true))
                .unwrap_or_default();
            let _ = writeln!(
                text,
                "{:<14} {:>12} {:>14.6} {:>28}",
                WEIGHT_KEYS[j], job[j], fitted[j], ci
            );
        }
        for (key, job, fitted) in [
            (
                "half_life_days",
                self.job.model.half_life_days,
                self.model.half_life_days,
            ),
            (
                "mutual_bonus",
                self.job.model.mutual_bonus,
                self.model.mutual_bonus,
            ),
            (
                "min_score",
                self.job.selection.min_score,
                self.selection.min_score,
            ),
        ] {
            let _ = writeln!(text, "{key:<14} {job:>12} {fitted:>14.6}");
        }
        if !t.meets_floor {
            let _ = writeln!(
                text,
                "\nno min_score reaches user coverage {}: took the one with the most",
                self.options.min_user_coverage
            );
        }
        text.push('\n');
        text.push_str(&c.table());
        let _ = writeln!(
            text,
            "\nwrote {}, {}",
            written.best_toml.display(),
            written.report_html.display()
        );
        text
    }

    /// report.html.
    pub fn html(&self) -> Result<String> {
        let c = &self.comparison;
        let t = &self.trials[self.best];
        let objective = self.options.objective;
        let name = escape(&file_name(&self.job.path));
        let mut h = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>boughtby fit: {name}\
             </title><style>{STYLE}pre{{font-size:12px}}</style></head><body>\n\
             <h1>Fit of <code>{name}</code></h1>\n"
        );
        let _ = writeln!(
            h,
            "<p>Rows: the candidates the nightly job would score at the cut <b>{}</b> (every \
             filter, min_buyers; rows before the cut only): <b>{}</b>, of which <b>{}</b> were \
             bought in the holdout to <b>{}</b> ({} days). Users scored: {}. An L2-regularised \
             (alpha {}) logistic regression on the standardised terms; the weights are the \
             coefficients divided by each term's standard deviation, so the score is the \
             fitted log-odds less a constant.</p>",
            c.cut, t.rows, t.positives, c.as_of, c.holdout_days, c.users_scored, self.options.l2
        );

        // Coefficients.
        let boot = &self.options.bootstrap;
        let _ = writeln!(
            h,
            "<h2>Weights</h2><table><tr><th class=\"l\">term</th><th class=\"l\">key</th>\
             <th>the job</th><th>fitted</th><th>95% interval</th><th>standardised</th>\
             <th>95% interval</th><th>mean</th><th>sd</th></tr>"
        );
        let job = job_weights(self);
        for j in 0..4 {
            let ci =
                |c: Option<[[f64; 2]; 4]>| c.map(|c| bracket("w", c[j], true)).unwrap_or_default();
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{:.6}</td>\
                 <td>{}</td><td>{:.6}</td><td>{}</td><td>{:.6}</td><td>{:.6}</td></tr>",
                escape(TERMS[j]),
                WEIGHT_KEYS[j],
                job[j],
                t.fit.weights[j],
                ci(self.weight_ci),
                t.fit.beta[j],
                ci(self.beta_ci),
                t.scaling.mean[j],
                t.scaling.sd[j]
            );
        }
        let _ = writeln!(
            h,
            "</table><p>Intercept (standardised): {:.6}. Mean log-loss: {:.6}. Intervals: \
             {} refits on users resampled as eval resamples them (seed {}){}.</p>",
            t.fit.intercept,
            t.log_loss,
            boot.resamples,
            boot.seed,
            if self.resamples_skipped > 0 {
                format!(
                    "; {} resamples without both labels were left out",
                    self.resamples_skipped
                )
            } else {
                String::new()
            }
        );

        // The grid.
        let _ = writeln!(
            h,
            "<h2>Shape grid</h2><table><tr><th>half_life_days</th><th>mutual_bonus</th>\
             <th>w_proof</th><th>w_buyers</th><th>w_popularity</th><th>w_price</th>\
             <th>log-loss</th><th>min_score</th><th>{objective}</th><th>user_coverage</th>\
             <th class=\"l\"></th></tr>"
        );
        for (i, trial) in self.trials.iter().enumerate() {
            let chosen = trial.sweep.get(trial.chosen);
            let w = trial.fit.weights;
            let _ = writeln!(
                h,
                "<tr{}><td>{}</td><td>{}</td><td>{:.6}</td><td>{:.6}</td><td>{:.6}</td>\
                 <td>{:.6}</td><td>{:.6}</td><td>{}</td><td>{:.6}</td><td>{:.6}</td>\
                 <td class=\"l\">{}</td></tr>",
                if i == self.best {
                    " class=\"best\""
                } else {
                    ""
                },
                trial.half_life_days,
                trial.mutual_bonus,
                w[0],
                w[1],
                w[2],
                w[3],
                trial.log_loss,
                chosen.map(|c| c.min_score).unwrap_or(f64::NAN),
                trial.objective(objective),
                chosen.map(|c| c.metrics.user_coverage).unwrap_or(f64::NAN),
                if i == self.best {
                    "chosen"
                } else if !trial.meets_floor {
                    "below the coverage floor"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(h, "</table>");

        // Calibration.
        let _ = writeln!(
            h,
            "<h2>Calibration</h2><p>The rows in ten equal groups by predicted probability \
             of a purchase.</p><table><tr><th>group</th><th>rows</th><th>predicted</th>\
             <th>observed</th></tr>"
        );
        for (k, b) in self.calibration.iter().enumerate() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.6}</td><td>{:.6}</td></tr>",
                k + 1,
                b.rows,
                b.predicted,
                b.observed
            );
        }
        let _ = writeln!(h, "</table>");

        // Precision against coverage.
        let points: Vec<Point> = t
            .sweep
            .iter()
            .enumerate()
            .map(|(i, s)| Point {
                x: s.metrics.user_coverage,
                y: s.metrics.precision,
                mark: if i == t.chosen {
                    Mark::Best
                } else {
                    Mark::Eligible
                },
            })
            .collect();
        let mut bars = Vec::new();
        let references = c
            .results
            .iter()
            .skip(1)
            .map(|r| (r.name.clone(), r.metrics.user_coverage, r.metrics.precision))
            .collect();
        // The first result last, drawn over the others.
        bars.extend(c.results.iter().skip(1).filter_map(Bar::coverage_precision));
        bars.extend(c.results.first().and_then(Bar::coverage_precision));
        let extras = Extras {
            frontier: true,
            references,
            bars,
            ..Extras::default()
        };
        let svg = charts::chart(
            "precision against user_coverage, by min_score",
            "user_coverage",
            "precision",
            &points,
            &extras,
        )?;
        let _ = writeln!(
            h,
            "<h2>Precision against coverage</h2><p>Each point is one min_score on the split \
             (the chosen one in red); the job as it is and the baselines for reference, with \
             95% intervals.</p><figure>{svg}</figure>"
        );
        let _ = writeln!(
            h,
            "<table><tr><th>min_score</th><th>slots</th><th>users</th><th>hits</th>\
             <th>precision</th><th>user_coverage</th><th>{objective}</th></tr>"
        );
        for (i, s) in t.sweep.iter().enumerate() {
            let m = &s.metrics;
            let _ = writeln!(
                h,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.6}</td><td>{:.6}</td>\
                 <td>{:.6}</td></tr>",
                if i == t.chosen { " class=\"best\"" } else { "" },
                s.min_score,
                m.slots,
                m.users_with_slots,
                m.hits,
                m.precision,
                m.user_coverage,
                m.get(objective).unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(h, "</table>");

        // The comparison.
        let _ = writeln!(
            h,
            "<h2>Fitted against the job and the baselines</h2><pre>{}</pre>\
             <p>The fitted figures come from the same split the weights and min_score were \
             chosen on: they flatter the fit. Check on a later split with <code>boughtby eval \
             --config best.toml --as-of LATER --holdout-days {}</code>.</p></body></html>",
            escape(&c.table()),
            c.holdout_days
        );
        Ok(h)
    }
}
