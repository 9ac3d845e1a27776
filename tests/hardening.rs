//! Production hardening (issue 5), end to end through the binary:
//!
//! - sharded runs (`run --shard I/N` then `commit`) against one process on
//!   random worlds, and the shard of every row checked with our own `mix`;
//! - `commit` refusing missing, truncated, altered, foreign or other-run
//!   parts, and settings that are not the run's, LATEST untouched;
//! - SIGKILL at every step of publishing (pause points, not timing) of a
//!   run and of a rerun of the same run id, then LATEST checked whole and the next run checked to publish;
//! - each publishing guard refusing (exit 3), `--force` overriding it and
//!   saying so in the manifest, looser guards and first runs publishing;
//! - bad rows skipped and counted (or failing the run), truncated Parquet,
//!   foreign files and unknown keys of the new config sections;
//! - `keep_runs` retention, and no pruning by a failed or refused run;
//! - privacy and trust invariants on random worlds, checked row by row
//!   against the raw input rows (not against the pipeline nor the reference).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread::sleep;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::reference::reference;
use crate::util::{
    Slot, TABLES, bin, latest, part_files, read_part, read_run, run, run_ok, snapshot, write_job,
};
use crate::world::{
    Case, DAY, Layout, MEDIUM, SMALL, World, arb_case, as_of_text, config_sections, run_id_prefix,
    write_case, write_world,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The contract's shard hash: the SplitMix64 finaliser without the
/// increment, written here from docs/contract.md (not the crate's `ids::mix`).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What the binary said on stderr but its log lines (those that start with
/// a timestamp): the error message, however many lines it takes.
pub(crate) fn message(out: &Output) -> String {
    stderr(out)
        .lines()
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            chrono::DateTime::parse_from_rfc3339(first).is_err()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, showing what the binary printed otherwise.
pub(crate) fn expect_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}, got {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

/// True when `needle` occurs in `hay` with no ASCII letter or digit right
/// before or after it.
fn has_word(hay: &str, needle: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    hay.match_indices(needle).any(|(i, m)| {
        !alnum(hay[..i].chars().next_back()) && !alnum(hay[i + m.len()..].chars().next())
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn read_manifest(run_dir: &Path) -> Value {
    let path = run_dir.join("_manifest.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("manifest is not JSON: {e}\n{text}"))
}

/// Checks that `<out>/<run_id>` is a whole run: a readable manifest naming
/// this run, whose parts exist, hash to its sha256, hold the rows it says,
/// and are all the `slots/` folder holds. Returns the parts' hashes.
pub(crate) fn check_whole(out: &Path, run_id: &str) -> Result<Vec<String>, String> {
    let dir = out.join(run_id);
    let path = dir.join("_manifest.json");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    if m["run_id"] != Value::String(run_id.to_string()) {
        return Err(format!("{} names run {}", path.display(), m["run_id"]));
    }
    let parts = m["parts"]
        .as_array()
        .ok_or_else(|| format!("{}: no parts list", path.display()))?;
    if parts.is_empty() {
        return Err(format!("{}: empty parts list", path.display()));
    }
    let mut hashes = Vec::new();
    let mut named = BTreeSet::new();
    let mut slots = 0;
    for p in parts {
        let file = p["file"].as_str().ok_or("a part without a file")?;
        let part = dir.join(file);
        let bytes = fs::read(&part).map_err(|e| format!("{}: {e}", part.display()))?;
        let sha = sha256_hex(&bytes);
        if Some(sha.as_str()) != p["sha256"].as_str() {
            return Err(format!(
                "{} hashes to {sha}, the manifest says {}",
                part.display(),
                p["sha256"]
            ));
        }
        let rows = read_part(&part).len() as u64;
        if Some(rows) != p["rows"].as_u64() {
            return Err(format!(
                "{} holds {rows} rows, the manifest says {}",
                part.display(),
                p["rows"]
            ));
        }
        slots += rows;
        named.insert(part);
        hashes.push(sha);
    }
    let on_disk: BTreeSet<PathBuf> = part_files(&dir).into_iter().collect();
    if on_disk != named {
        return Err(format!(
            "{}: parts on disk {on_disk:?}, in the manifest {named:?}",
            dir.display()
        ));
    }
    if m["counts"]["slots"].as_u64() != Some(slots) {
        return Err(format!(
            "{}: counts.slots {} but the parts hold {slots} rows",
            path.display(),
            m["counts"]["slots"]
        ));
    }
    Ok(hashes)
}

/// Names of the entries of `dir`, hidden ones included.
pub(crate) fn entries(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Err(_) => BTreeSet::new(),
        Ok(list) => list
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
    }
}

/// The run folders of `out` (names that look like run ids), sorted.
pub(crate) fn run_folders(out: &Path) -> Vec<String> {
    entries(out)
        .into_iter()
        .filter(|n| n.len() == 25 && n.as_bytes()[8] == b'T' && n.as_bytes()[16] == b'-')
        .collect()
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Writes a job TOML at `dir/<name>` naming the six tables of a generated
/// world in `dir/world`, with `run_extra` inside `[run]` and `sections`
/// after it.
pub(crate) fn generated_job(dir: &Path, name: &str, run_extra: &str, sections: &str) -> PathBuf {
    let mut text = String::from("[inputs]\n");
    for table in TABLES {
        text.push_str(&format!("{table} = \"world/{table}.parquet\"\n"));
    }
    text.push_str(&format!(
        "\n[run]\noutput = \"out\"\n{run_extra}\n{sections}"
    ));
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// `boughtby generate` into `dir/world`.
pub(crate) fn generate(dir: &Path, users: u32, seed: u64) {
    let world = dir.join("world");
    run_ok(&[
        "generate",
        "--output",
        s(&world),
        "--users",
        &users.to_string(),
        "--products",
        "80",
        "--seed",
        &seed.to_string(),
    ]);
}

/// Sorts rows by (user_id, slot), the output's order.
fn sorted(mut rows: Vec<Slot>) -> Vec<Slot> {
    rows.sort_by_key(|r| (r.user_id, r.slot));
    rows
}

/// Where the two row lists first differ, for a readable failure.
pub(crate) fn first_difference(got: &[Slot], want: &[Slot]) -> String {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            return format!("row {i}:\n  got  {g:?}\n  want {w:?}");
        }
    }
    format!("got {} rows, want {}", got.len(), want.len())
}

#[test]
fn mix_matches_the_contract_test_vectors() {
    assert_eq!(mix(1), 6_238_072_747_940_578_789);
    assert_eq!(mix(42), 12_058_926_934_050_108_962);
}

// ---------------------------------------------------------------------------
// 1. Shards against one process
// ---------------------------------------------------------------------------

/// Runs every shard of `n` (last first), checks the staging folder, then
/// commits `run_id` and checks it published.
fn sharded_run(job: &Path, as_of: &str, out: &Path, n: u32, run_id: &str) {
    for i in (0..n).rev() {
        let shard = format!("{i}/{n}");
        run_ok(&[
            "run",
            "--config",
            s(job),
            "--as-of",
            as_of,
            "--output",
            s(out),
            "--shard",
            &shard,
        ]);
        let staging = out.join(format!(".staging-{run_id}"));
        let part = format!("part-{i:05}-of-{n:05}");
        assert!(
            staging
                .join("slots")
                .join(format!("{part}.parquet"))
                .is_file(),
            "shard {shard} left no part in {}: {:?}",
            staging.display(),
            entries(&staging.join("slots"))
        );
        assert!(
            staging
                .join("_markers")
                .join(format!("{part}.json"))
                .is_file(),
            "shard {shard} left no marker"
        );
        assert_eq!(latest(out), None, "a shard published something");
    }
    run_ok(&[
        "commit",
        "--config",
        s(job),
        "--run-id",
        run_id,
        "--output",
        s(out),
    ]);
    assert_eq!(latest(out).as_deref(), Some(run_id), "commit published");
    assert!(
        !out.join(format!(".staging-{run_id}")).exists(),
        "the staging folder is still there after the commit"
    );
}

fn shard_case() -> impl Strategy<Value = Case> {
    prop_oneof![arb_case(SMALL), arb_case(MEDIUM)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// For N in {1, 2, 3, 5}: the union of the committed shards equals the
    /// unsharded run row for row, with the same counts; every row of part I
    /// belongs to shard I; every part is written and hashes as its manifest
    /// says.
    #[test]
    fn shards_union_equals_the_unsharded_run(case in shard_case()) {
        let dir = tempfile::tempdir().unwrap();
        let job = write_case(dir.path(), &case);
        let as_of = as_of_text(case.as_of);
        let whole_out = dir.path().join("whole");
        run_ok(&["run", "--config", s(&job), "--as-of", &as_of, "--output", s(&whole_out)]);
        let run_id = latest(&whole_out).expect("no LATEST after a run");
        prop_assert!(run_id.starts_with(&run_id_prefix(case.as_of)));
        let whole = read_run(&whole_out.join(&run_id));
        prop_assert!(whole == sorted(whole.clone()), "unsharded rows are not sorted");
        let whole_manifest = read_manifest(&whole_out.join(&run_id));

        for n in [1u32, 2, 3, 5] {
            let out = dir.path().join(format!("out-{n}"));
            sharded_run(&job, &as_of, &out, n, &run_id);
            let run_dir = out.join(&run_id);
            check_whole(&out, &run_id).map_err(TestCaseError::fail)?;

            let names: Vec<String> = part_files(&run_dir)
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            let want: Vec<String> = (0..n).map(|i| format!("part-{i:05}-of-{n:05}.parquet")).collect();
            prop_assert_eq!(&names, &want, "N = {}", n);

            let mut union = Vec::new();
            for (i, part) in part_files(&run_dir).iter().enumerate() {
                let rows = read_part(part);
                prop_assert!(rows == sorted(rows.clone()), "part {} of {} is not sorted", i, n);
                for r in &rows {
                    prop_assert_eq!(
                        mix(r.user_id as u64) % u64::from(n),
                        i as u64,
                        "user {} in part {} of {}", r.user_id, i, n
                    );
                }
                union.extend(rows);
            }
            let union = sorted(union);
            prop_assert!(union == whole, "N = {}: {}", n, first_difference(&union, &whole));

            let m = read_manifest(&run_dir);
            for key in ["users_scored", "users_with_slots", "slots", "ignored", "skipped"] {
                prop_assert_eq!(
                    &m["counts"][key], &whole_manifest["counts"][key],
                    "N = {}: counts.{} differ", n, key
                );
            }
            prop_assert_eq!(&m["inputs"].as_array().map(|a| a.len()), &whole_manifest["inputs"].as_array().map(|a| a.len()));
            for (a, b) in m["inputs"].as_array().unwrap().iter().zip(whole_manifest["inputs"].as_array().unwrap()) {
                prop_assert_eq!(&a["table"], &b["table"]);
                prop_assert_eq!(&a["rows"], &b["rows"]);
            }
            prop_assert_eq!(&m["config_hash"], &whole_manifest["config_hash"]);
            prop_assert_eq!(&m["forced"], &Value::Bool(false));
        }
    }
}

// ---------------------------------------------------------------------------
// 2. The commit refusing broken parts
// ---------------------------------------------------------------------------

/// A generated world with a published run (night 23) and the three staged
/// shards of night 24 kept aside in `pristine`.
struct Staged {
    dir: tempfile::TempDir,
    job: PathBuf,
    run_id: String,
    published: String,
}

impl Staged {
    fn new() -> Staged {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 300, 5);
        let job = generated_job(dir.path(), "job.toml", "", "");
        let out = dir.path().join("out");
        run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-23"]);
        let published = latest(&out).unwrap();
        for i in 0..3 {
            run_ok(&[
                "run",
                "--config",
                s(&job),
                "--as-of",
                "2026-11-24",
                "--shard",
                &format!("{i}/3"),
            ]);
        }
        let run_id = format!("20261124T000000Z-{}", &published[17..]);
        let staging = out.join(format!(".staging-{run_id}"));
        assert!(staging.is_dir(), "no staging folder {}", staging.display());
        copy_dir(&staging, &dir.path().join("pristine"));
        Staged {
            dir,
            job,
            run_id,
            published,
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn staging(&self) -> PathBuf {
        self.out().join(format!(".staging-{}", self.run_id))
    }

    /// Puts the pristine staging folder back.
    fn reset(&self) {
        let staging = self.staging();
        if staging.exists() {
            fs::remove_dir_all(&staging).unwrap();
        }
        copy_dir(&self.dir.path().join("pristine"), &staging);
    }

    fn part(&self, i: u32) -> PathBuf {
        self.staging()
            .join("slots")
            .join(format!("part-{i:05}-of-00003.parquet"))
    }

    fn marker(&self, i: u32) -> PathBuf {
        self.staging()
            .join("_markers")
            .join(format!("part-{i:05}-of-00003.json"))
    }

    fn commit(&self, job: &Path, run_id: &str) -> Output {
        run(&["commit", "--config", s(job), "--run-id", run_id])
    }

    /// Commits after `damage` and expects exit 1, a message with one of
    /// `names`, and the published run and LATEST untouched.
    fn expect_refused(&self, what: &str, names: &[&str], damage: impl FnOnce(&Staged)) {
        self.reset();
        damage(self);
        let before = snapshot(&self.out());
        let out = self.commit(&self.job, &self.run_id);
        expect_code(&out, 1, what);
        let err = message(&out);
        assert!(
            names.iter().any(|n| err.contains(n)),
            "{what}: the message should name one of {names:?}:\n{err}"
        );
        assert_eq!(latest(&self.out()), Some(self.published.clone()), "{what}");
        assert!(
            snapshot(&self.out()) == before,
            "{what}: the output folder changed"
        );
        assert!(
            !self.out().join(&self.run_id).exists(),
            "{what}: the run folder was created"
        );
    }
}

#[test]
fn commit_refuses_missing_damaged_and_foreign_parts() {
    let st = Staged::new();

    st.expect_refused("a shard never ran", &["part-00001-of-00003", "1/3"], |st| {
        fs::remove_file(st.marker(1)).unwrap();
        fs::remove_file(st.part(1)).unwrap();
    });
    st.expect_refused(
        "a marker without its part",
        &["part-00002-of-00003"],
        |st| fs::remove_file(st.part(2)).unwrap(),
    );
    st.expect_refused("a truncated part", &["part-00001-of-00003"], |st| {
        let bytes = fs::read(st.part(1)).unwrap();
        fs::write(st.part(1), &bytes[..bytes.len() / 2]).unwrap();
    });
    st.expect_refused(
        "a part whose bytes changed",
        &["part-00000-of-00003"],
        |st| {
            let mut bytes = fs::read(st.part(0)).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x5a;
            fs::write(st.part(0), &bytes).unwrap();
        },
    );
    st.expect_refused(
        "a part swapped for another shard's",
        &["part-00002-of-00003"],
        |st| {
            fs::copy(st.part(0), st.part(2)).unwrap();
        },
    );
    st.expect_refused("a foreign file in slots/", &["extra.parquet"], |st| {
        fs::copy(st.part(0), st.staging().join("slots").join("extra.parquet")).unwrap();
    });
    st.expect_refused(
        "a part of another shard count",
        &["part-00000-of-00002"],
        |st| {
            run_ok(&[
                "run",
                "--config",
                s(&st.job),
                "--as-of",
                "2026-11-24",
                "--shard",
                "0/2",
            ]);
        },
    );

    // The marker of another run (another night, same settings) in place of
    // shard 1's: refused, naming that marker's part.
    let other_out = st.dir.path().join("other");
    run_ok(&[
        "run",
        "--config",
        s(&st.job),
        "--as-of",
        "2026-11-25",
        "--output",
        s(&other_out),
        "--shard",
        "1/3",
    ]);
    let other_id = format!("20261125T000000Z-{}", &st.published[17..]);
    let other = other_out.join(format!(".staging-{other_id}"));
    st.expect_refused("a marker of another run", &["part-00001-of-00003"], |st| {
        fs::copy(
            other.join("_markers").join("part-00001-of-00003.json"),
            st.marker(1),
        )
        .unwrap();
        fs::copy(
            other.join("slots").join("part-00001-of-00003.parquet"),
            st.part(1),
        )
        .unwrap();
    });

    // A marker copied under another name would count its part twice.
    st.expect_refused("a duplicated marker", &["part-00000-of-00003"], |st| {
        fs::copy(
            st.marker(0),
            st.staging().join("_markers").join("copy.json"),
        )
        .unwrap();
    });
    st.expect_refused(
        "a marker under another part's name",
        &["part-00001-of-00003"],
        |st| {
            fs::remove_file(st.marker(2)).unwrap();
            fs::copy(st.marker(1), st.marker(2)).unwrap();
        },
    );
    // Markers that disagree on the settings or on the inputs they read.
    let edit_marker = |st: &Staged, i: u32, edit: &dyn Fn(&mut Value)| {
        let mut m: Value =
            serde_json::from_str(&fs::read_to_string(st.marker(i)).unwrap()).unwrap();
        edit(&mut m);
        fs::write(st.marker(i), serde_json::to_string_pretty(&m).unwrap()).unwrap();
    };
    st.expect_refused("a part of other settings", &["part-00002-of-00003"], |st| {
        edit_marker(st, 2, &|m| m["config_hash"] = Value::String("0".repeat(64)));
    });
    st.expect_refused(
        "a part staged from another snapshot",
        &["part-00001-of-00003"],
        |st| {
            edit_marker(st, 1, &|m| {
                let bytes = m["snapshot"][1]["bytes"].as_u64().unwrap();
                m["snapshot"][1]["bytes"] = Value::from(bytes + 1);
            });
        },
    );
    st.expect_refused(
        "a part that read other row counts",
        &["part-00002-of-00003"],
        |st| {
            edit_marker(st, 2, &|m| {
                let rows = m["inputs"][0]["rows"].as_u64().unwrap();
                m["inputs"][0]["rows"] = Value::from(rows - 1);
            });
        },
    );

    // A run id of other settings: refused whatever the staging holds.
    st.reset();
    let other_job = generated_job(st.dir.path(), "other.toml", "", "[model]\nw_proof = 2.0\n");
    let before = snapshot(&st.out());
    let out = st.commit(&other_job, &st.run_id);
    expect_code(&out, 1, "a run id of other settings");
    assert!(message(&out).contains(&st.run_id), "{}", stderr(&out));
    let out = st.commit(&st.job, "20261124T000000Z-00000000");
    expect_code(&out, 1, "a run id whose hash is not the settings'");
    // A run id of the right settings but nothing staged.
    let out = st.commit(
        &st.job,
        &format!("20261126T000000Z-{}", &st.published[17..]),
    );
    expect_code(&out, 1, "nothing staged");
    assert_eq!(latest(&st.out()), Some(st.published.clone()));
    assert!(snapshot(&st.out()) == before);

    // And the pristine parts do commit.
    st.reset();
    let out = st.commit(&st.job, &st.run_id);
    expect_code(&out, 0, "the pristine parts");
    assert_eq!(latest(&st.out()), Some(st.run_id.clone()));
    check_whole(&st.out(), &st.run_id).unwrap();
    // The job gives no as_of: the run's is its id's.
    let m = read_manifest(&st.out().join(&st.run_id));
    assert_eq!(m["as_of"], Value::String("2026-11-24T00:00:00Z".into()));
    let parts: Vec<&str> = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        parts,
        [
            "slots/part-00000-of-00003.parquet",
            "slots/part-00001-of-00003.parquet",
            "slots/part-00002-of-00003.parquet"
        ]
    );
}

// ---------------------------------------------------------------------------
// 3. SIGKILL at every step of publishing
// ---------------------------------------------------------------------------

/// The steps a run is killed at, in order (see `src/pause.rs`): while
/// writing its part, once the part is sealed, holding the lock, with the
/// run folder in place, with LATEST moved, and halfway through pruning.
const KILL_POINTS: [&str; 6] = [
    "writing",
    "staged",
    "locked",
    "installed",
    "published",
    "pruning",
];

/// A run is stopped at each step of publishing (a pause point, so the
/// step is exact whatever the machine's speed) and killed with SIGKILL,
/// both as a rerun of LATEST's night (the folder exchange) and as a new
/// night. After every kill LATEST names the run it named before or the
/// killed run, whole and with the bytes a clean run writes; the next run
/// publishes; at the end no leftovers remain but the lock file. A reader
/// beside the runs never finds LATEST naming a run without its manifest.
#[test]
fn sigkill_at_every_step_leaves_latest_whole() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 3000, 11);
    let job = generated_job(dir.path(), "job.toml", "keep_runs = 3", "");
    let out = dir.path().join("out");
    let pauses = dir.path().join("pauses");
    let night = |k: usize| format!("2026-11-{:02}", 10 + k);
    let run_night = |k: usize| {
        bin()
            .args(["run", "--config", s(&job), "--as-of", &night(k)])
            .output()
            .unwrap()
    };
    // Each run id always has the same bytes: whatever survives a kill must
    // be the run as a clean run writes it.
    let mut hashes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut record = |run_id: &str, what: &str| {
        let got = check_whole(&out, run_id)
            .unwrap_or_else(|e| panic!("{what}: LATEST names {run_id}, which is not whole: {e}"));
        let want = hashes.entry(run_id.to_string()).or_insert(got.clone());
        assert_eq!(&got, want, "{what}: run {run_id} changed bytes");
    };

    // A reader beside the runs: whenever it finds LATEST naming a run, that
    // run's manifest is there (unless LATEST moved meanwhile).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = {
        let (out, stop) = (out.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(id) = latest(&out) {
                    let whole = out.join(&id).join("_manifest.json").is_file();
                    if !whole && latest(&out).as_ref() == Some(&id) {
                        return Err(format!("LATEST named {id}, which had no manifest"));
                    }
                }
                sleep(Duration::from_micros(200));
            }
            Ok(())
        })
    };

    expect_code(&run_night(0), 0, "the first run");
    record(&latest(&out).unwrap(), "first run");

    let mut k = 0;
    for point in KILL_POINTS {
        for rerun in [true, false] {
            if rerun && point == "pruning" {
                // A rerun adds no run folder, so it has nothing to prune.
                continue;
            }
            if !rerun {
                k += 1;
            }
            let what = format!("killed at {point} (night {}, rerun {rerun})", night(k));
            let previous = latest(&out).unwrap();
            let mut child = crate::faults::spawn_run(&job, &night(k), &pauses, point);
            let flag = crate::faults::wait_pause(&mut child, &pauses, point);
            child.kill().unwrap();
            child.wait().unwrap();
            fs::remove_file(&flag).unwrap();
            let now = latest(&out).unwrap_or_else(|| panic!("{what}: LATEST is gone"));
            let this_night = format!("{}T000000Z-", night(k).replace('-', ""));
            assert!(
                now == previous || now.starts_with(&this_night),
                "{what}: LATEST moved from {previous} to {now}"
            );
            if matches!(point, "published" | "pruning") {
                assert!(now.starts_with(&this_night), "{what}: LATEST is {now}");
            }
            record(&now, &what);
            for r in run_folders(&out) {
                check_whole(&out, &r).unwrap_or_else(|e| panic!("{what}: kept run {r}: {e}"));
            }

            // The next run succeeds and publishes.
            expect_code(&run_night(k), 0, &format!("{what}: the run after the kill"));
            let now = latest(&out).unwrap();
            assert!(now.starts_with(&this_night), "{what}: not published: {now}");
            record(&now, &format!("{what}, then rerun"));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    observer.join().unwrap().unwrap_or_else(|e| panic!("{e}"));

    // The last successful run cleaned what killed writers left, kept three
    // runs, each whole; the lock file stays (the kernel freed the lock).
    let leftovers: Vec<String> = entries(&out)
        .into_iter()
        .filter(|n| n.starts_with('.') && n != ".lock")
        .collect();
    assert!(
        leftovers.is_empty(),
        "leftovers of killed runs: {leftovers:?}"
    );
    let runs = run_folders(&out);
    assert!(runs.len() <= 3, "keep_runs = 3 but {runs:?}");
    for r in &runs {
        check_whole(&out, r).unwrap_or_else(|e| panic!("kept run {r}: {e}"));
    }
}

// ---------------------------------------------------------------------------
// 4. Guards, and 6. retention: a hand-made shop
// ---------------------------------------------------------------------------

/// A CSV world whose slot counts are known by construction: buyer 1 bought
/// product 11; buyer 3 bought products 12, 13 and 14 (four merchants, no
/// categories, list price 1000), all on 2026-11-20. Each user follows one
/// of them, so gets one or three slots on any night from 11-21 to 12-19.
#[derive(Debug, Clone, Copy, Default)]
struct Shop {
    /// Users 100.. follow buyer 1: one slot each.
    one_slot_users: usize,
    /// Users 200.. follow buyer 3: three slots each.
    three_slot_users: usize,
    /// Buyer 1's purchase is refunded.
    refund_one: bool,
    /// Buyer 3's purchases of 13 and 14 are refunded.
    refund_two_of_three: bool,
    /// Every purchase is refunded.
    refund_all: bool,
    /// Old purchases of an account nobody follows (before every window):
    /// rows that change no slot.
    padding: usize,
    /// The first three-slot users opt out.
    opted_out: usize,
    /// A purchase row with an unknown visibility (bad input).
    bad_row: bool,
}

impl Shop {
    /// Writes the tables and `job.toml` (with `run_extra` in `[run]`, then
    /// `sections`) into `dir`; returns the job.
    fn write(&self, dir: &Path, run_extra: &str, sections: &str) -> PathBuf {
        let mut follows = String::from("follower_id,followee_id\n");
        let mut users = String::from("user_id,promotions_opt_out\n");
        for u in 0..self.one_slot_users {
            follows.push_str(&format!("{},1\n", 100 + u));
            users.push_str(&format!("{},false\n", 100 + u));
        }
        for u in 0..self.three_slot_users {
            follows.push_str(&format!("{},3\n", 200 + u));
            users.push_str(&format!("{},{}\n", 200 + u, u < self.opted_out));
        }
        let mut purchases = String::from("buyer_id,product_id,purchased_at,visibility,refunded\n");
        let at = "2026-11-20T00:00:00Z";
        let refunded = |r: bool| r || self.refund_all;
        purchases.push_str(&format!("1,11,{at},public,{}\n", refunded(self.refund_one)));
        purchases.push_str(&format!("3,12,{at},public,{}\n", refunded(false)));
        for p in [13, 14] {
            let r = refunded(self.refund_two_of_three);
            purchases.push_str(&format!("3,{p},{at},followers,{r}\n"));
        }
        for _ in 0..self.padding {
            purchases.push_str("9,11,2020-01-01T00:00:00Z,public,false\n");
        }
        if self.bad_row {
            purchases.push_str(&format!("3,12,{at},everyone,false\n"));
        }
        let products =
            "product_id,merchant_id,price_cents\n11,1,1000\n12,2,1000\n13,3,1000\n14,4,1000\n";
        fs::write(dir.join("follows.csv"), follows).unwrap();
        fs::write(dir.join("users.csv"), users).unwrap();
        fs::write(dir.join("purchases.csv"), purchases).unwrap();
        fs::write(dir.join("products.csv"), products).unwrap();
        let job = format!(
            "[inputs]\nfollows = \"follows.csv\"\npurchases = \"purchases.csv\"\n\
             products = \"products.csv\"\nusers = \"users.csv\"\n\n\
             [run]\noutput = \"out\"\n{run_extra}\n\n{sections}"
        );
        let path = dir.join("job.toml");
        fs::write(&path, job).unwrap();
        path
    }
}

/// `boughtby run` of `job` on `night` (2026-11-DD or a date), with `args`.
fn run_night(job: &Path, night: &str, args: &[&str]) -> Output {
    let mut all = vec!["run", "--config", s(job), "--as-of", night];
    all.extend_from_slice(args);
    run(&all)
}

fn counts(out: &Path, run_id: &str) -> (u64, u64) {
    let m = read_manifest(&out.join(run_id));
    (
        m["counts"]["slots"].as_u64().unwrap(),
        m["counts"]["users_with_slots"].as_u64().unwrap(),
    )
}

/// Runs `before` on 2026-11-24 (published), then `after` on 2026-11-25 and
/// expects a refusal: exit 3, nothing published, nothing new left behind,
/// a message naming every one of `names` and none of `not_names` (whole
/// words). Returns the tempdir and the job of `after`.
fn expect_guard_refusal(
    before: Shop,
    after: Shop,
    names: &[&str],
    not_names: &[&str],
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = before.write(dir.path(), "", "");
    expect_code(&run_night(&job, "2026-11-24", &[]), 0, "the first night");
    let first = latest(&out).unwrap();
    let snap = snapshot(&out);
    let listing = entries(&out);

    let job = after.write(dir.path(), "", "");
    let res = run_night(&job, "2026-11-25", &[]);
    expect_code(&res, 3, &format!("{before:?} then {after:?}"));
    let err = message(&res);
    for n in names {
        assert!(err.contains(n), "the refusal should name {n:?}:\n{err}");
    }
    for n in not_names {
        assert!(
            !has_word(&err, n),
            "the refusal should not name {n:?}:\n{err}"
        );
    }
    assert_eq!(latest(&out), Some(first), "LATEST moved");
    assert!(snapshot(&out) == snap, "the published run changed");
    assert_eq!(entries(&out), listing, "a refused run left files behind");
    (dir, job)
}

#[test]
fn guard_refuses_a_drop_in_slots_and_force_publishes_it() {
    let before = Shop {
        three_slot_users: 10,
        ..Shop::default()
    };
    let after = Shop {
        refund_two_of_three: true,
        ..before
    };
    // 30 slots to 10, users with slots 10 to 10.
    let (dir, job) = expect_guard_refusal(
        before,
        after,
        &["slots", "max_drop", "30", "10"],
        &["users with slots"],
    );
    let out = dir.path().join("out");
    let first = latest(&out).unwrap();
    assert_eq!(
        read_manifest(&out.join(&first))["forced"],
        Value::Bool(false)
    );

    let res = run_night(&job, "2026-11-25", &["--force"]);
    expect_code(&res, 0, "--force");
    let id = latest(&out).unwrap();
    assert!(id.starts_with("20261125T000000Z-"), "{id}");
    assert_eq!(counts(&out, &id), (10, 10));
    assert_eq!(read_manifest(&out.join(&id))["forced"], Value::Bool(true));
    check_whole(&out, &id).unwrap();
}

#[test]
fn guard_refuses_a_drop_in_users_with_slots() {
    // 12 + 30 = 42 slots for 22 users, then 30 slots (-29%) for 10 users (-55%).
    let before = Shop {
        one_slot_users: 12,
        three_slot_users: 10,
        ..Shop::default()
    };
    let after = Shop {
        refund_one: true,
        ..before
    };
    expect_guard_refusal(
        before,
        after,
        &["users with slots", "22", "10", "max_drop"],
        &["42"],
    );
}

#[test]
fn guard_refuses_zero_slots_after_some() {
    let before = Shop {
        one_slot_users: 2,
        three_slot_users: 2,
        ..Shop::default()
    };
    let after = Shop {
        refund_all: true,
        ..before
    };
    expect_guard_refusal(before, after, &["slots", "max_drop", "8"], &[]);
}

#[test]
fn guard_refuses_a_drop_in_an_inputs_rows() {
    // Purchases: 104 rows, then 4 (-96%); the slots stay.
    let before = Shop {
        one_slot_users: 3,
        three_slot_users: 3,
        padding: 100,
        ..Shop::default()
    };
    let after = Shop {
        padding: 0,
        ..before
    };
    expect_guard_refusal(
        before,
        after,
        &["purchases", "max_input_drop", "104"],
        &["max_drop", "follows", "users"],
    );
}

#[test]
fn a_first_run_has_nothing_to_compare_with() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop {
        three_slot_users: 2,
        refund_all: true,
        ..Shop::default()
    };
    let job = shop.write(
        dir.path(),
        "",
        "[guard]\nmax_drop = 0.0\nmax_input_drop = 0.0\n",
    );
    expect_code(&run_night(&job, "2026-11-24", &[]), 0, "a first run");
    let out = dir.path().join("out");
    let id = latest(&out).expect("a first run publishes");
    assert_eq!(counts(&out, &id), (0, 0));
    assert_eq!(read_manifest(&out.join(&id))["forced"], Value::Bool(false));
}

#[test]
fn looser_guards_and_drops_of_exactly_the_limit_publish() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let base = Shop {
        three_slot_users: 10,
        padding: 100,
        ..Shop::default()
    };
    let publish = |shop: Shop, night: &str, sections: &str| {
        let job = shop.write(dir.path(), "", sections);
        let res = run_night(&job, night, &[]);
        expect_code(&res, 0, &format!("{shop:?} with {sections:?}"));
        let id = latest(&out).unwrap();
        assert!(
            id.starts_with(&night.replace('-', "")),
            "{id} not published"
        );
        assert_eq!(read_manifest(&out.join(&id))["forced"], Value::Bool(false));
        counts(&out, &id)
    };
    assert_eq!(publish(base, "2026-11-21", ""), (30, 10));
    // Slots -67% under max_drop 0.7.
    let fewer = Shop {
        refund_two_of_three: true,
        ..base
    };
    assert_eq!(
        publish(fewer, "2026-11-22", "[guard]\nmax_drop = 0.7\n"),
        (10, 10)
    );
    // Back to 30; then purchases 104 rows to 4 (-96%) under max_input_drop 0.97.
    assert_eq!(
        publish(base, "2026-11-23", "[guard]\nmax_drop = 0.7\n"),
        (30, 10)
    );
    let unpadded = Shop { padding: 0, ..base };
    assert_eq!(
        publish(unpadded, "2026-11-24", "[guard]\nmax_input_drop = 0.97\n"),
        (30, 10)
    );
    // Exactly half the slots and users (5 of 10 users opt out): not more
    // than the default 0.5.
    let half = Shop {
        opted_out: 5,
        ..unpadded
    };
    assert_eq!(publish(half, "2026-11-25", ""), (15, 5));
}

#[test]
fn commit_applies_the_guards_and_honours_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let before = Shop {
        one_slot_users: 6,
        three_slot_users: 6,
        ..Shop::default()
    };
    let job = before.write(dir.path(), "", "");
    expect_code(&run_night(&job, "2026-11-24", &[]), 0, "the first night");
    let first = latest(&out).unwrap();
    let snap = snapshot(&out);

    let after = Shop {
        refund_all: true,
        ..before
    };
    let job = after.write(dir.path(), "", "");
    for i in 0..2 {
        let shard = format!("{i}/2");
        expect_code(
            &run_night(&job, "2026-11-25", &["--shard", &shard]),
            0,
            "a shard",
        );
    }
    let run_id = format!("20261125T000000Z-{}", &first[17..]);
    let commit = |force: bool| {
        let mut args = vec!["commit", "--config", s(&job), "--run-id", &run_id];
        if force {
            args.push("--force");
        }
        run(&args)
    };
    let res = commit(false);
    expect_code(&res, 3, "commit of zero slots after 24");
    assert!(message(&res).contains("max_drop"), "{}", stderr(&res));
    assert_eq!(latest(&out), Some(first));
    assert!(
        snapshot(&out) == snap,
        "a refused commit changed the output"
    );

    let res = commit(true);
    expect_code(&res, 0, "commit --force");
    assert_eq!(latest(&out), Some(run_id.clone()));
    assert_eq!(
        read_manifest(&out.join(&run_id))["forced"],
        Value::Bool(true)
    );
    check_whole(&out, &run_id).unwrap();
}

