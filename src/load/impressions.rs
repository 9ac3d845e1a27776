//! The optional impressions table: which products are fatigued for whom.
//! It is protective (fatigue): a bad row fails the load whatever
//! `on_bad_rows` says ([`BadRowPolicy::FAIL_CLOSED`]).

use std::path::Path;

use rayon::prelude::*;

use crate::config::{BadRowPolicy, ModelConfig};
use crate::error::Result;
use crate::ids::{Grouped, IdMap};
use crate::load::catalog::Catalog;
use crate::load::tables::{Table, read_table};
use crate::time::DAY_US;

/// Per dense user, ascending, the products shown at least
/// `fatigue_max_impressions` times in the `fatigue_days` before `as_of` and
/// never clicked in that time.
pub fn load(
    path: Option<&Path>,
    users: &IdMap,
    catalog: &Catalog,
    as_of: i64,
    model: &ModelConfig,
) -> Result<(Grouped<u32>, Option<Table>)> {
    let Some(path) = path else {
        return Ok((Grouped::from_sorted(users.len(), []), None));
    };
    let table = read_table(
        "impressions",
        path,
        &["user_id", "product_id", "shown_at", "clicked"],
        BadRowPolicy::FAIL_CLOSED,
    )?;
    let start = as_of.saturating_sub(model.fatigue_days.saturating_mul(DAY_US));
    // (user, product, clicked): sorted, a pair's clicked rows come last.
    let mut shown: Vec<(u32, u32, bool)> = Vec::new();
    for part in &table.parts {
        let users_col = part.ids("user_id")?;
        let products = part.ids("product_id")?;
        let times = part.timestamps("shown_at")?;
        let clicked = part.bools("clicked", false)?;
        for row in 0..users_col.len() {
            if part.is_bad(row) || times[row] < start || times[row] >= as_of {
                continue;
            }
            if let (Some(u), Some(p)) = (
                users.index(users_col[row]),
                catalog.ids.index(products[row]),
            ) {
                shown.push((u, p, clicked[row]));
            }
        }
    }
    shown.par_sort_unstable();
    let max = model.fatigue_max_impressions as usize;
    let mut fatigued = Vec::new();
    for run in shown.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let clicked = run.last().is_some_and(|s| s.2);
        if run.len() >= max && !clicked {
            fatigued.push((run[0].0, run[0].1));
        }
    }
    Ok((Grouped::from_sorted(users.len(), fatigued), Some(table)))
}
