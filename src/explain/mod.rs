//! `boughtby explain`: why a user got the slots they got, and why a
//! product is or is not among them.
//!
//! - `slots`: each slot with its features, each feature's contribution to
//!   the score, and the buyers shown with their tie and recency.
//! - `buyers`: the product's buyers as the user sees them, each with a
//!   verdict (not followed, muted, blocked, suspended, refunded, out of
//!   window); private purchases counted, never named.
//! - `product`: every reason one product is or is not in the slots, per
//!   product (not in the catalog, unavailable, owned,
//!   fatigued, user opted out, thresholds, caps, positions) — and its rank.
//! - `render`: the readable text.
//!
//! The explanation is computed with the pipeline's own stages and checked
//! against the slots the pipeline writes; a disagreement is an internal
//! error, never a silent story. A buyer whose purchase is private is never
//! named: such purchases are only counted.

pub mod buyers;
pub mod product;
pub mod render;
pub mod slots;

use serde::Serialize;

pub use buyers::{Buyer, NotShareable};
pub use product::{ProductExplained, Reason};
pub use slots::{Contributions, FeatureValues, ShownBuyer, SlotExplained};

use crate::config::Job;
use crate::error::{Error, Result};
use crate::load::people::{OPTED_OUT, SUSPENDED};
use crate::load::{GraphScope, purchases};
use crate::shard::Shard;
use crate::time;
use crate::world;
use crate::world::Context;

/// Where the user stands before any product is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Scored: gets slots when candidates are good enough.
    Scored,
    /// Opted out of promotions: no slots at all.
    OptedOut,
    /// Suspended: no slots at all.
    Suspended,
    /// In the follow graph only as someone followed: no slots.
    FollowsNobody,
    /// Not in the follow graph at all.
    Unknown,
}

/// One explanation, as `explain --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub user_id: i64,
    pub as_of: String,
    pub status: UserStatus,
    pub slots: Vec<SlotExplained>,
    /// With `--product`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductExplained>,
}

/// The user's standing in the context.
pub fn user_status(ctx: &Context, user_id: i64) -> (UserStatus, Option<u32>) {
    let Some(u) = ctx.users.index(user_id) else {
        return (UserStatus::Unknown, None);
    };
    let flags = ctx.flags[u as usize];
    let status = if flags & SUSPENDED != 0 {
        UserStatus::Suspended
    } else if flags & OPTED_OUT != 0 {
        UserStatus::OptedOut
    } else if ctx.graph.out_degree(u) == 0 {
        UserStatus::FollowsNobody
    } else {
        UserStatus::Scored
    };
    (status, Some(u))
}

/// Explains `user_id`'s slots under `job`, and with `product_id` why that
/// product is or is not among them.
pub fn explain(job: &Job, user_id: i64, product_id: Option<i64>) -> Result<Explanation> {
    let (ctx, _report, rows) = world::build_keeping_rows(job, Shard::WHOLE, GraphScope::Full)?;
    explain_in(&ctx, job, &rows.purchases, user_id, product_id)
}

/// [`explain`] on a loaded context and the raw purchase rows (needed for
/// `product_id` only).
pub fn explain_in(
    ctx: &Context,
    job: &Job,
    rows: &[purchases::PurchaseRow],
    user_id: i64,
    product_id: Option<i64>,
) -> Result<Explanation> {
    let (status, u) = user_status(ctx, user_id);
    if status == UserStatus::Scored && u.is_none_or(|u| ctx.scored_users.binary_search(&u).is_err())
    {
        return Err(Error::Internal(format!(
            "user {user_id} looks scored but the context does not score them"
        )));
    }
    let slots = match (status, u) {
        (UserStatus::Scored, Some(u)) => slots::explain_slots(ctx, job, u)?,
        _ => Vec::new(),
    };
    let product = product_id
        .map(|p| product::explain_product(ctx, job, rows, user_id, status, &slots, p))
        .transpose()?;
    Ok(Explanation {
        user_id,
        as_of: time::format_rfc3339(ctx.as_of),
        status,
        slots,
        product,
    })
}
