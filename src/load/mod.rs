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

use serde::Serialize;

use crate::config::Job;
use crate::context::Context;
use crate::error::Result;
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
}

impl InputInfo {
    fn of(table: &Table) -> InputInfo {
        InputInfo {
            table: table.name,
            path: table.path.clone(),
            bytes: table.bytes,
            rows: table.rows() as u64,
            files: table.parts.len(),
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

/// Reads and checks every input of `job` and builds the scoring context
/// for the users of `shard` (all users for [`Shard::WHOLE`]).
pub fn load(job: &Job, shard: Shard) -> Result<(Context, LoadReport)> {
    let mut report = LoadReport::default();
    let policy = job.bad_rows;
    let follows = follows::load(&job.inputs.follows, policy, shard)?;
    report.add(&follows.table)?;
    report
        .ignored
        .insert("self_follows".into(), follows.self_follows);
    report
        .ignored
        .insert("duplicate_follows".into(), follows.duplicate_follows);
    let users = follows.users;

    let (purchase_rows, purchase_table) = purchases::read(&job.inputs.purchases, policy)?;
    report.add(&purchase_table)?;
    drop(purchase_table);
    let (catalog, catalog_table) = catalog::load(&job.inputs.products, policy)?;
    report.add(&catalog_table)?;
    drop(catalog_table);

    let (flags, users_table) = people::load_users(job.inputs.users.as_deref(), &users, policy)?;
    let (blocks, blocks_table) = people::load_blocks(job.inputs.blocks.as_deref(), &users, policy)?;
    let (fatigued, impressions_table) = impressions::load(
        job.inputs.impressions.as_deref(),
        &users,
        &catalog,
        job.as_of,
        &job.model,
        policy,
    )?;
    for table in [users_table, blocks_table, impressions_table]
        .iter()
        .flatten()
    {
        report.add(table)?;
    }

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

    let context = Context::new(
        job.as_of,
        shard,
        users,
        follows.graph,
        flags,
        blocks,
        catalog,
        derived,
        fatigued,
    );
    Ok((context, report))
}
