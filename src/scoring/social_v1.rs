//! `SocialV1`: the contract's default model (`docs/contract.md` §3).
//!
//! `score = w_proof·proof + w_buyers·ln(1+n) + w_popularity·popularity +
//! w_price·price_fit`, evaluated left to right and rounded to 9 decimals,
//! so that every implementation of the contract lands on the same bits.

use std::sync::LazyLock;

use crate::config::ModelConfig;
use crate::memory::prefetch;
use crate::world::Context;

/// Rounds to 9 decimal places, halves away from zero.
#[inline]
pub fn round9(x: f64) -> f64 {
    half_away(x * 1e9) / 1e9
}

/// `x.round()`, bit for bit, without a call into the C library: on the
/// baseline x86-64 the standard `round` is a libm call (no SSE4.1), about
/// 1% of a medium run's CPU samples at one call per candidate. Below 2^52 the sum
/// with the double just under one half, truncated, is the rounded value
/// (the lowering LLVM uses where the instruction set allows); from 2^52 on
/// every double is a whole number already, and infinities and NaN are
/// returned as `round` returns them.
#[inline]
fn half_away(x: f64) -> f64 {
    const WHOLE_FROM: f64 = 4_503_599_627_370_496.0; // 2^52
    const UNDER_HALF: f64 = 0.499_999_999_999_999_94; // 0.5 - 2^-54
    if x.is_nan() || x.abs() >= WHOLE_FROM {
        // Adding zero quiets a signalling NaN, as `round` does.
        return x + 0.0;
    }
    // `as i64` truncates; |x + ½| < 2^53 fits. The sign comes back for
    // the zeros (round(-0.3) is -0.0).
    ((x + UNDER_HALF.copysign(x)) as i64 as f64).copysign(x)
}

/// The features of one (user, product) candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    /// Σ tie·recency over the supporting buyers, in ascending buyer id.
    pub proof: f64,
    /// How many buyers support the product.
    pub buyers: u32,
    /// ln(1 + distinct buyers in the window, any visibility).
    pub popularity: f64,
    /// −|ln(list price) − median ln(price paid)|, 0 without purchases.
    pub price_fit: f64,
}

impl Features {
    /// Asks for what [`Features::of`] reads of product `p` to be brought
    /// into the cache: called as a product is first met, its features are
    /// there by the time its candidate is scored.
    #[inline]
    pub fn prefetch(ctx: &Context, p: u32) {
        if let Some(facts) = ctx.purchases.products.get(p as usize) {
            prefetch(facts);
        }
    }

    /// The features of dense product `p` for user `u`, given the proof
    /// and the buyers the candidate source summed: the one place they are
    /// assembled (the pipeline and explain both call it).
    #[inline]
    pub fn of(ctx: &Context, u: u32, p: u32, proof: f64, buyers: u32) -> Features {
        let facts = ctx.purchases.products[p as usize];
        Features {
            proof,
            buyers,
            popularity: facts.popularity,
            price_fit: SocialV1::price_fit(facts.ln_price, ctx.purchases.price_median[u as usize]),
        }
    }
}

/// The model's weights and tie strength.
#[derive(Debug, Clone, Copy)]
pub struct SocialV1 {
    pub mutual_bonus: f64,
    pub w_proof: f64,
    pub w_buyers: f64,
    pub w_popularity: f64,
    pub w_price: f64,
}

impl SocialV1 {
    pub const NAME: &'static str = "social_v1";

    pub fn new(model: &ModelConfig) -> SocialV1 {
        SocialV1 {
            mutual_bonus: model.mutual_bonus,
            w_proof: model.w_proof,
            w_buyers: model.w_buyers,
            w_popularity: model.w_popularity,
            w_price: model.w_price,
        }
    }

    /// A buyer's tie strength: stronger when they follow the user back.
    #[inline]
    pub fn tie(&self, mutual: bool) -> f64 {
        if mutual { 1.0 + self.mutual_bonus } else { 1.0 }
    }

    /// The log of a list price, as `price_fit` compares it (kept per
    /// product, beside its popularity: [`ProductFacts`]).
    ///
    /// [`ProductFacts`]: crate::world::purchases::ProductFacts
    #[inline]
    pub fn ln_price(list_price_cents: i64) -> f64 {
        (list_price_cents as f64).ln()
    }

