//! Defines the backtest's metrics: what a set of slates earns against the
//! truth (hits, precision, hit rate, recall, nDCG) and how widely it spreads
//! (user and catalog coverage, the merchant Gini).
//!
//! Pure: dense user and product indices in, numbers out. A ratio whose
//! denominator is 0 is 0. Users are visited in the order given and every
//! sum runs in that order, so the same slates give the same bits.

use serde::Serialize;

use crate::error::Result;
use crate::ids::Grouped;

/// The holdout's truth: per dense user, the distinct dense products bought.
pub struct Truth {
    per_user: Grouped<u32>,
}

impl Truth {
    /// Builds the truth over `users` dense users from `(user, product)`
    /// pairs in any order, with repeats.
    pub fn new(users: usize, mut pairs: Vec<(u32, u32)>) -> Result<Truth> {
        pairs.sort_unstable();
        pairs.dedup();
        Ok(Truth {
            per_user: Grouped::from_sorted(users, pairs)?,
        })
    }

    /// The products `user` bought in the holdout, ascending.
    #[inline]
    pub fn of(&self, user: u32) -> &[u32] {
        self.per_user.get(user)
    }

    /// Whether `user` bought `product` in the holdout.
    #[inline]
    pub fn contains(&self, user: u32, product: u32) -> bool {
        self.of(user).binary_search(&product).is_ok()
    }

    /// Distinct (user, product) pairs, over all users.
    pub fn pairs(&self) -> usize {
        self.per_user.len()
    }
}

/// The catalog as the metrics see it, per dense product.
#[derive(Clone, Copy)]
pub struct Shelf<'a> {
    /// Dense merchant index.
    pub merchant: &'a [u32],
    pub available: &'a [bool],
}

/// Every metric of one set of slates, as `eval --json` prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub slots: u64,
    pub users_with_slots: u64,
    /// Slots whose (user, product) is in the truth.
    pub hits: u64,
    /// hits / slots.
    pub precision: f64,
    /// Users with at least one hit / users_with_slots.
    pub hit_rate: f64,
    /// hits / distinct truth pairs of the users with slots.
    pub recall: f64,
    /// Binary-relevance nDCG, averaged over users_with_slots.
    pub ndcg: f64,
    /// users_with_slots / users scored.
    pub user_coverage: f64,
    /// Distinct products shown / available products.
    pub catalog_coverage: f64,
    /// Gini of slot counts over the merchants of available products.
    pub merchant_gini: f64,
}

/// The metric names, in the order `eval` prints them.
pub const METRICS: [&str; 10] = [
    "slots",
    "users_with_slots",
    "hits",
    "precision",
    "hit_rate",
    "recall",
    "ndcg",
    "user_coverage",
    "catalog_coverage",
    "merchant_gini",
];

impl Metrics {
    /// The metric called `name` (one of [`METRICS`]) as a number.
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "slots" => self.slots as f64,
            "users_with_slots" => self.users_with_slots as f64,
            "hits" => self.hits as f64,
            "precision" => self.precision,
            "hit_rate" => self.hit_rate,
            "recall" => self.recall,
            "ndcg" => self.ndcg,
            "user_coverage" => self.user_coverage,
            "catalog_coverage" => self.catalog_coverage,
            "merchant_gini" => self.merchant_gini,
            _ => return None,
        })
    }
}

/// `a / b`, or 0 when `b` is 0.
#[inline]
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// The discount of slot `k` (1-based): `1 / log2(k + 1)`.
#[inline]
fn discount(k: usize) -> f64 {
    1.0 / ((k + 1) as f64).log2()
}

/// Measures `slates`: per user (each at most once, in any order), the
/// products shown in slot order. Users with an empty slate count as
/// without slots. `slots_per_user` is the number of positions, which caps
/// the ideal DCG; `users_scored` is the user-coverage denominator.
pub fn measure<'a>(
    slates: impl IntoIterator<Item = (u32, &'a [u32])>,
    truth: &Truth,
    users_scored: u64,
    slots_per_user: usize,
    shelf: Shelf<'_>,
) -> Metrics {
    Contributions::new(slates, truth, slots_per_user, shelf).metrics(users_scored, |_| 1)
}

