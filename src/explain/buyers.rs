//! Defines the buyers of one product as one user sees them: each named
//! buyer's verdict (supports, or why not: not_followed, muted, blocked,
//! suspended, refunded, out_of_window) and the purchases counted but never
//! attributed.
//!
//! A buyer is named only through purchases the user may see — public ones,
//! and followers-only ones of accounts the user follows. Each verdict is
//! checked against the context the pipeline scored with.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Job;
use crate::error::{Error, Result};
use crate::explain::product::{Reason, reason};
use crate::explain::slots::{self, ShownBuyer, SlotExplained};
use crate::filters::social_proof::Refusal;
use crate::filters::{HiddenBuyers, SocialProof, SupportingPurchase};
use crate::graph::MUTED;
use crate::load::purchases::{PurchaseRow, Visibility};
use crate::scoring::SocialV1;
use crate::time;
use crate::world::Context;

/// One public or followers-only purchase of the product by a named buyer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Purchase {
    pub purchased_at: String,
    pub visibility: &'static str,
    pub refunded: bool,
    /// `refunded` or `out_of_window` when it counts for nothing; none when
    /// it is in the window and not refunded.
    pub excluded: Option<&'static str>,
}

/// One buyer of the product (never one known only by private purchases).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Buyer {
    pub buyer_id: i64,
    /// Whether the buyer vouches for the product to the user by the rules
    /// of buyers (follow, mute, block, suspension, refunds, window); the
    /// product's own reasons (catalog, availability, ...) are apart.
    pub supports: bool,
    /// Why not: not_followed, muted, blocked, suspended, refunded, out_of_window.
    pub reasons: Vec<Reason>,
    /// Tie, recency and weight, for a supporting buyer.
    pub proof: Option<ShownBuyer>,
    /// Named on the user's slot.
    pub shown: bool,
    pub purchases: Vec<Purchase>,
}

/// Purchases of the product the user may not see: counted, their buyers
/// never named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct NotShareable {
    /// Private, by accounts the user follows.
    pub private_by_followees: u64,
    /// Private, by anyone else.
    pub private_by_others: u64,
    /// Followers-only, by accounts the user does not follow.
    pub followers_only_by_others: u64,
    /// Any visibility, by accounts that hide their purchases.
    pub hidden_buyers: u64,
}

impl NotShareable {
    pub fn total(&self) -> u64 {
        self.private_by_followees
            + self.private_by_others
            + self.followers_only_by_others
            + self.hidden_buyers
    }
}

/// Every named buyer of the product with their verdict, and the private
/// purchases counted.
#[allow(clippy::too_many_arguments)]
pub fn buyers(
    ctx: &Context,
    job: &Job,
    model: &SocialV1,
    rows: &[PurchaseRow],
    user_id: i64,
    p: Option<u32>,
    slot: Option<&SlotExplained>,
    product_id: i64,
) -> Result<(Vec<Buyer>, NotShareable)> {
    let u = ctx.users.index(user_id);
    let rule = SupportingPurchase::new(ctx.as_of, &job.model);
    let follows = |f: Option<u32>| match (u, f) {
        (Some(u), Some(f)) => ctx.graph.follows(u, f),
        _ => false,
    };
    let mut by_buyer: BTreeMap<i64, Vec<&PurchaseRow>> = BTreeMap::new();
    let mut hidden = NotShareable::default();
    for r in rows
        .iter()
        .filter(|r| r.product_id == product_id && r.buyer_id != user_id)
    {
        let f = ctx.users.index(r.buyer_id);
        let followed = follows(f);
        if f.is_some_and(|f| !HiddenBuyers::admits(ctx, f)) {
            // Never named, whatever the purchase's visibility.
            hidden.hidden_buyers += 1;
            continue;
        }
        match (r.visibility, followed) {
            (Visibility::Private, true) => hidden.private_by_followees += 1,
            (Visibility::Private, false) => hidden.private_by_others += 1,
            (Visibility::Followers, false) => hidden.followers_only_by_others += 1,
            _ => by_buyer.entry(r.buyer_id).or_default().push(r),
        }
    }
    let mut out = Vec::with_capacity(by_buyer.len());
    for (buyer_id, purchases) in by_buyer {
        let f = ctx.users.index(buyer_id);
        let mut reasons = Vec::new();
        let mut muted = false;
        if !follows(f) {
            reasons.push(reason(
                "not_followed",
                "the user does not follow this buyer",
            ));
        }
        let followed = follows(f);
        if let (Some(u), Some(f), true) = (u, f, followed) {
            let (followees, flags) = ctx.graph.followees(u);
            muted = followees
                .iter()
                .zip(flags)
                .any(|(&g, &m)| g == f && m & MUTED != 0);
        }
        // The social-proof filter's own verdict, every reason it has (a
        // mute or a block only matters for a buyer the user follows).
        for refusal in f.map_or(Vec::new(), |f| SocialProof::refusals(ctx, u, f, muted)) {
            reasons.push(match refusal {
                Refusal::Muted => reason("muted", "the user muted this buyer"),
                Refusal::Blocked if followed => {
                    reason("blocked", "a block between the user and this buyer")
                }
                Refusal::Blocked => continue,
                Refusal::Suspended => reason("suspended", "this buyer is suspended"),
                Refusal::Oneself => reason("oneself", "the buyer is the user"),
            });
        }
        let seen: Vec<Purchase> = purchases
            .iter()
            .map(|r| Purchase {
                purchased_at: time::format_rfc3339(r.purchased_at),
                visibility: if r.visibility == Visibility::Public {
                    "public"
                } else {
                    "followers"
                },
                refunded: r.refunded,
                excluded: if r.refunded {
                    Some("refunded")
                } else if !rule.in_window(r.purchased_at) {
                    Some("out_of_window")
                } else {
                    None
                },
            })
            .collect();
        if !purchases.iter().any(|r| rule.counts(r)) {
            if seen.iter().any(|s| s.excluded == Some("refunded")) {
                reasons.push(reason("refunded", "refunded: counts for nothing"));
            }
            if seen.iter().any(|s| s.excluded == Some("out_of_window")) {
                reasons.push(reason(
                    "out_of_window",
                    format!(
                        "bought outside the {} days before as_of",
                        job.model.lookback_days
                    ),
                ));
            }
        }
        let supports = reasons.is_empty();
        let proof = match (u, f, p) {
            (Some(u), Some(f), Some(p)) if supports => slots::shown_buyer(ctx, model, u, f, p),
            _ => None,
        };
        // The verdict must be the context's: the loader derived the
        // supporting purchases, the social-proof filter the relation.
        if let (Some(u), Some(f), Some(p)) = (u, f, p)
            && ctx.catalog.available[p as usize]
        {
            let derived = ctx.purchases.support.get(f).iter().any(|s| s.product == p)
                && follows(Some(f))
                && SocialProof::admits(ctx, u, f, muted);
            if derived != supports {
                return Err(Error::Internal(format!(
                    "explaining buyer {buyer_id} of product {product_id}: \
                     explained supports = {supports}, the context says {derived}"
                )));
            }
        }
        out.push(Buyer {
            buyer_id,
            supports,
            reasons,
            proof,
            shown: slot.is_some_and(|s| s.buyers_shown.iter().any(|b| b.buyer_id == buyer_id)),
            purchases: seen,
        });
    }
    Ok((out, hidden))
}
