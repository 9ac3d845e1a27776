//! Trust under faults: what happens when publishers overlap, when LATEST or
//! pruning is broken, when skipped rows would carry a protection, and at
//! the edges of as_of and the weights.
//!
//! Overlapping publishers are made to meet at exact steps with the
//! binary's pause points (`BOUGHTBY_PAUSE_AT`, `BOUGHTBY_PAUSE_DIR`; see
//! `src/pause.rs`): a paused process creates `<dir>/<point>.<pid>` and goes
//! on once the test removes it. No test here depends on timing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::hardening::{
    check_whole, copy_dir, entries, expect_code, expected_rows, first_difference, generate,
    generated_job, message, read_manifest, run_folders, s, stderr, stdout, write_plain_case,
};
use crate::util::{bin, latest, read_run, run};
use crate::world::{Block, Follow, SMALL, User, arb_case};

// ---------------------------------------------------------------------------
// Pause points
// ---------------------------------------------------------------------------

/// Starts `boughtby run` of `night`, pausing at each of `points`.
pub(crate) fn spawn_run(job: &Path, night: &str, pauses: &Path, points: &str) -> Child {
    fs::create_dir_all(pauses).unwrap();
    bin()
        .args(["run", "--config", s(job), "--as-of", night])
        .env("BOUGHTBY_PAUSE_AT", points)
        .env("BOUGHTBY_PAUSE_DIR", pauses)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` pauses at `point` and returns the file whose removal
/// lets it go on. Panics if it ends first (or after two minutes: a hang,
/// not a slow machine).
pub(crate) fn wait_pause(child: &mut Child, pauses: &Path, point: &str) -> PathBuf {
    let flag = pauses.join(format!("{point}.{}", child.id()));
    let started = Instant::now();
    loop {
        if flag.exists() {
            return flag;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!("the run ended ({status}) before pausing at {point}:\n{err}");
        }
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("the run never paused at {point}");
        }
        sleep(Duration::from_millis(2));
    }
}

pub(crate) fn resume(flag: &Path) {
    fs::remove_file(flag).unwrap();
}

fn night_id(night: &str, published: &str) -> String {
    format!("{}T000000Z-{}", night.replace('-', ""), &published[17..])
}

// ---------------------------------------------------------------------------
// 1. One publisher at a time
// ---------------------------------------------------------------------------

/// Two publishers meet: the first holds the lock with its run folder in
/// place but LATEST not moved, the second waits for the lock, then both go
/// on. Each pair of nights is forced in that order, later night first and
/// earlier night first, and a night against its own rerun; with
/// `keep_runs = 2` pruning runs every time. LATEST must end on the latest
/// as_of seen, whole, and the earlier run must say it was not published.
#[test]
fn overlapping_publishers_take_turns_and_latest_only_moves_forward() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 400, 3);
    let job = generated_job(dir.path(), "job.toml", "keep_runs = 2", "");
    let out = dir.path().join("out");
    let pauses = dir.path().join("pauses");
    let mut newest = String::new();
    for (first, second) in [
        ("2026-11-12", "2026-11-11"),
        ("2026-11-13", "2026-11-14"),
        ("2026-11-14", "2026-11-14"),
        ("2026-11-16", "2026-11-15"),
        ("2026-11-17", "2026-11-18"),
    ] {
        let what = format!("{first} holding the lock, {second} waiting");
        let mut a = spawn_run(&job, first, &pauses, "installed");
        let a_flag = wait_pause(&mut a, &pauses, "installed");
        let mut b = spawn_run(&job, second, &pauses, "lock-wait");
        let b_flag = wait_pause(&mut b, &pauses, "lock-wait");
        // The second goes on waiting for the lock; then the first finishes.
        resume(&b_flag);
        resume(&a_flag);
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        expect_code(&a, 0, &format!("{what}: the first"));
        expect_code(&b, 0, &format!("{what}: the second"));
        let now = latest(&out).unwrap_or_else(|| panic!("{what}: no LATEST"));
        let later = first.max(second);
        newest = newest.max(night_id(later, &now));
        assert_eq!(now, newest, "{what}: LATEST");
        check_whole(&out, &now).unwrap_or_else(|e| panic!("{what}: {e}"));
        for r in run_folders(&out) {
            check_whole(&out, &r).unwrap_or_else(|e| panic!("{what}: kept run {r}: {e}"));
        }
        if second < first {
            assert!(
                stdout(&b).contains("written, not published"),
                "{what}: {}",
                stdout(&b)
            );
        }
    }
}

/// Pairs of publishers started together, free-running, many times: each
/// exits 0 and LATEST always ends on the later night, whole.
#[test]
fn concurrent_publishers_many_times() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 300, 4);
    let job = generated_job(dir.path(), "job.toml", "keep_runs = 2", "");
    let out = dir.path().join("out");
    for round in 0..8u32 {
        let early = format!("2026-10-{:02}", 2 * round + 1);
        let late = format!("2026-10-{:02}", 2 * round + 2);
        let nights = if round % 2 == 0 {
            [&late, &early]
        } else {
            [&early, &late]
        };
        let children: Vec<Child> = nights
            .iter()
            .map(|n| {
                bin()
                    .args(["run", "--config", s(&job), "--as-of", n])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            expect_code(&o, 0, &format!("round {round}"));
        }
        let now = latest(&out).unwrap();
        assert_eq!(now, night_id(&late, &now), "round {round}");
        check_whole(&out, &now).unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}

/// A publisher that cannot get the lock in `lock_wait_seconds` exits 2
/// naming the holder and publishes nothing; once the holder is killed
/// (SIGKILL), the kernel has released its lock and the next run publishes.
#[test]
fn a_publisher_gives_up_naming_the_holder_and_a_killed_holder_frees_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 5);
    let job = generated_job(dir.path(), "job.toml", "lock_wait_seconds = 0.3", "");
    let out = dir.path().join("out");
    let pauses = dir.path().join("pauses");
    let mut holder = spawn_run(&job, "2026-11-11", &pauses, "locked");
    let _flag = wait_pause(&mut holder, &pauses, "locked");
    let second = run(&["run", "--config", s(&job), "--as-of", "2026-11-12"]);
    expect_code(&second, 2, "waiting for a held lock");
    let err = message(&second);
    for needle in [
        "locked by another publisher",
        &format!("process {}", holder.id()),
        "command run",
        "lock_wait_seconds",
    ] {
        assert!(err.contains(needle), "no {needle:?} in:\n{err}");
    }
    assert_eq!(latest(&out), None);
    assert!(run_folders(&out).is_empty(), "{:?}", run_folders(&out));

    holder.kill().unwrap();
    holder.wait().unwrap();
    let third = run(&["run", "--config", s(&job), "--as-of", "2026-11-12"]);
    expect_code(&third, 0, "after the holder was killed");
    assert!(latest(&out).unwrap().starts_with("20261112T000000Z-"));
}

// ---------------------------------------------------------------------------
// 2. Publishing ends with LATEST
// ---------------------------------------------------------------------------

/// Pruning fails after LATEST has moved (the old run, renamed aside, cannot
/// be removed): the run is published all the same, exit 0, with a warning;
/// the next run removes the leftover.
#[test]
fn a_pruning_failure_after_publishing_warns_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 6);
    let job = generated_job(dir.path(), "job.toml", "keep_runs = 1", "");
    let out = dir.path().join("out");
    let pauses = dir.path().join("pauses");
    let first = run(&["run", "--config", s(&job), "--as-of", "2026-11-10"]);
    expect_code(&first, 0, "the first night");
    let old = latest(&out).unwrap();
    // The night before LATEST is kept (for a rollback): a third night
    // prunes the first.
    let next = run(&["run", "--config", s(&job), "--as-of", "2026-11-11"]);
    expect_code(&next, 0, "the second night");

    let mut second = spawn_run(&job, "2026-11-12", &pauses, "pruning");
    let flag = wait_pause(&mut second, &pauses, "pruning");
    // Swap the folder renamed aside for a file: removing it as a folder fails.
    let aside = out.join(format!(".pruned-{old}"));
    fs::remove_dir_all(&aside).unwrap();
    fs::write(&aside, "in the way").unwrap();
    resume(&flag);
    let second = second.wait_with_output().unwrap();
    expect_code(&second, 0, "a prune that fails");
    assert!(
        stderr(&second).contains("cannot prune"),
        "{}",
        stderr(&second)
    );
    let now = latest(&out).unwrap();
    assert!(now.starts_with("20261112T000000Z-"), "{now}");
    check_whole(&out, &now).unwrap();

    let third = run(&["run", "--config", s(&job), "--as-of", "2026-11-13"]);
    expect_code(&third, 0, "the next night");
    assert!(
        !entries(&out).iter().any(|n| n.starts_with(".pruned-")),
        "{:?}",
        entries(&out)
    );
}

// ---------------------------------------------------------------------------
// 3. A damaged LATEST is an error
// ---------------------------------------------------------------------------

/// LATEST with garbage, naming a folder that is missing, or a run whose
/// manifest is missing or unreadable: publishing stops with exit 2 naming
/// LATEST and how to recover, LATEST is left as it was; `--force`
/// publishes over it and the manifest says it was forced. `commit` too.
#[test]
fn a_damaged_latest_stops_publishing_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 7);
    let job = generated_job(dir.path(), "job.toml", "", "");
    let out = dir.path().join("out");
    let pristine = dir.path().join("pristine");
    expect_code(
        &run(&["run", "--config", s(&job), "--as-of", "2026-11-11"]),
        0,
        "the first night",
    );
    let good = latest(&out).unwrap();
    copy_dir(&out, &pristine);
    let damages: [(&str, &dyn Fn()); 4] = [
        ("garbage in LATEST", &|| {
            fs::write(out.join("LATEST"), "not a run id\n").unwrap()
        }),
        ("LATEST naming a missing folder", &|| {
            fs::write(out.join("LATEST"), "20261101T000000Z-0badc0de\n").unwrap()
        }),
        ("a missing manifest", &|| {
            fs::remove_file(out.join(&good).join("_manifest.json")).unwrap()
        }),
        ("an unreadable manifest", &|| {
            fs::write(out.join(&good).join("_manifest.json"), "{\"run_id\": ").unwrap()
        }),
    ];
    for (what, damage) in damages {
        fs::remove_dir_all(&out).unwrap();
        copy_dir(&pristine, &out);
        damage();
        let before = fs::read(out.join("LATEST")).unwrap();
        let res = run(&["run", "--config", s(&job), "--as-of", "2026-11-12"]);
        expect_code(&res, 2, what);
        let err = message(&res);
        assert!(
            err.contains("LATEST") && err.contains("--force"),
            "{what}: {err}"
        );
        assert_eq!(fs::read(out.join("LATEST")).unwrap(), before, "{what}");
        assert!(
            !run_folders(&out).iter().any(|r| r.starts_with("20261112")),
            "{what}: a run folder was installed"
        );

        // A sharded run's commit stops the same way.
        for i in 0..2 {
            let shard = format!("{i}/2");
            let args = [
                "run",
                "--config",
                s(&job),
                "--as-of",
                "2026-11-13",
                "--shard",
                &shard,
            ];
            expect_code(&run(&args), 0, &format!("{what}: shard {i}"));
        }
        let id13 = night_id("2026-11-13", &good);
        let res = run(&["commit", "--config", s(&job), "--run-id", &id13]);
        expect_code(&res, 2, &format!("{what}: commit"));
        assert_eq!(fs::read(out.join("LATEST")).unwrap(), before, "{what}");

        let res = run(&[
            "run",
            "--config",
            s(&job),
            "--as-of",
            "2026-11-12",
            "--force",
        ]);
        expect_code(&res, 0, &format!("{what}: forced"));
        let now = latest(&out).unwrap();
        assert_eq!(now, night_id("2026-11-12", &good), "{what}");
        assert_eq!(read_manifest(&out.join(&now))["forced"], true, "{what}");
    }
}

// ---------------------------------------------------------------------------
// 4. Skipping fails closed
// ---------------------------------------------------------------------------

/// Appends `line` to the CSV `file` of a plain world.
fn append_line(dir: &Path, file: &str, line: &str) {
    let path = dir.join(file);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(line);
    text.push('\n');
    fs::write(&path, text).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        max_shrink_iters: 20,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// For a buyer named in someone's slot, each protection (the buyer
    /// suspended, a block, the follow muted) changes the published rows to
    /// the reference's for the world with that protection, in skip mode;
    /// the same protective row with a bad value (or a bad row that mutes)
    /// fails the run, exit 1 naming the table and column, whatever
    /// `on_bad_rows` says, and nothing is published.
    #[test]
    fn skipping_never_drops_a_protection(case in arb_case(SMALL)) {
        let Some((user, buyer)) = expected_rows(&case, "x")
            .iter()
            .find_map(|r| r.top_buyer_ids.first().map(|&b| (r.user_id, b)))
        else {
            return Ok(());
        };
        let skip = "on_bad_rows = \"skip\"\nmax_bad_fraction = 1.0\n";
        let kinds: [(&str, &str, &str, String); 4] = [
            ("users", "users.csv", "suspended", format!("{buyer},false,yes,false")),
            ("blocks", "blocks.csv", "blocked_id", format!("{user}, {buyer}")),
            ("follows", "follows.csv", "muted", format!("{user},{buyer},maybe")),
            ("follows", "follows.csv", "muted", format!("{user},,true")),
        ];
        for (k, (table, file, column, bad)) in kinds.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let mut protected = case.clone();
            protected.world.users.get_or_insert_with(Vec::new);
            protected.world.blocks.get_or_insert_with(Vec::new);
            let mut plain = protected.clone();
            match k {
                0 => protected.world.users.as_mut().unwrap().push(User {
                    user_id: buyer,
                    promotions_opt_out: Some(false),
                    suspended: Some(true),
                    hide_purchases: None,
                }),
                1 => protected.world.blocks.as_mut().unwrap().push(Block {
                    user_id: user,
                    blocked_id: buyer,
                }),
                _ => protected.world.follows.push(Follow {
                    follower_id: user,
                    followee_id: buyer,
                    muted: Some(true),
                    followed_back: None,
                }),
            }
            // The protection, well formed, is honoured in skip mode.
            let job = write_plain_case(dir.path(), &protected, skip);
            let res = run(&["run", "--config", s(&job)]);
            prop_assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
            let out = dir.path().join("out");
            let run_id = latest(&out).unwrap();
            let got = read_run(&out.join(&run_id));
            let want = expected_rows(&protected, &run_id);
            prop_assert!(got == want, "{}: {}", table, first_difference(&got, &want));
            prop_assert!(
                want != expected_rows(&plain, &run_id),
                "{}: the protection changes nothing here", table
            );

            // The same row, bad: never skipped.
            let dir = tempfile::tempdir().unwrap();
            plain.as_of = case.as_of;
            let job = write_plain_case(dir.path(), &plain, skip);
            append_line(dir.path(), file, &bad);
            let res = run(&["run", "--config", s(&job)]);
            prop_assert_eq!(res.status.code(), Some(1), "{} {:?}: {}", table, bad, stderr(&res));
            let err = message(&res);
            prop_assert!(
                err.contains(&format!("table {table}")) && err.contains(column),
                "{} {:?}: {}", table, bad, err
            );
            prop_assert_eq!(latest(&dir.path().join("out")), None);
        }
    }
}

/// Every row of impressions is protective: a bad shown_at fails the run in
/// skip mode.
#[test]
fn a_bad_impression_fails_the_run_in_skip_mode() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 8);
    let impressions = dir.path().join("impressions.csv");
    fs::write(
        &impressions,
        "user_id,product_id,shown_at,clicked\n1,2,2026-11-10T00:00:00Z,false\n1,2,last week,false\n",
    )
    .unwrap();
    let job = generated_job(
        dir.path(),
        "job.toml",
        "on_bad_rows = \"skip\"\nmax_bad_fraction = 1.0",
        "",
    );
    let text = fs::read_to_string(&job)
        .unwrap()
        .replace("world/impressions.parquet", "impressions.csv");
    fs::write(&job, text).unwrap();
    let res = run(&["run", "--config", s(&job), "--as-of", "2026-11-24"]);
    expect_code(&res, 1, "a bad impression in skip mode");
    let err = message(&res);
    assert!(
        err.contains("table impressions") && err.contains("shown_at") && err.contains("row 2"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// 5. Edges: as_of and weights
// ---------------------------------------------------------------------------

#[test]
fn as_of_outside_four_digit_years_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 100, 9);
    let job = generated_job(dir.path(), "job.toml", "", "");
    for as_of in [
        "+10000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
        "1969-12-31",
    ] {
        let res = run(&["run", "--config", s(&job), &format!("--as-of={as_of}")]);
        expect_code(&res, 1, as_of);
        assert!(message(&res).contains("--as-of"), "{}", message(&res));
        let toml = generated_job(dir.path(), "t.toml", &format!("as_of = {as_of:?}"), "");
        let res = run(&["validate", "--config", s(&toml)]);
        expect_code(&res, 1, as_of);
        assert!(message(&res).contains("run.as_of"), "{}", message(&res));
    }
    assert_eq!(latest(&dir.path().join("out")), None);
    let res = run(&[
        "run",
        "--config",
        s(&job),
        "--as-of",
        "9999-12-31T23:59:59Z",
    ]);
    expect_code(&res, 0, "the last second of 9999");
    assert!(
        latest(&dir.path().join("out"))
            .unwrap()
            .starts_with("99991231T235959Z-")
    );
}

/// Weights beyond ±1e6 are refused naming the setting; at the bound every
/// score written is finite.
#[test]
fn weights_are_bounded_so_every_score_is_finite() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 300, 10);
    for key in [
        "w_proof",
        "w_buyers",
        "w_popularity",
        "w_price",
        "mutual_bonus",
    ] {
        let job = generated_job(
            dir.path(),
            "big.toml",
            "",
            &format!("[model]\n{key} = 1e300\n"),
        );
        let res = run(&["run", "--config", s(&job), "--as-of", "2026-11-24"]);
        expect_code(&res, 1, key);
        assert!(
            message(&res).contains(&format!("model.{key}")),
            "{}",
            message(&res)
        );
    }
    let job = generated_job(
        dir.path(),
        "edge.toml",
        "",
        "[model]\nw_proof = 1e6\nmutual_bonus = 1e6\nw_buyers = -1e6\nw_price = 1e6\n\
         [selection]\nmin_score = -1e300\n",
    );
    let res = run(&["run", "--config", s(&job), "--as-of", "2026-11-24"]);
    expect_code(&res, 0, "weights at the bound");
    let out = dir.path().join("out");
    let rows = read_run(&out.join(latest(&out).unwrap()));
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.score.is_finite()),
        "a score is not finite"
    );
}

// ---------------------------------------------------------------------------
// 6. Output states
// ---------------------------------------------------------------------------

/// `slots` on a run whose part is not a slots part (another table's file
/// in its place) is an error naming the part, never a panic; so is a
/// closed stdout after publishing, which leaves the run published, exit 0.
#[test]
fn foreign_parts_and_closed_stdout_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 12);
    let job = generated_job(dir.path(), "job.toml", "", "");
    let out = dir.path().join("out");
    // stdout closed before the run starts: it publishes all the same.
    let res = bin()
        .args(["run", "--config", s(&job), "--as-of", "2026-11-24"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    expect_code(&res, 0, "a run with stdout to /dev/null");
    let closed = {
        let mut child = bin()
            .args(["run", "--config", s(&job), "--as-of", "2026-11-25"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    };
    expect_code(&closed, 0, "a run whose stdout is closed");
    assert!(!stderr(&closed).contains("panicked"), "{}", stderr(&closed));
    let run_id = latest(&out).unwrap();
    assert!(run_id.starts_with("20261125T000000Z-"), "{run_id}");

    let part = out
        .join(&run_id)
        .join("slots")
        .join("part-00000-of-00001.parquet");
    fs::copy(dir.path().join("world").join("products.parquet"), &part).unwrap();
    let res = run(&["slots", "--output", s(&out), "--user", "1"]);
    expect_code(&res, 2, "a foreign part");
    let err = message(&res);
    assert!(
        err.contains("not a slots part") && err.contains("part-00000-of-00001.parquet"),
        "{err}"
    );
    assert!(!stderr(&res).contains("panicked"), "{}", stderr(&res));
}

/// What a hostile operator tried beyond the list: a run id that
/// climbs out of the output folder, a thread count that would stall the
/// run starting threads, and `slots` behind a garbage LATEST.
#[test]
fn hostile_command_lines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 100, 13);
    let job = generated_job(dir.path(), "job.toml", "", "");
    let out = dir.path().join("out");
    expect_code(
        &run(&["run", "--config", s(&job), "--as-of", "2026-11-24"]),
        0,
        "the first night",
    );
    let good = latest(&out).unwrap();
    // A folder outside the output, shaped like a run with the job's hash.
    let evil = format!("evil-{}", &good[17..]);
    copy_dir(&out.join(&good), &dir.path().join(&evil));
    let res = run(&[
        "commit",
        "--config",
        s(&job),
        "--run-id",
        &format!("../{evil}"),
    ]);
    expect_code(&res, 1, "a run id with a path in it");
    assert!(
        message(&res).contains("is not of the form"),
        "{}",
        message(&res)
    );
    assert_eq!(latest(&out), Some(good.clone()));

    for threads in ["0", "100000"] {
        let res = run(&["run", "--config", s(&job), "--threads", threads]);
        expect_code(&res, 1, &format!("--threads {threads}"));
        assert!(message(&res).contains("between 1 and"), "{}", message(&res));
    }
    let res = bin()
        .args(["validate", "--config", s(&job)])
        .env("RAYON_NUM_THREADS", "100000")
        .output()
        .unwrap();
    expect_code(&res, 1, "RAYON_NUM_THREADS=100000");

    fs::write(out.join("LATEST"), "garbage\n").unwrap();
    let res = run(&["slots", "--output", s(&out), "--user", "1"]);
    expect_code(&res, 2, "slots behind a garbage LATEST");
    assert!(message(&res).contains("not a run id"), "{}", message(&res));
}
