//! The data scientists' commands, end to end: `eval`, `tune`, `explain`.
//!
//! - eval: the metrics of a hand-made world against numbers worked out by
//!   hand (`tests/science/split/README.md`: ties, a user without truth,
//!   ideal DCG, Gini); the split uses no row at or after the cut (the same
//!   slots with and without the holdout's rows, though those rows would
//!   change the model at as_of); and, on random worlds, every figure equals
//!   a plain computation from the reference model's slots at the cut.
//! - tune: the best candidate is the best of its leaderboard within the
//!   guard rails, its best.toml reproduces its row through `eval`, every
//!   candidate's row equals `eval` of its settings (the reuse of loaded and
//!   derived data changes nothing), the Parquet leaderboard equals the CSV,
//!   random search is seeded, bad grids are refused.
//! - explain: each reason on a world built to trigger it
//!   (`tests/science/explain/README.md`), values computed here from the
//!   formulas, and private buyers never named.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;
use serde_json::Value;

use boughtby::config::{Job, Overrides};
use boughtby::eval::World;

use crate::reference::{Params, reference};
use crate::util::{read_latest, run, run_ok};
use crate::world::{Case, DAY, SMALL, arb_case, write_case};

mod bootstrap;
mod fit;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("science")
        .join(name)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(args: &[&str]) -> Value {
    let out = run_ok(args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&out)))
}

fn eval_json(job: &Path, holdout_days: &str) -> Value {
    json_of(&[
        "eval",
        "--config",
        path_str(job),
        "--holdout-days",
        holdout_days,
        "--json",
    ])
}

/// The ten metrics, in eval's order.
const METRICS: [&str; 10] = [
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

/// One result of eval, as plain numbers in METRICS order.
#[derive(Debug, Clone, PartialEq)]
struct Figures([f64; 10]);

impl Figures {
    fn from_json(v: &Value) -> Figures {
        let mut out = [0.0; 10];
        for (i, name) in METRICS.iter().enumerate() {
            out[i] = v[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} missing in {v}"));
        }
        Figures(out)
    }

    fn assert_close(&self, want: &Figures, what: &str) {
        for (i, name) in METRICS.iter().enumerate() {
            let (a, b) = (self.0[i], want.0[i]);
            assert!(
                (a - b).abs() <= 1e-12,
                "{what}: {name} is {a}, expected {b}\n got {self:?}\nwant {want:?}"
            );
        }
    }
}

fn result<'a>(eval: &'a Value, name: &str) -> &'a Value {
    eval["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no result {name} in {eval}"))
}

/// `1 / log2(k + 1)`.
fn d(k: usize) -> f64 {
    1.0 / ((k + 1) as f64).log2()
}

// ---------------------------------------------------------------------------
// eval: the hand-made split world
// ---------------------------------------------------------------------------

#[test]
fn eval_figures_match_the_hand_computation() {
    let eval = eval_json(&fixture("split/job.toml"), "4");
    assert_eq!(eval["as_of"], "2026-11-24T00:00:00Z");
    assert_eq!(eval["cut"], "2026-11-20T00:00:00Z");
    assert_eq!(eval["holdout_days"], 4);
    let mut keys: Vec<&String> = eval.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["as_of", "cut", "holdout_days", "results"]);
    let names: Vec<&str> = eval["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["social_v1", "popular", "social_count"]);
    for (i, r) in eval["results"].as_array().unwrap().iter().enumerate() {
        // The model: its intervals; each baseline: also its difference.
        let want = if i == 0 { 12 } else { 13 };
        assert_eq!(
            r.as_object().unwrap().len(),
            want,
            "name, ten metrics, ci (and diff_to_model): {r}"
        );
        assert_eq!(r["ci"].as_object().unwrap().len(), 10, "{r}");
    }

    let ideal_1 = d(1) + d(2); // user 1: min(2 positions, 3 truth pairs)
    let ideal_2 = d(1); // user 2: min(2, 1)
    let model = Figures([
        4.0,
        2.0,
        3.0,
        3.0 / 4.0,
        1.0,
        3.0 / 4.0,
        ((d(1) + d(2)) / ideal_1 + d(2) / ideal_2) / 2.0,
        2.0 / 3.0,
        3.0 / 5.0,
        10.0 / 20.0,
    ]);
    let popular = Figures([
        4.0,
        2.0,
        1.0,
        1.0 / 4.0,
        1.0 / 2.0,
        1.0 / 4.0,
        (0.0 + d(1) / ideal_2) / 2.0,
        2.0 / 3.0,
        3.0 / 5.0,
        10.0 / 20.0,
    ]);
    let social_count = Figures([
        4.0,
        2.0,
        2.0,
        2.0 / 4.0,
        1.0,
        2.0 / 4.0,
        (d(2) / ideal_1 + d(1) / ideal_2) / 2.0,
        2.0 / 3.0,
        3.0 / 5.0,
        10.0 / 20.0,
    ]);
    Figures::from_json(result(&eval, "social_v1")).assert_close(&model, "social_v1");
    Figures::from_json(result(&eval, "popular")).assert_close(&popular, "popular");
    Figures::from_json(result(&eval, "social_count")).assert_close(&social_count, "social_count");
}

