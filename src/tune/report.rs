//! Defines `report.html`: one self-contained page per tune — the backtest,
//! the best candidate against the job as it is and the baselines, the
//! objective against each swept key, precision against user coverage with
//! the frontier marked, and the top of the leaderboard. Nothing in it
//! depends on the clock or the machine, so the same tune writes the same
//! page.

use std::fmt::Write as _;

use crate::error::Result;
use crate::eval::bracket;
use crate::eval::{METRICS, Metrics};
use crate::tune::Tuned;
use crate::tune::charts::{self, Bar, Extras, Mark, Point};
use crate::tune::grid::{Search, Values, minimised};
use crate::tune::leaderboard::plain;

/// Rows of the leaderboard shown in the page.
const TOP: usize = 25;

/// The pages' style sheet.
pub const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:13px}\
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
th{background:#f2f2f2}td.l,th.l{text-align:left}tr.best td{background:#fde8e8}\
figure{display:inline-block;margin:0.5em}code{background:#f4f4f4;padding:1px 4px}";

/// HTML-escapes text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The last part of `path`.
pub fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn metric_cell(name: &str, m: &Metrics) -> String {
    match name {
        "slots" | "users_with_slots" | "hits" => format!("{}", m.get(name).unwrap_or(0.0)),
        _ => format!("{:.6}", m.get(name).unwrap_or(0.0)),
    }
}

/// The page.
pub fn html(t: &Tuned) -> Result<String> {
    let mut h = String::new();
    let objective = t.grid.objective;
    let direction = if minimised(objective) {
        "lower is better"
    } else {
        "higher is better"
    };
    let job_name = escape(&file_name(&t.job.path));
    let _ = write!(
        h,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
         <title>boughtby tune: {job_name}</title><style>{STYLE}</style></head><body>\n\
         <h1>Tune of <code>{job_name}</code> with <code>{}</code></h1>\n",
        escape(&file_name(&t.grid.path))
    );
    let r = &t.reference;
    let _ = writeln!(
        h,
        "<p>Backtest: the model runs as the nightly job would at the cut <b>{}</b>, on rows \
         before it only; the truth is every non-refunded purchase from the cut to <b>{}</b> \
         ({} days). Users scored at the cut: {}; truth: {} (user, product) pairs of {} users.</p>",
        r.cut, r.as_of, r.holdout_days, r.users_scored, r.truth_pairs, r.truth_users
    );
    let search = match t.grid.search {
        Search::Grid => "grid".to_string(),
        Search::Random { samples, seed } => format!("random, {samples} samples, seed {seed}"),
    };
    let guards: Vec<String> = t.grid.guards.iter().map(|g| escape(&g.text())).collect();
    let eligible = t.eligible.iter().filter(|&&e| e).count();
    let _ = writeln!(
        h,
        "<p>Objective: <b>{objective}</b> ({direction}). Guard rails: {}. Search: {search}; \
         {} candidates, {eligible} within the guard rails.</p>",
        if guards.is_empty() {
            "none".to_string()
        } else {
            guards.join(", ")
        },
        t.candidates.len()
    );

    match t.best() {
        Some(b) => best_section(&mut h, t, b),
        None => {
            let _ = writeln!(
                h,
                "<h2>No best candidate</h2><p>No candidate keeps within the guard rails; \
                 no best.toml was written.</p>"
            );
        }
    }

    let _ = writeln!(h, "<h2>Charts</h2>");
    for (a, axis) in t.grid.axes.iter().enumerate() {
        let categorical = t
            .candidates
            .iter()
            .any(|c| c.values[a].as_float().is_none() && c.values[a].as_integer().is_none());
        let mut names: Vec<String> = Vec::new();
        if categorical {
            if let Values::List(list) = &axis.values {
                names = list.iter().map(plain).collect();
            }
            for c in &t.candidates {
                let name = plain(&c.values[a]);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let points: Vec<Point> = (0..t.candidates.len())
            .map(|i| {
                let v = &t.candidates[i].values[a];
                let x = if categorical {
                    names.iter().position(|n| *n == plain(v)).unwrap_or(0) as f64
                } else {
                    v.as_float()
                        .or_else(|| v.as_integer().map(|n| n as f64))
                        .unwrap_or(0.0)
                };
                Point {
                    x,
                    y: t.metrics[i].get(objective).unwrap_or(0.0),
                    mark: mark(t, i),
                }
            })
            .collect();
        let extras = Extras {
            categories: categorical.then_some(names),
            profile: true,
            ..Extras::default()
        };
        let title = format!("{objective} against {}", axis.name());
        let svg = charts::chart(&title, &axis.name(), objective, &points, &extras)?;
        let _ = writeln!(h, "<figure>{svg}</figure>");
    }
    let points: Vec<Point> = (0..t.candidates.len())
        .map(|i| Point {
            x: t.metrics[i].user_coverage,
            y: t.metrics[i].precision,
            mark: mark(t, i),
        })
        .collect();
    let references = t
        .reference
        .results
        .iter()
        .map(|n| {
            let name = if n.name == "social_v1" {
                "job as is".to_string()
            } else {
                n.name.clone()
            };
            (name, n.metrics.user_coverage, n.metrics.precision)
        })
        .collect();
    let mut bars = Vec::new();
    if let Some(c) = &t.confidence {
        for (i, m) in t.metrics.iter().enumerate() {
            bars.push(Bar {
                x: m.user_coverage,
                y: m.precision,
                x_ci: c.user_coverage[i],
                y_ci: c.precision[i],
            });
        }
        bars.extend(
            t.reference
                .results
                .iter()
                .filter_map(Bar::coverage_precision),
        );
    }
    let extras = Extras {
        frontier: true,
        references,
        bars,
        ..Extras::default()
    };
    let svg = charts::chart(
        "precision against user_coverage",
        "user_coverage",
        "precision",
        &points,
        &extras,
    )?;
    let _ = writeln!(h, "<figure>{svg}</figure>");

    leaderboard_section(&mut h, t);
    let _ = writeln!(
        h,
        "<p>Every candidate: <code>leaderboard.csv</code>, <code>leaderboard.parquet</code>.</p>\
         </body></html>"
    );
    Ok(h)
}

fn mark(t: &Tuned, i: usize) -> Mark {
    if t.best() == Some(i) {
        Mark::Best
    } else if t.eligible[i] {
        Mark::Eligible
    } else {
        Mark::Ineligible
    }
}

fn best_section(h: &mut String, t: &Tuned, b: usize) {
    let best = &t.candidates[b];
    let _ = writeln!(
        h,
        "<h2>Best: candidate {}</h2>\n<table><tr><th class=\"l\">setting</th>\
         <th>the job</th><th>best</th></tr>",
        best.id
    );
    for axis in &t.grid.axes {
        let of = |model: &crate::config::ModelConfig,
                  selection: &crate::config::SelectionConfig| {
            let section = if axis.section == "model" {
                crate::tune::grid::toml_of(model)
            } else {
                crate::tune::grid::toml_of(selection)
            };
            section.get(axis.key).map(plain).unwrap_or_default()
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&axis.name()),
            escape(&of(&t.job.model, &t.job.selection)),
            escape(&of(&best.model, &best.selection))
        );
    }
    let _ = writeln!(
        h,
        "</table>\n<p><code>best.toml</code> holds these settings as a complete job file; \
         <code>boughtby eval --config best.toml --holdout-days {}</code> reproduces its row.</p>",
        t.cut.holdout_days
    );
    let _ = write!(h, "<table><tr><th class=\"l\">name</th>");
    for name in METRICS {
        let _ = write!(h, "<th>{name}</th>");
    }
    let _ = writeln!(h, "</tr>");
    let mut rows = vec![(format!("best (candidate {})", best.id), t.metrics[b])];
    for n in &t.reference.results {
        let name = if n.name == "social_v1" {
            "the job as it is (social_v1)".to_string()
        } else {
            format!("baseline {}", n.name)
        };
        rows.push((name, n.metrics));
    }
    for (k, (name, m)) in rows.iter().enumerate() {
        let class = if k == 0 { " class=\"best\"" } else { "" };
        let _ = write!(h, "<tr{class}><td class=\"l\">{}</td>", escape(name));
        for metric in METRICS {
            let _ = write!(h, "<td>{}</td>", metric_cell(metric, m));
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</table>");
    if let Some(c) = &t.confidence {
        let objective = t.grid.objective;
        let ties = (0..t.candidates.len())
            .filter(|&i| i != b && c.ties_best(i))
            .count();
        let _ = writeln!(
            h,
            "<p>95% intervals: a bootstrap of the {} users scored at the cut, {} resamples, seed \
             {}, every candidate on the same resampled users. The best's {objective}: {} {}. \
             <b>{ties}</b> other candidate(s) are <b>not distinguishable</b> from it: the \
             interval of the best's {objective} minus theirs contains 0 (marked in the \
             leaderboard).</p>",
            t.reference.users_scored,
            c.bootstrap.resamples,
            c.bootstrap.seed,
            metric_cell(objective, &t.metrics[b]),
            bracket(objective, c.objective[b], false),
        );
    }
}

fn leaderboard_section(h: &mut String, t: &Tuned) {
    let _ = writeln!(
        h,
        "<h2>Leaderboard (top {} of {})</h2>\n<table><tr><th>rank</th><th>candidate</th>\
         <th>eligible</th>",
        TOP.min(t.ranking.len()),
        t.ranking.len()
    );
    for axis in &t.grid.axes {
        let _ = write!(h, "<th>{}</th>", escape(&axis.name()));
    }
    let objective = t.grid.objective;
    if t.confidence.is_some() {
        let _ = write!(
            h,
            "<th>{objective} 95% interval</th><th>best minus it</th><th>vs the best</th>"
        );
    }
    for name in METRICS {
        let _ = write!(h, "<th>{name}</th>");
    }
    let _ = writeln!(h, "</tr>");
    for (rank, &i) in t.ranking.iter().take(TOP).enumerate() {
        let class = if t.best() == Some(i) {
            " class=\"best\""
        } else {
            ""
        };
        let c = &t.candidates[i];
        let _ = write!(
            h,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td>",
            rank + 1,
            c.id,
            if t.eligible[i] { "yes" } else { "no" }
        );
        for v in &c.values {
            let _ = write!(h, "<td>{}</td>", escape(&plain(v)));
        }
        if let Some(conf) = &t.confidence {
            let to_best = conf.to_best.as_ref().and_then(|d| d.get(i));
            let diff = to_best
                .and_then(|d| {
                    Some(format!(
                        "{:+.6} {}",
                        d.value,
                        bracket(objective, d.ci?, true)
                    ))
                })
                .unwrap_or_default();
            let verdict = if t.best() == Some(i) {
                "best"
            } else if conf.ties_best(i) {
                "not distinguishable"
            } else if to_best.is_some() {
                "distinguishable"
            } else {
                ""
            };
            let _ = write!(
                h,
                "<td>{}</td><td>{diff}</td><td class=\"l\">{verdict}</td>",
                bracket(objective, conf.objective[i], false)
            );
        }
        for metric in METRICS {
            let _ = write!(h, "<td>{}</td>", metric_cell(metric, &t.metrics[i]));
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</table>");
}