#[test]
fn keep_runs_prunes_after_publishing_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let shop = Shop {
        one_slot_users: 2,
        three_slot_users: 2,
        ..Shop::default()
    };
    let job = shop.write(dir.path(), "keep_runs = 3", "");
    let id = |day: u32| {
        let hash = &latest(&out).unwrap()[17..];
        format!("202611{day:02}T000000Z-{hash}")
    };
    let ids = |days: &[u32]| -> Vec<String> { days.iter().map(|&d| id(d)).collect() };
    for day in 21..=25 {
        expect_code(
            &run_night(&job, &format!("2026-11-{day}"), &[]),
            0,
            "a night",
        );
    }
    assert_eq!(run_folders(&out), ids(&[23, 24, 25]));
    assert_eq!(latest(&out), Some(id(25)));

    // An older night, forced into LATEST, is kept beside the three newest.
    expect_code(&run_night(&job, "2026-11-22", &["--force"]), 0, "forced");
    assert_eq!(latest(&out), Some(id(22)));
    assert_eq!(run_folders(&out), ids(&[22, 23, 24, 25]));
    expect_code(&run_night(&job, "2026-11-26", &[]), 0, "night 26");
    // The three newest, and the run LATEST named before (22), which a
    // rollback returns to.
    assert_eq!(run_folders(&out), ids(&[22, 24, 25, 26]));

    // With keep_runs = 1, a failed run and a refused run prune nothing.
    let bad = Shop {
        bad_row: true,
        ..shop
    };
    let job = bad.write(dir.path(), "keep_runs = 1", "");
    expect_code(&run_night(&job, "2026-11-27", &[]), 1, "bad input");
    assert_eq!(run_folders(&out), ids(&[22, 24, 25, 26]));
    let refused = Shop {
        refund_all: true,
        ..shop
    };
    let job = refused.write(dir.path(), "keep_runs = 1", "");
    expect_code(&run_night(&job, "2026-11-27", &[]), 3, "refused");
    assert_eq!(run_folders(&out), ids(&[22, 24, 25, 26]));
    assert_eq!(latest(&out), Some(id(26)));

    // A good one prunes down to itself and the run before it.
    let job = shop.write(dir.path(), "keep_runs = 1", "");
    expect_code(&run_night(&job, "2026-11-27", &[]), 0, "good, keep 1");
    assert_eq!(run_folders(&out), ids(&[26, 27]));
    check_whole(&out, &id(27)).unwrap();
}

