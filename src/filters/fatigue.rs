//! `Fatigue`: a product shown to the user `fatigue_max_impressions` times
//! within `fatigue_days` and never clicked in that time rests.

use crate::context::Context;

pub struct Fatigue;

impl Fatigue {
    pub const NAME: &'static str = "fatigue";

    /// The products fatigued for `u`, ascending.
    #[inline]
    pub fn excluded(ctx: &Context, u: u32) -> &[u32] {
        ctx.fatigued.get(u)
    }
}
