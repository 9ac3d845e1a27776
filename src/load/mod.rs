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

/// What loading saw: the inputs and the rows it ignored, by reason.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub inputs: Vec<InputInfo>,
    pub ignored: BTreeMap<String, u64>,
}

/// Reads and checks every input of `job` and builds the scoring context.
pub fn load(job: &Job) -> Result<(Context, LoadReport)> {
    let mut report = LoadReport::default();
    let follows = follows::load(&job.inputs.follows)?;
    report.inputs.push(InputInfo::of(&follows.table));
    report
        .ignored
        .insert("self_follows".into(), follows.self_follows);
    report
        .ignored
        .insert("duplicate_follows".into(), follows.duplicate_follows);
    let users = follows.users;

    let (purchase_rows, purchase_table) = purchases::read(&job.inputs.purchases)?;
    report.inputs.push(InputInfo::of(&purchase_table));
    drop(purchase_table);
    let (catalog, catalog_table) = catalog::load(&job.inputs.products)?;
    report.inputs.push(InputInfo::of(&catalog_table));
    drop(catalog_table);

    let (flags, users_table) = people::load_users(job.inputs.users.as_deref(), &users)?;
    let (blocks, blocks_table) = people::load_blocks(job.inputs.blocks.as_deref(), &users)?;
    let (fatigued, impressions_table) = impressions::load(
        job.inputs.impressions.as_deref(),
        &users,
        &catalog,
        job.as_of,
        &job.model,
    )?;
    for table in [users_table, blocks_table, impressions_table]
        .iter()
        .flatten()
    {
        report.inputs.push(InputInfo::of(table));
    }

    let derived = purchases::derive(&purchase_rows, &users, &catalog, job.as_of, &job.model);
    report
        .ignored
        .insert("purchases_unknown_product".into(), derived.unknown_product);

    let context = Context::new(
        job.as_of,
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
