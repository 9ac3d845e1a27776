//! `HiddenBuyers`: an account that hides its purchases (`users.hide_purchases`)
//! never vouches for them and is never named. Its purchases still count in
//! `popularity`: a count discloses no one. Unit: supporter.

use crate::context::Context;

pub struct HiddenBuyers;

impl HiddenBuyers {
    pub const NAME: &'static str = "hidden_buyers";

    /// Whether buyer `f`'s purchases may vouch (and `f` be named).
    #[inline]
    pub fn admits(ctx: &Context, f: u32) -> bool {
        !ctx.hides_purchases(f)
    }
}
