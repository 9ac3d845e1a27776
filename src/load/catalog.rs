//! The products table: one row per product, dense product indices.

use std::collections::HashSet;
use std::path::Path;

use crate::config::BadRowPolicy;
use crate::error::{Error, Result};
use crate::ids::IdMap;
use crate::load::tables::{Table, read_table};

/// Marks a product without a category: exempt from the category cap.
pub const NO_CATEGORY: u32 = u32::MAX;

/// The catalog over dense product indices (ascending product_id).
pub struct Catalog {
    pub ids: IdMap,
    pub merchant_id: Vec<i64>,
    /// Dense merchant index, for the merchant cap.
    pub merchant: Vec<u32>,
    /// Dense category index, or [`NO_CATEGORY`].
    pub category: Vec<u32>,
    pub price_cents: Vec<i64>,
    pub available: Vec<bool>,
    pub merchants: usize,
    /// Category names by dense category index, ascending.
    pub category_names: Vec<String>,
}

impl Catalog {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

pub fn load(path: &Path, policy: BadRowPolicy) -> Result<(Catalog, Table)> {
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
    let mut rows: Vec<(i64, i64, i64, Option<String>, bool)> = Vec::with_capacity(table.rows());
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
            rows.push((id, merchant, price, category, available[row]));
        }
    }
    rows.sort_unstable_by_key(|r| r.0);
    let ids = IdMap::from_ids(rows.iter().map(|r| r.0).collect())?;
    let merchant_ids = IdMap::from_ids(rows.iter().map(|r| r.1).collect())?;
    let mut names: Vec<&str> = rows.iter().filter_map(|r| r.3.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    let merchant = rows
        .iter()
        .map(|r| {
            merchant_ids
                .index(r.1)
                .ok_or_else(|| Error::Internal(format!("merchant {} has no index", r.1)))
        })
        .collect::<Result<Vec<u32>>>()?;
    let category = rows
        .iter()
        .map(|r| match &r.3 {
            Some(c) => names
                .binary_search(&c.as_str())
                .map(|i| i as u32)
                .map_err(|_| Error::Internal(format!("category {c:?} has no index"))),
            None => Ok(NO_CATEGORY),
        })
        .collect::<Result<Vec<u32>>>()?;
    let catalog = Catalog {
        merchant_id: rows.iter().map(|r| r.1).collect(),
        merchant,
        category,
        price_cents: rows.iter().map(|r| r.2).collect(),
        available: rows.iter().map(|r| r.4).collect(),
        merchants: merchant_ids.len(),
        category_names: names.iter().map(|n| n.to_string()).collect(),
        ids,
    };
    Ok((catalog, table))
}
