//! `fit`: its rows are the nightly job's candidates at the cut with
//! features from before the cut and labels from the holdout only; its
//! best.toml reproduces through `eval` the figures it printed; it refuses
//! what it cannot do. (The regression's recovery of a planted signal and
//! of a pure-noise term is a unit test of `fit::logistic`.)

use std::collections::BTreeMap;
use std::path::Path;

use boughtby::config::{Job, Overrides};
use boughtby::eval::World;
use boughtby::fit::data;

use super::{METRICS, fixture, json_of, path_str, result, stderr, stdout};
use crate::util::{run, run_ok};

/// (user id, product id) -> (terms, label) of the fit's rows.
fn rows_of(job: &str) -> BTreeMap<(i64, i64), ([f64; 4], bool)> {
    let job = Job::load(&fixture(job), &Overrides::default()).unwrap();
    let world = World::load(&job, 4).unwrap();
    let rows = data::rows(&world, &world.job.model, &world.job.selection);
    (0..rows.len())
        .map(|i| {
            let key = (
                world.ctx.users.id(rows.user[i]),
                world.ctx.catalog.ids.id(rows.product[i]),
            );
            (key, (rows.x[i], rows.y[i]))
        })
        .collect()
}

#[test]
fn fit_rows_take_features_from_before_the_cut_and_labels_from_the_holdout() {
    // The split fixture (tests/science/split/README.md), cut 2026-11-20:
    // user 2 buys 101 exactly at the cut, user 1 buys 102 (private) and
    // 103 after it, and 101 exactly at as_of (outside the holdout); buyer
    // 12 buys 101 at the cut and 11 buys 105 after it (neither may
    // support anything at the cut).
    let all = rows_of("split/job.toml");
    let before = rows_of("split/job_before.toml");
    let keys: Vec<_> = all.keys().copied().collect();
    assert_eq!(
        keys,
        before.keys().copied().collect::<Vec<_>>(),
        "the same candidates"
    );
    assert!(!all.contains_key(&(1, 105)), "105 is bought after the cut");
    for (key, (x, _)) in &all {
        assert_eq!(*x, before[key].0, "{key:?}: a feature saw the holdout");
    }
    // (1, 101): one supporter (11 on 2026-11-16), not 12's purchase at the cut.
    assert_eq!(all[&(1, 101)].0[1], 2f64.ln(), "ln(1 + n) with n = 1");
    let labels: BTreeMap<(i64, i64), bool> = all.iter().map(|(k, (_, y))| (*k, *y)).collect();
    assert!(labels[&(2, 101)], "bought exactly at the cut");
    assert!(labels[&(1, 103)], "bought in the holdout");
    assert!(labels[&(1, 102)], "bought in the holdout, privately");
    assert!(!labels[&(1, 101)], "bought at as_of: after the holdout");
    assert!(before.values().all(|(_, y)| !y), "no holdout, no label");
}

/// A number of a table row of `fit`'s or `eval`'s output, by column.
fn row_of(text: &str, name: &str) -> Vec<f64> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{text}"));
    line.split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn fit_best_toml_reproduces_its_figures_through_eval() {
    let dir = tempfile::tempdir().unwrap();
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/sample.toml");
    let out_dir = dir.path().join("fitted");
    let out = run_ok(&[
        "fit",
        "--config",
        path_str(&job),
        "--holdout-days",
        "7",
        "--bootstrap",
        "20",
        "--output",
        path_str(&out_dir),
    ]);
    let text = stdout(&out);
    let fitted = row_of(&text, "fitted");
    assert!(fitted[2] > 0.0, "hits: {text}");
    let best = out_dir.join("best.toml");
    let toml = std::fs::read_to_string(&best).unwrap();
    assert!(toml.contains("w_popularity = "), "{toml}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    for part in [
        "Weights",
        "Calibration",
        "Precision against coverage",
        "<svg",
    ] {
        assert!(html.contains(part), "report.html lacks {part}");
    }

    // The same split through eval: the same figures (the table's digits).
    let eval = json_of(&[
        "eval",
        "--config",
        path_str(&best),
        "--holdout-days",
        "7",
        "--bootstrap",
        "0",
        "--json",
    ]);
    let model = result(&eval, "social_v1");
    let columns = [
        "slots",
        "users_with_slots",
        "hits",
        "precision",
        "hit_rate",
        "recall",
        "ndcg",
        "user_coverage",
        "catalog_coverage",
        "merchant_gini",
    ];
    assert_eq!(columns, METRICS);
    for (i, metric) in columns.iter().enumerate() {
        let want = model[metric].as_f64().unwrap();
        assert!(
            (fitted[i] - want).abs() <= 5e-7,
            "{metric}: fit printed {}, eval of best.toml gives {want}",
            fitted[i]
        );
    }
    // And the job as it is, as fit printed it, is eval of the job.
    let plain = json_of(&[
        "eval",
        "--config",
        path_str(&job),
        "--holdout-days",
        "7",
        "--bootstrap",
        "0",
        "--json",
    ]);
    let job_row = row_of(&text, "job");
    let own = result(&plain, "social_v1");
    for (i, metric) in columns.iter().enumerate() {
        assert!(
            (job_row[i] - own[metric].as_f64().unwrap()).abs() <= 5e-7,
            "{metric}"
        );
    }
}

#[test]
fn fit_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("x");
    let job = fixture("split/job_before.toml");
    let fit = |extra: &[&str]| {
        let mut args = vec![
            "fit",
            "--config",
            path_str(&job),
            "--holdout-days",
            "4",
            "--output",
            path_str(&out_dir),
        ];
        args.extend(extra);
        run(&args)
    };
    // No purchase in the holdout: nothing to learn from.
    let out = fit(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot fit"), "{}", stderr(&out));
    let out = fit(&["--objective", "clicks"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--objective"), "{}", stderr(&out));
    let out = fit(&["--half-life-days", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out_dir.join("best.toml").exists());
}