    /// `price_fit` of a product whose list price's log is `ln_list_price`
    /// for a user whose median log price paid is `median_ln_paid` (NaN
    /// when none).
    #[inline]
    pub fn price_fit(ln_list_price: f64, median_ln_paid: f64) -> f64 {
        if median_ln_paid.is_nan() {
            0.0
        } else {
            -(ln_list_price - median_ln_paid).abs()
        }
    }

    /// The four terms the weights multiply, in the formula's order:
    /// proof, ln(1 + n), popularity, price_fit (what `fit` regresses on).
    #[inline]
    pub fn terms(f: &Features) -> [f64; 4] {
        [f.proof, ln_1p(f.buyers), f.popularity, f.price_fit]
    }

    /// Each feature's contribution, in the formula's order.
    #[inline]
    pub fn contributions(&self, f: &Features) -> [f64; 4] {
        let [proof, buyers, popularity, price_fit] = Self::terms(f);
        [
            self.w_proof * proof,
            self.w_buyers * buyers,
            self.w_popularity * popularity,
            self.w_price * price_fit,
        ]
    }

    /// The rounded score that is compared, thresholded and written.
    #[inline]
    pub fn score(&self, f: &Features) -> f64 {
        let [a, b, c, d] = self.contributions(f);
        round9(a + b + c + d)
    }
}

/// `ln(1 + n)`, from a table for the small counts nearly every candidate
/// has (the same values: the table is filled by the same expression).
#[inline]
fn ln_1p(n: u32) -> f64 {
    static SMALL: LazyLock<[f64; 64]> =
        LazyLock::new(|| std::array::from_fn(|n| (1.0 + n as f64).ln()));
    match SMALL.get(n as usize) {
        Some(&v) => v,
        None => (1.0 + n as f64).ln(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_away_from_zero_as_the_standard_round_does() {
        let mut values = vec![
            0.0,
            -0.0,
            0.3,
            -0.3,
            0.5,
            -0.5,
            0.499_999_999_999_999_94,
            -0.499_999_999_999_999_94,
            1.5,
            2.5,
            -2.5,
            1.499_999_999_999_999_8,
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            4_503_599_627_370_494.5,
            4_503_599_627_370_496.0,
            9_007_199_254_740_993.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::EPSILON,
        ];
        // Halves and their neighbours over many magnitudes, and values at
        // random over every bit pattern.
        let mut rng = crate::random::Rng(11);
        for k in 0..60 {
            let half = (1u64 << k) as f64 + 0.5;
            for v in [
                half,
                f64::from_bits(half.to_bits() - 1),
                f64::from_bits(half.to_bits() + 1),
            ] {
                values.extend([v, -v, v * 1e-9, v * 1e9]);
            }
        }
        values.extend((0..200_000).map(|_| f64::from_bits(rng.next_u64())));
        values.extend((0..200_000).map(|_| (rng.unit() - 0.5) * 1e12));
        for x in values {
            assert_eq!(half_away(x).to_bits(), x.round().to_bits(), "{x:e}");
        }
        assert!(half_away(f64::NAN).is_nan());
    }

    #[test]
    fn rounding_keeps_nine_places() {
        assert_eq!(round9(0.123_456_789_4), 0.123_456_789);
        assert_eq!(round9(1.000_000_000_6), 1.000_000_001);
        assert_eq!(round9(-2.000_000_000_4), -2.0);
        assert_eq!(round9(2.0), 2.0);
    }

    #[test]
    fn one_fresh_buyer_with_defaults() {
        let m = SocialV1::new(&ModelConfig::default());
        let f = Features {
            proof: 1.0,
            buyers: 1,
            popularity: 2f64.ln(),
            price_fit: 0.0,
        };
        let expected = 1.0 + 0.5 * 2f64.ln() - 0.1 * 2f64.ln();
        assert_eq!(m.score(&f), round9(expected));
        assert_eq!(m.tie(true), 1.5);
        assert_eq!(SocialV1::price_fit(SocialV1::ln_price(100), f64::NAN), 0.0);
        assert_eq!(
            SocialV1::price_fit(SocialV1::ln_price(100), 100f64.ln()),
            0.0
        );
    }
}
