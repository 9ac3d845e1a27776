//! End-to-end tests of the `boughtby` command line: exit codes, error
//! messages, the files a run writes, publishing through LATEST, determinism
//! across thread counts and `as_of` spellings, and the `validate` and `slots`
//! commands. Every test builds its own tiny CSV world in a fresh temporary
//! folder and runs the real binary on it.
//!
//! The base world (`World::new`), as_of 2026-11-24T00:00:00Z, default model:
//!
//! | follower | followee |      | buyer | product | bought      | visibility |
//! |----------|----------|------|-------|---------|-------------|------------|
//! | U1       | 22       |      | 21    | 70001   | 2026-11-20  | public     |
//! | 12       | 21       |      | 22    | 70002   | 2026-11-22  | followers  |
//! | U1       | 21       |      |       |         |             |            |
//!
//! with U1 = 2^53 + 1 (not exactly representable as an f64) and products
//! 70001 (merchant 501, list price 1000) and 70002 (merchant 502, 2000). Every
//! candidate has one non-mutual buyer, G_p = 1 and price_fit = 0, so
//! `score = 0.5^(age/7) + 0.5·ln 2 - 0.1·ln 2`: user 12 gets 70001 in slot 1;
//! U1 gets 70002 (age 2 days) in slot 1 and 70001 (age 4 days) in slot 2.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use arrow::array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::array::{ArrayRef, TimestampMillisecondArray, UInt64Array};
use arrow::datatypes::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::util::{
    Slot, TABLES, bin, latest, part_files, read_latest, read_part, read_run, run, run_ok, snapshot,
};

// ---------------------------------------------------------------------------
// The base world and helpers
// ---------------------------------------------------------------------------

const U1: i64 = 9_007_199_254_740_993;
const U2: i64 = 12;
const P1: i64 = 70001;
const P2: i64 = 70002;
const AS_OF: &str = "2026-11-24T00:00:00Z";
/// 2026-11-24T00:00:00Z in epoch microseconds.
const AS_OF_US: i64 = 1_795_478_400_000_000;
const DAY_US: i64 = 86_400_000_000;
const PART: &str = "part-00000-of-00001.parquet";

const FOLLOWS: &str = "follower_id,followee_id,muted
9007199254740993,22,false
12,21,false
9007199254740993,21,
";
const PURCHASES: &str = "buyer_id,product_id,purchased_at,visibility,price_cents,refunded
21,70001,2026-11-20T00:00:00Z,public,,false
22,70002,2026-11-22T00:00:00Z,followers,1900,
";
const PRODUCTS: &str = "product_id,merchant_id,price_cents,category,available
70001,501,1000,\"shoes, red\",true
70002,502,2000,,true
";
const USERS: &str = "user_id,promotions_opt_out,suspended
12,false,false
";
const BLOCKS: &str = "user_id,blocked_id
98,99
";
const IMPRESSIONS: &str = "user_id,product_id,shown_at,clicked
12,70002,2026-11-23T00:00:00Z,false
";

const INPUTS: &str = "[inputs]
follows = \"follows.csv\"
purchases = \"purchases.csv\"
products = \"products.csv\"
";
const RUN: &str = "[run]
as_of = \"2026-11-24T00:00:00Z\"
output = \"out\"
";

/// One temporary folder holding the base world's CSV tables and `job.toml`.
struct World {
    dir: TempDir,
}