// ---------------------------------------------------------------------------
// 5. Bad rows, truncated Parquet, foreign files, unknown keys
// ---------------------------------------------------------------------------

/// Lines to append to a PLAIN-layout world's CSV files: each a row-level
/// fault, built so that it would change the slots if it were kept.
struct BadRows {
    follows: Vec<String>,
    purchases: Vec<String>,
    products: Vec<String>,
}

fn bad_rows_for(world: &World, as_of: i64) -> BadRows {
    let followee = world
        .follows
        .iter()
        .find(|f| f.follower_id != f.followee_id)
        .map_or(6, |f| f.followee_id);
    let product = world
        .products
        .iter()
        .find(|p| p.available != Some(false))
        .map_or(7, |p| p.product_id);
    let ts = chrono::DateTime::from_timestamp_micros(as_of - DAY)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut fresh = 1_000_000_000_000i64;
    while world.products.iter().any(|p| p.product_id == fresh) {
        fresh += 1;
    }
    BadRows {
        // A null follower: kept as id 0 it would follow `followee`.
        follows: vec![format!(",{followee},false")],
        purchases: vec![
            format!("-{},{product},{ts},public,,false", followee.max(1)),
            format!("{followee},{product},{ts},secret,,false"),
            format!("{followee},{product},yesterday,public,,false"),
        ],
        // A negative list price.
        products: vec![format!("{fresh},1,-5,,true")],
    }
}

