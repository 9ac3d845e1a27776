//! Hand-made fixtures: one folder per rule of the contract under
//! `tests/fixtures/<rule>/`, each a tiny CSV world with a `job.toml` and the
//! slots worked out by hand in `expected.csv` (the computation is in the
//! folder's `README.md`). Each rule is its own test, so a failure names the
//! rule that broke.
//!
//! A test runs `boughtby run --config tests/fixtures/<rule>/job.toml --output
//! <tempdir>`, reads the run that LATEST names and compares it with
//! `expected.csv`: every column exactly, except `score` (to 1e-9, one unit of
//! the ninth decimal the contract rounds to), plus `valid_from` / `valid_until`
//! (as_of and as_of + 1 day) and the `run_id` (as_of as `YYYYMMDDTHHMMSSZ-`
//! followed by 8 hex digits).

use std::fs;
use std::path::{Path, PathBuf};

use chrono::DateTime;

use crate::util::{self, Slot};

/// One day in microseconds.
const DAY_US: i64 = 86_400_000_000;

/// Score tolerance: the contract rounds scores to 9 decimals; allow one unit
/// of the last place (plus float noise in the subtraction).
const SCORE_TOLERANCE: f64 = 1e-9 + 1e-12;

/// The header `expected.csv` must have.
const EXPECTED_HEADER: &str =
    "user_id,slot,position,product_id,merchant_id,score,buyer_count,top_buyer_ids";

/// One row of `expected.csv`.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    user_id: i64,
    slot: i8,
    position: i32,
    product_id: i64,
    merchant_id: i64,
    score: f64,
    buyer_count: i32,
    top_buyer_ids: Vec<i64>,
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

fn parse_field<T: std::str::FromStr>(path: &Path, line: usize, name: &str, text: &str) -> T
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .unwrap_or_else(|e| panic!("{}:{line}: bad {name} {text:?}: {e}", path.display()))
}

/// Reads `expected.csv`: the header above, then one row per slot in output
/// order; `top_buyer_ids` is `;`-separated, empty for an empty list.
fn read_expected(path: &Path) -> Vec<Expected> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines().enumerate();
    let (_, header) = lines
        .next()
        .unwrap_or_else(|| panic!("{} is empty", path.display()));
    assert_eq!(header, EXPECTED_HEADER, "{}: header", path.display());
    let mut rows = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(
            f.len(),
            8,
            "{}:{line_no}: expected 8 fields in {line:?}",
            path.display()
        );
        let top_buyer_ids = if f[7].is_empty() {
            Vec::new()
        } else {
            f[7].split(';')
                .map(|b| parse_field(path, line_no, "top_buyer_ids", b))
                .collect()
        };
        rows.push(Expected {
            user_id: parse_field(path, line_no, "user_id", f[0]),
            slot: parse_field(path, line_no, "slot", f[1]),
            position: parse_field(path, line_no, "position", f[2]),
            product_id: parse_field(path, line_no, "product_id", f[3]),
            merchant_id: parse_field(path, line_no, "merchant_id", f[4]),
            score: parse_field(path, line_no, "score", f[5]),
            buyer_count: parse_field(path, line_no, "buyer_count", f[6]),
            top_buyer_ids,
        });
    }
    rows
}

/// The `[run] as_of` of a fixture's job, in epoch microseconds, and its
/// `YYYYMMDDTHHMMSSZ` form (the start of the run id).
fn job_as_of(job: &Path) -> (i64, String) {
    let text =
        fs::read_to_string(job).unwrap_or_else(|e| panic!("cannot read {}: {e}", job.display()));
    let table: toml::Table = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", job.display()));
    let as_of = table
        .get("run")
        .and_then(|run| run.get("as_of"))
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{}: every fixture sets [run] as_of", job.display()));
    let t = DateTime::parse_from_rfc3339(as_of)
        .unwrap_or_else(|e| panic!("{}: as_of {as_of:?}: {e}", job.display()));
    (
        t.timestamp_micros(),
        t.to_utc().format("%Y%m%dT%H%M%SZ").to_string(),
    )
}

fn show_expected(rows: &[Expected]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "  user {} slot {} pos {} product {} merchant {} score {:.9} n {} buyers {:?}\n",
                r.user_id,
                r.slot,
                r.position,
                r.product_id,
                r.merchant_id,
                r.score,
                r.buyer_count,
                r.top_buyer_ids
            )
        })
        .collect()
}

fn show_got(rows: &[Slot]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "  user {} slot {} pos {} product {} merchant {} score {:.9} n {} buyers {:?}\n",
                r.user_id,
                r.slot,
                r.position,
                r.product_id,
                r.merchant_id,
                r.score,
                r.buyer_count,
                r.top_buyer_ids
            )
        })
        .collect()
}