/// What each user with a slate brings to the metrics, worked out once, so
/// that the metrics of any multiset of users (a bootstrap resample, where a
/// user may count twice or not at all) cost only a pass over those users'
/// slots: [`Contributions::metrics`] with a weight per user. With every
/// weight 1 it is [`measure`].
#[derive(Debug, Clone, Default)]
pub struct Contributions {
    /// Dense users with a non-empty slate, in the order given.
    users: Vec<u32>,
    /// Per user: hits, truth pairs, nDCG; the slots are the products.
    hits: Vec<u32>,
    truth: Vec<u32>,
    ndcg: Vec<f64>,
    /// `products[offsets[i]..offsets[i + 1]]`: user i's products, as
    /// indices into `merchant_of` (the distinct products shown).
    offsets: Vec<usize>,
    products: Vec<u32>,
    /// Per distinct product shown, its merchant's index among the merchants
    /// of the shown available products (None when it is not available).
    merchant_of: Vec<Option<u32>>,
    /// Merchants with an available product shown; with one at all.
    merchants_shown: usize,
    merchants: usize,
    available: usize,
}

impl Contributions {
    /// The contributions of `slates` (as for [`measure`]).
    pub fn new<'a>(
        slates: impl IntoIterator<Item = (u32, &'a [u32])>,
        truth: &Truth,
        slots_per_user: usize,
        shelf: Shelf<'_>,
    ) -> Contributions {
        let mut c = Contributions {
            offsets: vec![0],
            ..Contributions::default()
        };
        // Dense product -> distinct index; dense merchant -> shown index.
        let mut distinct: Vec<Option<u32>> = vec![None; shelf.available.len()];
        let merchants = shelf.merchant.iter().map(|&m| m as usize + 1).max();
        let mut merchant_index: Vec<Option<u32>> = vec![None; merchants.unwrap_or(0)];
        for (user, products) in slates {
            if products.is_empty() {
                continue;
            }
            let bought = truth.of(user);
            let mut dcg = 0.0;
            let mut hits = 0u32;
            for (k, &p) in products.iter().enumerate() {
                if bought.binary_search(&p).is_ok() {
                    hits += 1;
                    dcg += discount(k + 1);
                }
                let index = *distinct[p as usize].get_or_insert_with(|| {
                    let merchant = shelf.available[p as usize].then(|| {
                        let m = &mut merchant_index[shelf.merchant[p as usize] as usize];
                        *m.get_or_insert_with(|| {
                            c.merchants_shown += 1;
                            c.merchants_shown as u32 - 1
                        })
                    });
                    c.merchant_of.push(merchant);
                    c.merchant_of.len() as u32 - 1
                });
                c.products.push(index);
            }
            let ideal: f64 = (1..=slots_per_user.min(bought.len())).map(discount).sum();
            c.users.push(user);
            c.hits.push(hits);
            c.truth.push(bought.len() as u32);
            c.ndcg.push(ratio(dcg, ideal));
            c.offsets.push(c.products.len());
        }
        let mut with_available = vec![false; merchant_index.len()];
        for (p, &available) in shelf.available.iter().enumerate() {
            if available {
                c.available += 1;
                with_available[shelf.merchant[p] as usize] = true;
            }
        }
        c.merchants = with_available.iter().filter(|&&m| m).count();
        c
    }

    /// The users with a slate, in the order given.
    pub fn users(&self) -> &[u32] {
        &self.users
    }

    /// The metrics of the multiset of users in which each user `u` counts
    /// `weight(u)` times, out of `users_scored`. Sums run in the order the
    /// slates were given.
    pub fn metrics(&self, users_scored: u64, weight: impl Fn(u32) -> u64) -> Metrics {
        let mut m = Metrics::default();
        let (mut users_hit, mut truth_pairs, mut ndcg_sum) = (0u64, 0u64, 0.0);
        let mut shown = vec![false; self.merchant_of.len()];
        let mut per_merchant = vec![0u64; self.merchants_shown];
        for (i, &user) in self.users.iter().enumerate() {
            let w = weight(user);
            if w == 0 {
                continue;
            }
            let products = &self.products[self.offsets[i]..self.offsets[i + 1]];
            m.users_with_slots += w;
            m.slots += w * products.len() as u64;
            m.hits += w * u64::from(self.hits[i]);
            users_hit += w * u64::from(self.hits[i] > 0);
            truth_pairs += w * u64::from(self.truth[i]);
            ndcg_sum += w as f64 * self.ndcg[i];
            for &p in products {
                shown[p as usize] = true;
                if let Some(merchant) = self.merchant_of[p as usize] {
                    per_merchant[merchant as usize] += w;
                }
            }
        }
        let with_slots = m.users_with_slots as f64;
        m.precision = ratio(m.hits as f64, m.slots as f64);
        m.hit_rate = ratio(users_hit as f64, with_slots);
        m.recall = ratio(m.hits as f64, truth_pairs as f64);
        m.ndcg = ratio(ndcg_sum, with_slots);
        m.user_coverage = ratio(with_slots, users_scored as f64);
        let distinct = shown.iter().filter(|&&s| s).count();
        m.catalog_coverage = ratio(distinct as f64, self.available as f64);
        per_merchant.retain(|&x| x > 0);
        let zeros = self.merchants - per_merchant.len();
        m.merchant_gini = gini_with_zeros(&mut per_merchant, zeros);
        m
    }
}