impl BadRows {
    fn append(&self, dir: &Path) {
        for (file, lines) in [
            ("follows.csv", &self.follows),
            ("purchases.csv", &self.purchases),
            ("products.csv", &self.products),
        ] {
            let path = dir.join(file);
            let mut text = fs::read_to_string(&path).unwrap();
            for l in lines {
                text.push_str(l);
                text.push('\n');
            }
            fs::write(&path, text).unwrap();
        }
    }
}

/// Writes `case` with every table a single plain CSV file and `run_lines`
/// in `[run]`.
pub(crate) fn write_plain_case(dir: &Path, case: &Case, run_lines: &str) -> PathBuf {
    let layout = Layout::default();
    let inputs = write_world(dir, &case.world, &layout);
    let inputs: Vec<(&str, &str)> = inputs.iter().map(|(t, p)| (*t, p.as_str())).collect();
    let extra = format!(
        "{run_lines}\n{}",
        config_sections(&case.params, layout.config_style)
    );
    write_job(dir, &inputs, &as_of_text(case.as_of), &extra)
}

pub(crate) fn expected_rows(case: &Case, run_id: &str) -> Vec<Slot> {
    reference(&case.world, &case.params, case.as_of)
        .into_iter()
        .map(|e| Slot {
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

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Skipped bad rows: the run publishes the reference's rows for the
    /// world without them, and the manifest counts them by table and
    /// reason; by default the same world fails.
    #[test]
    fn bad_rows_are_skipped_and_counted(case in arb_case(SMALL)) {
        let dir = tempfile::tempdir().unwrap();
        let bad = bad_rows_for(&case.world, case.as_of);
        // Each table's bad share, the fraction allowing the largest.
        let shares = [
            (bad.follows.len(), case.world.follows.len()),
            (bad.purchases.len(), case.world.purchases.len()),
            (bad.products.len(), case.world.products.len()),
        ];
        let most = shares
            .iter()
            .map(|&(b, good)| b as f64 / (b + good) as f64)
            .fold(0.0, f64::max);
        let fraction = (most + 1e-9).min(1.0);
        let run_lines = format!("on_bad_rows = \"skip\"\nmax_bad_fraction = {fraction:?}\n");
        let job = write_plain_case(dir.path(), &case, &run_lines);
        bad.append(dir.path());
        let out = dir.path().join("out");
        let res = run(&["run", "--config", s(&job)]);
        prop_assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
        let run_id = latest(&out).unwrap();
        let got = read_run(&out.join(&run_id));
        let want = expected_rows(&case, &run_id);
        prop_assert!(got == want, "{}", first_difference(&got, &want));

        let m = read_manifest(&out.join(&run_id));
        let skipped = m["counts"]["skipped"].as_object().cloned().unwrap_or_default();
        let total = |table: &str| -> u64 {
            skipped
                .iter()
                .filter(|(k, _)| k.starts_with(table))
                .map(|(_, v)| v.as_u64().unwrap())
                .sum()
        };
        prop_assert_eq!(total("follows"), 1, "{:?}", skipped);
        prop_assert_eq!(total("purchases"), 3, "{:?}", skipped);
        prop_assert_eq!(total("products"), 1, "{:?}", skipped);
        prop_assert_eq!(skipped.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 5);
        for (table, column) in [
            ("follows", "follower_id"),
            ("purchases", "buyer_id"),
            ("purchases", "visibility"),
            ("purchases", "purchased_at"),
            ("products", "price_cents"),
        ] {
            prop_assert!(
                skipped.iter().any(|(k, v)| k.starts_with(table) && k.contains(column) && v == 1),
                "no skip of {} {} counted: {:?}", table, column, skipped
            );
        }

        // Two shards skip and count the same rows.
        let sharded = dir.path().join("sharded");
        sharded_run(&job, &as_of_text(case.as_of), &sharded, 2, &run_id);
        let union = sorted(read_run(&sharded.join(&run_id)));
        prop_assert!(union == got, "2 shards: {}", first_difference(&union, &got));
        prop_assert_eq!(
            &read_manifest(&sharded.join(&run_id))["counts"]["skipped"],
            &m["counts"]["skipped"]
        );

        // The default, "fail": exit 1 naming a table, nothing new published.
        let job = write_plain_case(dir.path(), &case, "");
        bad.append(dir.path());
        let res = run(&["run", "--config", s(&job), "--as-of", &as_of_text(case.as_of + DAY)]);
        prop_assert_eq!(res.status.code(), Some(1), "{}", stderr(&res));
        let err = message(&res);
        prop_assert!(
            ["follows", "purchases", "products"].iter().any(|t| err.contains(t)) && err.contains("row"),
            "{}", err
        );
        prop_assert_eq!(latest(&out), Some(run_id));
    }
}

/// Ten good purchases and two bad ones (data rows 4 and 9), on the shop.
fn shop_with_bad_purchases(dir: &Path, run_lines: &str) -> PathBuf {
    let shop = Shop {
        one_slot_users: 2,
        three_slot_users: 2,
        padding: 6,
        ..Shop::default()
    };
    let job = shop.write(dir, run_lines, "");
    let path = dir.join("purchases.csv");
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 11, "header and ten rows");
    lines.insert(4, "-3,12,2026-11-20T00:00:00Z,public,false");
    lines.insert(9, "3,12,2026-11-20T00:00:00Z,friends,false");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    job
}

#[test]
fn bad_rows_over_the_fraction_fail_naming_the_table() {
    // 2 bad of 12 purchases: 16.7%.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = shop_with_bad_purchases(
        dir.path(),
        "on_bad_rows = \"skip\"\nmax_bad_fraction = 0.16",
    );
    let res = run_night(&job, "2026-11-24", &[]);
    expect_code(&res, 1, "2 of 12 bad, fraction 0.16");
    let err = message(&res);
    assert!(
        err.contains("purchases") && err.contains("purchases.csv"),
        "{err}"
    );
    assert!(err.contains("max_bad_fraction"), "{err}");
    assert_eq!(latest(&out), None);

    let job = shop_with_bad_purchases(
        dir.path(),
        "on_bad_rows = \"skip\"\nmax_bad_fraction = 0.17",
    );
    expect_code(&run_night(&job, "2026-11-24", &[]), 0, "fraction 0.17");
    let id = latest(&out).unwrap();
    let m = read_manifest(&out.join(&id));
    let skipped = m["counts"]["skipped"].as_object().unwrap();
    let total: u64 = skipped.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 2, "{skipped:?}");
    assert!(
        skipped.keys().all(|k| k.starts_with("purchases")),
        "{skipped:?}"
    );
    assert_eq!(counts(&out, &id), (8, 4));
}

