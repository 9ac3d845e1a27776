//! `SupportingPurchase`: which purchase rows count, and which may support a
//! product at all, at one as_of.
//!
//! A purchase *counts* (for popularity, the price a user pays) when it is
//! in the window `as_of - lookback_days <= purchased_at < as_of` and not
//! refunded. It *supports* its product when it also is not private and the
//! product is in the catalog and available; only a buyer's latest
//! supporting purchase of a product sets its recency, so a later private
//! purchase changes nothing. Applied once, when the world is derived (and
//! to find the supporters the nightly load keeps).

use crate::config::ModelConfig;
use crate::load::purchases::{PurchaseRow, Visibility};
use crate::time::DAY_US;

/// The window of one as_of.
#[derive(Debug, Clone, Copy)]
pub struct SupportingPurchase {
    pub start: i64,
    pub as_of: i64,
}

impl SupportingPurchase {
    pub const NAME: &'static str = "supporting_purchase";

    pub fn new(as_of: i64, model: &ModelConfig) -> SupportingPurchase {
        SupportingPurchase {
            start: as_of.saturating_sub(model.lookback_days.saturating_mul(DAY_US)),
            as_of,
        }
    }

    /// Whether an instant lies in the window (half-open).
    #[inline]
    pub fn in_window(&self, t: i64) -> bool {
        self.start <= t && t < self.as_of
    }

    /// Whether the purchase counts: in the window and not refunded.
    #[inline]
    pub fn counts(&self, r: &PurchaseRow) -> bool {
        !r.refunded && self.in_window(r.purchased_at)
    }

    /// Whether the purchase supports its product, `available` being the
    /// product's availability in the catalog.
    #[inline]
    pub fn supports(&self, r: &PurchaseRow, available: bool) -> bool {
        self.counts(r) && r.visibility != Visibility::Private && available
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::purchase as row;

    #[test]
    fn the_window_is_half_open_and_private_or_unavailable_never_supports() {
        let model = ModelConfig {
            lookback_days: 2,
            ..ModelConfig::default()
        };
        let as_of = 10 * DAY_US;
        let rule = SupportingPurchase::new(as_of, &model);
        let start = as_of - 2 * DAY_US;
        assert!(rule.supports(&row(start, Visibility::Public, false), true));
        assert!(!rule.counts(&row(start - 1, Visibility::Public, false)));
        assert!(!rule.counts(&row(as_of, Visibility::Public, false)));
        assert!(rule.supports(&row(as_of - 1, Visibility::Followers, false), true));
        // Refunded: counts for nothing.
        assert!(!rule.counts(&row(as_of - 1, Visibility::Public, true)));
        // Private: counts (popularity, prices), never supports.
        let private = row(as_of - 1, Visibility::Private, false);
        assert!(rule.counts(&private) && !rule.supports(&private, true));
        assert!(!rule.supports(&row(as_of - 1, Visibility::Public, false), false));
    }
}
