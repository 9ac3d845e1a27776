//! `BuyersShown`, the decorator: which supporting buyers a slot names.
//!
//! The first `max_buyers_shown` of the product's supporting buyers by
//! `tie · recency` (rounded to 9 places) descending, then buyer id
//! ascending; none when `max_buyers_shown` is 0. Only buyers the filters
//! admitted are ever visited, so a private purchase, a hidden, muted,
//! blocked or suspended buyer is never named.

use crate::candidates::followee_purchases::Visit;
use crate::config::SelectionConfig;
use crate::scoring::round9;

pub struct BuyersShown {
    max: usize,
}

impl BuyersShown {
    pub const NAME: &'static str = "buyers_shown";

    pub fn new(selection: &SelectionConfig) -> BuyersShown {
        BuyersShown {
            max: selection.max_buyers_shown.max(0) as usize,
        }
    }

    /// The buyers named on `product`'s slot, as (rounded weight, dense
    /// buyer), from the user's visits; `scratch` is reused between calls.
    pub fn of<'s>(
        &self,
        visits: &[Visit],
        product: u32,
        scratch: &'s mut Vec<(f64, u32)>,
    ) -> &'s [(f64, u32)] {
        scratch.clear();
        if self.max > 0 {
            scratch.extend(
                visits
                    .iter()
                    .filter(|v| v.product == product)
                    .map(|v| (round9(v.weight), v.buyer)),
            );
            scratch.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        }
        &scratch[..self.max.min(scratch.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_rounded_weight_then_buyer_at_most_the_setting() {
        let visit = |product, buyer, weight| Visit {
            product,
            buyer,
            weight,
        };
        // Buyers 5 and 2 tie once rounded to 9 places: the lower id first.
        let visits = [
            visit(1, 5, 0.5000000001),
            visit(1, 9, 0.75),
            visit(2, 1, 9.0),
            visit(1, 2, 0.5),
            visit(1, 4, 0.25),
        ];
        let config = |max| SelectionConfig {
            max_buyers_shown: max,
            ..SelectionConfig::default()
        };
        let mut scratch = Vec::new();
        let shown = BuyersShown::new(&config(3)).of(&visits, 1, &mut scratch);
        let buyers: Vec<u32> = shown.iter().map(|s| s.1).collect();
        assert_eq!(buyers, [9, 2, 5]);
        assert!(
            BuyersShown::new(&config(0))
                .of(&visits, 1, &mut scratch)
                .is_empty()
        );
        assert_eq!(
            BuyersShown::new(&config(9))
                .of(&visits, 1, &mut scratch)
                .len(),
            4
        );
    }
}
