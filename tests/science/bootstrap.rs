//! The intervals of `eval`: on random worlds every interval and paired
//! difference equals a plain computation (resampled users drawn from the
//! project's seeded generator, each resample's figures computed the plain
//! way from the plain slates with each user repeated as often as drawn);
//! a baseline identical to the model differs from it by exactly zero.

use std::collections::BTreeMap;

use boughtby::random::Rng;
use proptest::prelude::*;
use serde_json::Value;

use super::{
    Figures, METRICS, fixture, json_of, path_str, plain_figures, plain_slates, result, stdout,
};
use crate::util::run_ok;
use crate::world::{SMALL, arb_case, write_case};

/// The 2.5th and 97.5th percentiles, interpolated between order statistics.
fn plain_interval(mut values: Vec<f64>) -> [f64; 2] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = q * (values.len() - 1) as f64;
        let lo = rank.floor() as usize;
        let hi = (lo + 1).min(values.len() - 1);
        values[lo] + (rank - lo as f64) * (values[hi] - values[lo])
    };
    [at(0.025), at(0.975)]
}

/// How often each scored user is drawn in resample `b`.
fn plain_weights(scored: &[i64], seed: u64, b: u64) -> BTreeMap<i64, usize> {
    let mut rng = Rng::stream(seed, b);
    let mut weights = BTreeMap::new();
    for _ in 0..scored.len() {
        *weights
            .entry(scored[rng.below(scored.len() as u64) as usize])
            .or_insert(0) += 1;
    }
    weights
}

fn ci_of(v: &Value) -> [f64; 2] {
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("not an interval: {v}"));
    assert_eq!(a.len(), 2, "{v}");
    [a[0].as_f64().unwrap(), a[1].as_f64().unwrap()]
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        max_shrink_iters: 100,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every interval and paired difference of `eval --json` equals the
    /// plain computation over the same resampled users.
    #[test]
    fn eval_intervals_match_a_plain_bootstrap(
        case in arb_case(SMALL),
        days in 1i64..20,
        seed in 0u64..1000,
    ) {
        const B: u64 = 60;
        let dir = tempfile::tempdir().unwrap();
        let job = write_case(dir.path(), &case);
        let eval = json_of(&[
            "eval", "--config", path_str(&job), "--holdout-days", &days.to_string(),
            "--as-of", &case.as_of_arg(), "--json",
            "--bootstrap", &B.to_string(), "--seed", &seed.to_string(),
        ]);
        let plain = plain_slates(&case, days);
        // Per resample, per set, the plain figures of the resampled users.
        let draws: Vec<Vec<Figures>> = (0..B)
            .map(|b| {
                let weights = plain_weights(&plain.scored, seed, b);
                plain.sets.iter().map(|set| {
                    let repeated: Vec<(i64, Vec<i64>)> = set
                        .iter()
                        .flat_map(|(u, ps)| {
                            std::iter::repeat_n((*u, ps.clone()), weights.get(u).copied().unwrap_or(0))
                        })
                        .collect();
                    plain_figures(&repeated, &plain.truth, plain.scored.len(), plain.positions, &case)
                }).collect()
            })
            .collect();
        let full: Vec<Figures> = plain.sets.iter()
            .map(|set| plain_figures(set, &plain.truth, plain.scored.len(), plain.positions, &case))
            .collect();
        for (k, name) in ["social_v1", "popular", "social_count"].iter().enumerate() {
            let got = result(&eval, name);
            for (i, metric) in METRICS.iter().enumerate() {
                let want = plain_interval(draws.iter().map(|d| d[k].0[i]).collect());
                let ci = ci_of(&got["ci"][metric]);
                prop_assert!(
                    near(ci[0], want[0]) && near(ci[1], want[1]),
                    "{name} {metric}: eval {ci:?}, plain {want:?}"
                );
                if k == 0 {
                    prop_assert!(got.get("diff_to_model").is_none(), "the model has no diff");
                    continue;
                }
                let diff = &got["diff_to_model"][metric];
                let value = diff["value"].as_f64().unwrap();
                prop_assert!(near(value, full[0].0[i] - full[k].0[i]), "{name} {metric} diff");
                let want = plain_interval(draws.iter().map(|d| d[0].0[i] - d[k].0[i]).collect());
                let ci = ci_of(&diff["ci"]);
                prop_assert!(
                    near(ci[0], want[0]) && near(ci[1], want[1]),
                    "{name} {metric} diff: eval {ci:?}, plain {want:?}"
                );
            }
        }
    }
}

