//! `SocialProof`: which followees may vouch for a product to the user.
//!
//! A followee counts when the follow is not muted, the followee is not
//! suspended and there is no block between the two either way. Purchase
//! rules (window, refunds, visibility, availability) were already applied
//! when the buyer's supporting purchases were derived.

use crate::context::Context;

pub struct SocialProof;

impl SocialProof {
    pub const NAME: &'static str = "social_proof";

    /// Whether followee `f` of `u`, followed with `muted`, may be proof.
    #[inline]
    pub fn admits(ctx: &Context, u: u32, f: u32, muted: bool) -> bool {
        !muted && f != u && !ctx.suspended(f) && !ctx.blocked(u, f)
    }
}