/// The differences between one expected row and the row written, if any.
fn row_diff(want: &Expected, got: &Slot) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut same = |name: &str, ok: bool, w: String, g: String| {
        if !ok {
            diffs.push(format!("{name}: expected {w}, got {g}"));
        }
    };
    same(
        "user_id",
        want.user_id == got.user_id,
        want.user_id.to_string(),
        got.user_id.to_string(),
    );
    same(
        "slot",
        want.slot == got.slot,
        want.slot.to_string(),
        got.slot.to_string(),
    );
    same(
        "position",
        want.position == got.position,
        want.position.to_string(),
        got.position.to_string(),
    );
    same(
        "product_id",
        want.product_id == got.product_id,
        want.product_id.to_string(),
        got.product_id.to_string(),
    );
    same(
        "merchant_id",
        want.merchant_id == got.merchant_id,
        want.merchant_id.to_string(),
        got.merchant_id.to_string(),
    );
    same(
        "score",
        (want.score - got.score).abs() <= SCORE_TOLERANCE,
        format!("{:.9}", want.score),
        format!("{:.12}", got.score),
    );
    same(
        "buyer_count",
        want.buyer_count == got.buyer_count,
        want.buyer_count.to_string(),
        got.buyer_count.to_string(),
    );
    same(
        "top_buyer_ids",
        want.top_buyer_ids == got.top_buyer_ids,
        format!("{:?}", want.top_buyer_ids),
        format!("{:?}", got.top_buyer_ids),
    );
    diffs
}

/// Runs the fixture `name` and compares the slots with its `expected.csv`.
fn check(name: &str) {
    let dir = fixtures_root().join(name);
    let job = dir.join("job.toml");
    let expected = read_expected(&dir.join("expected.csv"));
    let (as_of, as_of_compact) = job_as_of(&job);

    let out = tempfile::tempdir().unwrap();
    util::run_ok(&[
        "run",
        "--config",
        job.to_str().unwrap(),
        "--output",
        out.path().to_str().unwrap(),
    ]);
    let got = util::read_latest(out.path());

    let table = format!(
        "fixture {name}\nexpected ({} rows):\n{}got ({} rows):\n{}",
        expected.len(),
        show_expected(&expected),
        got.len(),
        show_got(&got)
    );
    assert_eq!(got.len(), expected.len(), "wrong number of slots\n{table}");
    let mut problems = Vec::new();
    for (i, (want, row)) in expected.iter().zip(&got).enumerate() {
        for d in row_diff(want, row) {
            problems.push(format!("row {}: {d}", i + 1));
        }
        if row.valid_from != as_of || row.valid_until != as_of + DAY_US {
            problems.push(format!(
                "row {}: valid_from/valid_until: expected {as_of}/{}, got {}/{}",
                i + 1,
                as_of + DAY_US,
                row.valid_from,
                row.valid_until
            ));
        }
        if !run_id_matches(&row.run_id, &as_of_compact) {
            problems.push(format!(
                "row {}: run_id {:?} is not {as_of_compact}-<8 hex digits>",
                i + 1,
                row.run_id
            ));
        }
    }
    assert!(problems.is_empty(), "{}\n{table}", problems.join("\n"));
}

fn run_id_matches(run_id: &str, as_of_compact: &str) -> bool {
    run_id
        .strip_prefix(as_of_compact)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hash| hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()))
}

/// One `#[test]` per fixture folder, plus `ALL`, the list of them.
macro_rules! fixtures {
    ($($name:ident),* $(,)?) => {
        const ALL: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

fixtures! {
    window_edges,
    refunded,
    private,
    followers_visibility,
    muted_follow,
    duplicate_follows,
    self_follow,
    block,
    suspended,
    opted_out,
    already_owned,
    fatigue,
    catalog,
    mutual_bonus,
    recency_decay,
    recency_half_life,
    popularity,
    price_fit,
    min_buyers,
    min_score,
    ordering_ties,
    caps,
    caps_config,
    null_category,
    positions,
    fewer_candidates,
    buyers_shown,
    buyers_shown_zero,
    buyers_shown_rounding,
    large_ids,
}

/// Every folder under `tests/fixtures/` has its test above, and every test
/// its folder.
#[test]
fn every_fixture_folder_has_a_test() {
    let mut folders: Vec<String> = fs::read_dir(fixtures_root())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut listed: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(folders, listed, "tests/fixtures/ folders vs fixtures! list");
}

/// The expected files themselves follow the contract's output rules, so a
/// typo in a hand-written file is caught even before the pipeline runs:
/// rows sorted by user then slot, slots 1..k, at most max_buyers_shown (3 by
/// default) buyers, no more buyers shown than counted.
#[test]
fn expected_files_are_well_formed() {
    for name in ALL {
        let path = fixtures_root().join(name).join("expected.csv");
        let rows = read_expected(&path);
        let mut prev: Option<&Expected> = None;
        for r in &rows {
            match prev {
                Some(p) if p.user_id == r.user_id => {
                    assert_eq!(r.slot, p.slot + 1, "{name}: slots of user {}", r.user_id);
                    assert!(
                        r.position > p.position,
                        "{name}: positions of user {}",
                        r.user_id
                    );
                    assert!(r.score <= p.score, "{name}: scores of user {}", r.user_id);
                }
                Some(p) => {
                    assert!(r.user_id > p.user_id, "{name}: rows not sorted by user");
                    assert_eq!(r.slot, 1, "{name}: first slot of user {}", r.user_id);
                }
                None => assert_eq!(r.slot, 1, "{name}: first slot"),
            }
            assert!(
                r.top_buyer_ids.len() <= r.buyer_count as usize,
                "{name}: more buyers shown than counted"
            );
            prev = Some(r);
        }
    }
}