impl World {
    /// The base world: follows, purchases and products, and a job naming them.
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let world = World { dir };
        world.write("follows.csv", FOLLOWS);
        world.write("purchases.csv", PURCHASES);
        world.write("products.csv", PRODUCTS);
        world.job(&format!("{INPUTS}\n{RUN}"));
        world
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// Writes `text` to `rel` under the world, creating folders as needed.
    fn write(&self, rel: &str, text: &str) {
        let path = self.p(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Replaces `job.toml` with `text`.
    fn job(&self, text: &str) -> PathBuf {
        let path = self.p("job.toml");
        fs::write(&path, text).unwrap();
        path
    }

    fn job_path(&self) -> String {
        s(&self.p("job.toml")).to_string()
    }

    fn out(&self) -> PathBuf {
        self.p("out")
    }

    /// `boughtby run --config job.toml` followed by `args`.
    fn run(&self, args: &[&str]) -> Output {
        let job = self.job_path();
        let mut all = vec!["run", "--config", job.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Like `run`, asserting exit 0.
    fn run_ok(&self, args: &[&str]) -> Output {
        let job = self.job_path();
        let mut all = vec!["run", "--config", job.as_str()];
        all.extend_from_slice(args);
        run_ok(&all)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, showing what the binary printed otherwise.
fn expect_code(out: &Output, code: i32, what: &str) {
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
/// before or after it, so that row "3" is not found inside "2026".
fn has_word(hay: &str, needle: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    hay.match_indices(needle).any(|(i, m)| {
        !alnum(hay[..i].chars().next_back()) && !alnum(hay[i + m.len()..].chars().next())
    })
}

/// The score of a candidate with one non-mutual buyer whose supporting
/// purchase is `age_days` old, G_p = 1 and price_fit = 0, default weights.
fn single_buyer_score(age_days: f64) -> f64 {
    let recency = 0.5f64.powf(age_days / 7.0);
    let proof = 1.0 * recency;
    let x = 1.0 * proof + 0.5 * 2f64.ln() + -0.1 * 2f64.ln() + 0.2 * 0.0;
    (x * 1e9).round() / 1e9
}

/// The rows the base world must produce, in file order.
fn expected_base_rows(run_id: &str) -> Vec<Slot> {
    let row = |user_id, slot, position, product_id, merchant_id, buyer, age: i64| Slot {
        user_id,
        slot,
        position,
        product_id,
        merchant_id,
        score: single_buyer_score(age as f64),
        buyer_count: 1,
        top_buyer_ids: vec![buyer],
        valid_from: AS_OF_US,
        valid_until: AS_OF_US + DAY_US,
        run_id: run_id.to_string(),
    };
    vec![
        row(U2, 1, 4, P1, 501, 21, 4),
        row(U1, 1, 4, P2, 502, 22, 2),
        row(U1, 2, 14, P1, 501, 21, 4),
    ]
}

/// Compares rows, allowing 1e-9 on the score (the reference arithmetic here
/// is not bit-for-bit the contract's left-to-right order).
fn assert_rows_close(got: &[Slot], want: &[Slot]) {
    assert_eq!(
        got.len(),
        want.len(),
        "row count\ngot: {got:#?}\nwant: {want:#?}"
    );
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.score - w.score).abs() <= 1e-9,
            "score of {g:?}, want {}",
            w.score
        );
        let g = Slot {
            score: 0.0,
            ..g.clone()
        };
        let w = Slot {
            score: 0.0,
            ..w.clone()
        };
        assert_eq!(g, w);
    }
}

/// Whether `id` looks like `YYYYMMDDTHHMMSSZ-xxxxxxxx` (8 lowercase hex).
fn is_run_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

fn read_manifest(run_dir: &Path) -> Value {
    let path = run_dir.join("_manifest.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("manifest is not JSON: {e}\n{text}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Names of the entries of `dir` that do not start with `.`.
fn visible_entries(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Err(_) => BTreeSet::new(),
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
    }
}

/// Asserts that a failed run left nothing published under `out`.
fn assert_nothing_published(out: &Path) {
    assert!(
        !out.join("LATEST").exists(),
        "a failed run wrote {}",
        out.join("LATEST").display()
    );
    let runs: Vec<String> = visible_entries(out).into_iter().collect();
    assert!(
        runs.is_empty(),
        "a failed run left {runs:?} in the output folder"
    );
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), a.null_count() > 0))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = ArrowWriter::try_new(fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn follows_parquet(path: &Path, pairs: &[(i64, i64)]) {
    let a: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let b: Vec<i64> = pairs.iter().map(|p| p.1).collect();
    write_parquet(
        path,
        vec![
            ("follower_id", Arc::new(Int64Array::from(a)) as ArrayRef),
            ("followee_id", Arc::new(Int64Array::from(b)) as ArrayRef),
        ],
    );
}

// ---------------------------------------------------------------------------
// A good run: files, manifest, rows, Parquet layout
// ---------------------------------------------------------------------------

#[test]
fn good_run_exits_0_and_writes_expected_rows() {
    let w = World::new();
    w.run_ok(&[]);
    let run_id = latest(&w.out()).expect("LATEST written");
    assert!(is_run_id(&run_id), "run_id {run_id:?}");
    assert!(
        run_id.starts_with("20261124T000000Z-"),
        "run_id {run_id} does not match as_of {AS_OF}"
    );
    let rows = read_latest(&w.out());
    assert_rows_close(&rows, &expected_base_rows(&run_id));
}

#[test]
fn good_run_writes_part_manifest_and_latest_with_newline() {
    let w = World::new();
    w.run_ok(&[]);
    let out = w.out();
    let latest_text = fs::read_to_string(out.join("LATEST")).unwrap();
    assert!(
        latest_text.ends_with('\n') && !latest_text.ends_with("\n\n"),
        "LATEST must be the run_id and one newline: {latest_text:?}"
    );
    let run_id = latest_text.trim_end_matches('\n');
    assert!(is_run_id(run_id), "LATEST holds {latest_text:?}");
    let run_dir = out.join(run_id);
    assert!(
        run_dir.join("slots").join(PART).is_file(),
        "missing slots/{PART}"
    );
    assert_eq!(
        part_files(&run_dir),
        vec![run_dir.join("slots").join(PART)],
        "exactly one part for an unsharded run"
    );
    assert!(run_dir.join("_manifest.json").is_file());
    assert_eq!(
        visible_entries(&out),
        BTreeSet::from([
            "LATEST".to_string(),
            "_history".to_string(),
            run_id.to_string()
        ]),
        "output folder holds LATEST and the run"
    );
}

#[test]
fn manifest_has_the_contract_fields() {
    let w = World::new();
    w.run_ok(&[]);
    let run_id = latest(&w.out()).unwrap();
    let run_dir = w.out().join(&run_id);
    let m = read_manifest(&run_dir);

    assert_eq!(m["schema_version"], Value::from(1), "schema_version\n{m:#}");
    assert_eq!(m["run_id"].as_str(), Some(run_id.as_str()), "run_id\n{m:#}");
    let as_of = m["as_of"].as_str().expect("as_of is a string");
    assert!(as_of.starts_with("2026-11-24T00:00:00"), "as_of {as_of}");
    assert!(
        m["model"].to_string().contains("social_v1"),
        "model names social_v1: {}",
        m["model"]
    );
    let hash = m["config_hash"].as_str().expect("config_hash is a string");
    assert!(!hash.is_empty());
    assert!(m["config"].is_object(), "config is the resolved settings");
    let config = m["config"].to_string();
    for key in [
        "lookback_days",
        "half_life_days",
        "positions",
        "max_per_merchant",
    ] {
        assert!(config.contains(key), "config lacks {key}: {config}");
    }

    // inputs: one entry per table, bytes and rows of the file read.
    let inputs = m["inputs"].as_array().expect("inputs is a list");
    let want = [("follows", 3u64), ("purchases", 2), ("products", 2)];
    assert_eq!(inputs.len(), want.len(), "inputs: {inputs:#?}");
    for (table, rows) in want {
        let entry = inputs
            .iter()
            .find(|e| e["table"] == table)
            .unwrap_or_else(|| panic!("no input entry for {table}: {inputs:#?}"));
        let path = entry["path"].as_str().expect("path is a string");
        let file = format!("{table}.csv");
        assert!(path.ends_with(&file), "{table} path {path}");
        let bytes = fs::metadata(w.p(&file)).unwrap().len();
        assert_eq!(entry["bytes"].as_u64(), Some(bytes), "{table} bytes");
        assert_eq!(entry["rows"].as_u64(), Some(rows), "{table} rows");
    }

    // counts
    let counts = &m["counts"];
    assert_eq!(counts["users_scored"].as_u64(), Some(2), "counts {counts}");
    assert_eq!(
        counts["users_with_slots"].as_u64(),
        Some(2),
        "counts {counts}"
    );
    assert_eq!(counts["slots"].as_u64(), Some(3), "counts {counts}");
    assert!(counts["ignored"].is_object(), "counts.ignored {counts}");
    assert!(counts["skipped"].is_object(), "counts.skipped {counts}");

    // parts: sha256 of the bytes on disk.
    let parts = m["parts"].as_array().expect("parts is a list");
    assert_eq!(parts.len(), 1, "parts {parts:#?}");
    let file = parts[0]["file"].as_str().expect("parts[0].file");
    assert!(file.ends_with(PART), "part file {file}");
    assert_eq!(parts[0]["rows"].as_u64(), Some(3));
    let bytes = fs::read(run_dir.join("slots").join(PART)).unwrap();
    assert_eq!(
        parts[0]["sha256"].as_str(),
        Some(sha256_hex(&bytes).as_str()),
        "sha256 of the part file"
    );

    // stages and forced
    let stages = m["stages"].as_array().expect("stages is a list");
    assert!(!stages.is_empty());
    for stage in stages {
        assert!(stage["name"].is_string(), "stage {stage}");
        assert!(stage["seconds"].is_number(), "stage {stage}");
    }
    assert_eq!(m["forced"], Value::Bool(false));
}

#[test]
fn part_file_is_sorted_zstd_bloom_filtered_indexed_and_null_free() {
    let w = big_world();
    w.run_ok(&[]);
    let run_dir = w.out().join(latest(&w.out()).unwrap());
    let path = run_dir.join("slots").join(PART);
    let rows = read_part(&path);
    assert!(rows.len() > 50, "the big world should give many slots");

    // Sorted by user_id, then slot; slots 1..k per user.
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            (a.user_id, a.slot) < (b.user_id, b.slot),
            "rows out of order: {a:?} then {b:?}"
        );
        if a.user_id == b.user_id {
            assert_eq!(b.slot, a.slot + 1);
        } else {
            assert_eq!(b.slot, 1);
        }
    }

    // No nulls, list elements included.
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    for batch in reader {
        let batch = batch.unwrap();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            assert_eq!(column.null_count(), 0, "nulls in {}", field.name());
            if let Some(list) = column.as_any().downcast_ref::<arrow::array::ListArray>() {
                assert_eq!(list.values().null_count(), 0, "null list elements");
            }
        }
    }

    // zstd, page index, bloom filter on user_id, groups never split a user.
    let options = ReadOptionsBuilder::new()
        .with_page_index()
        .with_reader_properties(
            ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        )
        .build();
    let reader = SerializedFileReader::new_with_options(fs::File::open(&path).unwrap(), options)
        .expect("page index readable");
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let user_col = (0..schema.num_columns())
        .find(|&i| schema.column(i).path().string() == "user_id")
        .expect("user_id column");
    let mut seen_in_group: BTreeMap<i64, usize> = BTreeMap::new();
    let mut row_offset = 0usize;
    for g in 0..meta.num_row_groups() {
        let group = meta.row_group(g);
        for c in 0..group.num_columns() {
            let col = group.column(c);
            let name = col.column_path().string();
            assert!(
                matches!(col.compression(), Compression::ZSTD(_)),
                "{name}: compression {:?}",
                col.compression()
            );
            assert!(
                col.column_index_offset().is_some(),
                "{name}: no column index"
            );
            assert!(
                col.offset_index_offset().is_some(),
                "{name}: no offset index"
            );
            assert!(col.statistics().is_some(), "{name}: no statistics");
        }
        assert!(
            group.column(user_col).bloom_filter_offset().is_some(),
            "row group {g}: no bloom filter on user_id"
        );
        let group_reader = reader.get_row_group(g).unwrap();
        let bloom = group_reader
            .get_column_bloom_filter(user_col)
            .expect("user_id bloom filter readable");
        let n = group.num_rows() as usize;
        for row in &rows[row_offset..row_offset + n] {
            assert!(
                bloom.check(&row.user_id),
                "bloom filter misses {}",
                row.user_id
            );
            let first = *seen_in_group.entry(row.user_id).or_insert(g);
            assert_eq!(first, g, "user {} split across row groups", row.user_id);
        }
        row_offset += n;
    }
    assert_eq!(row_offset, rows.len());
}

#[test]
fn empty_result_still_writes_an_empty_part_and_publishes() {
    let w = World::new();
    w.write(
        "purchases.csv",
        "buyer_id,product_id,purchased_at,visibility,price_cents,refunded\n",
    );
    w.run_ok(&[]);
    let run_id = latest(&w.out()).expect("an empty run is still published");
    let run_dir = w.out().join(&run_id);
    let part = run_dir.join("slots").join(PART);
    assert!(part.is_file(), "empty part written");
    assert!(read_part(&part).is_empty());
    let m = read_manifest(&run_dir);
    assert_eq!(m["counts"]["slots"].as_u64(), Some(0));
    assert_eq!(m["counts"]["users_with_slots"].as_u64(), Some(0));
    assert_eq!(m["parts"][0]["rows"].as_u64(), Some(0));
    let bytes = fs::read(&part).unwrap();
    assert_eq!(
        m["parts"][0]["sha256"].as_str(),
        Some(sha256_hex(&bytes).as_str())
    );
}

#[test]
fn all_six_tables_give_the_same_rows_here() {
    let w = World::new();
    w.write("users.csv", USERS);
    w.write("blocks.csv", BLOCKS);
    w.write("impressions.csv", IMPRESSIONS);
    w.job(&format!(
        "{INPUTS}users = \"users.csv\"\nblocks = \"blocks.csv\"\nimpressions = \"impressions.csv\"\n\n{RUN}"
    ));
    w.run_ok(&[]);
    let run_id = latest(&w.out()).unwrap();
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&run_id));
    let m = read_manifest(&w.out().join(&run_id));
    assert_eq!(
        m["inputs"].as_array().unwrap().len(),
        6,
        "inputs {}",
        m["inputs"]
    );
}

