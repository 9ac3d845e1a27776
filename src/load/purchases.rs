//! The purchases table, read and checked into rows (ids not yet mapped).
//! What they mean for scoring is [`crate::world::purchases`].

use std::path::Path;

use rayon::prelude::*;

use crate::config::BadRowPolicy;
use crate::error::Result;
use crate::load::tables::{Table, read_table};

/// A buyer's sharing choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    Public,
    #[default]
    Followers,
    Private,
}

impl Visibility {
    fn parse(text: Option<&str>) -> Result<Visibility, String> {
        match text {
            Some("public") => Ok(Visibility::Public),
            Some("followers") => Ok(Visibility::Followers),
            Some("private") => Ok(Visibility::Private),
            _ => Err("unknown visibility (expected public, followers or private)".to_string()),
        }
    }
}

/// One purchase row, checked, ids not yet mapped.
#[derive(Debug, Clone, Copy)]
pub struct PurchaseRow {
    pub buyer_id: i64,
    pub product_id: i64,
    pub purchased_at: i64,
    pub visibility: Visibility,
    /// Null or 0 in the input: the list price applies.
    pub price_cents: Option<i64>,
    pub refunded: bool,
}

/// Reads and checks every row of the purchases table.
pub fn read(path: &Path, policy: BadRowPolicy) -> Result<(Vec<PurchaseRow>, Table)> {
    let table = read_table(
        "purchases",
        path,
        &[
            "buyer_id",
            "product_id",
            "purchased_at",
            "visibility",
            "price_cents",
            "refunded",
        ],
        policy,
    )?;
    let mut rows = Vec::with_capacity(table.rows());
    for part in &table.parts {
        let buyers = part.ids("buyer_id")?;
        let products = part.ids("product_id")?;
        let times = part.timestamps("purchased_at")?;
        let visibility = part.codes("visibility", true, Visibility::parse)?;
        let prices = part.opt_ints("price_cents")?;
        let refunded = part.bools("refunded", false)?;
        for (row, price) in prices.iter().enumerate() {
            if let Some(p) = price.filter(|&p| p < 0) {
                part.row_fault(
                    "price_cents",
                    row,
                    Some(p.to_string()),
                    "negative price paid",
                )?;
            }
        }
        let row = |row: usize| PurchaseRow {
            buyer_id: buyers[row],
            product_id: products[row],
            purchased_at: times[row],
            visibility: visibility[row],
            price_cents: prices[row].filter(|&p| p > 0),
            refunded: refunded[row],
        };
        // The rows are the largest array written before the follows are
        // read: written on every thread, which share its first writes'
        // page faults.
        if part.has_bad_rows() {
            let kept: Vec<usize> = (0..prices.len()).filter(|&r| !part.is_bad(r)).collect();
            rows.par_extend(kept.into_par_iter().map(row));
        } else {
            rows.par_extend((0..prices.len()).into_par_iter().map(row));
        }
    }
    Ok((rows, table))
}
