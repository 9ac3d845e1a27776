//! Defines the two baselines a model must beat:
//!
//! - `popular`: every available product ranked by G_p (distinct buyers with
//!   a non-refunded purchase, any visibility, in the lookback window before
//!   the cut; ties by product_id ascending), less what the user owns, under
//!   the same merchant and category caps and positions, no fatigue rule, for
//!   the users the model gives slots to.
//! - `social_count`: the model with only `w_buyers` non-zero, i.e. products
//!   ranked by how many followees vouch for them.

use crate::config::{ModelConfig, SelectionConfig};
use crate::context::Context;
use crate::eval::slates::Slates;
use crate::eval::split::Cut;
use crate::load::catalog::NO_CATEGORY;
use crate::load::purchases::PurchaseRow;
use crate::time::DAY_US;

/// `model` with every weight but `w_buyers` set to 0 (a zero `w_buyers`
/// becomes the contract's default 0.5, or nothing would score).
pub fn social_count(model: &ModelConfig) -> ModelConfig {
    let default = ModelConfig::default();
    ModelConfig {
        w_proof: 0.0,
        w_popularity: 0.0,
        w_price: 0.0,
        w_buyers: if model.w_buyers == 0.0 {
            default.w_buyers
        } else {
            model.w_buyers
        },
        ..model.clone()
    }
}

/// G_p per dense product: distinct buyers with a non-refunded purchase of
/// any visibility in `[cut - lookback_days, cut)`.
pub fn buyer_counts(
    rows: &[PurchaseRow],
    ctx: &Context,
    cut: &Cut,
    lookback_days: i64,
) -> Vec<u32> {
    let start = cut.cut.saturating_sub(lookback_days.saturating_mul(DAY_US));
    let mut pairs: Vec<(u32, i64)> = rows
        .iter()
        .filter(|r| !r.refunded && start <= r.purchased_at && r.purchased_at < cut.cut)
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

/// The `popular` slates of `users` (ascending dense indices).
pub fn popular(
    ctx: &Context,
    counts: &[u32],
    selection: &SelectionConfig,
    users: &[u32],
) -> Slates {
    let catalog = &ctx.catalog;
    let mut order: Vec<u32> = (0..catalog.len() as u32)
        .filter(|&p| catalog.available[p as usize])
        .collect();
    order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    let slots = selection.positions.len();
    let mut slates = Slates::default();
    let mut chosen: Vec<u32> = Vec::with_capacity(slots);
    for &u in users {
        chosen.clear();
        let owned = ctx.purchases.owned.get(u);
        for &p in &order {
            if chosen.len() == slots {
                break;
            }
            if owned.binary_search(&p).is_err() && within_caps(ctx, selection, p, &chosen) {
                chosen.push(p);
            }
        }
        slates.push(u, &chosen);
    }
    slates
}

/// The contract's caps: at most `max_per_merchant` per merchant and
/// `max_per_category` per category (a product without one is exempt).
fn within_caps(ctx: &Context, selection: &SelectionConfig, p: u32, chosen: &[u32]) -> bool {
    let catalog = &ctx.catalog;
    let merchant = catalog.merchant[p as usize];
    let same_merchant = chosen
        .iter()
        .filter(|&&c| catalog.merchant[c as usize] == merchant)
        .count() as i64;
    if same_merchant >= selection.max_per_merchant {
        return false;
    }
    let category = catalog.category[p as usize];
    category == NO_CATEGORY
        || (chosen
            .iter()
            .filter(|&&c| catalog.category[c as usize] == category)
            .count() as i64)
            < selection.max_per_category
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
    }
}