// ---------------------------------------------------------------------------
// run_id and reruns
// ---------------------------------------------------------------------------

#[test]
fn same_config_rerun_gives_same_run_id_and_rows() {
    let w = World::new();
    w.run_ok(&[]);
    let first = latest(&w.out()).unwrap();
    let rows = read_latest(&w.out());
    w.run_ok(&[]);
    let second = latest(&w.out()).unwrap();
    assert_eq!(first, second);
    assert_eq!(read_latest(&w.out()), rows);
    let part = |id: &str| fs::read(w.out().join(id).join("slots").join(PART)).unwrap();
    assert!(part(&first) == part(&second), "a rerun wrote other bytes");
    assert_eq!(
        visible_entries(&w.out()),
        BTreeSet::from(["LATEST".to_string(), "_history".to_string(), first]),
        "a rerun replaces its folder, it adds none"
    );
}

#[test]
fn rerun_with_new_data_replaces_the_runs_folder() {
    let w = World::new();
    w.run_ok(&[]);
    let first = latest(&w.out()).unwrap();
    // Buyer 22's purchase goes: U1 keeps only 70001, in slot 1.
    w.write(
        "purchases.csv",
        &PURCHASES.replace("22,70002,", "22,70001,"),
    );
    w.run_ok(&[]);
    assert_eq!(latest(&w.out()).unwrap(), first, "same night, same config");
    let rows = read_latest(&w.out());
    let products: Vec<(i64, i64)> = rows.iter().map(|r| (r.user_id, r.product_id)).collect();
    assert_eq!(products, vec![(U2, P1), (U1, P1)], "{rows:#?}");
    let m = read_manifest(&w.out().join(&first));
    assert_eq!(
        m["counts"]["slots"].as_u64(),
        Some(2),
        "manifest of the rerun"
    );
    let bytes = fs::read(w.out().join(&first).join("slots").join(PART)).unwrap();
    assert_eq!(
        m["parts"][0]["sha256"].as_str(),
        Some(sha256_hex(&bytes).as_str())
    );
}

#[test]
fn ignored_rows_are_counted_in_the_manifest() {
    let w = World::new();
    // One self-follow, one duplicate follow row, one purchase of a product
    // missing from the catalog: 3 rows ignored, the slots unchanged.
    w.write(
        "follows.csv",
        &format!("{FOLLOWS}12,12,false\n12,21,false\n"),
    );
    w.write(
        "purchases.csv",
        &format!("{PURCHASES}21,99999,2026-11-21T00:00:00Z,public,,false\n"),
    );
    w.run_ok(&[]);
    let id = latest(&w.out()).unwrap();
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
    let m = read_manifest(&w.out().join(&id));
    let ignored = m["counts"]["ignored"].as_object().expect("counts.ignored");
    let total: u64 = ignored
        .values()
        .map(|v| v.as_u64().expect("a row count"))
        .sum();
    assert_eq!(total, 3, "ignored {ignored:?}");
    assert_eq!(m["counts"]["users_scored"].as_u64(), Some(2));
}

#[test]
fn default_as_of_is_today_midnight_utc() {
    let w = World::new();
    w.job(&format!("{INPUTS}\n[run]\noutput = \"out\"\n"));
    let before = chrono::Utc::now().format("%Y%m%dT000000Z-").to_string();
    w.run_ok(&[]);
    let after = chrono::Utc::now().format("%Y%m%dT000000Z-").to_string();
    let id = latest(&w.out()).unwrap();
    assert!(
        id.starts_with(&before) || id.starts_with(&after),
        "run_id {id}, today is {before}"
    );
}

#[test]
fn largest_id_is_accepted() {
    // Ids lie in [0, 2^63): i64::MAX is a valid user.
    let w = World::new();
    w.write(
        "follows.csv",
        &format!("{FOLLOWS}9223372036854775807,21,false\n"),
    );
    w.run_ok(&[]);
    let rows = read_latest(&w.out());
    let last = rows.last().unwrap();
    assert_eq!((last.user_id, last.product_id), (i64::MAX, P1), "{rows:#?}");
}

#[test]
fn csv_follows_rfc_4180_and_does_not_guess_types() {
    // CRLF line endings, columns in another order, a quoted field with a
    // comma, doubled quotes and a line break, numeric-looking categories.
    let w = World::new();
    w.write(
        "follows.csv",
        &FOLLOWS
            .replace(
                "follower_id,followee_id,muted",
                "muted,followee_id,follower_id",
            )
            .replace("9007199254740993,22,false", "false,22,9007199254740993")
            .replace("12,21,false", "false,21,12")
            .replace("9007199254740993,21,", ",21,9007199254740993")
            .replace('\n', "\r\n"),
    );
    w.write(
        "products.csv",
        "product_id,merchant_id,price_cents,category,available\r\n\
         70001,501,1000,\"say \"\"hi\"\",\r\nbye\",true\r\n\
         70002,502,2000,0012,true\r\n",
    );
    w.run_ok(&[]);
    let id = latest(&w.out()).unwrap();
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
}

#[test]
fn timestamps_with_offsets_are_utc_instants() {
    // 2026-11-20T03:00:00+03:00 is 2026-11-20T00:00:00Z.
    let w = World::new();
    w.write(
        "purchases.csv",
        &PURCHASES.replace("2026-11-20T00:00:00Z", "2026-11-20T03:00:00+03:00"),
    );
    w.run_ok(&[]);
    let id = latest(&w.out()).unwrap();
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
}

#[test]
fn changed_model_weight_gives_a_different_run_id() {
    let w = World::new();
    w.run_ok(&[]);
    let first = latest(&w.out()).unwrap();
    w.job(&format!("{INPUTS}\n{RUN}\n[model]\nw_proof = 2.0\n"));
    w.run_ok(&[]);
    let second = latest(&w.out()).unwrap();
    assert_ne!(first, second, "a different w_proof must change the run_id");
    assert_eq!(first[..17], second[..17], "same as_of, same prefix");
    assert!(w.out().join(&first).is_dir() && w.out().join(&second).is_dir());
}

#[test]
fn same_as_of_with_another_config_is_published_either_way() {
    // LATEST guards against an earlier as_of only: whichever way the two
    // hashes sort, a run of the same night publishes.
    let w = World::new();
    let default = format!("{INPUTS}\n{RUN}");
    let changed = format!("{INPUTS}\n{RUN}\n[model]\nw_proof = 2.0\n");
    w.job(&default);
    w.run_ok(&[]);
    let a = latest(&w.out()).unwrap();
    w.job(&changed);
    w.run_ok(&[]);
    let b = latest(&w.out()).unwrap();
    assert_ne!(a, b);
    w.job(&default);
    w.run_ok(&[]);
    assert_eq!(latest(&w.out()).unwrap(), a, "back to the first config");
}

#[test]
fn changed_selection_gives_a_different_run_id() {
    let w = World::new();
    w.run_ok(&[]);
    let first = latest(&w.out()).unwrap();
    w.job(&format!(
        "{INPUTS}\n{RUN}\n[selection]\npositions = [4, 14]\n"
    ));
    w.run_ok(&[]);
    assert_ne!(first, latest(&w.out()).unwrap());
}

