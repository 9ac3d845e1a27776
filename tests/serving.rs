//! Serving the timeline: the nightly delta, rollback, the history of
//! LATEST's moves, and the read library, end to end.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{Int8Type, Int32Type, Int64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

use crate::faults::{resume, spawn_run, wait_pause};
use crate::hardening::{
    check_whole, expect_code, generate, generated_job, message, read_manifest, run_folders, s,
    stdout,
};
use crate::util::{Slot, latest, read_run, run};

/// What a user is shown: (slot, position, product, merchant, buyer_count,
/// buyers), score aside.
type Shown = Vec<(i8, i32, i64, i64, i32, Vec<i64>)>;

fn shown_of(rows: &[Slot]) -> BTreeMap<i64, Shown> {
    let mut map: BTreeMap<i64, Shown> = BTreeMap::new();
    for r in rows {
        map.entry(r.user_id).or_default().push((
            r.slot,
            r.position,
            r.product_id,
            r.merchant_id,
            r.buyer_count,
            r.top_buyer_ids.clone(),
        ));
    }
    map
}

/// Applies one delta part to `cache` (user → shown slots), as a key-value
/// cache would: a user's upsert rows replace its entry, a delete removes it.
fn apply_delta(cache: &mut BTreeMap<i64, Shown>, part: &Path) -> (u64, u64) {
    let file = fs::File::open(part).unwrap_or_else(|e| panic!("{}: {e}", part.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut upserts: BTreeMap<i64, Shown> = BTreeMap::new();
    let mut deletes = Vec::new();
    for batch in reader {
        let b = batch.unwrap();
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap_or_else(|| panic!("no {n}"))
                .clone()
        };
        let (user, op) = (col("user_id"), col("op"));
        let (slot, position, product) = (col("slot"), col("position"), col("product_id"));
        let (merchant, count, buyers) =
            (col("merchant_id"), col("buyer_count"), col("top_buyer_ids"));
        for i in 0..b.num_rows() {
            assert!(!user.is_null(i) && !op.is_null(i), "a null in the delta");
            let u = user.as_primitive::<Int64Type>().value(i);
            match op.as_string::<i32>().value(i) {
                "upsert" => upserts.entry(u).or_default().push((
                    slot.as_primitive::<Int8Type>().value(i),
                    position.as_primitive::<Int32Type>().value(i),
                    product.as_primitive::<Int64Type>().value(i),
                    merchant.as_primitive::<Int64Type>().value(i),
                    count.as_primitive::<Int32Type>().value(i),
                    buyers
                        .as_list::<i32>()
                        .value(i)
                        .as_primitive::<Int64Type>()
                        .values()
                        .to_vec(),
                )),
                "delete" => {
                    assert_eq!(
                        slot.as_primitive::<Int8Type>().value(i),
                        0,
                        "a delete's slot"
                    );
                    deletes.push(u);
                }
                other => panic!("op {other:?}"),
            }
        }
    }
    let counts = (upserts.len() as u64, deletes.len() as u64);
    for u in deletes {
        assert!(
            cache.remove(&u).is_some(),
            "delete of user {u}, who had no slots"
        );
    }
    cache.extend(upserts);
    counts
}

/// Nights in a row of a generated world (as_of moving a day; users gain,
/// change and lose slots), then a rollback: applying each published run's
/// delta in order to an empty cache gives exactly that run's shown slots,
/// the manifest counts the delta's users, and the rollback's delta brings
/// the cache back to the restored run. The history records every move.
#[test]
fn delta_chains_equal_the_latest_run_and_rollback_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 600, 21);
    let job = generated_job(dir.path(), "job.toml", "keep_runs = 3", "");
    let out = dir.path().join("out");
    let mut cache: BTreeMap<i64, Shown> = BTreeMap::new();
    let mut runs = Vec::new();
    for day in 10..=16 {
        let night = format!("2026-11-{day}");
        let args = [
            "run",
            "--config",
            s(&job),
            "--as-of",
            &night,
            "--by",
            "scheduler",
        ];
        expect_code(&run(&args), 0, &night);
        let id = latest(&out).unwrap();
        let m = read_manifest(&out.join(&id));
        let delta = &m["delta"];
        let want_base = runs
            .last()
            .map_or(Value::Null, |r: &String| Value::from(r.as_str()));
        assert_eq!(delta["base_run_id"], want_base, "{night}");
        let part = out.join(&id).join(delta["file"].as_str().unwrap());
        let (upserted, deleted) = apply_delta(&mut cache, &part);
        assert_eq!(delta["upserted_users"].as_u64(), Some(upserted), "{night}");
        assert_eq!(delta["deleted_users"].as_u64(), Some(deleted), "{night}");
        let truth = shown_of(&read_run(&out.join(&id)));
        assert!(
            cache == truth,
            "{night}: the cache after the deltas is not the run"
        );
        if !runs.is_empty() {
            // Consecutive nights change some users, not all.
            assert!(
                upserted > 0 && upserted < truth.len() as u64,
                "{night}: {upserted}"
            );
        }
        runs.push(id);
    }
    let (left, before) = (runs[6].clone(), runs[5].clone());

    let res = run(&[
        "rollback",
        "--output",
        s(&out),
        "--reason",
        "bad export",
        "--by",
        "oncall",
    ]);
    expect_code(&res, 0, "rollback");
    assert!(stdout(&res).contains(&before), "{}", stdout(&res));
    assert_eq!(latest(&out), Some(before.clone()));
    check_whole(&out, &before).unwrap();
    let part = out
        .join(&before)
        .join(format!("delta-from-{left}"))
        .join("part-00000-of-00001.parquet");
    apply_delta(&mut cache, &part);
    assert!(
        cache == shown_of(&read_run(&out.join(&before))),
        "after the rollback"
    );

    let res = run(&["history", "--output", s(&out), "--json"]);
    expect_code(&res, 0, "history");
    let moves: Vec<Value> = stdout(&res)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(moves.len(), 8, "{moves:?}");
    for (m, id) in moves.iter().zip(&runs) {
        assert_eq!(m["to"], Value::from(id.as_str()));
        assert_eq!(m["command"], "run");
        assert_eq!(m["user"], "scheduler");
    }
    let last = &moves[7];
    assert_eq!(
        (&last["command"], &last["from"], &last["to"]),
        (
            &Value::from("rollback"),
            &Value::from(left.as_str()),
            &Value::from(before.as_str())
        )
    );
    assert_eq!(
        (&last["reason"], &last["user"]),
        (&Value::from("bad export"), &Value::from("oncall"))
    );
}

