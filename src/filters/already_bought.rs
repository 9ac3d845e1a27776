//! `AlreadyBought`: a product the user bought before as_of (a purchase
//! that is not refunded, any visibility, any age) is never promoted to
//! them. Unit: candidate.

use crate::context::Context;
use crate::load::purchases::PurchaseRow;

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