#[test]
fn spelling_out_the_defaults_keeps_the_run_id() {
    // The hash is of the *resolved* settings: defaults written out, and
    // integers where floats are expected, resolve to the same thing.
    let w = World::new();
    w.run_ok(&[]);
    let first = latest(&w.out()).unwrap();
    w.job(&format!(
        "{INPUTS}\n{RUN}
[model]
name = \"social_v1\"
lookback_days = 30
half_life_days = 7
mutual_bonus = 0.5
w_proof = 1
w_buyers = 0.5
w_popularity = -0.1
w_price = 0.2
fatigue_max_impressions = 3
fatigue_days = 14

[selection]
positions = [4, 14, 30]
min_buyers = 1
min_score = 0.2
max_per_merchant = 1
max_per_category = 2
max_buyers_shown = 3
"
    ));
    w.run_ok(&[]);
    assert_eq!(latest(&w.out()).unwrap(), first);
}

#[test]
fn positions_may_have_127_entries() {
    let w = World::new();
    let positions: Vec<String> = (1..=127).map(|i| i.to_string()).collect();
    w.job(&format!(
        "{INPUTS}\n{RUN}\n[selection]\npositions = [{}]\n",
        positions.join(", ")
    ));
    w.run_ok(&[]);
    let rows = read_latest(&w.out());
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].position, 2, "U1's second slot goes to position 2");
}

// ---------------------------------------------------------------------------
// Publishing: LATEST untouched by failures, earlier as_of, --force
// ---------------------------------------------------------------------------

#[test]
fn failures_leave_latest_and_the_published_run_untouched() {
    let w = World::new();
    w.run_ok(&[]);
    let first = latest(&w.out()).unwrap();
    let before = snapshot(&w.out());

    // Broken input, same night and config (same run_id): must not replace.
    w.write("purchases.csv", &PURCHASES.replace("followers", "friends"));
    let out = w.run(&[]);
    expect_code(&out, 1, "broken input, same run_id");
    assert_eq!(snapshot(&w.out()), before, "the published run changed");

    // Broken input on a later night: no new run folder.
    let out = w.run(&["--as-of", "2026-11-25"]);
    expect_code(&out, 1, "broken input, later as_of");
    assert_eq!(snapshot(&w.out()), before);

    // Good input, bad config, later night.
    w.write("purchases.csv", PURCHASES);
    w.job(&format!("{INPUTS}\n{RUN}\n[model]\nlookback_days = 0\n"));
    let out = w.run(&["--as-of", "2026-11-25"]);
    expect_code(&out, 1, "bad config");
    assert_eq!(snapshot(&w.out()), before);
    assert_eq!(latest(&w.out()).unwrap(), first);
    assert_eq!(
        visible_entries(&w.out()),
        BTreeSet::from(["LATEST".to_string(), "_history".to_string(), first])
    );
}

#[test]
fn earlier_as_of_is_written_but_not_published_without_force() {
    let w = World::new();
    w.run_ok(&[]);
    let first = latest(&w.out()).unwrap();

    let out = w.run_ok(&["--as-of", "2026-11-20"]);
    assert_eq!(
        latest(&w.out()).unwrap(),
        first,
        "LATEST moved back in time"
    );
    let said = format!("{}{}", stdout(&out), stderr(&out)).to_lowercase();
    assert!(
        said.contains("publish") || said.contains("latest"),
        "an unpublished run should say so; it printed:\n{said}"
    );
    let earlier: Vec<String> = visible_entries(&w.out())
        .into_iter()
        .filter(|n| n.starts_with("20261120T000000Z-"))
        .collect();
    assert_eq!(earlier.len(), 1, "the earlier run is written: {earlier:?}");
    let earlier_dir = w.out().join(&earlier[0]);
    assert!(earlier_dir.join("_manifest.json").is_file());
    assert!(earlier_dir.join("slots").join(PART).is_file());

    w.run_ok(&["--as-of", "2026-11-20", "--force"]);
    assert_eq!(latest(&w.out()).unwrap(), earlier[0], "--force publishes");
    let m = read_manifest(&earlier_dir);
    assert_eq!(
        m["forced"],
        Value::Bool(true),
        "forced recorded in the manifest"
    );
}

#[test]
fn later_as_of_is_published() {
    let w = World::new();
    w.run_ok(&[]);
    w.run_ok(&["--as-of", "2026-11-25"]);
    let id = latest(&w.out()).unwrap();
    assert!(id.starts_with("20261125T000000Z-"), "LATEST {id}");
}

// ---------------------------------------------------------------------------
// Determinism, as_of spellings, overrides, relative paths
// ---------------------------------------------------------------------------

/// A few hundred users following a random subset of 80 buyers, with
/// mutual follows, self-follows, duplicates, muted edges, private and
/// refunded purchases, and products spread over merchants and categories.
fn big_world() -> World {
    let w = World::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let stamp = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let mut follows = String::from("follower_id,followee_id,muted\n");
    let mut purchases =
        String::from("buyer_id,product_id,purchased_at,visibility,price_cents,refunded\n");
    let mut products = String::from("product_id,merchant_id,price_cents,category,available\n");
    let users: Vec<i64> = (0..300).map(|u| 1_000_000_000_000 + u * 7919).collect();
    for &u in &users {
        for _ in 0..1 + next(7) {
            let f = 1 + next(80) as i64;
            let muted = ["false", "false", "false", "true", ""][next(5) as usize];
            follows.push_str(&format!("{u},{f},{muted}\n"));
            if next(4) == 0 {
                follows.push_str(&format!("{f},{u},false\n"));
            }
        }
        if next(20) == 0 {
            follows.push_str(&format!("{u},{u},false\n"));
        }
        if next(3) == 0 {
            let p = 70000 + next(60) as i64;
            let at = AS_OF_US - (next(40 * 24) as i64) * 3_600_000_000;
            let price = ["", "0", "1234", "999"][next(4) as usize];
            purchases.push_str(&format!("{u},{p},{},public,{price},false\n", stamp(at)));
        }
    }
    for b in 1..=80i64 {
        for _ in 0..next(6) {
            let p = 70000 + next(60) as i64;
            let at = AS_OF_US - (next(40 * 24 * 60) as i64) * 60_000_000;
            let vis = ["public", "followers", "private"][next(3) as usize];
            let refunded = ["false", "", "true", "false"][next(4) as usize];
            purchases.push_str(&format!("{b},{p},{},{vis},,{refunded}\n", stamp(at)));
        }
    }
    for p in 70000..70060i64 {
        let merchant = 500 + p % 15;
        let price = 300 + (p * 37) % 5000;
        let category = ["a", "b", "c", ""][(p % 4) as usize];
        let available = if p % 13 == 0 { "false" } else { "true" };
        products.push_str(&format!("{p},{merchant},{price},{category},{available}\n"));
    }
    w.write("follows.csv", &follows);
    w.write("purchases.csv", &purchases);
    w.write("products.csv", &products);
    w
}

#[test]
fn thread_count_does_not_change_the_bytes() {
    let w = big_world();
    w.run_ok(&["--output", s(&w.p("out1")), "--threads", "1"]);
    w.run_ok(&["--output", s(&w.p("out4")), "--threads", "4"]);
    let id1 = latest(&w.p("out1")).unwrap();
    let id4 = latest(&w.p("out4")).unwrap();
    assert_eq!(id1, id4);
    let rows1 = read_run(&w.p("out1").join(&id1));
    let rows4 = read_run(&w.p("out4").join(&id4));
    assert!(rows1.len() > 50, "the big world should give many slots");
    assert_eq!(rows1, rows4, "rows differ between 1 and 4 threads");
    let part = |out: &str, id: &str| fs::read(w.p(out).join(id).join("slots").join(PART)).unwrap();
    assert!(
        part("out1", &id1) == part("out4", &id4),
        "part bytes differ between 1 and 4 threads"
    );
}

/// Runs the base world with `--as-of spelling` into its own output folder
/// and returns (run_id, part bytes).
fn run_as_of(w: &World, name: &str, spelling: &str) -> (String, Vec<u8>) {
    let out = w.p(name);
    w.run_ok(&["--output", s(&out), "--as-of", spelling]);
    let id = latest(&out).unwrap();
    let bytes = fs::read(out.join(&id).join("slots").join(PART)).unwrap();
    (id, bytes)
}

#[test]
fn as_of_spellings_of_the_same_instant_agree() {
    let w = World::new();
    let reference = run_as_of(&w, "o1", "2026-11-24T00:00:00Z");
    assert!(reference.0.starts_with("20261124T000000Z-"));
    for (i, spelling) in [
        "2026-11-24",
        "2026-11-24T01:00:00+01:00",
        "2026-11-24T00:00:00.750Z",
    ]
    .into_iter()
    .enumerate()
    {
        let got = run_as_of(&w, &format!("o{}", i + 2), spelling);
        assert_eq!(got.0, reference.0, "--as-of {spelling}");
        assert!(
            got.1 == reference.1,
            "--as-of {spelling}: part bytes differ"
        );
    }
}