/// A run writes its delta with its part, against what LATEST names as its
/// scoring starts (no run, or a run). When another run moves LATEST before
/// it commits (here while it waits, staged), the delta is taken again
/// against the new LATEST: its manifest names that base, and the chain of
/// deltas still gives exactly each run's shown slots.
#[test]
fn a_delta_follows_latest_when_it_moves_during_the_run() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 500, 23);
    let job = generated_job(dir.path(), "job.toml", "keep_runs = 5", "");
    let out = dir.path().join("out");
    let pauses = dir.path().join("pauses");
    let mut cache: BTreeMap<i64, Shown> = BTreeMap::new();
    let mut follow = |night: &str, base: Option<&str>| {
        let id = latest(&out).unwrap();
        let m = read_manifest(&out.join(&id));
        let want = base.map_or(Value::Null, Value::from);
        assert_eq!(m["delta"]["base_run_id"], want, "{night}");
        apply_delta(
            &mut cache,
            &out.join(&id).join(m["delta"]["file"].as_str().unwrap()),
        );
        assert!(
            cache == shown_of(&read_run(&out.join(&id))),
            "{night}: the cache after the deltas is not the run"
        );
        id
    };
    let night = |as_of: &str| run(&["run", "--config", s(&job), "--as-of", as_of]);
    // The second night stages its part (its delta copied from the part,
    // with LATEST naming no run)...
    let mut second = spawn_run(&job, "2026-11-11", &pauses, "staged");
    let flag = wait_pause(&mut second, &pauses, "staged");
    // ...while the first is published.
    expect_code(&night("2026-11-10"), 0, "first night");
    let first = follow("first night", None);
    resume(&flag);
    expect_code(&second.wait_with_output().unwrap(), 0, "second night");
    let second = follow("second night", Some(&first));

    // The fourth night stages its part (and its delta against the
    // second)...
    let mut fourth = spawn_run(&job, "2026-11-13", &pauses, "staged");
    let flag = wait_pause(&mut fourth, &pauses, "staged");
    // ...while the third is published.
    expect_code(&night("2026-11-12"), 0, "third night");
    let third = follow("third night", Some(&second));
    resume(&flag);
    expect_code(&fourth.wait_with_output().unwrap(), 0, "fourth night");
    follow("fourth night", Some(&third));
}

