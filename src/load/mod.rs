//! Reading and checking the six input tables (`docs/contract.md` §1): finding parts, reading
//! Parquet and CSV, checking types and values, one file per table. What
//! comes out is plain: checked rows, ids mapped to dense `u32` indices, the
//! follow graph. No rule of the model is applied here and no model setting
//! enters; [`crate::world`] derives the world the stages read.

pub mod catalog;
pub mod follows;
pub mod impressions;
pub mod partitions;
pub mod people;
pub mod purchases;
pub mod tables;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::BadRowPolicy;
use crate::error::Result;
use crate::load::tables::Table;

/// The contract's six tables, in the job file's order; the last three
/// are optional.
pub const TABLES: [&str; 6] = [
    "follows",
    "purchases",
    "products",
    "users",
    "blocks",
    "impressions",
];

/// One input as the manifest records it.
#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub table: &'static str,
    pub path: PathBuf,
    pub bytes: u64,
    pub rows: u64,
    #[serde(skip)]
    pub files: usize,
    /// Every part file of the table (read, or listed when a shard reads
    /// only its partition), in path order, with its size in bytes.
    #[serde(skip)]
    pub snapshot: Vec<(PathBuf, u64)>,
    /// Bytes the reader read (see [`Table::bytes_read`]).
    #[serde(skip)]
    pub bytes_read: u64,
    /// `rows` are this shard's share of the table (a partitioned table).
    #[serde(skip)]
    pub shard_rows: bool,
}

impl InputInfo {
    fn of(table: &Table) -> InputInfo {
        let snapshot = match &table.listing {
            Some(listing) => listing.clone(),
            None => {
                let mut snapshot: Vec<(PathBuf, u64)> = Vec::new();
                for part in &table.parts {
                    if snapshot.last().is_none_or(|(f, _)| f != &part.file) {
                        let bytes = std::fs::metadata(&part.file).map_or(0, |m| m.len());
                        // A spooled copy of an object is recorded as the object.
                        snapshot.push((crate::storage::spool::source_of(&part.file), bytes));
                    }
                }
                snapshot
            }
        };
        InputInfo {
            table: table.name,
            path: table.path.clone(),
            bytes: table.bytes,
            rows: table.rows() as u64,
            files: table.files(),
            snapshot,
            bytes_read: table.bytes_read,
            shard_rows: table.shard_rows,
        }
    }
}

/// What loading saw: the inputs, the rows it ignored by reason (as the
/// contract says), and the bad rows it skipped by table and reason (as the
/// job allowed).
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub inputs: Vec<InputInfo>,
    pub ignored: BTreeMap<String, u64>,
    pub skipped: BTreeMap<String, u64>,
}

impl LoadReport {
    /// Records a table read: its entry, and its skipped rows (an error
    /// past the table's bad-row fraction).
    pub fn add(&mut self, table: &Table) -> Result<()> {
        self.inputs.push(InputInfo::of(table));
        self.skipped.extend(table.skipped()?);
        Ok(())
    }
}

/// Judges the bad rows skipped in a table each shard read only its share
/// of, over the whole table: `skipped` counted by `"<table>: <reason>"`
/// and `rows` summed over the shards. An error past the policy's fraction.
pub fn judge_shared_skips(
    table: &str,
    path: &str,
    rows: u64,
    skipped: &BTreeMap<String, u64>,
    policy: BadRowPolicy,
) -> Result<()> {
    let prefix = format!("{table}: ");
    let bad: u64 = skipped
        .iter()
        .filter(|(reason, _)| reason.starts_with(&prefix))
        .map(|(_, n)| n)
        .sum();
    if bad == 0 || bad as f64 <= policy.max_fraction * rows as f64 {
        return Ok(());
    }
    let name = TABLES
        .iter()
        .copied()
        .find(|t| *t == table)
        .unwrap_or("follows");
    Err(crate::error::InputFault {
        table: name,
        file: PathBuf::from(path),
        column: None,
        row: None,
        value: None,
        problem: format!(
            "{bad} of {rows} rows are bad over all the shards, more than max_bad_fraction {} \
             allows",
            policy.max_fraction
        ),
    }
    .into())
}

/// How much of the follow graph a load keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphScope {
    /// Every follow: for tools that ask about any pair (explain, eval, tune).
    Full,
    /// Only the follows that scoring at the job's as_of can use (the nightly
    /// run): the follows of accounts with a supporting purchase, whose set
    /// the caller derives.
    Scoring,
}
