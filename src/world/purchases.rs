//! The purchases boiled down to what scoring reads: each buyer's
//! supporting purchases with their recency, each product's popularity,
//! each user's owned products and median log price paid. Which purchase
//! counts, supports or owns is the filters' rule
//! ([`SupportingPurchase`], [`AlreadyBought`]); this only applies it.

use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::filters::{AlreadyBought, SupportingPurchase};
use crate::ids::{Grouped, IdMap, IdSet};
use crate::load::purchases::PurchaseRow;
use crate::scoring::SocialV1;
use crate::shard::Shard;
use crate::time::DAY_US;
use crate::world::catalog::Catalog;

/// A product a buyer supports, with the recency of the latest supporting
/// purchase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Support {
    pub product: u32,
    pub recency: f64,
}

/// A product's facts the scorer reads: its popularity, `ln(1 + G_p)`, and
/// the log of its list price (from the catalog's price, computed once).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProductFacts {
    pub popularity: f64,
    pub ln_price: f64,
}

/// What scoring needs from the purchases.
pub struct Purchases {
    /// Per dense buyer, ascending product.
    pub support: Grouped<Support>,
    /// Per dense product, what the scorer reads of it for each candidate,
    /// side by side in one cache line.
    pub products: Vec<ProductFacts>,
    /// Per dense user, ascending product: non-refunded purchases before as_of.
    pub owned: Grouped<u32>,
    /// Per dense user, the median of ln(price paid) in the window, or NaN.
    pub price_median: Vec<f64>,
    /// Rows whose product is not in the catalog.
    pub unknown_product: u64,
}

/// The buyers with a supporting purchase at `as_of` under `model` (in the
/// window, not refunded, shareable): the only accounts whose followers can
/// get a candidate from them.
pub fn supporters(
    rows: &[PurchaseRow],
    catalog: &Catalog,
    as_of: i64,
    model: &ModelConfig,
) -> IdSet {
    let rule = SupportingPurchase::new(as_of, model);
    let buyers: Vec<i64> = rows
        .par_iter()
        .filter(|r| {
            catalog
                .ids
                .index(r.product_id)
                .is_some_and(|p| rule.supports(r, catalog.available[p as usize]))
        })
        .map(|r| r.buyer_id)
        .collect();
    IdSet::from_ids(buyers)
}

/// Derives the scoring arrays for `as_of` under `model`. Purchases of
/// unknown products are counted by the shard of their buyer.
pub fn derive(
    rows: &[PurchaseRow],
    users: &IdMap,
    catalog: &Catalog,
    as_of: i64,
    model: &ModelConfig,
    shard: Shard,
) -> Result<Purchases> {
    let rule = SupportingPurchase::new(as_of, model);
    // The rows are sorted out in parallel, a block at a time; every list
    // is sorted whole below, so the blocks' order does not matter.
    let blocks: Vec<Sorted> = rows
        .par_chunks(1 << 16)
        .map(|block| {
            let mut s = Sorted::default();
            for r in block {
                let Some(p) = catalog.ids.index(r.product_id) else {
                    s.unknown_product += u64::from(shard.owns(r.buyer_id));
                    continue;
                };
                let counts = rule.counts(r);
                if counts {
                    s.popular.push((p, r.buyer_id));
                }
                let Some(u) = users.index(r.buyer_id) else {
                    continue;
                };
                if AlreadyBought::owns(r, as_of) {
                    s.owned.push((u, p));
                }
                if counts {
                    let paid = r.price_cents.unwrap_or(catalog.price_cents[p as usize]);
                    s.prices.push((u, (paid as f64).ln()));
                    if rule.supports(r, catalog.available[p as usize]) {
                        s.support.push((u, p, r.purchased_at));
                    }
                }
            }
            s
        })
        .collect();
    let unknown_product = blocks.iter().map(|s| s.unknown_product).sum();
    let mut popular: Vec<(u32, i64)> = blocks
        .iter()
        .flat_map(|s| s.popular.iter().copied())
        .collect();
    let mut owned: Vec<(u32, u32)> = blocks
        .iter()
        .flat_map(|s| s.owned.iter().copied())
        .collect();
    let mut prices: Vec<(u32, f64)> = blocks
        .iter()
        .flat_map(|s| s.prices.iter().copied())
        .collect();
    let mut support: Vec<(u32, u32, i64)> = blocks
        .iter()
        .flat_map(|s| s.support.iter().copied())
        .collect();
    drop(blocks);

    // The four lists are independent: derived at once.
    let products = || {
        popular.par_sort_unstable();
        popular.dedup();
        let mut buyers_of = vec![0u32; catalog.len()];
        for &(p, _) in &popular {
            buyers_of[p as usize] += 1;
        }
        buyers_of
            .iter()
            .zip(&catalog.price_cents)
            .map(|(&g, &price)| ProductFacts {
                popularity: (1.0 + g as f64).ln(),
                ln_price: SocialV1::ln_price(price),
            })
            .collect::<Vec<ProductFacts>>()
    };
    let owned = || {
        owned.par_sort_unstable();
        owned.dedup();
        Grouped::from_sorted(users.len(), owned)
    };
    let support = || {
        // The latest supporting purchase of each (buyer, product) is the last.
        support.par_sort_unstable();
        let is_latest = |i: usize, s: &(u32, u32, i64)| {
            support
                .get(i + 1)
                .is_none_or(|next| (next.0, next.1) != (s.0, s.1))
        };
        // Counted first, so that the grouping is sized once (and on huge pages).
        let count = (0..support.len())
            .into_par_iter()
            .filter(|&i| is_latest(i, &support[i]))
            .count();
        let latest = support
            .iter()
            .enumerate()
            .filter(|&(i, s)| is_latest(i, s))
            .take(count);
        Grouped::from_sorted(
            users.len(),
            latest.map(|(_, &(u, p, t))| {
                let age_days = (as_of - t) as f64 / DAY_US as f64;
                let recency = 0.5f64.powf(age_days / model.half_life_days);
                (
                    u,
                    Support {
                        product: p,
                        recency,
                    },
                )
            }),
        )
    };
    let price_median = || {
        prices.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let by_user = Grouped::from_sorted(users.len(), prices)?;
        Ok::<Vec<f64>, Error>(
            (0..users.len() as u32)
                .into_par_iter()
                .map(|u| median(by_user.get(u)))
                .collect(),
        )
    };
    let ((products, owned), (support, price_median)) = rayon::join(
        || rayon::join(products, owned),
        || rayon::join(support, price_median),
    );
    let (owned, support, price_median) = (owned?, support?, price_median?);

    Ok(Purchases {
        support,
        products,
        owned,
        price_median,
        unknown_product,
    })
}

/// What one block of purchase rows contributes to the derived lists.
#[derive(Default)]
struct Sorted {
    unknown_product: u64,
    popular: Vec<(u32, i64)>,
    owned: Vec<(u32, u32)>,
    prices: Vec<(u32, f64)>,
    support: Vec<(u32, u32, i64)>,
}

/// The median of sorted values (the mean of the middle two for an even
/// count), NaN for none.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
        assert!(median(&[]).is_nan());
    }
}
