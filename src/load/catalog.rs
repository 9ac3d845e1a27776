//! The products table, read and checked: one row per product (a repeated
//! product_id is an error, a list price must be > 0). The catalog built
//! from it is [`crate::world::catalog::Catalog`].

use std::collections::HashSet;
use std::path::Path;

use crate::config::BadRowPolicy;
use crate::error::Result;
use crate::load::tables::{Table, read_table};

/// One products row, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductRow {
    pub product_id: i64,
    pub merchant_id: i64,
    pub price_cents: i64,
    pub category: Option<String>,
    pub available: bool,
}

/// Reads and checks the products table.
pub fn read(path: &Path, policy: BadRowPolicy) -> Result<(Vec<ProductRow>, Table)> {
    let table = read_table(
        "products",
        path,
        &[
            "product_id",
            "merchant_id",
            "price_cents",
            "category",
            "available",
        ],
        policy,
    )?;
    let mut rows: Vec<ProductRow> = Vec::with_capacity(table.rows());
    let mut seen: HashSet<i64> = HashSet::with_capacity(table.rows());
    for part in &table.parts {
        let ids = part.ids("product_id")?;
        let merchants = part.ids("merchant_id")?;
        let prices = part.required_ints("price_cents", "not a 64-bit integer")?;
        let categories = part.codes("category", false, |v| Ok(v.map(str::to_string)))?;
        let available = part.bools("available", true)?;
        let columns = ids.into_iter().zip(merchants).zip(prices).zip(categories);
        for (row, (((id, merchant), price), category)) in columns.enumerate() {
            if price <= 0 && !part.is_bad(row) {
                let value = Some(price.to_string());
                part.row_fault("price_cents", row, value, "list price must be > 0")?;
            }
            if part.is_bad(row) {
                continue;
            }
            if !seen.insert(id) {
                let problem = "repeats the product_id of an earlier row".to_string();
                return Err(part.fault("product_id", Some(row), Some(id.to_string()), problem));
            }
            rows.push(ProductRow {
                product_id: id,
                merchant_id: merchant,
                price_cents: price,
                category,
                available: available[row],
            });
        }
    }
    Ok((rows, table))
}