/// Rollback is refused (exit 1, naming the run) to a run that is missing,
/// pruned or damaged; waits for a publisher holding the lock and gives up
/// naming it (exit 2); LATEST is untouched by each of these.
#[test]
fn rollback_is_refused_to_an_incomplete_run_and_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 22);
    let job = generated_job(dir.path(), "job.toml", "keep_runs = 1", "");
    let out = dir.path().join("out");
    for day in 10..=13 {
        let night = format!("2026-11-{day}");
        expect_code(
            &run(&["run", "--config", s(&job), "--as-of", &night]),
            0,
            &night,
        );
    }
    let now = latest(&out).unwrap();
    let kept = run_folders(&out);
    assert_eq!(kept.len(), 2, "LATEST and the run before it: {kept:?}");
    let pruned = format!("20261110T000000Z-{}", &now[17..]);
    for (to, why) in [
        (pruned.as_str(), "missing"),
        ("20261301T000000Z-zzzzzzzz", "not a run id"),
    ] {
        let res = run(&["rollback", "--output", s(&out), "--to", to]);
        expect_code(&res, 1, why);
        assert!(
            message(&res).contains(to) && message(&res).contains(why),
            "{}",
            message(&res)
        );
    }
    // The run before LATEST, with a damaged part.
    let before = kept[0].clone();
    let part = out
        .join(&before)
        .join("slots")
        .join("part-00000-of-00001.parquet");
    let good = fs::read(&part).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    fs::write(&part, &bad).unwrap();
    let res = run(&["rollback", "--output", s(&out)]);
    expect_code(&res, 1, "a damaged part");
    assert!(message(&res).contains("damaged"), "{}", message(&res));
    fs::write(&part, &good).unwrap();
    assert_eq!(latest(&out), Some(now.clone()));

    // A publisher holds the lock: the rollback waits, then gives up.
    let pauses = dir.path().join("pauses");
    let mut holder = spawn_run(&job, "2026-11-14", &pauses, "locked");
    let _flag = wait_pause(&mut holder, &pauses, "locked");
    let res = run(&[
        "rollback",
        "--output",
        s(&out),
        "--lock-wait-seconds",
        "0.2",
    ]);
    expect_code(&res, 2, "a held lock");
    assert!(
        message(&res).contains(&format!("process {}", holder.id())),
        "{}",
        message(&res)
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(latest(&out), Some(now.clone()));
    expect_code(
        &run(&["rollback", "--output", s(&out)]),
        0,
        "after the holder died",
    );
    assert_eq!(latest(&out), Some(before));
}