#[test]
fn eval_split_uses_no_row_at_or_after_the_cut() {
    let load = |name: &str| {
        let job = Job::load(&fixture(name), &Overrides::default()).unwrap();
        World::load(&job, 4).unwrap()
    };
    let (before, all) = (load("split/job_before.toml"), load("split/job.toml"));
    let slates = |w: &World| -> Vec<(i64, Vec<i64>)> {
        let (_, slates) = boughtby::eval::score_model(w, &w.job.model, &w.job.selection).unwrap();
        slates
            .iter()
            .map(|(u, ps)| {
                let ps = ps.iter().map(|&p| w.ctx.catalog.ids.id(p)).collect();
                (w.ctx.users.id(u), ps)
            })
            .collect()
    };
    let want = vec![(1, vec![103, 102]), (2, vec![103, 101])];
    assert_eq!(
        slates(&before),
        want,
        "model at the cut, rows before it only"
    );
    assert_eq!(
        slates(&all),
        want,
        "rows at or after the cut reached the model"
    );
    assert_eq!(before.truth.pairs(), 0);
    assert_eq!(all.truth.pairs(), 7, "see tests/science/split/README.md");

    // The nightly job at the cut writes the same slots from both jobs...
    let dir = tempfile::tempdir().unwrap();
    let slots_at = |job: &str, out: &str, as_of: Option<&str>| {
        let out = dir.path().join(out);
        let mut args = vec!["run", "--config", job, "--output", path_str(&out)];
        if let Some(t) = as_of {
            args.extend(["--as-of", t]);
        }
        run_ok(&args);
        let mut by_user: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for s in read_latest(&out) {
            by_user.entry(s.user_id).or_default().push(s.product_id);
        }
        by_user.into_iter().collect::<Vec<_>>()
    };
    let job_all = fixture("split/job.toml");
    let job_before = fixture("split/job_before.toml");
    let cut = Some("2026-11-20T00:00:00Z");
    assert_eq!(slots_at(path_str(&job_before), "a", cut), want);
    assert_eq!(slots_at(path_str(&job_all), "b", cut), want);
    // ...while at as_of the holdout's rows do change it (the test has teeth):
    // user 1 then owns 103 and 102, and 103 is fatigued for them.
    let at_as_of = slots_at(path_str(&job_all), "c", None);
    assert_ne!(at_as_of[0], (1, vec![103, 102]), "{at_as_of:?}");

    // eval sees the same model; only the truth differs.
    let a = eval_json(&job_before, "4");
    let b = eval_json(&job_all, "4");
    for name in ["social_v1", "popular", "social_count"] {
        let (fa, fb) = (
            Figures::from_json(result(&a, name)),
            Figures::from_json(result(&b, name)),
        );
        for k in [0, 1, 7, 8, 9] {
            assert_eq!(fa.0[k], fb.0[k], "{name} {}", METRICS[k]);
        }
        assert_eq!(fa.0[2], 0.0, "{name}: no truth, no hits");
    }
}

#[test]
fn eval_prints_a_table_and_refuses_bad_holdouts() {
    let job = fixture("split/job.toml");
    let out = run_ok(&["eval", "--config", path_str(&job), "--holdout-days", "4"]);
    let text = stdout(&out);
    assert!(text.contains("cut 2026-11-20T00:00:00Z"), "{text}");
    assert!(
        text.contains("truth: 7 (user, product) pairs of 5 users"),
        "{text}"
    );
    for line in ["social_v1", "popular", "social_count"] {
        let row = text.lines().find(|l| l.starts_with(line)).expect(line);
        assert!(row.split_whitespace().count() == 11, "{row}");
    }
    for bad in ["0", "-3", "36501", "x"] {
        let out = run(&["eval", "--config", path_str(&job), "--holdout-days", bad]);
        assert_eq!(out.status.code(), Some(1), "--holdout-days {bad}");
    }
    let out = run(&["eval", "--config", path_str(&job)]);
    assert_eq!(out.status.code(), Some(1), "--holdout-days is required");
    // --as-of moves the whole split.
    let moved = json_of(&[
        "eval",
        "--config",
        path_str(&job),
        "--holdout-days",
        "2",
        "--as-of",
        "2026-11-22",
        "--json",
    ]);
    assert_eq!(moved["cut"], "2026-11-20T00:00:00Z");
    assert_eq!(moved["as_of"], "2026-11-22T00:00:00Z");
}