#[test]
fn skipping_is_for_row_level_faults_only() {
    let dir = tempfile::tempdir().unwrap();
    let skip = "on_bad_rows = \"skip\"\nmax_bad_fraction = 1.0";
    // A missing required column.
    let job = shop_with_bad_purchases(dir.path(), skip);
    let path = dir.path().join("purchases.csv");
    let text: String = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| l.rsplitn(3, ',').nth(2).unwrap().to_string() + "\n")
        .collect();
    assert!(
        text.starts_with("buyer_id,product_id,purchased_at\n"),
        "{text}"
    );
    fs::write(&path, text).unwrap();
    let res = run_night(&job, "2026-11-24", &[]);
    expect_code(&res, 1, "skip mode, a missing column");
    let err = message(&res);
    assert!(
        err.contains("purchases") && err.contains("visibility"),
        "{err}"
    );
    // A repeated product_id.
    let job = shop_with_bad_purchases(dir.path(), skip);
    let products = dir.path().join("products.csv");
    let text = fs::read_to_string(&products).unwrap() + "12,7,500\n";
    fs::write(&products, text).unwrap();
    let res = run_night(&job, "2026-11-24", &[]);
    expect_code(&res, 1, "skip mode, a repeated product_id");
    let err = message(&res);
    assert!(
        err.contains("products") && err.contains("product_id"),
        "{err}"
    );
    assert_eq!(latest(&dir.path().join("out")), None);
}