/// A publisher killed while appending to the history leaves no half
/// entry; the next publisher first records the move that was lost.
#[test]
fn history_survives_a_kill_mid_append_and_recovers_the_lost_move() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 200, 23);
    let job = generated_job(dir.path(), "job.toml", "", "");
    let out = dir.path().join("out");
    let pauses = dir.path().join("pauses");
    expect_code(
        &run(&["run", "--config", s(&job), "--as-of", "2026-11-10"]),
        0,
        "first",
    );
    let mut child = spawn_run(&job, "2026-11-11", &pauses, "history");
    let flag = wait_pause(&mut child, &pauses, "history");
    child.kill().unwrap();
    child.wait().unwrap();
    fs::remove_file(flag).unwrap();
    let moved = latest(&out).unwrap();
    assert!(
        moved.starts_with("20261111"),
        "LATEST moved before the history: {moved}"
    );
    let res = run(&["history", "--output", s(&out), "--json"]);
    expect_code(&res, 0, "history after the kill");
    assert_eq!(stdout(&res).lines().count(), 1, "{}", stdout(&res));

    expect_code(
        &run(&["run", "--config", s(&job), "--as-of", "2026-11-12"]),
        0,
        "next",
    );
    let res = run(&["history", "--output", s(&out), "--json"]);
    let moves: Vec<Value> = stdout(&res)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let commands: Vec<&str> = moves
        .iter()
        .map(|m| m["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["run", "recovered", "run"], "{moves:?}");
    assert_eq!(moves[1]["to"], Value::from(moved.as_str()));
    assert_eq!(moves[2]["from"], Value::from(moved.as_str()));
}

/// The read library returns exactly the part's rows for every user of a
/// run (and none for users without slots), against a plain full read; on
/// a run with several row groups, for a sample of users and every user at
/// a row group's edge. `refresh` follows LATEST.
#[test]
fn the_read_library_returns_exactly_each_users_rows() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 40_000, 24);
    let job = generated_job(dir.path(), "job.toml", "", "");
    let out = dir.path().join("out");
    expect_code(
        &run(&["run", "--config", s(&job), "--as-of", "2026-11-24"]),
        0,
        "run",
    );
    let id = latest(&out).unwrap();
    let all = read_run(&out.join(&id));
    assert!(all.len() > 70_000, "only {} rows: one row group", all.len());
    let mut by_user: BTreeMap<i64, Vec<&Slot>> = BTreeMap::new();
    for r in &all {
        by_user.entry(r.user_id).or_default().push(r);
    }
    let slots = boughtby::serving::Slots::open(&out).unwrap();
    assert_eq!(slots.run_id(), id);
    let users: Vec<i64> = by_user.keys().copied().collect();
    // Every 41st user, and the users around each 65,536-row boundary.
    let mut sample: Vec<i64> = users.iter().step_by(41).copied().collect();
    let mut seen = 0usize;
    for (i, u) in users.iter().enumerate() {
        let n = by_user[u].len();
        if (seen / 65_536) != ((seen + n) / 65_536) || i + 1 == users.len() {
            sample.extend(users[i.saturating_sub(2)..(i + 3).min(users.len())].iter());
        }
        seen += n;
    }
    for &u in &sample {
        let lookup = slots.lookup(u).unwrap();
        let want = &by_user[&u];
        assert_eq!(
            lookup.valid,
            Some((want[0].valid_from, want[0].valid_until)),
            "user {u}"
        );
        let got = lookup.rows;
        assert_eq!(got.len(), want.len(), "user {u}");
        for (g, w) in got.iter().zip(want.iter()) {
            assert_eq!(
                (
                    g.slot,
                    g.position,
                    g.product_id,
                    g.merchant_id,
                    g.buyer_count,
                    &g.top_buyer_ids
                ),
                (
                    w.slot,
                    w.position,
                    w.product_id,
                    w.merchant_id,
                    w.buyer_count,
                    &w.top_buyer_ids
                ),
                "user {u}"
            );
            assert_eq!(g.score.to_bits(), w.score.to_bits(), "user {u}");
        }
    }
    for absent in [-1, 0, i64::MAX, users[0] - 1, users[users.len() - 1] + 1] {
        if !by_user.contains_key(&absent) {
            assert!(slots.get(absent).unwrap().is_empty(), "user {absent}");
        }
    }
    // The columns whose values are nearly all distinct have no dictionary
    // page: a lookup would read the whole of it for one page of values.
    let part = fs::read_dir(out.join(&id).join("slots"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let reader = SerializedFileReader::new(fs::File::open(&part).unwrap()).unwrap();
    let meta = reader.metadata();
    assert!(meta.num_row_groups() > 1);
    for g in meta.row_groups() {
        let mut plain = Vec::new();
        for c in g.columns() {
            if c.dictionary_page_offset().is_none() {
                plain.push(c.column_path().string());
            }
        }
        assert_eq!(
            plain,
            ["user_id", "product_id", "score", "top_buyer_ids.list.item"]
        );
    }
    // Many threads share one `Slots`.
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (slots, users, by_user) = (&slots, &users, &by_user);
            scope.spawn(move || {
                for u in users.iter().skip(t).step_by(401) {
                    assert_eq!(slots.get(*u).unwrap().len(), by_user[u].len());
                }
            });
        }
    });
    // refresh() moves to what LATEST names now.
    let mut slots = slots;
    assert!(!slots.refresh().unwrap());
    expect_code(
        &run(&["run", "--config", s(&job), "--as-of", "2026-11-25"]),
        0,
        "next night",
    );
    assert!(slots.refresh().unwrap());
    assert_eq!(Some(slots.run_id().to_string()), latest(&out));
}

