//! Defines the two baselines a model must beat:
//!
//! - `popular`: every available product ranked by G_p (distinct buyers with
//!   a non-refunded purchase, any visibility, in the lookback window before
//!   the cut; ties by product_id ascending), less what the user owns, under
//!   the same selector walk (merchant and category caps, positions) and
//!   the same product filters (sensitive categories), no fatigue rule, for
//!   the users the model gives slots to.
//! - `social_count`: the model with only `w_buyers` non-zero, i.e. products
//!   ranked by how many followees vouch for them.

use crate::config::{ModelConfig, SelectionConfig};
use crate::eval::slates::Slates;
use crate::eval::split::Cut;
use crate::filters::{AlreadyBought, SensitiveCategories, SupportingPurchase};
use crate::load::purchases::PurchaseRow;
use crate::selection::{Scored, Selector};
use crate::world::Context;

/// `model` with every weight but `w_buyers` set to 0 (a zero or negative
/// `w_buyers`, which would score nothing or rank the fewest vouchers
/// first, becomes the contract's default 0.5).
pub fn social_count(model: &ModelConfig) -> ModelConfig {
    let default = ModelConfig::default();
    ModelConfig {
        w_proof: 0.0,
        w_popularity: 0.0,
        w_price: 0.0,
        w_buyers: if model.w_buyers <= 0.0 {
            default.w_buyers
        } else {
            model.w_buyers
        },
        ..model.clone()
    }
}

/// G_p per dense product: distinct buyers with a purchase that counts
/// (not refunded, any visibility) in the window before the cut.
pub fn buyer_counts(
    rows: &[PurchaseRow],
    ctx: &Context,
    cut: &Cut,
    model: &ModelConfig,
) -> Vec<u32> {
    let rule = SupportingPurchase::new(cut.cut, model);
    let mut pairs: Vec<(u32, i64)> = rows
        .iter()
        .filter(|r| rule.counts(r))
        .filter_map(|r| Some((ctx.catalog.ids.index(r.product_id)?, r.buyer_id)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut counts = vec![0u32; ctx.catalog.len()];
    for (p, _) in pairs {
        counts[p as usize] += 1;
    }
    counts
}

/// The `popular` slates of `users` (ascending dense indices): the same
/// selector walk (caps, positions) and the same product filters as the
/// model (sensitive categories, already bought), no fatigue rule.
pub fn popular(
    ctx: &Context,
    counts: &[u32],
    model: &ModelConfig,
    selection: &SelectionConfig,
    users: &[u32],
) -> Slates {
    let catalog = &ctx.catalog;
    let sensitive = SensitiveCategories::products(catalog, &model.sensitive_categories);
    let mut order: Vec<Scored> = (0..catalog.len() as u32)
        .filter(|&p| catalog.available[p as usize] && sensitive.binary_search(&p).is_err())
        .map(|p| Scored {
            product: p,
            buyers: counts[p as usize],
            score: f64::from(counts[p as usize]),
        })
        .collect();
    // The selector's order: score (here G_p) descending, then product id.
    order.sort_by(crate::selection::order);
    let selector = Selector {
        config: selection,
        catalog,
    };
    let mut slates = Slates::default();
    let mut candidates: Vec<Scored> = Vec::with_capacity(order.len());
    let mut chosen: Vec<Scored> = Vec::with_capacity(selection.positions.len());
    let mut products: Vec<u32> = Vec::with_capacity(selection.positions.len());
    for &u in users {
        let owned = AlreadyBought::excluded(ctx, u);
        candidates.clear();
        candidates.extend(
            order
                .iter()
                .filter(|c| owned.binary_search(&c.product).is_err()),
        );
        selector.walk(&candidates, &mut chosen, |_, _, _| {});
        products.clear();
        products.extend(chosen.iter().map(|c| c.product));
        slates.push(u, &products);
    }
    slates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn social_count_keeps_only_the_buyers_weight() {
        let m = ModelConfig {
            w_buyers: 2.0,
            lookback_days: 90,
            ..ModelConfig::default()
        };
        let s = social_count(&m);
        assert_eq!((s.w_proof, s.w_popularity, s.w_price), (0.0, 0.0, 0.0));
        assert_eq!((s.w_buyers, s.lookback_days), (2.0, 90));
        let zero = ModelConfig {
            w_buyers: 0.0,
            ..ModelConfig::default()
        };
        assert_eq!(social_count(&zero).w_buyers, 0.5);
        let negative = ModelConfig {
            w_buyers: -0.2,
            ..ModelConfig::default()
        };
        assert_eq!(social_count(&negative).w_buyers, 0.5);
    }
}