/// The split fixture's job with only `w_buyers` non-zero, written beside
/// absolute paths: its `social_count` baseline is the model itself.
fn buyers_only_job(dir: &std::path::Path) -> std::path::PathBuf {
    let base = fixture("split");
    let p = |f: &str| base.join(f).display().to_string();
    let text = format!(
        "[inputs]\nfollows = {:?}\npurchases = {:?}\nproducts = {:?}\nimpressions = {:?}\n\n\
         [run]\nas_of = \"2026-11-24T00:00:00Z\"\n\n\
         [model]\nw_proof = 0.0\nw_popularity = 0.0\nw_price = 0.0\nw_buyers = 0.5\n\n\
         [selection]\npositions = [4, 14]\nmin_score = 0.0\n",
        p("follows.csv"),
        p("purchases.csv"),
        p("products.csv"),
        p("impressions.csv"),
    );
    let job = dir.join("buyers_only.toml");
    std::fs::write(&job, text).unwrap();
    job
}

#[test]
fn a_baseline_identical_to_the_model_differs_by_exactly_zero() {
    let dir = tempfile::tempdir().unwrap();
    let job = buyers_only_job(dir.path());
    let eval = json_of(&[
        "eval",
        "--config",
        path_str(&job),
        "--holdout-days",
        "4",
        "--json",
    ]);
    let model = result(&eval, "social_v1");
    let count = result(&eval, "social_count");
    assert!(
        model["hits"].as_f64().unwrap() > 0.0,
        "the test needs hits: {eval}"
    );
    for metric in METRICS {
        assert_eq!(model[metric], count[metric], "{metric}");
        let diff = &count["diff_to_model"][metric];
        assert_eq!(diff["value"].as_f64(), Some(0.0), "{metric}: {diff}");
        assert_eq!(ci_of(&diff["ci"]), [0.0, 0.0], "{metric}: {diff}");
        assert_eq!(ci_of(&model["ci"][metric]), ci_of(&count["ci"][metric]));
    }
    // The popular baseline does differ, so the test can fail.
    let popular = result(&eval, "popular");
    assert!(
        METRICS
            .iter()
            .any(|m| ci_of(&popular["diff_to_model"][m]["ci"]) != [0.0, 0.0]),
        "{popular}"
    );
    // The table says so in words.
    let text = stdout(&run_ok(&[
        "eval",
        "--config",
        path_str(&job),
        "--holdout-days",
        "4",
    ]));
    let line = text
        .lines()
        .find(|l| l.starts_with("precision"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.trim_end().ends_with("not distinguishable"), "{line}");
}

#[test]
fn intervals_follow_the_seed_and_turn_off() {
    // The sample world: thousands of users, so that seeds show.
    let job = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/sample.toml");
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--config",
            path_str(&job),
            "--holdout-days",
            "7",
            "--json",
        ];
        args.extend(extra);
        if !extra.contains(&"--bootstrap") {
            args.extend(["--bootstrap", "200"]);
        }
        json_of(&args)
    };
    let (a, b, c) = (eval(&[]), eval(&["--seed", "0"]), eval(&["--seed", "9"]));
    assert!(result(&a, "social_v1")["hits"].as_f64().unwrap() > 0.0);
    assert_eq!(a, b, "the default seed is 0");
    assert_ne!(a, c, "another seed, other resamples");
    let off = eval(&["--bootstrap", "0"]);
    for r in off["results"].as_array().unwrap() {
        assert!(r.get("ci").is_none(), "{r}");
        if let Some(d) = r.get("diff_to_model") {
            assert!(d["precision"].get("ci").is_none(), "{d}");
            assert!(d["precision"]["value"].is_number(), "{d}");
        }
    }
    // Every key of the plain result is still there.
    for (x, y) in off["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(a["results"].as_array().unwrap())
    {
        for metric in METRICS {
            assert_eq!(x[metric], y[metric], "{metric}");
        }
    }
}

/// tune marks the candidates whose objective the paired bootstrap cannot
/// tell from the best's: a candidate whose slots are the best's (only
/// `max_buyers_shown` differs) is marked, with a difference of exactly 0;
/// one that shows nothing is not.
#[test]
fn tune_marks_candidates_not_distinguishable_from_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.toml");
    std::fs::write(
        &grid,
        "objective = \"precision\"\n[selection]\nmax_buyers_shown = [3, 1]\n\
         min_score = [0.2, 1000.0]\n",
    )
    .unwrap();
    let job = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/sample.toml");
    let out_dir = dir.path().join("tuned");
    let out = run_ok(&[
        "tune",
        "--config",
        path_str(&job),
        "--grid",
        path_str(&grid),
        "--holdout-days",
        "7",
        "--output",
        path_str(&out_dir),
        "--bootstrap",
        "200",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("1 other candidate(s) not distinguishable"),
        "{text}"
    );
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    let rows: Vec<&str> = html
        .lines()
        .filter(|l| l.starts_with("<tr") && l.contains("<td>"))
        .filter(|l| l.contains("not distinguishable") || l.contains(">distinguishable<"))
        .collect();
    assert_eq!(rows.len(), 3, "{html}");
    let tie = rows
        .iter()
        .find(|l| l.contains("not distinguishable"))
        .unwrap();
    assert!(tie.contains("+0.000000 [+0.000000, +0.000000]"), "{tie}");
    assert!(
        html.contains("95% intervals"),
        "the frontier shows the bars"
    );
}
