//! `Fatigue`: a product shown to the user at least
//! `fatigue_max_impressions` times in the `fatigue_days` before as_of
//! (`as_of - fatigue_days <= shown_at < as_of`) and never clicked in that
//! time rests. Every impression row is its own event. Unit: candidate.

use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::context::Context;
use crate::ids::Grouped;
use crate::load::impressions::Impression;
use crate::time::DAY_US;

pub struct Fatigue;

impl Fatigue {
    pub const NAME: &'static str = "fatigue";

    /// Per dense user, ascending, the products fatigued at `as_of` under
    /// `model`, from the impressions of known users and products.
    pub fn derive(
        impressions: &[Impression],
        users: usize,
        as_of: i64,
        model: &ModelConfig,
    ) -> Grouped<u32> {
        let start = as_of.saturating_sub(model.fatigue_days.saturating_mul(DAY_US));
        // (user, product, clicked): sorted, a pair's clicked rows come last.
        let mut shown: Vec<(u32, u32, bool)> = impressions
            .iter()
            .filter(|i| start <= i.shown_at && i.shown_at < as_of)
            .map(|i| (i.user, i.product, i.clicked))
            .collect();
        shown.par_sort_unstable();
        let max = model.fatigue_max_impressions as usize;
        let mut fatigued = Vec::new();
        for run in shown.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let clicked = run.last().is_some_and(|s| s.2);
            if run.len() >= max && !clicked {
                fatigued.push((run[0].0, run[0].1));
            }
        }
        Grouped::from_sorted(users, fatigued)
    }

    /// The products fatigued for `u`, ascending.
    #[inline]
    pub fn excluded(ctx: &Context, u: u32) -> &[u32] {
        ctx.fatigued.get(u)
    }
}