#[test]
fn bad_rows_fail_by_default_on_the_first_one() {
    let dir = tempfile::tempdir().unwrap();
    let job = shop_with_bad_purchases(dir.path(), "");
    let res = run_night(&job, "2026-11-24", &[]);
    expect_code(&res, 1, "default on_bad_rows");
    let err = message(&res);
    for part in ["purchases", "purchases.csv", "buyer_id", "-3"] {
        assert!(err.contains(part), "should name {part:?}:\n{err}");
    }
    assert!(has_word(&err, "4"), "should name data row 4:\n{err}");
    assert!(!err.contains("friends"), "not the second bad row:\n{err}");
    assert_eq!(latest(&dir.path().join("out")), None);
    // "fail" spelled out is the same.
    let job = shop_with_bad_purchases(dir.path(), "on_bad_rows = \"fail\"");
    expect_code(&run_night(&job, "2026-11-24", &[]), 1, "on_bad_rows = fail");
}

#[test]
fn truncated_parquet_input_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 3);
    let job = generated_job(dir.path(), "job.toml", "", "");
    let out = dir.path().join("out");
    expect_code(&run_night(&job, "2026-11-24", &[]), 0, "intact world");
    let first = latest(&out).unwrap();
    let snap = snapshot(&out);
    // Cut to half, to a few bytes, and by the last byte (the footer's magic).
    for table in ["purchases", "follows", "products"] {
        let path = dir.path().join("world").join(format!("{table}.parquet"));
        let bytes = fs::read(&path).unwrap();
        let short = match table {
            "purchases" => bytes.len() / 2,
            "follows" => 6,
            _ => bytes.len() - 1,
        };
        fs::write(&path, &bytes[..short]).unwrap();
        let res = run_night(&job, "2026-11-25", &[]);
        expect_code(&res, 1, &format!("{table} cut to {short} bytes"));
        let err = message(&res);
        assert!(
            err.contains(table) && err.contains(&format!("{table}.parquet")),
            "{err}"
        );
        assert_eq!(latest(&out), Some(first.clone()));
        assert!(snapshot(&out) == snap);
        fs::write(&path, bytes).unwrap();
    }
}

