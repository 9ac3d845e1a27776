//! The rules that keep a buyer or a product out of a user's slots, one
//! file each, named after what it removes and holding the whole rule
//! (`docs/contract.md` §2 and §3).
//!
//! Two kinds, by what they remove (the manifest's `unit`):
//! - supporter filters remove a (user, buyer, product) support before it
//!   counts as proof: [`SocialProof`] (mutes, blocks, suspension, oneself)
//!   and [`HiddenBuyers`] (accounts that hide their purchases);
//! - candidate filters remove a (user, product) candidate:
//!   [`SensitiveCategories`], [`AlreadyBought`] and [`Fatigue`].
//!
//! Which purchases can support at all (the window, refunds, visibility,
//! availability) is [`SupportingPurchase`], applied once when the world is
//! derived. The pipeline applies the filters in [`FILTERS`] order, in the
//! candidate source's hot loop, and counts what each kept and removed; a
//! candidate removed by two filters is counted by the first.

pub mod already_bought;
pub mod fatigue;
pub mod hidden_buyers;
pub mod sensitive_categories;
pub mod social_proof;
pub mod supporting_purchase;

use serde::{Deserialize, Serialize};

pub use already_bought::AlreadyBought;
pub use fatigue::Fatigue;
pub use hidden_buyers::HiddenBuyers;
pub use sensitive_categories::SensitiveCategories;
pub use social_proof::SocialProof;
pub use supporting_purchase::SupportingPurchase;

/// What a filter removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A (user, buyer, product) support.
    Supporter,
    /// A (user, product) candidate.
    Candidate,
}

/// The filters in pipeline order, with what they remove.
pub const FILTERS: [(&str, Unit); 5] = [
    (SocialProof::NAME, Unit::Supporter),
    (HiddenBuyers::NAME, Unit::Supporter),
    (SensitiveCategories::NAME, Unit::Candidate),
    (AlreadyBought::NAME, Unit::Candidate),
    (Fatigue::NAME, Unit::Candidate),
];

/// Indices into [`FILTERS`].
pub const SOCIAL_PROOF: usize = 0;
pub const HIDDEN_BUYERS: usize = 1;
pub const SENSITIVE_CATEGORIES: usize = 2;
pub const ALREADY_BOUGHT: usize = 3;
pub const FATIGUE: usize = 4;

/// One filter's counts, as the manifest records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterCount {
    pub name: String,
    pub unit: Unit,
    pub kept: u64,
    pub removed: u64,
}

/// What the filters saw: the supports and candidates that reached the
/// first filter of each unit, and what each filter removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub supports: u64,
    pub candidates: u64,
    pub removed: [u64; FILTERS.len()],
}

impl Tally {
    /// Adds another thread's (or shard's) tally.
    pub fn add(&mut self, other: &Tally) {
        self.supports += other.supports;
        self.candidates += other.candidates;
        for (a, b) in self.removed.iter_mut().zip(other.removed) {
            *a += b;
        }
    }

    /// Each filter's kept and removed, in pipeline order: what a filter
    /// keeps is what reaches the next one of its unit.
    pub fn counts(&self) -> Vec<FilterCount> {
        let (mut supports, mut candidates) = (self.supports, self.candidates);
        FILTERS
            .iter()
            .zip(self.removed)
            .map(|(&(name, unit), removed)| {
                let entering = match unit {
                    Unit::Supporter => &mut supports,
                    Unit::Candidate => &mut candidates,
                };
                *entering = entering.saturating_sub(removed);
                FilterCount {
                    name: name.to_string(),
                    unit,
                    kept: *entering,
                    removed,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_keeps_what_reaches_the_next_of_its_unit() {
        let tally = Tally {
            supports: 100,
            candidates: 40,
            removed: [10, 5, 3, 7, 2],
        };
        let kept: Vec<(u64, u64)> = tally.counts().iter().map(|c| (c.kept, c.removed)).collect();
        assert_eq!(kept, [(90, 10), (85, 5), (37, 3), (30, 7), (28, 2)]);
        let mut twice = tally;
        twice.add(&tally);
        assert_eq!(twice.counts()[4].kept, 56);
    }
}

/// A tiny world for the filters' and the selector's unit tests: users 0..4
/// (ids 10, 20, 30, 40), products 0..4 (ids 100..=400) of merchants
/// 0, 0, 1, 1 in categories "a", "b", "a", none.
#[cfg(test)]
pub(crate) mod testing {
    use crate::graph::FollowGraph;
    use crate::ids::{Grouped, IdMap};
    use crate::load::purchases::{PurchaseRow, Visibility};
    use crate::world::Context;
    use crate::world::catalog::{Catalog, NO_CATEGORY};
    use crate::world::purchases::Purchases;

    /// A purchase of product 2 by buyer 1 at `t`.
    pub fn purchase(t: i64, visibility: Visibility, refunded: bool) -> PurchaseRow {
        PurchaseRow {
            buyer_id: 1,
            product_id: 2,
            purchased_at: t,
            visibility,
            price_cents: None,
            refunded,
        }
    }

    pub fn catalog() -> Catalog {
        Catalog {
            ids: IdMap::from_ids(vec![100, 200, 300, 400]).unwrap(),
            merchant_id: vec![7, 7, 8, 8],
            merchant: vec![0, 0, 1, 1],
            category: vec![0, 1, 0, NO_CATEGORY],
            price_cents: vec![1000, 2000, 3000, 4000],
            available: vec![true; 4],
            merchants: 2,
            category_names: vec!["a".into(), "b".into()],
        }
    }

    /// `edges` as (follower, followee, flags); `flags` per user; `blocks`
    /// as pairs (either way).
    pub fn context(edges: &[(u32, u32, u8)], flags: [u8; 4], blocks: &[(u32, u32)]) -> Context {
        let mut pairs: Vec<(u32, u32)> =
            blocks.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
        pairs.sort_unstable();
        let purchases = Purchases {
            support: Grouped::empty(4),
            products: vec![crate::world::purchases::ProductFacts::default(); 4],
            owned: Grouped::empty(4),
            price_median: vec![f64::NAN; 4],
            unknown_product: 0,
        };
        Context::new(
            1_000_000,
            IdMap::from_ids(vec![10, 20, 30, 40]).unwrap(),
            FollowGraph::from_sorted_edges(4, edges).unwrap(),
            &[0, 1, 2, 3],
            flags.to_vec(),
            Grouped::from_sorted(4, pairs).unwrap(),
            catalog(),
            purchases,
            Grouped::empty(4),
        )
    }
}
