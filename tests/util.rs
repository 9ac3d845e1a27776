//! Shared helpers: run the binary, write small tables, read slots back.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{
    Array, Float64Array, Int8Array, Int32Array, Int64Array, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The contract's six input tables, in the job file's order.
pub const TABLES: [&str; 6] = [
    "follows",
    "purchases",
    "products",
    "users",
    "blocks",
    "impressions",
];

/// The `boughtby` binary built for these tests. The follows are read a
/// few rows at a time (every row group its own slice), so that follower
/// runs straddle slices and parts in every test world.
pub fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_boughtby"));
    command.env("BOUGHTBY_READ_ROWS", "3");
    command
}

/// Runs the binary with `args` and returns what it printed and its status.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("failed to start boughtby")
}

/// Runs the binary and panics with its stderr unless it exits 0.
pub fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "boughtby {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One row of the slots output, as the contract lays it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub user_id: i64,
    pub slot: i8,
    pub position: i32,
    pub product_id: i64,
    pub merchant_id: i64,
    pub score: f64,
    pub buyer_count: i32,
    pub top_buyer_ids: Vec<i64>,
    /// Epoch microseconds, UTC.
    pub valid_from: i64,
    pub valid_until: i64,
    pub run_id: String,
}

/// The run id that `<out>/LATEST` names, without its newline.
pub fn latest(out: &Path) -> Option<String> {
    let text = fs::read_to_string(out.join("LATEST")).ok()?;
    Some(text.trim_end_matches('\n').to_string())
}

/// Every part file of a run's `slots/` folder, sorted by name.
pub fn part_files(run_dir: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = fs::read_dir(run_dir.join("slots"))
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", run_dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    parts.sort();
    parts
}

/// All rows of the run that LATEST names, in file order.
pub fn read_latest(out: &Path) -> Vec<Slot> {
    let run_id = latest(out).expect("no LATEST");
    read_run(&out.join(run_id))
}

/// All rows of one run folder, in file order.
pub fn read_run(run_dir: &Path) -> Vec<Slot> {
    part_files(run_dir)
        .iter()
        .flat_map(|p| read_part(p))
        .collect()
}

/// All rows of one part file, checking the column types of the contract.
pub fn read_part(path: &Path) -> Vec<Slot> {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("column {name} missing"))
                .clone()
        };
        let user_id = col("user_id");
        let user_id = user_id.as_any().downcast_ref::<Int64Array>().unwrap();
        let slot = col("slot");
        let slot = slot.as_any().downcast_ref::<Int8Array>().unwrap();
        let position = col("position");
        let position = position.as_any().downcast_ref::<Int32Array>().unwrap();
        let product_id = col("product_id");
        let product_id = product_id.as_any().downcast_ref::<Int64Array>().unwrap();
        let merchant_id = col("merchant_id");
        let merchant_id = merchant_id.as_any().downcast_ref::<Int64Array>().unwrap();
        let score = col("score");
        let score = score.as_any().downcast_ref::<Float64Array>().unwrap();
        let buyer_count = col("buyer_count");
        let buyer_count = buyer_count.as_any().downcast_ref::<Int32Array>().unwrap();
        let buyers = col("top_buyer_ids");
        let buyers = buyers.as_any().downcast_ref::<ListArray>().unwrap();
        let valid_from = col("valid_from");
        let valid_from = valid_from
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let valid_until = col("valid_until");
        let valid_until = valid_until
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let run_id = col("run_id");
        let run_id = run_id.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..batch.num_rows() {
            let list = buyers.value(i);
            let list = list.as_any().downcast_ref::<Int64Array>().unwrap();
            rows.push(Slot {
                user_id: user_id.value(i),
                slot: slot.value(i),
                position: position.value(i),
                product_id: product_id.value(i),
                merchant_id: merchant_id.value(i),
                score: score.value(i),
                buyer_count: buyer_count.value(i),
                top_buyer_ids: list.values().to_vec(),
                valid_from: valid_from.value(i),
                valid_until: valid_until.value(i),
                run_id: run_id.value(i).to_string(),
            });
        }
    }
    rows
}

/// Writes a job TOML into `dir` whose `[inputs]` name the given tables
/// (`(table, path)` pairs, paths relative to `dir` or absolute), with
/// `extra` appended verbatim (e.g. `[model]` or `[selection]` sections).
pub fn write_job(dir: &Path, inputs: &[(&str, &str)], as_of: &str, extra: &str) -> PathBuf {
    let mut text = String::from("[inputs]\n");
    for (table, path) in inputs {
        text.push_str(&format!("{table} = {path:?}\n"));
    }
    text.push_str(&format!("\n[run]\nas_of = {as_of:?}\noutput = \"out\"\n\n"));
    text.push_str(extra);
    let path = dir.join("job.toml");
    fs::write(&path, text).unwrap();
    path
}

/// Every file under `dir` whose path has no component starting with `.`,
/// with its bytes (a failed run may leave hidden scratch, never a run
/// folder); empty when `dir` does not exist.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, acc: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, acc);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                acc.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut acc = BTreeMap::new();
    walk(dir, dir, &mut acc);
    acc
}
