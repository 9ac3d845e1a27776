//! The optional impressions table, read and checked: the impressions of
//! known users and catalog products, over dense indices. What they mean
//! (fatigue) is [`crate::filters::Fatigue`]'s rule. The table is
//! protective: a bad row fails the load whatever `on_bad_rows` says
//! ([`BadRowPolicy::FAIL_CLOSED`]).

use std::path::Path;

use rayon::prelude::*;

use crate::config::BadRowPolicy;
use crate::error::Result;
use crate::ids::IdMap;
use crate::load::tables::{Table, read_table};

/// One impression of a known user and product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Impression {
    pub user: u32,
    pub product: u32,
    /// Epoch µs.
    pub shown_at: i64,
    pub clicked: bool,
}

/// Reads the impressions table (none when the job has none).
pub fn load(
    path: Option<&Path>,
    users: &IdMap,
    products: &IdMap,
) -> Result<(Vec<Impression>, Option<Table>)> {
    let Some(path) = path else {
        return Ok((Vec::new(), None));
    };
    let table = read_table(
        "impressions",
        path,
        &["user_id", "product_id", "shown_at", "clicked"],
        BadRowPolicy::FAIL_CLOSED,
    )?;
    let mut impressions = Vec::new();
    for part in &table.parts {
        let users_col = part.ids("user_id")?;
        let product_ids = part.ids("product_id")?;
        let times = part.timestamps("shown_at")?;
        let clicked = part.bools("clicked", false)?;
        // Looked up on every thread, in row order.
        impressions.par_extend((0..users_col.len()).into_par_iter().filter_map(|row| {
            let (user, product) = (
                users.index(users_col[row])?,
                products.index(product_ids[row])?,
            );
            Some(Impression {
                user,
                product,
                shown_at: times[row],
                clicked: clicked[row],
            })
        }));
    }
    Ok((impressions, Some(table)))
}
