//! `HiddenBuyers`: an account that hides its purchases (`users.hide_purchases`)
//! never vouches for them and is never named. Its purchases still count in
//! `popularity`: a count discloses no one. Unit: supporter.

use crate::world::Context;

pub struct HiddenBuyers;

impl HiddenBuyers {
    pub const NAME: &'static str = "hidden_buyers";

    /// Whether buyer `f`'s purchases may vouch (and `f` be named).
    #[inline]
    pub fn admits(ctx: &Context, f: u32) -> bool {
        !ctx.hides_purchases(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::context;
    use crate::load::people::{HIDES_PURCHASES, OPTED_OUT};

    #[test]
    fn an_account_that_hides_its_purchases_never_vouches() {
        let ctx = context(&[], [0, HIDES_PURCHASES, OPTED_OUT, 0], &[]);
        assert!(HiddenBuyers::admits(&ctx, 0));
        assert!(!HiddenBuyers::admits(&ctx, 1));
        // Opting out is about receiving: it still vouches.
        assert!(HiddenBuyers::admits(&ctx, 2));
    }
}
