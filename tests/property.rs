//! Property tests: on random small worlds (see `world`), the rows that
//! `boughtby run` publishes equal, every column and in order, the rows of
//! the plain reference model (see `reference`); scores are compared as f64
//! with `==`, no tolerance.
//!
//! A failing case prints the shrunk world, settings and file layout; the
//! same world can then be turned into a unit test of `reference` by hand.

use std::path::Path;

use proptest::prelude::*;

use crate::reference::{Expected, reference};
use crate::util::{Slot, latest, read_latest, run_ok};
use crate::world::{Case, DAY, MEDIUM, SMALL, arb_case, run_id_prefix, write_case};

/// The rows the contract expects for `case`, as written by run `run_id`.
fn expected_slots(case: &Case, run_id: &str) -> Vec<Slot> {
    reference(&case.world, &case.params, case.as_of)
        .into_iter()
        .map(|e: Expected| Slot {
            user_id: e.user_id,
            slot: e.slot,
            position: e.position,
            product_id: e.product_id,
            merchant_id: e.merchant_id,
            score: e.score,
            buyer_count: e.buyer_count,
            top_buyer_ids: e.top_buyer_ids,
            valid_from: case.as_of,
            valid_until: case.as_of + DAY,
            run_id: run_id.to_string(),
        })
        .collect()
}

/// Runs `boughtby run` on the case's job with `args` appended and returns
/// the published rows and the run id in LATEST.
fn run_case(job: &Path, case: &Case, out: &Path, args: &[&str]) -> (Vec<Slot>, String) {
    let as_of = case.as_of_arg();
    let mut all = vec![
        "run",
        "--config",
        job.to_str().unwrap(),
        "--as-of",
        &as_of,
        "--output",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run_ok(&all);
    let run_id = latest(out).expect("no LATEST after a run");
    (read_latest(out), run_id)
}

/// Where the two row lists first differ, for a readable failure.
fn first_difference(got: &[Slot], want: &[Slot]) -> String {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            return format!("row {i}:\n  got  {g:?}\n  want {w:?}");
        }
    }
    format!("got {} rows, want {}", got.len(), want.len())
}

fn check_run_id(run_id: &str, case: &Case) -> Result<(), TestCaseError> {
    let prefix = run_id_prefix(case.as_of);
    let hash = run_id.strip_prefix(&prefix);
    prop_assert!(
        hash.is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit())),
        "run id {run_id:?} is not {prefix}<8 hex digits>"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The pipeline's rows equal the reference's, every column.
    #[test]
    fn pipeline_matches_reference(case in arb_case(SMALL)) {
        let dir = tempfile::tempdir().unwrap();
        let job = write_case(dir.path(), &case);
        let out = dir.path().join("out");
        // The job's own output folder, `out` next to the TOML.
        let as_of = case.as_of_arg();
        run_ok(&["run", "--config", job.to_str().unwrap(), "--as-of", &as_of]);
        let run_id = latest(&out).expect("no LATEST after a run");
        check_run_id(&run_id, &case)?;
        let got = read_latest(&out);
        let want = expected_slots(&case, &run_id);
        prop_assert!(got == want, "{}", first_difference(&got, &want));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 100,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// One thread or four: the same rows, and the reference's.
    #[test]
    fn same_rows_whatever_the_thread_count(case in arb_case(MEDIUM)) {
        let dir = tempfile::tempdir().unwrap();
        let job = write_case(dir.path(), &case);
        let (one, run_id) = run_case(&job, &case, &dir.path().join("out1"), &["--threads", "1"]);
        let (four, run_id4) = run_case(&job, &case, &dir.path().join("out4"), &["--threads", "4"]);
        prop_assert_eq!(&run_id, &run_id4);
        prop_assert!(one == four, "1 vs 4 threads: {}", first_difference(&one, &four));
        let want = expected_slots(&case, &run_id);
        prop_assert!(one == want, "{}", first_difference(&one, &want));
    }
}

/// The random worlds are not trivial: over a fixed set of them, a good
/// share give slots, the window edges, mutes and score ties all occur, and
/// the medium worlds (the thread-count test's) give many slots.
#[test]
fn worlds_are_interesting() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = arb_case(SMALL);
    let (mut with_slots, mut slots, mut at_as_of, mut at_start, mut muted, mut ties) =
        (0, 0, 0, 0, 0, 0);
    let cases = 200;
    let (mut with_column, mut contradicted) = (0, 0);
    for _ in 0..cases {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let rows = reference(&case.world, &case.params, case.as_of);
        if !rows.is_empty() {
            with_slots += 1;
        }
        slots += rows.len();
        let start = case.as_of - case.params.lookback_days * DAY;
        let p = &case.world.purchases;
        at_as_of += p.iter().filter(|r| r.purchased_at == case.as_of).count();
        at_start += p.iter().filter(|r| r.purchased_at == start).count();
        muted += case
            .world
            .follows
            .iter()
            .filter(|f| f.muted == Some(true))
            .count();
        // Worlds whose `followed_back` column says otherwise than the
        // reverse rows (the column must win).
        let f = &case.world.follows;
        if case.world.followed_back_column {
            with_column += 1;
            contradicted += f
                .iter()
                .filter(|r| {
                    let reverse = f
                        .iter()
                        .any(|s| s.follower_id == r.followee_id && s.followee_id == r.follower_id);
                    (r.followed_back == Some(true)) != reverse
                })
                .count();
        }
        // Two slots of one user with the same score.
        ties += rows
            .windows(2)
            .filter(|w| w[0].user_id == w[1].user_id && w[0].score == w[1].score)
            .count();
    }
    assert!(
        with_slots * 5 > cases * 2,
        "only {with_slots} of {cases} worlds have slots"
    );
    assert!(slots > cases, "{slots} slots");
    assert!(
        at_as_of > 10 && at_start > 10 && muted > 10,
        "{at_as_of} {at_start} {muted}"
    );
    assert!(ties > 0, "no score ties");
    assert!(
        with_column > 20 && contradicted > 20,
        "{with_column} worlds with followed_back, {contradicted} rows contradicting"
    );

    let strategy = arb_case(MEDIUM);
    let mut medium_slots = Vec::new();
    for _ in 0..5 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        medium_slots.push(reference(&case.world, &case.params, case.as_of).len());
    }
    let rich_worlds = medium_slots.iter().filter(|&&n| n >= 20).count();
    assert!(rich_worlds >= 3, "medium worlds: {medium_slots:?} slots");
}
