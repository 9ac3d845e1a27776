//! Defines the explanation of one product for one user: every reason it
//! is or is not in the slots, in the order the pipeline applies them, its
//! features and rank among the user's candidates, and its buyers (see
//! `buyers`). The selector's own walk is watched to name the cap or the
//! positions that stopped it, and its result is checked against the slots
//! the pipeline writes.

use serde::Serialize;

use crate::candidates::Accumulator;
use crate::config::Job;
use crate::error::{Error, Result};
use crate::explain::UserStatus;
use crate::explain::buyers::{self, Buyer, NotShareable};
use crate::explain::slots::{self, Contributions, FeatureValues, SlotExplained};
use crate::filters::{AlreadyBought, Fatigue, SensitiveCategories};
use crate::load::purchases::PurchaseRow;
use crate::scoring::{Features, SocialV1};
use crate::selection::{Scored, Selector, Verdict};
use crate::world::Context;

/// One reason, as a code for machines and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub code: &'static str,
    pub text: String,
}

pub(crate) fn reason(code: &'static str, text: impl Into<String>) -> Reason {
    Reason {
        code,
        text: text.into(),
    }
}

/// The product as a candidate of the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateRank {
    pub score: f64,
    pub features: FeatureValues,
    pub contributions: Contributions,
    pub passes_thresholds: bool,
    /// 1-based rank among the user's candidates (score descending, then
    /// product id), none when an exclusion keeps it out of them.
    pub rank: Option<usize>,
    pub candidates: usize,
    /// 1-based rank among the candidates that pass min_buyers and min_score.
    pub rank_passing: Option<usize>,
    pub passing: usize,
}

/// Why a product is or is not in a user's slots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductExplained {
    pub product_id: i64,
    pub in_slots: bool,
    pub slot: Option<i8>,
    /// Why it is not in the slots, in the order the pipeline applies them.
    pub reasons: Vec<Reason>,
    pub candidate: Option<CandidateRank>,
    pub buyers: Vec<Buyer>,
    pub not_shareable: NotShareable,
}