#[test]
fn plain_date_as_of_in_toml_is_midnight_utc() {
    let w = World::new();
    w.job(&format!(
        "{INPUTS}\n[run]\nas_of = \"2026-11-24\"\noutput = \"out\"\n"
    ));
    w.run_ok(&[]);
    let id = latest(&w.out()).unwrap();
    assert!(id.starts_with("20261124T000000Z-"), "run_id {id}");
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
}

#[test]
fn command_line_as_of_and_output_override_the_toml() {
    let w = World::new();
    let other = w.p("elsewhere");
    w.run_ok(&["--as-of", "2026-11-23T00:00:00Z", "--output", s(&other)]);
    assert!(!w.out().exists(), "[run] output used despite --output");
    let id = latest(&other).expect("LATEST under --output");
    assert!(id.starts_with("20261123T000000Z-"), "--as-of ignored: {id}");
}

#[test]
fn relative_paths_in_the_toml_resolve_against_its_folder() {
    let w = World::new();
    fs::create_dir_all(w.p("data")).unwrap();
    for table in ["follows", "purchases", "products"] {
        let file = format!("{table}.csv");
        fs::rename(w.p(&file), w.p("data").join(&file)).unwrap();
    }
    fs::create_dir_all(w.p("jobs")).unwrap();
    let job = w.p("jobs/nightly.toml");
    fs::write(
        &job,
        "[inputs]
follows = \"../data/follows.csv\"
purchases = \"../data/purchases.csv\"
products = \"../data/products.csv\"

[run]
as_of = \"2026-11-24T00:00:00Z\"
output = \"../out\"
",
    )
    .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(cwd.path())
        .args(["run", "--config", s(&job)])
        .output()
        .unwrap();
    expect_code(&out, 0, "run from another folder");
    let id = latest(&w.out()).expect("output resolved against the TOML's folder");
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
    assert!(
        visible_entries(cwd.path()).is_empty(),
        "wrote into the current folder"
    );
}

#[test]
fn command_line_paths_resolve_against_the_current_folder() {
    let w = World::new();
    let out = bin()
        .current_dir(w.path())
        .args(["run", "--config", "job.toml", "--output", "cli-out"])
        .output()
        .unwrap();
    expect_code(&out, 0, "relative --config and --output");
    assert!(latest(&w.p("cli-out")).is_some());
}

// ---------------------------------------------------------------------------
// Exit codes: command line
// ---------------------------------------------------------------------------

#[test]
fn help_on_each_subcommand_exits_0_with_usage() {
    for cmd in [
        &["--help"][..],
        &["run", "--help"],
        &["validate", "--help"],
        &["slots", "--help"],
    ] {
        let out = run(cmd);
        expect_code(&out, 0, &format!("{cmd:?}"));
        assert!(
            stdout(&out).to_lowercase().contains("usage"),
            "{cmd:?} printed no usage:\n{}",
            stdout(&out)
        );
    }
}

