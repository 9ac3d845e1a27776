//! `AlreadyBought`: a product the user bought before as_of (a purchase
//! that is not refunded, any visibility, any age) is never promoted to
//! them. Unit: candidate.

use crate::load::purchases::PurchaseRow;
use crate::world::Context;

pub struct AlreadyBought;

impl AlreadyBought {
    pub const NAME: &'static str = "already_bought";

    /// Whether the purchase makes its buyer own the product at `as_of`.
    #[inline]
    pub fn owns(r: &PurchaseRow, as_of: i64) -> bool {
        !r.refunded && r.purchased_at < as_of
    }

    /// The products `u` already owns, ascending.
    #[inline]
    pub fn excluded(ctx: &Context, u: u32) -> &[u32] {
        ctx.purchases.owned.get(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::purchase as row;
    use crate::load::purchases::Visibility;

    #[test]
    fn any_unrefunded_purchase_before_as_of_owns() {
        assert!(AlreadyBought::owns(
            &row(-5, Visibility::Private, false),
            100
        ));
        assert!(AlreadyBought::owns(
            &row(99, Visibility::Public, false),
            100
        ));
        assert!(!AlreadyBought::owns(
            &row(100, Visibility::Public, false),
            100
        ));
        assert!(!AlreadyBought::owns(
            &row(50, Visibility::Followers, true),
            100
        ));
    }
}