// ---------------------------------------------------------------------------
// eval on random worlds, against a plain computation
// ---------------------------------------------------------------------------

/// The metrics written the plain way: nested loops over slates and truth.
fn plain_figures(
    slates: &[(i64, Vec<i64>)],
    truth: &BTreeSet<(i64, i64)>,
    users_scored: usize,
    positions: usize,
    case: &Case,
) -> Figures {
    let (mut slots, mut users, mut hits, mut users_hit, mut truth_pairs) = (0, 0, 0, 0, 0);
    let mut ndcg = 0.0;
    for (u, products) in slates {
        if products.is_empty() {
            continue;
        }
        users += 1;
        slots += products.len();
        let mine = truth.iter().filter(|(tu, _)| tu == u).count();
        truth_pairs += mine;
        let mut dcg = 0.0;
        let mut user_hits = 0;
        for (k, p) in products.iter().enumerate() {
            if truth.contains(&(*u, *p)) {
                user_hits += 1;
                dcg += d(k + 1);
            }
        }
        hits += user_hits;
        if user_hits > 0 {
            users_hit += 1;
        }
        let mut ideal = 0.0;
        for k in 1..=positions.min(mine) {
            ideal += d(k);
        }
        ndcg += if ideal > 0.0 { dcg / ideal } else { 0.0 };
    }
    let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    let available: Vec<_> = case
        .world
        .products
        .iter()
        .filter(|p| p.available != Some(false))
        .collect();
    let shown: BTreeSet<i64> = slates.iter().flat_map(|(_, ps)| ps.clone()).collect();
    let mut per_merchant: BTreeMap<i64, f64> =
        available.iter().map(|p| (p.merchant_id, 0.0)).collect();
    for (_, products) in slates {
        for p in products {
            let merchant = case
                .world
                .products
                .iter()
                .find(|q| q.product_id == *p)
                .unwrap();
            *per_merchant.get_mut(&merchant.merchant_id).unwrap() += 1.0;
        }
    }
    let mut x: Vec<f64> = per_merchant.into_values().collect();
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    let total: f64 = x.iter().sum();
    let mut g = 0.0;
    for (i, xi) in x.iter().enumerate() {
        g += (2.0 * (i as f64 + 1.0) - n - 1.0) * xi;
    }
    Figures([
        slots as f64,
        users as f64,
        hits as f64,
        ratio(hits as f64, slots as f64),
        ratio(users_hit as f64, users as f64),
        ratio(hits as f64, truth_pairs as f64),
        ratio(ndcg, users as f64),
        ratio(users as f64, users_scored as f64),
        ratio(shown.len() as f64, available.len() as f64),
        ratio(g, n * total),
    ])
}

/// The slates of the model and the two baselines at the cut, the truth and
/// the users scored, computed the plain way.
struct PlainSlates {
    /// social_v1, popular, social_count.
    sets: [Vec<(i64, Vec<i64>)>; 3],
    truth: BTreeSet<(i64, i64)>,
    /// Ascending.
    scored: Vec<i64>,
    positions: usize,
}

/// Everything eval should print for `case` with a holdout of `days`.
fn plain_eval(case: &Case, days: i64) -> [Figures; 3] {
    let p = plain_slates(case, days);
    p.sets
        .each_ref()
        .map(|set| plain_figures(set, &p.truth, p.scored.len(), p.positions, case))
}

