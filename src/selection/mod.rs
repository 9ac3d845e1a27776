//! `Selector`: thresholds, ordering, merchant and category caps, positions
//! (`docs/contract.md` §3, step 5).
//!
//! Candidates that pass `min_buyers` and `min_score` are ordered by score
//! descending then product id ascending; the walk takes each unless it would
//! break a cap (then skips it and goes on) until every position is filled.

pub mod buyers_shown;

pub use buyers_shown::BuyersShown;

use std::cmp::Ordering;

use crate::config::SelectionConfig;
use crate::memory::prefetch;
use crate::world::catalog::{Catalog, NO_CATEGORY};

/// A scored candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub product: u32,
    pub buyers: u32,
    pub score: f64,
}

/// Selection order: score descending, then product id ascending (a total
/// order: a user's candidates are distinct products). The two zeros are
/// one score, as numbers: a sum of a tiny negative size rounds to -0.0,
/// and a candidate at -0.0 ties one at 0.0, the lower product id first.
pub fn order(a: &Scored, b: &Scored) -> Ordering {
    // Adding +0.0 makes -0.0 +0.0 and leaves every other value as it is.
    (b.score + 0.0)
        .total_cmp(&(a.score + 0.0))
        .then(a.product.cmp(&b.product))
}

/// The selection rules, borrowed from the config.
pub struct Selector<'a> {
    pub config: &'a SelectionConfig,
    pub catalog: &'a Catalog,
}

impl Selector<'_> {
    pub const NAME: &'static str = "selector";

    /// Whether a candidate may be considered at all.
    #[inline]
    pub fn passes(&self, buyers: u32, score: f64) -> bool {
        i64::from(buyers) >= self.config.min_buyers && score >= self.config.min_score
    }

    /// Fills `chosen` with at most one candidate per position, walking
    /// `candidates` in selection [`order`]. Only as much of the order as
    /// the walk reads is sorted: the best few candidates, picked out
    /// without sorting the rest, then, should the caps pass over enough of
    /// them to leave a position open, the next ones (twice as many each
    /// time). `candidates` is left reordered, not necessarily sorted.
    pub fn select(&self, candidates: &mut [Scored], chosen: &mut Vec<Scored>) {
        chosen.clear();
        let slots = self.config.positions.len();
        let mut rest = candidates;
        let mut take = (2 * slots).max(4);
        while chosen.len() < slots && !rest.is_empty() {
            if rest.len() > take {
                rest.select_nth_unstable_by(take - 1, order);
            }
            let n = take.min(rest.len());
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            // What the caps read of each candidate, asked for before the
            // sort so that it is in the cache when the walk reads it.
            for c in head.iter() {
                if let (Some(merchant), Some(category)) = (
                    self.catalog.merchant.get(c.product as usize),
                    self.catalog.category.get(c.product as usize),
                ) {
                    prefetch(merchant);
                    prefetch(category);
                }
            }
            head.sort_unstable_by(order);
            self.walk_on(head, chosen, |_, _, _| {});
            rest = tail;
            take = take.saturating_mul(2);
        }
    }

    /// The walk over candidates already in selection order: each one
    /// considered is handed to `seen` with its verdict and the products
    /// taken before it; the walk stops once every position is filled.
    pub fn walk(
        &self,
        ordered: &[Scored],
        chosen: &mut Vec<Scored>,
        seen: impl FnMut(&Scored, Verdict, &[Scored]),
    ) {
        chosen.clear();
        self.walk_on(ordered, chosen, seen);
    }

    /// The walk going on from `chosen`, over the candidates that come next.
    fn walk_on(
        &self,
        ordered: &[Scored],
        chosen: &mut Vec<Scored>,
        mut seen: impl FnMut(&Scored, Verdict, &[Scored]),
    ) {
        let slots = self.config.positions.len();
        for c in ordered {
            if chosen.len() == slots {
                break;
            }
            let verdict = self.verdict(c.product, chosen);
            seen(c, verdict, chosen);
            if verdict == Verdict::Taken {
                chosen.push(*c);
            }
        }
    }

    /// Whether `product` fits beside `chosen`, or which cap stops it.
    pub fn verdict(&self, product: u32, chosen: &[Scored]) -> Verdict {
        let merchant = self.catalog.merchant[product as usize];
        let category = self.catalog.category[product as usize];
        let same_merchant = chosen
            .iter()
            .filter(|c| self.catalog.merchant[c.product as usize] == merchant)
            .count() as i64;
        if same_merchant >= self.config.max_per_merchant {
            return Verdict::MerchantCap;
        }
        if category == NO_CATEGORY {
            return Verdict::Taken;
        }
        let same_category = chosen
            .iter()
            .filter(|c| self.catalog.category[c.product as usize] == category)
            .count() as i64;
        if same_category >= self.config.max_per_category {
            Verdict::CategoryCap
        } else {
            Verdict::Taken
        }
    }
}