/// Explains product `product_id` for `user_id` (dense `u` when known).
pub fn explain_product(
    ctx: &Context,
    job: &Job,
    rows: &[PurchaseRow],
    user_id: i64,
    status: UserStatus,
    explained_slots: &[SlotExplained],
    product_id: i64,
) -> Result<ProductExplained> {
    let u = ctx.users.index(user_id);
    let p = ctx.catalog.ids.index(product_id);
    let model = SocialV1::new(&job.model);
    let internal = |what: String| {
        Error::Internal(format!(
            "explaining product {product_id} for user {user_id}: {what}"
        ))
    };
    let slot = explained_slots.iter().find(|s| s.product_id == product_id);
    let (buyers, not_shareable) =
        buyers::buyers(ctx, job, &model, rows, user_id, p, slot, product_id)?;

    let mut reasons = Vec::new();
    let Some(p) = p else {
        reasons.push(reason(
            "not_in_catalog",
            format!("product {product_id} is not in the catalog"),
        ));
        return Ok(ProductExplained {
            product_id,
            in_slots: false,
            slot: None,
            reasons,
            candidate: None,
            buyers,
            not_shareable,
        });
    };
    let available = ctx.catalog.available[p as usize];
    if !available {
        reasons.push(reason(
            "unavailable",
            "the product is unavailable (available = false): it is never promoted",
        ));
    }
    match status {
        UserStatus::Scored => {}
        UserStatus::OptedOut => reasons.push(reason(
            "user_opted_out",
            format!("user {user_id} opted out of promotions: no slots at all"),
        )),
        UserStatus::Suspended => reasons.push(reason(
            "user_suspended",
            format!("user {user_id} is suspended: no slots at all"),
        )),
        UserStatus::FollowsNobody => reasons.push(reason(
            "user_not_scored",
            format!("user {user_id} follows nobody: only followers are scored"),
        )),
        UserStatus::Unknown => reasons.push(reason(
            "user_unknown",
            format!("user {user_id} is not in the follow graph"),
        )),
    }
    let sensitive = SensitiveCategories::products(&ctx.catalog, &job.model.sensitive_categories)
        .binary_search(&p)
        .is_ok();
    if sensitive {
        reasons.push(reason(
            "sensitive_category",
            "its category is one of sensitive_categories: it is never promoted",
        ));
    }
    let owned = u.is_some_and(|u| AlreadyBought::excluded(ctx, u).binary_search(&p).is_ok());
    if owned {
        reasons.push(reason(
            "owned",
            "the user already bought it before as_of (a non-refunded purchase, any visibility)",
        ));
    }
    let fatigued = u.is_some_and(|u| Fatigue::excluded(ctx, u).binary_search(&p).is_ok());
    if fatigued {
        reasons.push(reason(
            "fatigued",
            format!(
                "fatigued: shown at least {} times in the {} days before as_of, never clicked",
                job.model.fatigue_max_impressions, job.model.fatigue_days
            ),
        ));
    }
    let supporters: Vec<&Buyer> = buyers.iter().filter(|b| b.supports).collect();
    if supporters.is_empty() {
        reasons.push(reason(
            "no_supporting_buyer",
            "no account the user follows vouches for it (see the buyers)",
        ));
    }
    let (Some(u), true, UserStatus::Scored, false) = (u, available, status, supporters.is_empty())
    else {
        return Ok(ProductExplained {
            product_id,
            in_slots: false,
            slot: None,
            reasons,
            candidate: None,
            buyers,
            not_shareable,
        });
    };

    // The product's own features, summed in ascending buyer id as the
    // pipeline sums them.
    let proof = supporters
        .iter()
        .map(|b| b.proof.map_or(0.0, |s| s.tie * s.recency))
        .fold(0.0, |sum, w| sum + w);
    let f = Features::of(ctx, u, p, proof, supporters.len() as u32);
    let score = model.score(&f);
    let (features, contributions) = slots::explained(&model, &f);
    let selector = Selector {
        config: &job.selection,
        catalog: &ctx.catalog,
    };
    let passes = selector.passes(f.buyers, score);
    let min_buyers = job.selection.min_buyers;
    if i64::from(f.buyers) < min_buyers {
        reasons.push(reason(
            "below_min_buyers",
            format!(
                "{} supporting buyer{}, fewer than min_buyers = {min_buyers}",
                f.buyers,
                if f.buyers == 1 { "" } else { "s" }
            ),
        ));
    }
    if score < job.selection.min_score {
        reasons.push(reason(
            "below_min_score",
            format!(
                "score {score} is below min_score = {}",
                job.selection.min_score
            ),
        ));
    }

    // Every candidate of the user, ordered as the selector orders them.
    let mut all: Vec<Scored> = Vec::new();
    let mut accumulator = Accumulator::new(&ctx.catalog, &job.model.sensitive_categories);
    let mut mismatch = None;
    accumulator.collect(ctx, &model, u, |c| {
        let cf = Features::of(ctx, u, c.product, c.proof, c.buyers);
        if c.product == p && (c.proof.to_bits() != proof.to_bits() || c.buyers != f.buyers) {
            mismatch = Some(format!("pipeline proof {} of {} buyers", c.proof, c.buyers));
        }
        all.push(Scored {
            product: c.product,
            buyers: c.buyers,
            score: model.score(&cf),
        });
    });
    if let Some(what) = mismatch {
        return Err(internal(what));
    }
    all.sort_by(crate::selection::order);
    let rank = all.iter().position(|c| c.product == p).map(|r| r + 1);
    if rank.is_some() == (sensitive || owned || fatigued) {
        return Err(internal(format!(
            "candidate {} but sensitive {sensitive}, owned {owned}, fatigued {fatigued}",
            rank.is_some()
        )));
    }
    let passing: Vec<Scored> = all
        .iter()
        .copied()
        .filter(|c| selector.passes(c.buyers, c.score))
        .collect();
    let rank_passing = passing.iter().position(|c| c.product == p).map(|r| r + 1);

    let walked = walk(ctx, &selector, &passing, p);
    let written: Vec<i64> = explained_slots.iter().map(|s| s.product_id).collect();
    if walked.chosen != written {
        return Err(internal(format!(
            "selection walk {:?}, pipeline {written:?}",
            walked.chosen
        )));
    }
    if rank.is_some() && passes {
        reasons.extend(walked.reason);
    }
    Ok(ProductExplained {
        product_id,
        in_slots: slot.is_some(),
        slot: slot.map(|s| s.slot),
        reasons,
        candidate: Some(CandidateRank {
            score,
            features,
            contributions,
            passes_thresholds: passes,
            rank,
            candidates: all.len(),
            rank_passing,
            passing: passing.len(),
        }),
        buyers,
        not_shareable,
    })
}

struct Walked {
    chosen: Vec<i64>,
    reason: Option<Reason>,
}

/// The selector's own walk, watched to say what stopped `p`.
fn walk(ctx: &Context, selector: &Selector, passing: &[Scored], p: u32) -> Walked {
    let catalog = &ctx.catalog;
    let config = selector.config;
    let ids = |list: &[u32]| -> String {
        let v: Vec<String> = list
            .iter()
            .map(|&c| catalog.ids.id(c).to_string())
            .collect();
        v.join(", ")
    };
    let mut chosen = Vec::new();
    let mut why = None;
    selector.walk(passing, &mut chosen, |c, verdict, before| {
        if c.product != p {
            return;
        }
        let same = |key: &[u32]| -> Vec<u32> {
            before
                .iter()
                .map(|o| o.product)
                .filter(|&o| key[o as usize] == key[p as usize])
                .collect()
        };
        why = match verdict {
            Verdict::Taken => None,
            Verdict::MerchantCap => Some(reason(
                "merchant_cap",
                format!(
                    "stopped by max_per_merchant = {}: merchant {} already has {} in the slots",
                    config.max_per_merchant,
                    catalog.merchant_id[p as usize],
                    ids(&same(&catalog.merchant))
                ),
            )),
            Verdict::CategoryCap => Some(reason(
                "category_cap",
                format!(
                    "stopped by max_per_category = {}: its category already has {} in the slots",
                    config.max_per_category,
                    ids(&same(&catalog.category))
                ),
            )),
        };
    });
    let taken: Vec<u32> = chosen.iter().map(|c| c.product).collect();
    let considered = why.is_some() || taken.contains(&p);
    if !considered && passing.iter().any(|c| c.product == p) {
        why = Some(reason(
            "positions_full",
            format!(
                "all {} positions went to better-ranked candidates ({})",
                config.positions.len(),
                ids(&taken)
            ),
        ));
    }
    Walked {
        chosen: taken.iter().map(|&c| catalog.ids.id(c)).collect(),
        reason: why,
    }
}
