//! The catalog over dense product indices (ascending product_id), built
//! from the products table's rows.

use crate::error::{Error, Result};
use crate::ids::IdMap;
use crate::load::catalog::ProductRow;

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

/// Builds the catalog from the checked products rows.
pub fn build(mut rows: Vec<ProductRow>) -> Result<Catalog> {
    rows.sort_unstable_by_key(|r| r.product_id);
    let ids = IdMap::from_ids(rows.iter().map(|r| r.product_id).collect())?;
    let merchant_ids = IdMap::from_ids(rows.iter().map(|r| r.merchant_id).collect())?;
    let mut names: Vec<&str> = rows.iter().filter_map(|r| r.category.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    let merchant = rows
        .iter()
        .map(|r| {
            merchant_ids
                .index(r.merchant_id)
                .ok_or_else(|| Error::Internal(format!("merchant {} has no index", r.merchant_id)))
        })
        .collect::<Result<Vec<u32>>>()?;
    let category = rows
        .iter()
        .map(|r| match &r.category {
            Some(c) => names
                .binary_search(&c.as_str())
                .map(|i| i as u32)
                .map_err(|_| Error::Internal(format!("category {c:?} has no index"))),
            None => Ok(NO_CATEGORY),
        })
        .collect::<Result<Vec<u32>>>()?;
    let catalog = Catalog {
        merchant_id: rows.iter().map(|r| r.merchant_id).collect(),
        merchant,
        category,
        price_cents: rows.iter().map(|r| r.price_cents).collect(),
        available: rows.iter().map(|r| r.available).collect(),
        merchants: merchant_ids.len(),
        category_names: names.iter().map(|n| n.to_string()).collect(),
        ids,
    };
    Ok(catalog)
}
