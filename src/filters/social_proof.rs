//! `SocialProof`: whether a followee may vouch for its purchases to a user.
//!
//! The whole rule of the follow: the follow is not muted, the followee is
//! not the user, is not suspended, and there is no block between the two
//! either way. Unit: supporter (each of the followee's supports goes).
//! Which purchases support at all is [`super::SupportingPurchase`]; an
//! account that hides its purchases is [`super::HiddenBuyers`].

use crate::world::Context;

pub struct SocialProof;

/// Why a followee may not vouch, first reason first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Muted,
    Oneself,
    Suspended,
    Blocked,
}

impl SocialProof {
    pub const NAME: &'static str = "social_proof";

    /// Whether followee `f` of `u`, followed with `muted`, may be proof.
    #[inline]
    pub fn admits(ctx: &Context, u: u32, f: u32, muted: bool) -> bool {
        Self::refusal(ctx, u, f, muted).is_none()
    }

    /// What stops followee `f` of `u` from vouching, if anything (the
    /// first of [`SocialProof::refusals`]).
    #[inline]
    pub fn refusal(ctx: &Context, u: u32, f: u32, muted: bool) -> Option<Refusal> {
        if muted {
            Some(Refusal::Muted)
        } else if f == u {
            Some(Refusal::Oneself)
        } else if ctx.suspended(f) {
            Some(Refusal::Suspended)
        } else if ctx.blocked(u, f) {
            Some(Refusal::Blocked)
        } else {
            None
        }
    }

    /// Every reason that stops account `f` from vouching to `u` (unknown
    /// to the graph: `None`), in the order explain reports them: muted,
    /// blocked, suspended, oneself.
    pub fn refusals(ctx: &Context, u: Option<u32>, f: u32, muted: bool) -> Vec<Refusal> {
        [
            (muted, Refusal::Muted),
            (u.is_some_and(|u| ctx.blocked(u, f)), Refusal::Blocked),
            (ctx.suspended(f), Refusal::Suspended),
            (u == Some(f), Refusal::Oneself),
        ]
        .into_iter()
        .filter_map(|(holds, why)| holds.then_some(why))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::context;
    use crate::load::people::SUSPENDED;

    #[test]
    fn mutes_oneself_suspension_and_blocks_either_way_refuse() {
        let ctx = context(
            &[(0, 1, 0), (0, 2, 0), (0, 3, 0)],
            [0, 0, SUSPENDED, 0],
            &[(3, 0)],
        );
        assert_eq!(SocialProof::refusal(&ctx, 0, 1, false), None);
        assert_eq!(SocialProof::refusal(&ctx, 0, 1, true), Some(Refusal::Muted));
        assert_eq!(
            SocialProof::refusal(&ctx, 0, 0, false),
            Some(Refusal::Oneself)
        );
        assert_eq!(
            SocialProof::refusal(&ctx, 0, 2, false),
            Some(Refusal::Suspended)
        );
        // The block was made by 3, against 0: it holds both ways.
        assert_eq!(
            SocialProof::refusal(&ctx, 0, 3, false),
            Some(Refusal::Blocked)
        );
        assert!(!SocialProof::admits(&ctx, 0, 3, false));
        assert_eq!(
            SocialProof::refusals(&ctx, Some(0), 3, true),
            [Refusal::Muted, Refusal::Blocked]
        );
        assert_eq!(
            SocialProof::refusals(&ctx, None, 2, false),
            [Refusal::Suspended]
        );
    }
}