/// What the walk did with one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Taken,
    MerchantCap,
    CategoryCap,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::catalog;

    fn scored(product: u32, buyers: u32, score: f64) -> Scored {
        Scored {
            product,
            buyers,
            score,
        }
    }

    /// A score of -0.0 (rounded from a tiny negative sum) ties one of 0.0,
    /// as the numbers are equal: the lower product id first, whichever
    /// zero it has, as a plain comparison of the numbers orders them.
    #[test]
    fn the_two_zeros_are_one_score() {
        let mut candidates = [
            scored(9, 1, 0.0),
            scored(4, 1, -0.0),
            scored(7, 1, -0.0),
            scored(2, 1, 1e-9),
            scored(5, 1, 0.0),
            scored(1, 1, -1e-9),
        ];
        candidates.sort_by(order);
        let got: Vec<u32> = candidates.iter().map(|c| c.product).collect();
        assert_eq!(got, vec![2, 4, 5, 7, 9, 1]);
    }

    #[test]
    fn thresholds_order_caps_and_positions() {
        let catalog = catalog();
        let config = SelectionConfig {
            positions: vec![4, 14, 30],
            min_buyers: 2,
            min_score: 0.5,
            max_per_merchant: 1,
            max_per_category: 1,
            max_buyers_shown: 3,
        };
        let selector = Selector {
            config: &config,
            catalog: &catalog,
        };
        assert!(selector.passes(2, 0.5));
        assert!(!selector.passes(1, 9.0) && !selector.passes(5, 0.499));

        // Products 0 and 1 share merchant 7; 0 and 2 share category "a";
        // 3 has no category. Ties go to the lower product id.
        let mut candidates = vec![
            scored(3, 2, 1.0),
            scored(1, 2, 2.0),
            scored(0, 2, 2.0),
            scored(2, 2, 1.5),
        ];
        let mut chosen = Vec::new();
        selector.select(&mut candidates, &mut chosen);
        // 0 first (tie with 1, lower id); 1 skipped by the merchant cap;
        // 2 skipped by the category cap; the walk goes on to 3.
        let taken: Vec<u32> = chosen.iter().map(|c| c.product).collect();
        assert_eq!(taken, [0, 3]);
        let mut verdicts = Vec::new();
        candidates.sort_by(order);
        selector.walk(&candidates, &mut chosen, |c, v, _| {
            verdicts.push((c.product, v))
        });
        assert_eq!(
            verdicts,
            [
                (0, Verdict::Taken),
                (1, Verdict::MerchantCap),
                (2, Verdict::CategoryCap),
                (3, Verdict::Taken)
            ]
        );

        // No more slots than positions.
        let one = SelectionConfig {
            positions: vec![4],
            ..config.clone()
        };
        let selector = Selector {
            config: &one,
            catalog: &catalog,
        };
        selector.select(&mut candidates, &mut chosen);
        assert_eq!(chosen.len(), 1);
    }

    /// The walk over only as much of the order as it reads picks what a
    /// walk over the whole order, sorted plainly, picks: caps that pass
    /// over the first candidates sorted (one merchant or category at the
    /// top) make it sort more.
    #[test]
    fn sorting_only_what_the_walk_reads_picks_what_a_full_sort_does() {
        let products = 64u32;
        let mut rng = crate::random::Rng(7);
        let mut catalog = catalog();
        catalog.ids = crate::ids::IdMap::from_ids((0..i64::from(products)).collect()).unwrap();
        catalog.merchant = (0..products).map(|_| rng.below(3) as u32).collect();
        catalog.category = (0..products)
            .map(|_| match rng.below(5) {
                4 => NO_CATEGORY,
                c => c as u32,
            })
            .collect();
        let mut deep = 0;
        for case in 0..3000 {
            let config = SelectionConfig {
                positions: (1..=1 + rng.below(5) as i64).collect(),
                min_buyers: 1,
                min_score: 0.0,
                max_per_merchant: 1 + rng.below(2) as i64,
                max_per_category: 1 + rng.below(2) as i64,
                max_buyers_shown: 3,
            };
            let selector = Selector {
                config: &config,
                catalog: &catalog,
            };
            // Distinct products, scores with ties.
            let mut candidates = Vec::new();
            for p in 0..products {
                if rng.chance(0.5) {
                    candidates.push(scored(p, 1, rng.below(8) as f64));
                }
            }
            let mut plain = candidates.clone();
            plain.sort_by(|a, b| {
                b.score
                    .partial_cmp(&a.score)
                    .unwrap()
                    .then(a.product.cmp(&b.product))
            });
            let (mut expected, mut chosen) = (Vec::new(), Vec::new());
            let mut read = 0;
            selector.walk(&plain, &mut expected, |_, _, _| read += 1);
            selector.select(&mut candidates, &mut chosen);
            assert_eq!(chosen, expected, "case {case}");
            deep += usize::from(read > 2 * config.positions.len().max(2));
        }
        // Enough cases read past the first candidates sorted.
        assert!(deep > 100, "{deep}");
    }
}