fn plain_slates(case: &Case, days: i64) -> PlainSlates {
    let w = &case.world;
    let cut = case.as_of - days * DAY;
    let in_catalog = |p: i64| w.products.iter().any(|q| q.product_id == p);
    let truth: BTreeSet<(i64, i64)> = w
        .purchases
        .iter()
        .filter(|r| {
            r.refunded != Some(true) && cut <= r.purchased_at && r.purchased_at < case.as_of
        })
        .filter(|r| in_catalog(r.product_id))
        .map(|r| (r.buyer_id, r.product_id))
        .collect();
    let flagged = |u: i64| {
        w.users.iter().flatten().any(|r| {
            r.user_id == u && (r.promotions_opt_out == Some(true) || r.suspended == Some(true))
        })
    };
    let scored: BTreeSet<i64> = w
        .follows
        .iter()
        .filter(|f| f.follower_id != f.followee_id && !flagged(f.follower_id))
        .map(|f| f.follower_id)
        .collect();
    let slates_of = |params: &Params| -> Vec<(i64, Vec<i64>)> {
        let mut by_user: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for e in reference(w, params, cut) {
            by_user.entry(e.user_id).or_default().push(e.product_id);
        }
        by_user.into_iter().collect()
    };
    let p = &case.params;
    let positions = p.positions.len();
    let model = slates_of(p);

    // popular: G_p in the lookback window before the cut, any visibility;
    // never a product of a sensitive category.
    let start = cut - p.lookback_days * DAY;
    let mut order: Vec<(i64, i64)> = w
        .products
        .iter()
        .filter(|q| q.available != Some(false))
        .filter(|q| {
            q.category
                .as_ref()
                .is_none_or(|c| !p.sensitive_categories.contains(c))
        })
        .map(|q| {
            let buyers: BTreeSet<i64> = w
                .purchases
                .iter()
                .filter(|r| r.product_id == q.product_id && r.refunded != Some(true))
                .filter(|r| start <= r.purchased_at && r.purchased_at < cut)
                .map(|r| r.buyer_id)
                .collect();
            (-(buyers.len() as i64), q.product_id)
        })
        .collect();
    order.sort();
    let popular: Vec<(i64, Vec<i64>)> = model
        .iter()
        .map(|(u, _)| {
            let owned = |q: i64| {
                w.purchases.iter().any(|r| {
                    r.buyer_id == *u
                        && r.product_id == q
                        && r.refunded != Some(true)
                        && r.purchased_at < cut
                })
            };
            let mut chosen: Vec<i64> = Vec::new();
            for &(_, q) in &order {
                if chosen.len() == positions {
                    break;
                }
                let prod = w.products.iter().find(|x| x.product_id == q).unwrap();
                let same_merchant = chosen
                    .iter()
                    .filter(|c| {
                        w.products
                            .iter()
                            .find(|x| x.product_id == **c)
                            .unwrap()
                            .merchant_id
                            == prod.merchant_id
                    })
                    .count() as i64;
                let same_category = chosen
                    .iter()
                    .filter(|c| {
                        let cat = &w
                            .products
                            .iter()
                            .find(|x| x.product_id == **c)
                            .unwrap()
                            .category;
                        prod.category.is_some() && *cat == prod.category
                    })
                    .count() as i64;
                if !owned(q)
                    && same_merchant < p.max_per_merchant
                    && same_category < p.max_per_category
                {
                    chosen.push(q);
                }
            }
            (*u, chosen)
        })
        .collect();

    let count_params = Params {
        w_proof: 0.0,
        w_popularity: 0.0,
        w_price: 0.0,
        w_buyers: if p.w_buyers <= 0.0 { 0.5 } else { p.w_buyers },
        ..p.clone()
    };
    let social_count = slates_of(&count_params);
    PlainSlates {
        sets: [model, popular, social_count],
        truth,
        scored: scored.into_iter().collect(),
        positions,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// eval's every figure equals the plain computation from the reference
    /// model's slots at the cut.
    #[test]
    fn eval_matches_a_plain_computation(case in arb_case(SMALL), days in 1i64..20) {
        let dir = tempfile::tempdir().unwrap();
        let job = write_case(dir.path(), &case);
        let eval = json_of(&[
            "eval", "--config", path_str(&job), "--holdout-days", &days.to_string(),
            "--as-of", &case.as_of_arg(), "--json",
        ]);
        let want = plain_eval(&case, days);
        for (k, name) in ["social_v1", "popular", "social_count"].iter().enumerate() {
            let got = Figures::from_json(result(&eval, name));
            for (i, metric) in METRICS.iter().enumerate() {
                prop_assert!(
                    (got.0[i] - want[k].0[i]).abs() <= 1e-12,
                    "{name} {metric}: eval {} plain {}", got.0[i], want[k].0[i]
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// tune
// ---------------------------------------------------------------------------

/// A minimal RFC 4180 reader: rows of fields.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        fields.push(field);
        rows.push(fields);
    }
    rows
}

struct Board {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Board {
    fn read(dir: &Path) -> Board {
        let mut rows = read_csv(&fs::read_to_string(dir.join("leaderboard.csv")).unwrap());
        let header = rows.remove(0);
        Board { header, rows }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn get(&self, row: usize, name: &str) -> &str {
        &self.rows[row][self.col(name)]
    }

    fn num(&self, row: usize, name: &str) -> f64 {
        self.get(row, name).parse().unwrap()
    }

    fn figures(&self, row: usize) -> Figures {
        let mut f = [0.0; 10];
        for (i, name) in METRICS.iter().enumerate() {
            f[i] = self.num(row, name);
        }
        Figures(f)
    }

    /// A job file holding row `row`'s settings over the split fixture.
    fn job(&self, row: usize, dir: &Path) -> PathBuf {
        let split = fixture("split");
        let mut text = String::from("[inputs]\n");
        for t in ["follows", "purchases", "products", "impressions"] {
            let file = split.join(format!("{t}.csv"));
            text.push_str(&format!("{t} = {:?}\n", path_str(&file)));
        }
        text.push_str("[run]\nas_of = \"2026-11-24T00:00:00Z\"\n");
        for section in ["model", "selection"] {
            text.push_str(&format!("[{section}]\n"));
            for (i, h) in self.header.iter().enumerate() {
                if let Some(key) = h.strip_prefix(&format!("{section}.")) {
                    let v = &self.rows[row][i];
                    let v = if key == "name" {
                        format!("{v:?}")
                    } else {
                        v.clone()
                    };
                    text.push_str(&format!("{key} = {v}\n"));
                }
            }
        }
        let path = dir.join(format!("row{row}.toml"));
        fs::write(&path, text).unwrap();
        path
    }
}

const SPLIT_GRID: &str = "objective = \"precision\"
min_user_coverage = 0.5
min_slots = 4
[model]
lookback_days = [60, 3]
fatigue_days = [14, 30]
w_proof = [2.0, 0.0]
w_popularity = [-0.1, 2.0]
[selection]
positions = [[4, 14], [4]]
min_score = [0.2, 1.05]
";

fn tune(dir: &Path, grid: &str) -> std::process::Output {
    let grid_path = dir.join("grid.toml");
    fs::write(&grid_path, grid).unwrap();
    let out_dir = dir.join("tuned");
    run(&[
        "tune",
        "--config",
        path_str(&fixture("split/job.toml")),
        "--grid",
        path_str(&grid_path),
        "--holdout-days",
        "4",
        "--output",
        path_str(&out_dir),
    ])
}

#[test]
fn tune_best_is_the_best_of_its_leaderboard_and_reproduces_through_eval() {
    let dir = tempfile::tempdir().unwrap();
    let out = tune(dir.path(), SPLIT_GRID);
    assert!(out.status.success(), "{}", stderr(&out));
    let tuned = dir.path().join("tuned");
    let board = Board::read(&tuned);
    assert_eq!(board.rows.len(), 64, "2^6 candidates");

    // Guard rails: eligible means user_coverage >= 0.5 and slots >= 4, and
    // eligible rows come first.
    let eligible: Vec<bool> = (0..64)
        .map(|r| board.get(r, "eligible") == "true")
        .collect();
    for (r, &eligible) in eligible.iter().enumerate() {
        let within = board.num(r, "user_coverage") >= 0.5 && board.num(r, "slots") >= 4.0;
        assert_eq!(eligible, within, "row {r}");
        assert_eq!(board.num(r, "rank"), (r + 1) as f64);
    }
    assert!(
        eligible.iter().any(|e| !e),
        "the grid has candidates outside the rails"
    );
    let first_ineligible = eligible.iter().position(|e| !e).unwrap();
    assert!(
        eligible[first_ineligible..].iter().all(|e| !e),
        "eligible rows come first"
    );

    // The best is the eligible row with the highest precision (lowest id on
    // ties), though a candidate outside the rails does better.
    let best = (0..first_ineligible)
        .map(|r| board.num(r, "precision"))
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(board.num(0, "precision"), best);
    let tied: Vec<f64> = (0..first_ineligible)
        .filter(|&r| board.num(r, "precision") == best)
        .map(|r| board.num(r, "candidate"))
        .collect();
    assert_eq!(
        board.num(0, "candidate"),
        tied.iter().cloned().fold(f64::INFINITY, f64::min)
    );
    let outside_best = (first_ineligible..64)
        .map(|r| board.num(r, "precision"))
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        outside_best > best,
        "a better candidate outside the rails must lose"
    );
    for r in 1..first_ineligible {
        assert!(
            board.num(r, "precision") <= board.num(r - 1, "precision"),
            "row {r} out of order"
        );
    }
    // Not the job's own settings (30 days, w_proof 1): best.toml must carry them.
    assert_eq!(board.num(0, "model.lookback_days"), 60.0);
    assert_eq!(board.num(0, "model.w_proof"), 2.0);

    // best.toml is a complete job with absolute paths; it runs from anywhere
    // and reproduces the best row through eval.
    let best = tuned.join("best.toml");
    let text = fs::read_to_string(&best).unwrap();
    for section in ["[inputs]", "[run]", "[model]", "[selection]"] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    let job = Job::load(&best, &Overrides::default()).unwrap();
    assert!(job.inputs.follows.is_absolute() && job.inputs.purchases.is_absolute());
    let moved = tempfile::tempdir().unwrap();
    let copy = moved.path().join("best.toml");
    fs::copy(&best, &copy).unwrap();
    let eval = eval_json(&copy, "4");
    let got = Figures::from_json(result(&eval, "social_v1"));
    assert_eq!(
        got,
        board.figures(0),
        "best.toml through eval vs leaderboard row 1"
    );
    assert_eq!(job.model.w_proof, 2.0);
    assert_eq!(job.model.lookback_days, 60);
    assert_eq!(job.selection.min_score, board.num(0, "selection.min_score"));
}

#[test]
fn tune_rows_equal_eval_of_their_settings() {
    // Loaded once, re-derived per lookback and fatigue setting, scored per
    // weight: every row must still be what eval says of its settings.
    let grid = "objective = \"precision\"
[model]
lookback_days = [30, 3]
fatigue_days = [14, 30]
half_life_days = [7, 1.5]
w_proof = [1.0, 0.0]
";
    let dir = tempfile::tempdir().unwrap();
    let out = tune(dir.path(), grid);
    assert!(out.status.success(), "{}", stderr(&out));
    let board = Board::read(&dir.path().join("tuned"));
    assert_eq!(board.rows.len(), 16);
    let distinct: BTreeSet<String> = (0..16).map(|r| format!("{:?}", board.figures(r))).collect();
    assert!(
        distinct.len() >= 4,
        "the grid should move the figures: {distinct:?}"
    );
    for r in 0..16 {
        let job = board.job(r, dir.path());
        let eval = eval_json(&job, "4");
        assert_eq!(
            Figures::from_json(result(&eval, "social_v1")),
            board.figures(r),
            "candidate {} ({})",
            board.get(r, "candidate"),
            fs::read_to_string(&job).unwrap()
        );
    }
}

#[test]
fn tune_writes_parquet_like_the_csv_and_a_report_with_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out = tune(dir.path(), SPLIT_GRID);
    assert!(out.status.success(), "{}", stderr(&out));
    let tuned = dir.path().join("tuned");
    let board = Board::read(&tuned);
    let file = fs::File::open(tuned.join("leaderboard.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.unwrap();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, board.header);
        for (c, name) in names.iter().enumerate() {
            let col = batch.column(c);
            for i in 0..batch.num_rows() {
                let text = if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
                    a.value(i).to_string()
                } else if let Some(a) = col.as_any().downcast_ref::<Float64Array>() {
                    a.value(i).to_string()
                } else if let Some(a) = col.as_any().downcast_ref::<BooleanArray>() {
                    a.value(i).to_string()
                } else if let Some(a) = col.as_any().downcast_ref::<StringArray>() {
                    a.value(i).to_string()
                } else {
                    panic!("column {name} has type {}", col.data_type());
                };
                assert_eq!(
                    text,
                    board.rows[rows + i][c],
                    "row {} column {name}",
                    rows + i
                );
            }
        }
        rows += batch.num_rows();
    }
    assert_eq!(rows, board.rows.len());

    let html = fs::read_to_string(tuned.join("report.html")).unwrap();
    // One chart per swept key (6) and precision against user_coverage.
    assert_eq!(html.matches("<svg").count(), 7, "charts in report.html");
    for text in [
        "precision against model.lookback_days",
        "precision against selection.positions",
        "precision against user_coverage",
        "frontier",
        "min_user_coverage = 0.5",
        "popular",
        "social_count",
    ] {
        assert!(html.contains(text), "report.html lacks {text:?}");
    }
    // The same tune writes the same files.
    let again = tempfile::tempdir().unwrap();
    assert!(tune(again.path(), SPLIT_GRID).status.success());
    for f in ["leaderboard.csv", "best.toml", "report.html"] {
        assert_eq!(
            fs::read(tuned.join(f)).unwrap(),
            fs::read(again.path().join("tuned").join(f)).unwrap(),
            "{f} differs between two identical tunes"
        );
    }
}

#[test]
fn tune_random_search_is_seeded_and_keeps_to_its_ranges() {
    let grid = |seed: u64| {
        format!(
            "search = \"random\"\nsamples = 12\nseed = {seed}\n[model]\n\
             w_proof = {{ min = -1.0, max = 2.0 }}\nlookback_days = {{ min = 2, max = 40 }}\n\
             [selection]\nmin_score = [0.0, 0.5]\n"
        )
    };
    let read = |seed: u64| {
        let dir = tempfile::tempdir().unwrap();
        let out = tune(dir.path(), &grid(seed));
        assert!(out.status.success(), "{}", stderr(&out));
        let board = Board::read(&dir.path().join("tuned"));
        let text = fs::read_to_string(dir.path().join("tuned/leaderboard.csv")).unwrap();
        (board, text)
    };
    let (board, a) = read(7);
    let (_, b) = read(7);
    let (_, c) = read(8);
    assert_eq!(a, b, "the same seed gives the same leaderboard");
    assert_ne!(a, c, "another seed gives other candidates");
    assert_eq!(board.rows.len(), 12);
    for r in 0..12 {
        let w = board.num(r, "model.w_proof");
        let days = board.num(r, "model.lookback_days");
        assert!((-1.0..=2.0).contains(&w) && (2.0..=40.0).contains(&days));
        assert_eq!(days.fract(), 0.0);
        assert!(["0", "0.5"].contains(&board.get(r, "selection.min_score")));
    }
}

#[test]
fn tune_refuses_bad_grids_before_scoring() {
    for (grid, words) in [
        ("[model]\nbogus = [1]\n", "model.bogus"),
        ("objective = \"clicks\"\n[model]\nw_proof = [1]\n", "clicks"),
        ("[model]\nhalf_life_days = [0]\n", "half_life_days"),
        ("[model]\nw_proof = { min = 0, max = 1 }\n", "random"),
        ("[selection]\npositions = [[2, 1]]\n", "positions"),
        ("search = \"random\"\n[model]\nw_proof = [1]\n", "samples"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = tune(dir.path(), grid);
        assert_eq!(out.status.code(), Some(1), "{grid}");
        assert!(stderr(&out).contains(words), "{grid}: {}", stderr(&out));
        assert!(
            !dir.path().join("tuned").exists(),
            "{grid}: nothing written"
        );
    }
}

// ---------------------------------------------------------------------------
// explain
// ---------------------------------------------------------------------------

const PRIVATE_IDS: [&str; 3] = ["70000000023", "70000000032", "70000000033"];

fn explain(job: &str, user: &str, product: Option<&str>, json: bool) -> String {
    let job = fixture(job);
    let mut args = vec!["explain", "--config", path_str(&job), "--user", user];
    if let Some(p) = product {
        args.extend(["--product", p]);
    }
    if json {
        args.push("--json");
    }
    let text = stdout(&run_ok(&args));
    for id in PRIVATE_IDS {
        assert!(!text.contains(id), "explain {args:?} names {id}:\n{text}");
    }
    text
}

fn explain_json(user: &str, product: Option<&str>) -> Value {
    serde_json::from_str(&explain("explain/job.toml", user, product, true)).unwrap()
}

fn recency(age_days: f64) -> f64 {
    0.5f64.powf(age_days / 7.0)
}

fn round9(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

fn close(a: &Value, b: f64, what: &str) {
    let a = a
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {a} is not a number"));
    assert!((a - b).abs() <= 1e-9, "{what}: {a} != {b}");
}

fn codes(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn explain_slots_give_features_contributions_and_buyers_shown() {
    let e = explain_json("1", None);
    assert_eq!(e["status"], "scored");
    let slots = e["slots"].as_array().unwrap();
    let products: Vec<i64> = slots
        .iter()
        .map(|s| s["product_id"].as_i64().unwrap())
        .collect();
    assert_eq!(products, [1001, 1003, 1010]);
    let positions: Vec<i64> = slots
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [4, 14, 30]);

    let s = &slots[0];
    let proof = recency(1.0) + 1.5 * recency(1.0);
    let f = &s["features"];
    close(&f["proof"], proof, "proof");
    assert_eq!(f["buyers"], 2);
    close(&f["popularity"], 10f64.ln(), "popularity (G = 9)");
    close(&f["price_fit"], 0.0, "price_fit");
    let c = &s["contributions"];
    close(&c["proof"], proof, "w_proof·proof");
    close(&c["buyers"], 0.5 * 3f64.ln(), "w_buyers·ln(1+n)");
    close(
        &c["popularity"],
        -0.1 * 10f64.ln(),
        "w_popularity·popularity",
    );
    close(&c["price_fit"], 0.0, "w_price·price_fit");
    let score = round9(proof + 0.5 * 3f64.ln() - 0.1 * 10f64.ln());
    close(&s["score"], score, "score");
    let sum: f64 = ["proof", "buyers", "popularity", "price_fit"]
        .iter()
        .map(|k| c[k].as_f64().unwrap())
        .sum();
    assert!((round9(sum) - s["score"].as_f64().unwrap()).abs() < 1e-12);

    let shown = s["buyers_shown"].as_array().unwrap();
    let ids: Vec<i64> = shown
        .iter()
        .map(|b| b["buyer_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [28, 21], "mutual 28 first");
    close(&shown[0]["tie"], 1.5, "tie of 28");
    close(
        &shown[0]["weight"],
        round9(1.5 * recency(1.0)),
        "weight of 28",
    );
    close(&shown[1]["recency"], recency(1.0), "recency of 21");

    close(
        &slots[1]["score"],
        round9(recency(0.5) + 0.4 * 2f64.ln()),
        "1003",
    );
    close(
        &slots[2]["score"],
        round9(recency(3.0) + 0.4 * 2f64.ln()),
        "1010",
    );
}

#[test]
fn explain_product_gives_every_buyer_reason_and_never_names_a_private_buyer() {
    let e = explain_json("1", Some("1001"));
    let p = &e["product"];
    assert_eq!(p["in_slots"], true);
    assert_eq!(p["slot"], 1);
    assert_eq!(codes(&p["reasons"]), Vec::<String>::new());
    let mut verdicts: BTreeMap<i64, (bool, Vec<String>, bool)> = BTreeMap::new();
    for b in p["buyers"].as_array().unwrap() {
        verdicts.insert(
            b["buyer_id"].as_i64().unwrap(),
            (
                b["supports"].as_bool().unwrap(),
                codes(&b["reasons"]),
                b["shown"].as_bool().unwrap(),
            ),
        );
    }
    let want: BTreeMap<i64, (bool, Vec<String>, bool)> = [
        (21, (true, vec![], true)),
        (22, (false, vec!["muted".to_string()], false)),
        (24, (false, vec!["blocked".to_string()], false)),
        (25, (false, vec!["suspended".to_string()], false)),
        (26, (false, vec!["refunded".to_string()], false)),
        (27, (false, vec!["out_of_window".to_string()], false)),
        (28, (true, vec![], true)),
        (31, (false, vec!["not_followed".to_string()], false)),
    ]
    .into_iter()
    .collect();
    assert_eq!(verdicts, want);
    let hidden = &p["not_shareable"];
    assert_eq!(hidden["private_by_followees"], 1);
    assert_eq!(hidden["private_by_others"], 1);
    assert_eq!(hidden["followers_only_by_others"], 1);
    let c = &p["candidate"];
    assert_eq!(
        (c["rank"].as_i64(), c["candidates"].as_i64()),
        (Some(1), Some(7))
    );
    assert_eq!(
        (c["rank_passing"].as_i64(), c["passing"].as_i64()),
        (Some(1), Some(6))
    );

    let text = explain("explain/job.toml", "1", Some("1001"), false);
    for words in [
        "product 1001: in the slots, slot 1",
        "muted",
        "blocked",
        "suspended",
        "refunded",
        "out_of_window",
        "not_followed",
        "3 purchases not shareable",
    ] {
        assert!(text.contains(words), "{words:?} missing:\n{text}");
    }
}

#[test]
fn explain_product_gives_every_product_reason_and_its_rank() {
    // (product, reason codes, rank among 7 candidates, rank among the 6 passing)
    type Case<'a> = (&'a str, &'a [&'a str], Option<i64>, Option<i64>);
    let cases: [Case; 10] = [
        ("1003", &[], Some(2), Some(2)),
        ("1004", &["category_cap"], Some(3), Some(3)),
        ("1002", &["merchant_cap"], Some(4), Some(4)),
        ("1011", &["positions_full"], Some(6), Some(6)),
        ("1008", &["below_min_score"], Some(7), None),
        ("1005", &["unavailable"], None, None),
        ("1006", &["owned"], None, None),
        ("1007", &["fatigued"], None, None),
        ("9999", &["not_in_catalog"], None, None),
        ("1012", &["no_supporting_buyer"], None, None),
    ];
    for (product, want, rank, rank_passing) in cases {
        let e = explain_json("1", Some(product));
        let p = &e["product"];
        assert_eq!(codes(&p["reasons"]), want, "product {product}");
        assert_eq!(p["in_slots"], want.is_empty(), "product {product}");
        let c = &p["candidate"];
        assert_eq!(c["rank"].as_i64(), rank, "rank of {product}");
        assert_eq!(
            c["rank_passing"].as_i64(),
            rank_passing,
            "passing rank of {product}"
        );
        let text = explain("explain/job.toml", "1", Some(product), false);
        for code in want {
            assert!(
                text.contains(code),
                "{code} missing from the text of {product}:\n{text}"
            );
        }
    }
    // Scores of excluded candidates are still explained.
    let owned = explain_json("1", Some("1006"));
    close(
        &owned["product"]["candidate"]["score"],
        round9(recency(1.0) + 0.5 * 2f64.ln() - 0.1 * 3f64.ln()),
        "1006, G = 2",
    );
    let low = explain_json("1", Some("1008"));
    close(
        &low["product"]["candidate"]["score"],
        round9(recency(20.0) + 0.4 * 2f64.ln()),
        "1008",
    );
}

#[test]
fn explain_user_level_reasons() {
    for (user, status, code) in [
        ("5", "opted_out", "user_opted_out"),
        ("6", "suspended", "user_suspended"),
        ("7", "unknown", "user_unknown"),
        ("21", "follows_nobody", "user_not_scored"),
    ] {
        let e = explain_json(user, Some("1001"));
        assert_eq!(e["status"], status, "user {user}");
        assert_eq!(e["slots"].as_array().unwrap().len(), 0);
        let reasons = codes(&e["product"]["reasons"]);
        assert!(
            reasons.contains(&code.to_string()),
            "user {user}: {reasons:?}"
        );
    }
    let e: Value = serde_json::from_str(&explain(
        "explain/job_min_buyers.toml",
        "1",
        Some("1003"),
        true,
    ))
    .unwrap();
    assert_eq!(codes(&e["product"]["reasons"]), ["below_min_buyers"]);
    let slots: Vec<i64> = e["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["product_id"].as_i64().unwrap())
        .collect();
    assert_eq!(slots, [1001], "only 1001 has two buyers");
}