#[test]
fn a_folder_of_parts_with_a_foreign_file_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 3);
    let world = dir.path().join("world");
    let parts = world.join("purchases");
    fs::create_dir_all(parts.join("day=1")).unwrap();
    fs::rename(
        world.join("purchases.parquet"),
        parts.join("day=1").join("part-0.parquet"),
    )
    .unwrap();
    fs::write(parts.join("_SUCCESS"), "").unwrap();
    let job = generated_job(dir.path(), "job.toml", "", "");
    let text = fs::read_to_string(&job)
        .unwrap()
        .replace("world/purchases.parquet", "world/purchases");
    fs::write(&job, text).unwrap();
    expect_code(&run_night(&job, "2026-11-24", &[]), 0, "a folder of parts");
    fs::write(parts.join("day=1").join("notes.txt"), "hello").unwrap();
    let res = run_night(&job, "2026-11-25", &[]);
    expect_code(&res, 1, "a foreign file");
    let err = message(&res);
    assert!(
        err.contains("purchases") && err.contains("notes.txt"),
        "{err}"
    );
}

#[test]
fn unknown_and_bad_keys_of_run_and_guard_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop {
        three_slot_users: 1,
        ..Shop::default()
    };
    for (run_extra, sections, mention) in [
        ("keep_run = 3", "", "keep_run"),
        ("on_bad_row = \"skip\"", "", "on_bad_row"),
        ("", "[guard]\nmax_drops = 0.2\n", "max_drops"),
        ("", "[guard]\nmax_input_drop = 0.2\nslots = 3\n", "slots"),
        ("keep_runs = 0", "", "keep_runs"),
        ("on_bad_rows = \"ignore\"", "", "ignore"),
        ("max_bad_fraction = 1.5", "", "max_bad_fraction"),
        ("", "[guard]\nmax_drop = -0.1\n", "max_drop"),
        ("", "[guard]\nmax_input_drop = nan\n", "max_input_drop"),
    ] {
        let job = shop.write(dir.path(), run_extra, sections);
        let res = run_night(&job, "2026-11-24", &[]);
        expect_code(&res, 1, &format!("{run_extra:?} {sections:?}"));
        assert!(
            message(&res).contains(mention),
            "should mention {mention:?}:\n{}",
            stderr(&res)
        );
        assert_eq!(latest(&dir.path().join("out")), None);
    }
}

// ---------------------------------------------------------------------------
// 7. Privacy and trust invariants, on raw rows
// ---------------------------------------------------------------------------