/// `Σ_i (2i − n − 1)·x_(i) / (n·Σx)` over `counts` sorted ascending
/// (i from 1); 0 for no counts or a zero total.
pub fn gini(counts: &mut [u64]) -> f64 {
    let zeros = counts.iter().filter(|&&x| x == 0).count();
    let mut positive: Vec<u64> = counts.iter().copied().filter(|&x| x > 0).collect();
    gini_with_zeros(&mut positive, zeros)
}

/// [`gini`] of `positive` and `zeros` more counts of 0 (which sort first).
fn gini_with_zeros(positive: &mut [u64], zeros: usize) -> f64 {
    positive.sort_unstable();
    let n = (positive.len() + zeros) as i128;
    let total: i128 = positive.iter().map(|&x| i128::from(x)).sum();
    if n == 0 || total == 0 {
        return 0.0;
    }
    let first = zeros as i128;
    let weighted: i128 = positive
        .iter()
        .enumerate()
        .map(|(i, &x)| (2 * (first + i as i128 + 1) - n - 1) * i128::from(x))
        .sum();
    weighted as f64 / (n * total) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn gini_of_hand_examples() {
        assert_eq!(gini(&mut []), 0.0);
        assert_eq!(gini(&mut [0, 0, 0]), 0.0);
        // Equal counts (ties): perfectly even.
        assert_eq!(gini(&mut [4, 4, 4, 4]), 0.0);
        // All slots at one of four merchants: (2·4 − 4 − 1)·8 / (4·8) = 3/4.
        close(gini(&mut [0, 8, 0, 0]), 0.75);
        // 1, 2, 3 sorted: (−2·1 + 0·2 + 2·3) / (3·6) = 4/18.
        close(gini(&mut [3, 1, 2]), 4.0 / 18.0);
    }

    #[test]
    fn measure_a_hand_example() {
        // Products 0..4 of merchants 0, 0, 1, 2; product 3 unavailable, so
        // merchant 2 is not among the merchants of available products.
        let shelf = Shelf {
            merchant: &[0, 0, 1, 2],
            available: &[true, true, true, false],
        };
        // User 0 bought 1 and 2; user 1 nothing; user 2 bought 0; user 3
        // bought 2 but has no slots.
        let truth = Truth::new(5, vec![(0, 1), (0, 2), (2, 0), (3, 2)]).unwrap();
        let slates: [(u32, &[u32]); 4] = [(0, &[2, 0, 1]), (1, &[0]), (2, &[1, 0]), (4, &[])];
        let m = measure(slates, &truth, 5, 3, shelf);
        let d = |k: f64| 1.0 / (k + 1.0).log2();
        assert_eq!((m.slots, m.users_with_slots, m.hits), (6, 3, 3));
        close(m.precision, 0.5);
        close(m.hit_rate, 2.0 / 3.0);
        // Truth pairs of users with slots: 2 + 0 + 1.
        close(m.recall, 1.0);
        // User 0: hits at slots 1 and 3, ideal over min(3, 2) slots; user 1
        // has no truth (0); user 2: a hit at slot 2, ideal over 1 slot.
        let ndcg = ((d(1.0) + d(3.0)) / (d(1.0) + d(2.0)) + 0.0 + d(2.0) / d(1.0)) / 3.0;
        close(m.ndcg, ndcg);
        close(m.user_coverage, 0.6);
        close(m.catalog_coverage, 1.0);
        // Merchant 0 shows 0 three times and 1 twice (5), merchant 1 once:
        // sorted [1, 5], (−1·1 + 1·5) / (2·6).
        close(m.merchant_gini, 4.0 / 12.0);
    }

    #[test]
    fn nothing_shown_is_all_zero() {
        let shelf = Shelf {
            merchant: &[0],
            available: &[true],
        };
        let m = measure([], &Truth::new(1, vec![(0, 0)]).unwrap(), 0, 3, shelf);
        assert_eq!(m, Metrics::default());
    }

    #[test]
    fn truth_dedups_and_answers() {
        let t = Truth::new(3, vec![(2, 7), (0, 5), (2, 7), (2, 1)]).unwrap();
        assert_eq!(t.pairs(), 3);
        assert_eq!(t.of(2), &[1, 7]);
        assert!(t.contains(0, 5));
        assert!(!t.contains(1, 5));
    }
}
