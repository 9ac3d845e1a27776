//! Defines the explanation of one user's slots: the pipeline's own rows,
//! each with its features, each feature's contribution (weight × value, in
//! the formula's order) and the buyers shown with their tie and recency.

use serde::Serialize;

use crate::candidates::Accumulator;
use crate::config::Job;
use crate::error::{Error, Result};
use crate::pipeline::Worker;
use crate::rows::SlotRows;
use crate::scoring::{Features, SocialV1, round9};
use crate::world::Context;

/// A candidate's features, as the formula reads them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FeatureValues {
    pub proof: f64,
    pub buyers: u32,
    /// `ln(1 + buyers)`, what w_buyers multiplies.
    pub ln_1_plus_buyers: f64,
    pub popularity: f64,
    pub price_fit: f64,
}

/// Each feature's share of the score: weight × value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Contributions {
    pub proof: f64,
    pub buyers: f64,
    pub popularity: f64,
    pub price_fit: f64,
}

/// One buyer named on a slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShownBuyer {
    pub buyer_id: i64,
    /// `1 + mutual_bonus` when the buyer follows the user back, else 1.
    pub tie: f64,
    /// `0.5 ^ (age_days / half_life_days)` of the latest supporting purchase.
    pub recency: f64,
    /// `tie · recency`, rounded to 9 places: the order of the buyers shown.
    pub weight: f64,
}

/// One slot, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotExplained {
    pub slot: i8,
    pub position: i32,
    pub product_id: i64,
    pub merchant_id: i64,
    pub score: f64,
    pub features: FeatureValues,
    pub contributions: Contributions,
    pub buyers_shown: Vec<ShownBuyer>,
}

/// The features and contributions of `f` under `model`.
pub fn explained(model: &SocialV1, f: &Features) -> (FeatureValues, Contributions) {
    let [proof, buyers, popularity, price_fit] = model.contributions(f);
    // `+ 0.0` shows a price_fit of −0 (an exact fit) as 0; sums are unchanged.
    (
        FeatureValues {
            proof: f.proof,
            buyers: f.buyers,
            ln_1_plus_buyers: (1.0 + f.buyers as f64).ln(),
            popularity: f.popularity,
            price_fit: f.price_fit + 0.0,
        },
        Contributions {
            proof,
            buyers,
            popularity,
            price_fit: price_fit + 0.0,
        },
    )
}

/// A buyer's tie and recency for product `p` and user `u`.
pub fn shown_buyer(ctx: &Context, model: &SocialV1, u: u32, f: u32, p: u32) -> Option<ShownBuyer> {
    let support = ctx.purchases.support.get(f);
    let s = support.iter().find(|s| s.product == p)?;
    let tie = model.tie(ctx.graph.followed_back(u, f));
    Some(ShownBuyer {
        buyer_id: ctx.users.id(f),
        tie,
        recency: s.recency,
        weight: round9(tie * s.recency),
    })
}

/// The slots of scored user `u`, as the pipeline writes them, explained.
pub fn explain_slots(ctx: &Context, job: &Job, u: u32) -> Result<Vec<SlotExplained>> {
    let mut rows = SlotRows::default();
    Worker::new(ctx, &job.model, &job.selection).user(u, &mut rows);
    let model = SocialV1::new(&job.model);
    let mut candidates = Vec::new();
    Accumulator::new(&ctx.catalog, &job.model.sensitive_categories)
        .collect(ctx, &model, u, |c| candidates.push(c));
    let mut out = Vec::with_capacity(rows.len());
    for row in rows.rows() {
        let internal = |what: &str| {
            Error::Internal(format!(
                "explaining slot {} of user {}: {what}",
                row.slot, row.user_id
            ))
        };
        let p = ctx
            .catalog
            .ids
            .index(row.product_id)
            .ok_or_else(|| internal("product not in the catalog"))?;
        let c = candidates
            .iter()
            .find(|c| c.product == p)
            .ok_or_else(|| internal("product is not a candidate"))?;
        let f = Features::of(ctx, u, p, c.proof, c.buyers);
        if model.score(&f) != row.score {
            return Err(internal("the features do not give the written score"));
        }
        let (features, contributions) = explained(&model, &f);
        let buyers_shown = row
            .top_buyer_ids
            .iter()
            .map(|&id| {
                ctx.users
                    .index(id)
                    .and_then(|f| shown_buyer(ctx, &model, u, f, p))
                    .ok_or_else(|| internal("a buyer shown does not support the product"))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(SlotExplained {
            slot: row.slot,
            position: row.position,
            product_id: row.product_id,
            merchant_id: row.merchant_id,
            score: row.score,
            features,
            contributions,
            buyers_shown,
        });
    }
    Ok(out)
}
