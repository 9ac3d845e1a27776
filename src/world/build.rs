//! Building the world of one run: read every table (`load`), then derive
//! what the stages read (`world`), in the order the lean load needs: the
//! purchases and the catalog first, so that the supporters are known before
//! the follows are streamed.

use std::time::Instant;

use crate::config::Job;
use crate::error::Result;
use crate::filters::Fatigue;
use crate::load::impressions::{self, Impression};
use crate::load::purchases::{self, PurchaseRow};
use crate::load::{GraphScope, LoadReport, catalog, follows, people};
use crate::shard::Shard;
use crate::world::{Context, catalog::build as build_catalog, purchases as derived};

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

/// Reads and checks every input of `job` and builds the scoring context
/// for the users of `shard` (all users for [`Shard::WHOLE`]).
pub fn build(job: &Job, shard: Shard, scope: GraphScope) -> Result<(Context, LoadReport)> {
    let (context, report, _rows) = build_keeping_rows(job, shard, scope)?;
    Ok((context, report))
}

/// The rows a context was derived from, for tools that derive it again
/// under other settings (eval, tune) or explain it row by row.
pub struct Rows {
    pub purchases: Vec<PurchaseRow>,
    pub impressions: Vec<Impression>,
}

/// [`build`], also handing back the rows the context was derived from.
pub fn build_keeping_rows(
    job: &Job,
    shard: Shard,
    scope: GraphScope,
) -> Result<(Context, LoadReport, Rows)> {
    let mut report = LoadReport::default();
    let policy = job.bad_rows;
    let mut step = Steps::start();

    // The follows' first pages asked for now, while the purchases and
    // products are read.
    crate::load::tables::read_ahead(&job.inputs.follows);
    // Read at once; an error of the purchases is reported first.
    // The catalog is built while the (larger) purchases are still read.
    let (purchases_read, products_read) = rayon::join(
        || purchases::read(&job.inputs.purchases, policy),
        || {
            catalog::read(&job.inputs.products, policy)
                .and_then(|(rows, table)| Ok((build_catalog(rows)?, table)))
        },
    );
    let (purchase_rows, purchase_table) = purchases_read?;
    let (catalog, catalog_table) = products_read?;
    step.done("purchases and products");
    let supporters = match scope {
        GraphScope::Full => None,
        GraphScope::Scoring => Some(derived::supporters(
            &purchase_rows,
            &catalog,
            job.as_of,
            &job.model,
        )),
    };
    let follows = follows::load(
        &job.inputs.follows,
        policy,
        job.read_rows,
        shard,
        supporters.as_ref(),
    )?;
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

    // The three tables are independent, and so is what is derived from the
    // purchases: all read and derived at once, their errors reported in
    // table order, then the derivation's.
    let ((users_read, (blocks_read, impressions_read)), derived) = rayon::join(
        || {
            rayon::join(
                || people::load_users(job.inputs.users.as_deref(), &users),
                || {
                    rayon::join(
                        || people::load_blocks(job.inputs.blocks.as_deref(), &users),
                        || {
                            impressions::load(
                                job.inputs.impressions.as_deref(),
                                &users,
                                &catalog.ids,
                            )
                        },
                    )
                },
            )
        },
        || {
            derived::derive(
                &purchase_rows,
                &users,
                &catalog,
                job.as_of,
                &job.model,
                shard,
            )
        },
    );
    let (flags, users_table) = users_read?;
    let (blocks, blocks_table) = blocks_read?;
    let (impression_rows, impressions_table) = impressions_read?;
    for table in [users_table, blocks_table, impressions_table]
        .iter()
        .flatten()
    {
        report.add(table)?;
    }
    step.done("users, blocks, impressions, and the purchases derived");

    let derived = derived?;
    report
        .ignored
        .insert("purchases_unknown_product".into(), derived.unknown_product);
    let fatigued = Fatigue::derive(&impression_rows, users.len(), job.as_of, &job.model)?;
    step.done("fatigue");

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