/// Every row of `rows` checked against the raw rows of `case.world`;
/// returns the first violation.
fn check_invariants(case: &Case, rows: &[Slot]) -> Result<(), String> {
    let w = &case.world;
    let p = &case.params;
    let as_of = case.as_of;
    let users = w.users.clone().unwrap_or_default();
    let blocks = w.blocks.clone().unwrap_or_default();
    let impressions = w.impressions.clone().unwrap_or_default();
    let flagged = |id: i64, suspended: bool| {
        users.iter().any(|u| {
            u.user_id == id
                && if suspended {
                    u.suspended == Some(true)
                } else {
                    u.promotions_opt_out == Some(true)
                }
        })
    };
    let blocked = |a: i64, b: i64| {
        blocks
            .iter()
            .any(|r| (r.user_id == a && r.blocked_id == b) || (r.user_id == b && r.blocked_id == a))
    };
    let start = as_of - p.lookback_days * DAY;
    for r in rows {
        let (u, prod) = (r.user_id, r.product_id);
        let at = format!("row {r:?}");
        if flagged(u, false) {
            return Err(format!("{at}: user {u} opted out"));
        }
        if flagged(u, true) {
            return Err(format!("{at}: user {u} is suspended"));
        }
        let Some(product) = w.products.iter().find(|x| x.product_id == prod) else {
            return Err(format!("{at}: product not in the catalog"));
        };
        if product.available == Some(false) {
            return Err(format!("{at}: product unavailable"));
        }
        if product
            .category
            .as_ref()
            .is_some_and(|c| p.sensitive_categories.contains(c))
        {
            return Err(format!("{at}: product in a sensitive category"));
        }
        if r.merchant_id != product.merchant_id {
            return Err(format!("{at}: merchant is {}", product.merchant_id));
        }
        if w.purchases.iter().any(|x| {
            x.buyer_id == u
                && x.product_id == prod
                && x.refunded != Some(true)
                && x.purchased_at < as_of
        }) {
            return Err(format!("{at}: the user already owns it"));
        }
        let shown: Vec<&crate::world::Impression> = impressions
            .iter()
            .filter(|i| {
                i.user_id == u
                    && i.product_id == prod
                    && as_of - p.fatigue_days * DAY <= i.shown_at
                    && i.shown_at < as_of
            })
            .collect();
        if shown.len() as i64 >= p.fatigue_max_impressions
            && !shown.iter().any(|i| i.clicked == Some(true))
        {
            return Err(format!("{at}: fatigued ({} impressions)", shown.len()));
        }
        // Who may be social proof for (u, prod), straight from the rows.
        let may_support = |f: i64| -> Result<(), String> {
            let rows_uf: Vec<_> = w
                .follows
                .iter()
                .filter(|x| x.follower_id == u && x.followee_id == f)
                .collect();
            if f == u {
                return Err("the user".into());
            }
            if rows_uf.is_empty() {
                return Err("not followed by the user".into());
            }
            if rows_uf.iter().any(|x| x.muted == Some(true)) {
                return Err("muted by the user".into());
            }
            if flagged(f, true) {
                return Err("suspended".into());
            }
            if users
                .iter()
                .any(|x| x.user_id == f && x.hide_purchases == Some(true))
            {
                return Err("hides their purchases".into());
            }
            if blocked(u, f) {
                return Err("blocked either way".into());
            }
            let public_purchase = w.purchases.iter().any(|x| {
                x.buyer_id == f
                    && x.product_id == prod
                    && x.refunded != Some(true)
                    && (x.visibility == "public" || x.visibility == "followers")
                    && start <= x.purchased_at
                    && x.purchased_at < as_of
            });
            if !public_purchase {
                return Err("no public or followers, non-refunded purchase in the window".into());
            }
            Ok(())
        };
        for &f in &r.top_buyer_ids {
            if let Err(why) = may_support(f) {
                return Err(format!("{at}: shown buyer {f}: {why}"));
            }
        }
        let distinct: BTreeSet<i64> = r.top_buyer_ids.iter().copied().collect();
        if distinct.len() != r.top_buyer_ids.len() {
            return Err(format!("{at}: a buyer shown twice"));
        }
        let followees: BTreeSet<i64> = w
            .follows
            .iter()
            .filter(|x| x.follower_id == u)
            .map(|x| x.followee_id)
            .collect();
        let supporters = followees
            .iter()
            .filter(|&&f| may_support(f).is_ok())
            .count();
        if r.buyer_count as usize != supporters {
            return Err(format!(
                "{at}: buyer_count {} but {supporters} followees may support it",
                r.buyer_count
            ));
        }
        if supporters == 0 || (supporters as i64) < p.min_buyers {
            return Err(format!("{at}: {supporters} supporting buyers"));
        }
        let want_shown = supporters.min(p.max_buyers_shown as usize);
        if r.top_buyer_ids.len() != want_shown {
            return Err(format!("{at}: {want_shown} buyers should be shown"));
        }
        if r.score < p.min_score {
            return Err(format!("{at}: score under min_score {}", p.min_score));
        }
    }
    // At most one row per (user, product) and per (user, slot).
    let pairs: BTreeSet<(i64, i64)> = rows.iter().map(|r| (r.user_id, r.product_id)).collect();
    if pairs.len() != rows.len() {
        return Err("a product promoted twice to one user".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// No private or refunded purchase, muted, blocked or suspended buyer
    /// is ever social proof or shown; opted-out and suspended users get no
    /// rows; owned, unavailable and fatigued products are never promoted;
    /// every buyer shown is followed by the user.
    #[test]
    fn privacy_and_trust_invariants_hold_on_raw_rows(case in arb_case(SMALL)) {
        let dir = tempfile::tempdir().unwrap();
        let job = write_case(dir.path(), &case);
        let out = dir.path().join("out");
        run_ok(&["run", "--config", s(&job), "--as-of", &as_of_text(case.as_of)]);
        let rows = read_run(&out.join(latest(&out).unwrap()));
        check_invariants(&case, &rows).map_err(TestCaseError::fail)?;
    }
}

/// The invariant checker is not vacuous: it catches a leaked private
/// buyer, an opted-out user, an owned product and an inflated count.
#[test]
fn the_invariant_checker_catches_violations() {
    use crate::world::{Follow, Product, Purchase, User};
    let as_of = 1_795_478_400_000_000;
    let buy = |buyer, visibility: &str| Purchase {
        buyer_id: buyer,
        product_id: 50,
        purchased_at: as_of - DAY,
        visibility: visibility.into(),
        price_cents: None,
        refunded: None,
    };
    let follow = |a, b| Follow {
        follower_id: a,
        followee_id: b,
        muted: None,
        followed_back: None,
    };
    let world = World {
        follows: vec![follow(1, 2), follow(1, 3), follow(4, 2)],
        purchases: vec![buy(2, "public"), buy(3, "private"), buy(4, "public")],
        products: vec![Product {
            product_id: 50,
            merchant_id: 9,
            price_cents: 1000,
            category: None,
            available: None,
        }],
        users: Some(vec![User {
            user_id: 5,
            promotions_opt_out: Some(true),
            suspended: None,
            hide_purchases: None,
        }]),
        blocks: None,
        impressions: None,
        followed_back_column: false,
    };
    let case = Case {
        world,
        params: crate::reference::Params::default(),
        as_of,
        layout: Layout::default(),
    };
    let row = |user: i64, buyers: Vec<i64>, n: i32| Slot {
        user_id: user,
        slot: 1,
        position: 4,
        product_id: 50,
        merchant_id: 9,
        score: 1.0,
        buyer_count: n,
        top_buyer_ids: buyers,
        valid_from: as_of,
        valid_until: as_of + DAY,
        run_id: String::new(),
    };
    assert_eq!(check_invariants(&case, &[row(1, vec![2], 1)]), Ok(()));
    for (bad, what) in [
        (row(1, vec![2, 3], 2), "private buyer shown"),
        (row(1, vec![2], 2), "private buyer counted"),
        (row(5, vec![2], 1), "opted-out user"),
        (row(4, vec![2], 1), "owned product"),
        (row(1, vec![4], 1), "buyer not followed"),
    ] {
        assert!(check_invariants(&case, &[bad]).is_err(), "{what}");
    }
}
