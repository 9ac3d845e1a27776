//! Reading the six input tables into the read-only [`Context`].
//!
//! Everything that can fail on input lives here: finding parts, reading
//! Parquet and CSV, checking types and values. What comes out is dense:
//! users and products as `u32` indices, the follow graph as CSR, and
//! per-user and per-buyer arrays that the scoring stages only read.

pub mod catalog;
pub mod follows;
pub mod impressions;
pub mod people;
pub mod purchases;
pub mod tables;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::config::Job;
use crate::context::Context;
use crate::error::Result;
use crate::filters::Fatigue;
use crate::load::tables::Table;
use crate::shard::Shard;

/// One input as the manifest records it.
#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub table: &'static str,
    pub path: PathBuf,
    pub bytes: u64,
    pub rows: u64,
    #[serde(skip)]
    pub files: usize,
    /// Every part file read, in path order, with its size in bytes.
    #[serde(skip)]
    pub snapshot: Vec<(PathBuf, u64)>,
}

impl InputInfo {
    fn of(table: &Table) -> InputInfo {
        let mut snapshot: Vec<(PathBuf, u64)> = Vec::new();
        for part in &table.parts {
            if snapshot.last().is_none_or(|(f, _)| f != &part.file) {
                let bytes = std::fs::metadata(&part.file).map_or(0, |m| m.len());
                snapshot.push((part.file.clone(), bytes));
            }
        }
        InputInfo {
            table: table.name,
            path: table.path.clone(),
            bytes: table.bytes,
            rows: table.rows() as u64,
            files: table.files(),
            snapshot,
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
    fn add(&mut self, table: &Table) -> Result<()> {
        self.inputs.push(InputInfo::of(table));
        self.skipped.extend(table.skipped()?);
        Ok(())
    }
}

/// Logs the seconds of each step of a load (at debug level).
struct Steps(Instant);

impl Steps {
    fn start() -> Steps {
        Steps(Instant::now())
    }

    fn done(&mut self, step: &str) {
        tracing::debug!(step, seconds = self.0.elapsed().as_secs_f64(), "load step");
        self.0 = Instant::now();
    }
}

/// How much of the follow graph a load keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphScope {
    /// Every follow: for tools that ask about any pair (explain, eval, tune).
    Full,
    /// Only the follows that scoring at the job's as_of can use (the nightly
    /// run): unmuted follows of accounts with a supporting purchase.
    Scoring,
}

/// Reads and checks every input of `job` and builds the scoring context
/// for the users of `shard` (all users for [`Shard::WHOLE`]).
pub fn load(job: &Job, shard: Shard, scope: GraphScope) -> Result<(Context, LoadReport)> {
    let (context, report, _rows) = load_keeping_rows(job, shard, scope)?;
    Ok((context, report))
}

/// The rows a context was derived from, for tools that derive it again
/// under other settings (eval, tune) or explain it row by row.
pub struct Rows {
    pub purchases: Vec<purchases::PurchaseRow>,
    pub impressions: Vec<impressions::Impression>,
}

/// [`load`], also handing back the rows the context was derived from.
pub fn load_keeping_rows(
    job: &Job,
    shard: Shard,
    scope: GraphScope,
) -> Result<(Context, LoadReport, Rows)> {
    let mut report = LoadReport::default();
    let policy = job.bad_rows;
    let mut step = Steps::start();

    let (purchase_rows, purchase_table) = purchases::read(&job.inputs.purchases, policy)?;
    step.done("purchases");
    let (catalog, catalog_table) = catalog::load(&job.inputs.products, policy)?;
    step.done("products");
    let supporters = match scope {
        GraphScope::Full => None,
        GraphScope::Scoring => Some(purchases::supporters(
            &purchase_rows,
            &catalog,
            job.as_of,
            &job.model,
        )),
    };
    let follows = follows::load(&job.inputs.follows, policy, shard, supporters.as_ref())?;
    drop(supporters);
    step.done("follows");
    // Inputs in the contract's table order.
    for table in [&follows.table, &purchase_table, &catalog_table] {
        report.add(table)?;
    }
    drop(purchase_table);
    drop(catalog_table);
    report
        .ignored
        .insert("self_follows".into(), follows.self_follows);
    report
        .ignored
        .insert("duplicate_follows".into(), follows.duplicate_follows);
    let users = follows.users;

    let (flags, users_table) = people::load_users(job.inputs.users.as_deref(), &users)?;
    let (blocks, blocks_table) = people::load_blocks(job.inputs.blocks.as_deref(), &users)?;
    let (impression_rows, impressions_table) =
        impressions::load(job.inputs.impressions.as_deref(), &users, &catalog)?;
    for table in [users_table, blocks_table, impressions_table]
        .iter()
        .flatten()
    {
        report.add(table)?;
    }
    step.done("users, blocks, impressions");

    let derived = purchases::derive(
        &purchase_rows,
        &users,
        &catalog,
        job.as_of,
        &job.model,
        shard,
    );
    report
        .ignored
        .insert("purchases_unknown_product".into(), derived.unknown_product);
    let fatigued = Fatigue::derive(&impression_rows, users.len(), job.as_of, &job.model);
    step.done("derive");

    let context = Context::new(
        job.as_of,
        users,
        follows.graph,
        &follows.followers,
        flags,
        blocks,
        catalog,
        derived,
        fatigued,
    );
    let rows = Rows {
        purchases: purchase_rows,
        impressions: impression_rows,
    };
    Ok((context, report, rows))
}