#[test]
fn bad_command_lines_exit_1() {
    let w = World::new();
    let job = w.job_path();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["frobnicate"],
        vec!["run"],
        vec!["run", "--config", &job, "--bogus"],
        vec!["run", "--config", &job, "--as-of", "2026-13-45"],
        vec!["run", "--config", &job, "--as-of", "tomorrow"],
        vec!["run", "--config", &job, "--as-of", "2026-11-24T25:00:00Z"],
        vec!["run", "--config", &job, "--threads", "many"],
        vec!["run", "--config", &job, "--threads", "0"],
        vec!["validate", "--config", &job, "--as-of", "someday"],
        vec!["run", "--config"],
        vec!["validate"],
        vec!["validate", "--config", &job, "--bogus"],
        vec!["slots", "--output", "out"],
        vec!["slots", "--output", "out", "--user", "abc"],
        vec!["slots", "--user", "12"],
    ];
    let mut failures = Vec::new();
    for args in &cases {
        let out = run(args);
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{args:?}: exit {:?}, stderr: {}",
                out.status.code(),
                stderr(&out)
            ));
        } else if stderr(&out).trim().is_empty() {
            failures.push(format!("{args:?}: exit 1 but nothing on stderr"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_nothing_published(&w.out());
}

#[test]
fn unwritable_output_folder_exits_2() {
    let w = World::new();
    w.write("blocker", "a regular file");
    for output in [w.p("blocker/out"), w.p("blocker")] {
        let out = w.run(&["--output", s(&output)]);
        expect_code(&out, 2, &format!("--output {}", output.display()));
        assert!(!stderr(&out).trim().is_empty(), "no message on stderr");
    }
    assert_eq!(
        fs::read_to_string(w.p("blocker")).unwrap(),
        "a regular file"
    );
}

// ---------------------------------------------------------------------------
// Exit codes: bad config
// ---------------------------------------------------------------------------

/// Runs the base world with `job.toml` replaced by `text`; expects exit 1,
/// a message and nothing published.
fn expect_bad_config(text: impl AsRef<str>, mention: &str) {
    let text = text.as_ref();
    let w = World::new();
    w.job(text);
    let out = w.run(&[]);
    expect_code(&out, 1, &format!("config:\n{text}"));
    let err = stderr(&out);
    assert!(
        err.contains(mention),
        "the message should mention {mention:?}:\n{err}\nconfig:\n{text}"
    );
    assert_nothing_published(&w.out());
}

macro_rules! bad_config {
    ($($name:ident: $text:expr, $mention:expr;)*) => {$(
        #[test]
        fn $name() {
            expect_bad_config($text, $mention);
        }
    )*};
}

bad_config! {
    config_unknown_key_in_inputs: format!("{INPUTS}bogus_table = \"x.csv\"\n\n{RUN}"), "bogus_table";
    config_unknown_key_in_run: format!("{INPUTS}\n{RUN}bogus_run = 1\n"), "bogus_run";
    config_unknown_key_in_model: format!("{INPUTS}\n{RUN}\n[model]\nbogus_model = 1\n"), "bogus_model";
    config_unknown_key_in_selection: format!("{INPUTS}\n{RUN}\n[selection]\nbogus_sel = 1\n"), "bogus_sel";
    config_unknown_section: format!("{INPUTS}\n{RUN}\n[bogus_section]\nx = 1\n"), "bogus_section";
    config_lookback_days_0: format!("{INPUTS}\n{RUN}\n[model]\nlookback_days = 0\n"), "lookback_days";
    config_lookback_days_too_big: format!("{INPUTS}\n{RUN}\n[model]\nlookback_days = 36501\n"), "lookback_days";
    config_half_life_days_0: format!("{INPUTS}\n{RUN}\n[model]\nhalf_life_days = 0\n"), "half_life_days";
    config_half_life_days_negative: format!("{INPUTS}\n{RUN}\n[model]\nhalf_life_days = -1.5\n"), "half_life_days";
    config_nan_weight: format!("{INPUTS}\n{RUN}\n[model]\nw_proof = nan\n"), "w_proof";
    config_infinite_weight: format!("{INPUTS}\n{RUN}\n[model]\nw_price = inf\n"), "w_price";
    config_unknown_model: format!("{INPUTS}\n{RUN}\n[model]\nname = \"social_v9\"\n"), "social_v9";
    config_fatigue_max_impressions_0: format!("{INPUTS}\n{RUN}\n[model]\nfatigue_max_impressions = 0\n"), "fatigue_max_impressions";
    config_min_buyers_0: format!("{INPUTS}\n{RUN}\n[selection]\nmin_buyers = 0\n"), "min_buyers";
    config_max_per_merchant_0: format!("{INPUTS}\n{RUN}\n[selection]\nmax_per_merchant = 0\n"), "max_per_merchant";
    config_positions_repeated: format!("{INPUTS}\n{RUN}\n[selection]\npositions = [4, 4, 30]\n"), "positions";
    config_positions_decreasing: format!("{INPUTS}\n{RUN}\n[selection]\npositions = [30, 14, 4]\n"), "positions";
    config_positions_empty: format!("{INPUTS}\n{RUN}\n[selection]\npositions = []\n"), "positions";
    config_positions_zero: format!("{INPUTS}\n{RUN}\n[selection]\npositions = [0, 4]\n"), "positions";
    config_positions_128: format!(
        "{INPUTS}\n{RUN}\n[selection]\npositions = [{}]\n",
        (1..=128).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    ), "positions";
    config_missing_inputs_table: format!("{RUN}"), "inputs";
    config_missing_required_input: format!("[inputs]\nfollows = \"follows.csv\"\nproducts = \"products.csv\"\n\n{RUN}"), "purchases";
    config_bad_as_of: format!("{INPUTS}\n[run]\nas_of = \"next tuesday\"\noutput = \"out\"\n"), "as_of";
    config_wrong_type: format!("{INPUTS}\n{RUN}\n[model]\nlookback_days = \"thirty\"\n"), "lookback_days";
    config_not_toml: "this is = = not toml", "job.toml";
}

#[test]
fn config_file_missing_exits_1_naming_it() {
    let w = World::new();
    let missing = w.p("no-such-job.toml");
    let out = run(&["run", "--config", s(&missing)]);
    expect_code(&out, 1, "missing config file");
    assert!(
        stderr(&out).contains("no-such-job.toml"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------
// Exit codes: bad input
// ---------------------------------------------------------------------------

/// What a bad-input message must name.
struct Names<'a> {
    /// Substrings: table, file name, column.
    parts: &'a [&'a str],
    /// 1-based data row (header not counted), found as a whole word.
    row: Option<usize>,
    /// The offending value, found as a whole word.
    value: Option<&'a str>,
}

fn check_names(err: &str, names: &Names, what: &str) {
    let mut missing = Vec::new();
    for part in names.parts {
        if !err.contains(part) {
            missing.push(format!("{part:?}"));
        }
    }
    if let Some(row) = names.row
        && !has_word(err, &row.to_string())
    {
        missing.push(format!("row {row}"));
    }
    if let Some(value) = names.value
        && !has_word(err, value)
    {
        missing.push(format!("value {value:?}"));
    }
    assert!(
        missing.is_empty(),
        "{what}: the message does not name {}:\n{err}",
        missing.join(", ")
    );
}

/// Base world with `file` replaced by `text`: expects exit 1 from `run` and
/// from `validate`, a message naming `names`, and nothing published.
fn expect_bad_input(file: &str, text: &str, names: Names) {
    let w = World::new();
    w.write(file, text);
    let out = w.run(&[]);
    expect_code(&out, 1, &format!("run with bad {file}"));
    check_names(&stderr(&out), &names, "run");
    assert_nothing_published(&w.out());

    let job = w.job_path();
    let out = run(&["validate", "--config", &job]);
    expect_code(&out, 1, &format!("validate with bad {file}"));
    check_names(&stderr(&out), &names, "validate");
}

macro_rules! bad_input {
    ($($name:ident: $file:expr, $text:expr, [$($part:expr),*], $row:expr, $value:expr;)*) => {$(
        #[test]
        fn $name() {
            expect_bad_input(
                $file,
                &$text,
                Names { parts: &[$($part),*], row: $row, value: $value },
            );
        }
    )*};
}

bad_input! {
    input_missing_required_column: "purchases.csv",
        "buyer_id,product_id,purchased_at,price_cents,refunded\n21,70001,2026-11-20T00:00:00Z,,false\n",
        ["purchases", "purchases.csv", "visibility"], None, None;
    input_empty_file_without_header: "follows.csv",
        "",
        ["follows", "follows.csv"], None, None;
    input_missing_id_column: "follows.csv",
        "follower_id,muted\n12,false\n",
        ["follows", "follows.csv", "followee_id"], None, None;
    input_boolean_yes: "follows.csv",
        FOLLOWS.replace("9007199254740993,21,\n", "9007199254740993,21,yes\n"),
        ["follows", "follows.csv", "muted"], Some(3), Some("yes");
    input_non_integer_id: "products.csv",
        PRODUCTS.replace("70002,502", "70oo2,502"),
        ["products", "products.csv", "product_id"], Some(2), Some("70oo2");
    input_id_out_of_range: "follows.csv",
        FOLLOWS.replace("12,21", "12,9223372036854775808"),
        ["follows", "follows.csv", "followee_id"], Some(2), Some("9223372036854775808");
    input_bad_timestamp: "purchases.csv",
        PURCHASES.replace("2026-11-22T00:00:00Z", "last-tuesday"),
        ["purchases", "purchases.csv", "purchased_at"], Some(2), Some("last-tuesday");
    input_null_id: "purchases.csv",
        PURCHASES.replace("22,70002", ",70002"),
        ["purchases", "purchases.csv", "buyer_id"], Some(2), None;
    input_null_required_timestamp: "purchases.csv",
        PURCHASES.replace("21,70001,2026-11-20T00:00:00Z", "21,70001,"),
        ["purchases", "purchases.csv", "purchased_at"], Some(1), None;
    input_negative_id: "follows.csv",
        FOLLOWS.replace("12,21", "12,-21"),
        ["follows", "follows.csv", "followee_id"], Some(2), Some("-21");
    input_negative_merchant_id: "products.csv",
        PRODUCTS.replace("70002,502", "70002,-502"),
        ["products", "products.csv", "merchant_id"], Some(2), Some("-502");
    input_unknown_visibility: "purchases.csv",
        PURCHASES.replace("followers", "friends"),
        ["purchases", "purchases.csv", "visibility"], Some(2), Some("friends");
    input_null_visibility: "purchases.csv",
        PURCHASES.replace("public", ""),
        ["purchases", "purchases.csv", "visibility"], Some(1), None;
    input_zero_list_price: "products.csv",
        PRODUCTS.replace("70001,501,1000", "70001,501,0"),
        ["products", "products.csv", "price_cents"], Some(1), Some("0");
    input_negative_list_price: "products.csv",
        PRODUCTS.replace("70002,502,2000", "70002,502,-2000"),
        ["products", "products.csv", "price_cents"], Some(2), Some("-2000");
    input_negative_purchase_price: "purchases.csv",
        PURCHASES.replace("1900", "-1900"),
        ["purchases", "purchases.csv", "price_cents"], Some(2), Some("-1900");
    input_duplicate_product: "products.csv",
        format!("{PRODUCTS}70001,503,1500,,true\n"),
        ["products", "products.csv", "product_id"], None, Some("70001");
}

/// An optional table is checked like the others when the job names it.
#[test]
fn input_impressions_bad_boolean() {
    let w = World::new();
    w.write("impressions.csv", &IMPRESSIONS.replace(",false", ",no"));
    w.job(&format!(
        "{INPUTS}impressions = \"impressions.csv\"\n\n{RUN}"
    ));
    let out = w.run(&[]);
    expect_code(&out, 1, "bad impressions");
    check_names(
        &stderr(&out),
        &Names {
            parts: &["impressions", "impressions.csv", "clicked"],
            row: Some(1),
            value: Some("no"),
        },
        "run",
    );
    assert_nothing_published(&w.out());
}

#[test]
fn input_file_missing_exits_1_naming_table_and_file() {
    let w = World::new();
    w.job(&format!("{INPUTS}\n{RUN}").replace("purchases.csv", "nope.csv"));
    let out = w.run(&[]);
    expect_code(&out, 1, "missing input file");
    check_names(
        &stderr(&out),
        &Names {
            parts: &["purchases", "nope.csv"],
            row: None,
            value: None,
        },
        "run",
    );
    assert_nothing_published(&w.out());
}

#[test]
fn input_damaged_parquet_exits_1_naming_table_and_file() {
    let w = World::new();
    w.write("purchases.parquet", "PAR1 this is not really parquet PAR1");
    w.job(&format!("{INPUTS}\n{RUN}").replace("purchases.csv", "purchases.parquet"));
    let out = w.run(&[]);
    expect_code(&out, 1, "damaged parquet");
    check_names(
        &stderr(&out),
        &Names {
            parts: &["purchases", "purchases.parquet"],
            row: None,
            value: None,
        },
        "run",
    );
    assert_nothing_published(&w.out());
}

// ---------------------------------------------------------------------------
// Directories of parts
// ---------------------------------------------------------------------------

/// The base world with `follows` read from the folder `follows/`, whose
/// files are written by `fill`.
fn world_with_follows_dir(fill: impl FnOnce(&World)) -> World {
    let w = World::new();
    fs::remove_file(w.p("follows.csv")).unwrap();
    fs::create_dir_all(w.p("follows")).unwrap();
    fill(&w);
    w.job(&format!("{INPUTS}\n{RUN}").replace("follows.csv", "follows"));
    w
}

fn expect_dir_error(w: &World, parts: &[&str]) {
    let out = w.run(&[]);
    expect_code(&out, 1, "bad parts folder");
    check_names(
        &stderr(&out),
        &Names {
            parts,
            row: None,
            value: None,
        },
        "run",
    );
    assert_nothing_published(&w.out());
}

#[test]
fn parts_dir_skips_underscore_and_dot_files_and_reads_hive_folders() {
    let w = world_with_follows_dir(|w| {
        w.write("follows/_SUCCESS", "");
        w.write("follows/.part-0.csv.crc", "\u{0}garbage");
        w.write(
            "follows/dt=2026-11-23/part-0.csv",
            "follower_id,followee_id,muted,source\n9007199254740993,22,false,app\n12,21,,web\n",
        );
        w.write("follows/dt=2026-11-23/_committed_1", "junk");
        w.write(
            "follows/dt=2026-11-24/part-1.csv",
            "follower_id,followee_id\n9007199254740993,21\n",
        );
    });
    w.run_ok(&[]);
    let id = latest(&w.out()).unwrap();
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
    let m = read_manifest(&w.out().join(&id));
    let follows = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["table"] == "follows")
        .expect("follows input");
    assert_eq!(
        follows["rows"].as_u64(),
        Some(3),
        "rows of all parts: {follows}"
    );
}

#[test]
fn hive_folder_names_do_not_become_columns() {
    // A folder `muted=true/` must not mute the follows inside it.
    let w = world_with_follows_dir(|w| {
        w.write("follows/muted=true/part-0.csv", "follower_id,followee_id\n");
        w.write(
            "follows/muted=true/part-1.csv",
            "follower_id,followee_id\n9007199254740993,22\n12,21\n9007199254740993,21\n",
        );
    });
    w.run_ok(&[]);
    let id = latest(&w.out()).unwrap();
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
}

#[test]
fn parquet_parts_read_like_csv() {
    let w = world_with_follows_dir(|w| {
        follows_parquet(&w.p("follows/part-0.parquet"), &[(U1, 22), (12, 21)]);
        follows_parquet(&w.p("follows/part-1.parquet"), &[(U1, 21)]);
    });
    w.run_ok(&[]);
    let id = latest(&w.out()).unwrap();
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
}

#[test]
fn parquet_with_other_integer_widths_and_time_units_reads_like_csv() {
    let w = World::new();
    // Ids as Int32 and UInt64, time in milliseconds with no time zone.
    let at = |days: i64| (AS_OF_US - days * DAY_US) / 1000;
    write_parquet(
        &w.p("purchases.parquet"),
        vec![
            (
                "buyer_id",
                Arc::new(Int32Array::from(vec![21, 22])) as ArrayRef,
            ),
            (
                "product_id",
                Arc::new(UInt64Array::from(vec![P1 as u64, P2 as u64])),
            ),
            (
                "purchased_at",
                Arc::new(TimestampMillisecondArray::from(vec![at(4), at(2)])),
            ),
            (
                "visibility",
                Arc::new(StringArray::from(vec!["public", "followers"])),
            ),
        ],
    );
    w.job(&format!("{INPUTS}\n{RUN}").replace("purchases.csv", "purchases.parquet"));
    w.run_ok(&[]);
    let id = latest(&w.out()).unwrap();
    assert_rows_close(&read_latest(&w.out()), &expected_base_rows(&id));
}

/// The base world with purchases read from `purchases.parquet`, written
/// from `columns`; expects exit 1 naming `names`.
fn expect_bad_parquet_purchases(columns: Vec<(&str, ArrayRef)>, names: Names) {
    let w = World::new();
    write_parquet(&w.p("purchases.parquet"), columns);
    w.job(&format!("{INPUTS}\n{RUN}").replace("purchases.csv", "purchases.parquet"));
    let out = w.run(&[]);
    expect_code(&out, 1, "bad purchases.parquet");
    check_names(&stderr(&out), &names, "run");
    assert_nothing_published(&w.out());
}

fn purchase_columns() -> Vec<(&'static str, ArrayRef)> {
    vec![
        (
            "buyer_id",
            Arc::new(Int64Array::from(vec![21, 22])) as ArrayRef,
        ),
        ("product_id", Arc::new(Int64Array::from(vec![P1, P2]))),
        (
            "purchased_at",
            Arc::new(TimestampMillisecondArray::from(vec![
                (AS_OF_US - 4 * DAY_US) / 1000,
                (AS_OF_US - 2 * DAY_US) / 1000,
            ])),
        ),
        (
            "visibility",
            Arc::new(StringArray::from(vec!["public", "followers"])),
        ),
    ]
}

fn replace_column(
    mut columns: Vec<(&'static str, ArrayRef)>,
    name: &str,
    array: ArrayRef,
) -> Vec<(&'static str, ArrayRef)> {
    let slot = columns.iter_mut().find(|(n, _)| *n == name).unwrap();
    slot.1 = array;
    columns
}

#[test]
fn parquet_negative_id_exits_1() {
    let columns = replace_column(
        purchase_columns(),
        "buyer_id",
        Arc::new(Int32Array::from(vec![21, -22])),
    );
    expect_bad_parquet_purchases(
        columns,
        Names {
            parts: &["purchases", "purchases.parquet", "buyer_id"],
            row: Some(2),
            value: Some("-22"),
        },
    );
}

#[test]
fn parquet_id_beyond_i64_exits_1() {
    let columns = replace_column(
        purchase_columns(),
        "product_id",
        Arc::new(UInt64Array::from(vec![P1 as u64, 1u64 << 63])),
    );
    expect_bad_parquet_purchases(
        columns,
        Names {
            parts: &["purchases", "purchases.parquet", "product_id"],
            row: Some(2),
            value: Some("9223372036854775808"),
        },
    );
}

#[test]
fn parquet_null_required_id_exits_1() {
    let columns = replace_column(
        purchase_columns(),
        "product_id",
        Arc::new(Int64Array::from(vec![None, Some(P2)])),
    );
    expect_bad_parquet_purchases(
        columns,
        Names {
            parts: &["purchases", "purchases.parquet", "product_id"],
            row: Some(1),
            value: None,
        },
    );
}

#[test]
fn parquet_wrong_column_type_exits_1() {
    let columns = replace_column(
        purchase_columns(),
        "visibility",
        Arc::new(Int64Array::from(vec![1, 2])),
    );
    expect_bad_parquet_purchases(
        columns,
        Names {
            parts: &["purchases", "purchases.parquet", "visibility"],
            row: None,
            value: None,
        },
    );
}

#[test]
fn parquet_missing_required_column_exits_1() {
    let columns: Vec<(&str, ArrayRef)> = purchase_columns()
        .into_iter()
        .filter(|(n, _)| *n != "purchased_at")
        .collect();
    expect_bad_parquet_purchases(
        columns,
        Names {
            parts: &["purchases", "purchases.parquet", "purchased_at"],
            row: None,
            value: None,
        },
    );
}

#[test]
fn parts_dir_with_a_foreign_file_exits_1() {
    let w = world_with_follows_dir(|w| {
        w.write("follows/part-0.csv", FOLLOWS);
        w.write("follows/notes.txt", "remember to buy milk");
    });
    expect_dir_error(&w, &["follows", "notes.txt"]);
}

#[test]
fn parts_dir_with_only_skipped_files_exits_1() {
    let w = world_with_follows_dir(|w| {
        w.write("follows/_SUCCESS", "");
        w.write("follows/.part-0.csv.crc", "x");
    });
    expect_dir_error(&w, &["follows"]);
}

#[test]
fn empty_parts_dir_exits_1() {
    let w = world_with_follows_dir(|_| {});
    expect_dir_error(&w, &["follows"]);
}

#[test]
fn parts_dir_mixing_csv_and_parquet_exits_1() {
    let w = world_with_follows_dir(|w| {
        w.write("follows/part-0.csv", "follower_id,followee_id\n12,21\n");
        follows_parquet(&w.p("follows/part-1.parquet"), &[(U1, 21), (U1, 22)]);
    });
    expect_dir_error(&w, &["follows"]);
}

#[test]
fn bad_row_in_a_part_names_that_part() {
    let w = world_with_follows_dir(|w| {
        w.write("follows/part-0.csv", "follower_id,followee_id\n12,21\n");
        w.write(
            "follows/dt=x/part-7.csv",
            "follower_id,followee_id\n9007199254740993,22\n9007199254740993,-21\n",
        );
    });
    let out = w.run(&[]);
    expect_code(&out, 1, "negative id in a part");
    check_names(
        &stderr(&out),
        &Names {
            parts: &["follows", "part-7.csv", "followee_id"],
            row: Some(2),
            value: Some("-21"),
        },
        "run",
    );
    assert_nothing_published(&w.out());
}

// ---------------------------------------------------------------------------
// validate
// ---------------------------------------------------------------------------

#[test]
fn validate_good_input_exits_0_and_mentions_each_table() {
    let w = World::new();
    w.write("users.csv", USERS);
    w.write("blocks.csv", BLOCKS);
    w.write("impressions.csv", IMPRESSIONS);
    w.job(&format!(
        "{INPUTS}users = \"users.csv\"\nblocks = \"blocks.csv\"\nimpressions = \"impressions.csv\"\n\n{RUN}"
    ));
    let job = w.job_path();
    let out = run_ok(&["validate", "--config", &job]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    for table in TABLES {
        assert!(
            said.contains(table),
            "validate summary lacks {table}:\n{said}"
        );
    }
    assert!(
        !w.out().join("LATEST").exists(),
        "validate must not publish"
    );
}

#[test]
fn validate_bad_config_exits_1() {
    let w = World::new();
    w.job(&format!("{INPUTS}\n{RUN}\n[selection]\npositions = []\n"));
    let job = w.job_path();
    let out = run(&["validate", "--config", &job]);
    expect_code(&out, 1, "validate with bad config");
}

// ---------------------------------------------------------------------------
// slots
// ---------------------------------------------------------------------------

#[test]
fn slots_prints_the_users_rows_of_latest() {
    let w = World::new();
    w.run_ok(&[]);
    let out_dir = w.out();
    let out = run_ok(&[
        "slots",
        "--output",
        s(&out_dir),
        "--user",
        "9007199254740993",
    ]);
    let text = stdout(&out);
    assert!(
        has_word(&text, "70001") && has_word(&text, "70002"),
        "{text}"
    );

    let out = run_ok(&["slots", "--output", s(&out_dir), "--user", "12"]);
    let text = stdout(&out);
    assert!(has_word(&text, "70001"), "{text}");
    assert!(
        !has_word(&text, "70002"),
        "user 12 has no slot for 70002:\n{text}"
    );
}

#[test]
fn slots_json_is_json_with_exact_ids() {
    let w = World::new();
    w.run_ok(&[]);
    let out = run_ok(&[
        "slots",
        "--output",
        s(&w.out()),
        "--user",
        "9007199254740993",
        "--json",
    ]);
    let text = stdout(&out);
    let whole: Result<Value, _> = serde_json::from_str(&text);
    let lines_ok = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .all(|l| serde_json::from_str::<Value>(l).is_ok());
    assert!(
        whole.is_ok() || lines_ok,
        "--json output is not JSON:\n{text}"
    );
    assert!(
        has_word(&text, "9007199254740993"),
        "user id not exact:\n{text}"
    );
    assert!(
        has_word(&text, "70001") && has_word(&text, "70002"),
        "{text}"
    );
}

#[test]
fn slots_for_a_user_without_slots_exits_0() {
    let w = World::new();
    w.run_ok(&[]);
    let out = run(&["slots", "--output", s(&w.out()), "--user", "21"]);
    expect_code(&out, 0, "user without slots");
    assert!(!has_word(&stdout(&out), "70001"), "{}", stdout(&out));
}

#[test]
fn slots_with_latest_naming_a_missing_run_fails_naming_it() {
    let w = World::new();
    w.run_ok(&[]);
    fs::write(w.out().join("LATEST"), "20261124T000000Z-0badc0de\n").unwrap();
    let out = run(&["slots", "--output", s(&w.out()), "--user", "12"]);
    let code = out.status.code();
    assert!(code == Some(1) || code == Some(2), "exit {code:?}");
    assert!(
        stderr(&out).contains("20261124T000000Z-0badc0de"),
        "message lacks the run folder:\n{}",
        stderr(&out)
    );
}

#[test]
fn slots_without_latest_fails_naming_the_folder() {
    let w = World::new();
    for folder in [w.p("nowhere-out"), {
        fs::create_dir_all(w.p("empty-out")).unwrap();
        w.p("empty-out")
    }] {
        let out = run(&["slots", "--output", s(&folder), "--user", "12"]);
        let code = out.status.code();
        assert!(
            code == Some(1) || code == Some(2),
            "slots without LATEST in {}: exit {code:?}",
            folder.display()
        );
        let name = folder.file_name().unwrap().to_str().unwrap();
        assert!(
            stderr(&out).contains(name),
            "message lacks {name}:\n{}",
            stderr(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------------

/// Columns of a generated table as i64 (ids, instants in µs, flags as 0/1).
fn int_columns(path: &Path, names: &[&str]) -> Vec<Vec<i64>> {
    use arrow::array::{BooleanArray, TimestampMicrosecondArray};
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = vec![Vec::new(); names.len()];
    for batch in reader {
        let batch = batch.unwrap();
        for (column, name) in out.iter_mut().zip(names) {
            let array = batch.column_by_name(name).unwrap().as_any();
            if let Some(a) = array.downcast_ref::<Int64Array>() {
                column.extend(a.values().iter().copied());
            } else if let Some(a) = array.downcast_ref::<TimestampMicrosecondArray>() {
                column.extend(a.values().iter().copied());
            } else if let Some(a) = array.downcast_ref::<BooleanArray>() {
                column.extend(a.iter().map(|v| i64::from(v.unwrap())));
            } else {
                panic!(
                    "{}: column {name} is not an id, instant or flag",
                    path.display()
                );
            }
        }
    }
    out
}

/// `data/sample` is `generate --preset sample --seed 42`, byte for byte,
/// on one thread or two; another seed gives another world.
#[test]
fn generate_reproduces_the_sample_on_any_thread_count() {
    let dir = TempDir::new().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("threads-{threads}"));
        run_ok(&[
            "generate",
            "--preset",
            "sample",
            "--seed",
            "42",
            "--threads",
            threads,
            "--output",
            s(&out),
        ]);
        for table in TABLES {
            let file = format!("{table}.parquet");
            assert!(
                fs::read(out.join(&file)).unwrap() == fs::read(sample.join(&file)).unwrap(),
                "{file} on {threads} thread(s) differs from data/sample: regenerate the sample"
            );
        }
        let leftovers: Vec<_> = fs::read_dir(&out).unwrap().collect();
        assert_eq!(leftovers.len(), TABLES.len(), "scratch left in the output");
    }
    let other = dir.path().join("seed-43");
    run_ok(&[
        "generate",
        "--preset",
        "sample",
        "--seed",
        "43",
        "--output",
        s(&other),
    ]);
    assert!(
        fs::read(other.join("follows.parquet")).unwrap()
            != fs::read(sample.join("follows.parquet")).unwrap()
    );
}

/// The share of purchases that some followee made earlier (same product):
/// follows sorted by follower, about 5% muted, and `--influence` moves the
/// share from chance towards the knob.
#[test]
fn generate_influence_sets_the_share_of_copied_purchases() {
    let dir = TempDir::new().unwrap();
    let mut shares = Vec::new();
    for influence in ["0", "0.6"] {
        let out = dir.path().join(influence);
        run_ok(&[
            "generate",
            "--users",
            "2000",
            "--products",
            "400",
            "--seed",
            "5",
            "--influence",
            influence,
            "--output",
            s(&out),
        ]);
        let follows = int_columns(
            &out.join("follows.parquet"),
            &["follower_id", "followee_id", "muted"],
        );
        assert!(
            follows[0].windows(2).all(|w| w[0] <= w[1]),
            "not sorted by follower"
        );
        let muted = follows[2].iter().sum::<i64>() as f64 / follows[2].len() as f64;
        assert!((0.03..0.07).contains(&muted), "muted share {muted}");
        let purchases = int_columns(
            &out.join("purchases.parquet"),
            &["buyer_id", "product_id", "purchased_at"],
        );
        let mut followees: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        for (a, b) in follows[0].iter().zip(&follows[1]) {
            followees.entry(*a).or_default().insert(*b);
        }
        let mut bought: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
        for ((a, k), t) in purchases[0].iter().zip(&purchases[1]).zip(&purchases[2]) {
            bought.entry((*a, *k)).or_default().push(*t);
        }
        let copied = (0..purchases[0].len())
            .filter(|&i| {
                let (a, k, t) = (purchases[0][i], purchases[1][i], purchases[2][i]);
                followees.get(&a).into_iter().flatten().any(|f| {
                    bought
                        .get(&(*f, k))
                        .is_some_and(|times| times.iter().any(|&u| u < t))
                })
            })
            .count();
        shares.push(copied as f64 / purchases[0].len() as f64);
    }
    assert!(shares[0] < 0.1, "influence 0: {shares:?}");
    assert!(shares[1] > 0.4, "influence 0.6: {shares:?}");
}
