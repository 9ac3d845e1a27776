//! `Guard`: refuse to publish a run that looks broken next to the run in
//! LATEST — slots, users with slots, or an input's rows dropping by more
//! than the configured share. `--force` publishes anyway (recorded in the
//! manifest).

use crate::config::GuardConfig;
use crate::output::manifest::Manifest;

/// The reasons to refuse `new` after `previous`; empty when it may publish.
pub fn check(config: &GuardConfig, previous: &Manifest, new: &Manifest) -> Vec<String> {
    let mut reasons = Vec::new();
    let dropped = |before: u64, after: u64, limit: f64| {
        before > 0 && after < before && (before - after) as f64 / before as f64 > limit
    };
    for (what, before, after) in [
        ("slots", previous.counts.slots, new.counts.slots),
        (
            "users with slots",
            previous.counts.users_with_slots,
            new.counts.users_with_slots,
        ),
    ] {
        if dropped(before, after, config.max_drop) {
            reasons.push(format!(
                "{what} dropped from {before} to {after}, more than guard.max_drop = {}",
                config.max_drop
            ));
        }
    }
    for input in &previous.inputs {
        let after = new
            .inputs
            .iter()
            .find(|i| i.table == input.table)
            .map_or(0, |i| i.rows);
        if dropped(input.rows, after, config.max_input_drop) {
            reasons.push(format!(
                "input {} dropped from {} to {after} rows, more than guard.max_input_drop = {}",
                input.table, input.rows, config.max_input_drop
            ));
        }
    }
    reasons
}
