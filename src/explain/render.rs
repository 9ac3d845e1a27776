//! Defines the readable text of an explanation (`explain` without `--json`).

use std::fmt::Write as _;

use crate::config::ModelConfig;
use crate::explain::product::{CandidateRank, ProductExplained};
use crate::explain::slots::{Contributions, FeatureValues, SlotExplained};
use crate::explain::{Explanation, UserStatus};

/// The explanation as text; `model` gives the weights shown.
pub fn text(e: &Explanation, model: &ModelConfig) -> String {
    let mut t = String::new();
    let status = match e.status {
        UserStatus::Scored => "scored",
        UserStatus::OptedOut => "opted out of promotions: no slots",
        UserStatus::Suspended => "suspended: no slots",
        UserStatus::FollowsNobody => "follows nobody: not scored",
        UserStatus::Unknown => "not in the follow graph",
    };
    let _ = writeln!(
        t,
        "user {} at as_of {}: {status}; {} slot{}",
        e.user_id,
        e.as_of,
        e.slots.len(),
        if e.slots.len() == 1 { "" } else { "s" }
    );
    for s in &e.slots {
        slot(&mut t, s, model);
    }
    if let Some(p) = &e.product {
        product(&mut t, p, model);
    }
    t
}

fn slot(t: &mut String, s: &SlotExplained, model: &ModelConfig) {
    let _ = writeln!(
        t,
        "\nslot {} at position {}: product {} (merchant {}), score {}",
        s.slot, s.position, s.product_id, s.merchant_id, s.score
    );
    features(t, &s.features, &s.contributions, model);
    if s.buyers_shown.is_empty() {
        let _ = writeln!(t, "  buyers shown: none (max_buyers_shown = 0)");
    } else {
        let _ = writeln!(t, "  buyers shown (by tie x recency, then id):");
        for b in &s.buyers_shown {
            let _ = writeln!(
                t,
                "    {:>20}  tie {}  recency {:.9}  weight {}",
                b.buyer_id, b.tie, b.recency, b.weight
            );
        }
    }
}

fn features(t: &mut String, f: &FeatureValues, c: &Contributions, model: &ModelConfig) {
    let _ = writeln!(
        t,
        "  {:<22} {:>14} {:>8} {:>14}",
        "feature", "value", "weight", "contribution"
    );
    let rows = [
        ("proof".to_string(), f.proof, model.w_proof, c.proof),
        (
            format!("ln(1+n), n = {}", f.buyers),
            f.ln_1_plus_buyers,
            model.w_buyers,
            c.buyers,
        ),
        (
            "popularity".to_string(),
            f.popularity,
            model.w_popularity,
            c.popularity,
        ),
        (
            "price_fit".to_string(),
            f.price_fit,
            model.w_price,
            c.price_fit,
        ),
    ];
    for (name, value, weight, contribution) in rows {
        let _ = writeln!(
            t,
            "  {name:<22} {value:>14.9} {weight:>8} {contribution:>14.9}"
        );
    }
}

fn rank(t: &mut String, c: &CandidateRank) {
    let _ = match (c.rank, c.rank_passing) {
        (Some(r), Some(rp)) => writeln!(
            t,
            "  rank {r} of {} candidates; {rp} of the {} that pass min_buyers and min_score",
            c.candidates, c.passing
        ),
        (Some(r), None) => writeln!(
            t,
            "  rank {r} of {} candidates; it does not pass the thresholds ({} do)",
            c.candidates, c.passing
        ),
        _ => writeln!(t, "  not among the user's {} candidates", c.candidates),
    };
}

fn product(t: &mut String, p: &ProductExplained, model: &ModelConfig) {
    let verdict = match p.slot {
        Some(k) => format!("in the slots, slot {k}"),
        None => "not in the slots".to_string(),
    };
    let _ = writeln!(t, "\nproduct {}: {verdict}", p.product_id);
    if !p.reasons.is_empty() {
        let _ = writeln!(t, "  reasons:");
        for r in &p.reasons {
            let _ = writeln!(t, "    - {} ({})", r.text, r.code);
        }
    }
    if let Some(c) = &p.candidate {
        let _ = writeln!(t, "  score {} from:", c.score);
        features(t, &c.features, &c.contributions, model);
        rank(t, c);
    }
    if p.buyers.is_empty() {
        let _ = writeln!(t, "  named buyers: none");
    } else {
        let _ = writeln!(t, "  buyers (purchases the user may see):");
    }
    let out_of_reach = p
        .reasons
        .iter()
        .any(|r| r.code == "not_in_catalog" || r.code == "unavailable");
    for b in &p.buyers {
        let verdict = if b.supports && out_of_reach {
            "would vouch for it, but the product itself is out".to_string()
        } else if b.supports {
            match b.proof {
                Some(s) => format!(
                    "supports: tie {} x recency {:.9} = {}{}",
                    s.tie,
                    s.recency,
                    s.weight,
                    if b.shown { ", named on the slot" } else { "" }
                ),
                None => "supports".to_string(),
            }
        } else {
            let codes: Vec<&str> = b.reasons.iter().map(|r| r.code).collect();
            format!("does not count: {}", codes.join(", "))
        };
        let _ = writeln!(t, "    {:>20}  {verdict}", b.buyer_id);
        for s in &b.purchases {
            let _ = writeln!(
                t,
                "    {:>20}    bought {} ({}){}",
                "",
                s.purchased_at,
                s.visibility,
                s.excluded.map(|x| format!(": {x}")).unwrap_or_default()
            );
        }
    }
    let hidden = p.not_shareable;
    if hidden.total() > 0 {
        let _ = write!(
            t,
            "  {} purchases not shareable with this user, their buyers never named: \
             {} private by accounts the user follows, {} private by others, \
             {} followers-only by accounts the user does not follow",
            hidden.total(),
            hidden.private_by_followees,
            hidden.private_by_others,
            hidden.followers_only_by_others
        );
        if hidden.hidden_buyers > 0 {
            let _ = write!(
                t,
                ", {} by accounts that hide their purchases",
                hidden.hidden_buyers
            );
        }
        let _ = writeln!(t);
    }
}
