//! `AlreadyBought`: a product the user bought before as_of (any
//! visibility, not refunded) is never promoted to them.

use crate::context::Context;

pub struct AlreadyBought;

impl AlreadyBought {
    pub const NAME: &'static str = "already_bought";

    /// The products `u` already owns, ascending.
    #[inline]
    pub fn excluded(ctx: &Context, u: u32) -> &[u32] {
        ctx.purchases.owned.get(u)
    }
}