/// A part whose `valid_from` is not one value (not as a run writes it, but
/// readable) is still read right: the window then comes from each row.
#[test]
fn the_read_library_reads_a_window_that_varies_within_a_part() {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let tables = [
        "users",
        "follows",
        "purchases",
        "products",
        "blocks",
        "impressions",
    ]
    .map(|t| (t, sample.join(format!("{t}.parquet")).display().to_string()));
    let inputs: Vec<(&str, &str)> = tables.iter().map(|(t, p)| (*t, p.as_str())).collect();
    let job = crate::util::write_job(dir.path(), &inputs, "2026-11-24", "");
    expect_code(&run(&["run", "--config", s(&job)]), 0, "run");
    let out = dir.path().join("out");
    let id = latest(&out).unwrap();
    let part = out
        .join(&id)
        .join("slots")
        .join("part-00000-of-00001.parquet");
    let rows = crate::util::read_part(&part);
    // The first user's window starts a microsecond earlier.
    let first = rows[0].clone();
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&part).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let column = schema.index_of("valid_from").unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        fs::File::create(&part).unwrap(),
        schema.clone(),
        None,
    )
    .unwrap();
    for batch in &batches {
        let users = batch.column(0).as_primitive::<Int64Type>();
        let from = batch
            .column(column)
            .as_primitive::<TimestampMicrosecondType>();
        let values: Vec<i64> = (0..batch.num_rows())
            .map(|i| from.value(i) - i64::from(users.value(i) == first.user_id))
            .collect();
        let mut columns = batch.columns().to_vec();
        columns[column] =
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(from.timezone()));
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();

    let slots = boughtby::serving::Slots::open(&out).unwrap();
    let lookup = slots.lookup(first.user_id).unwrap();
    assert_eq!(
        lookup.valid,
        Some((first.valid_from - 1, first.valid_until))
    );
    assert_eq!(
        lookup.rows.len(),
        rows.iter().filter(|r| r.user_id == first.user_id).count()
    );
    let other = rows.iter().find(|r| r.user_id != first.user_id).unwrap();
    let lookup = slots.lookup(other.user_id).unwrap();
    assert_eq!(lookup.valid, Some((other.valid_from, other.valid_until)));
    assert!(!lookup.rows.is_empty());
}
