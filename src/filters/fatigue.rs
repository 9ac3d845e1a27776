//! `Fatigue`: a product shown to the user at least
//! `fatigue_max_impressions` times in the `fatigue_days` before as_of
//! (`as_of - fatigue_days <= shown_at < as_of`) and never clicked in that
//! time rests. Every impression row is its own event. Unit: candidate.

use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::ids::Grouped;
use crate::load::impressions::Impression;
use crate::time::DAY_US;
use crate::world::Context;

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
    ) -> Result<Grouped<u32>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_unclicked_impressions_in_the_window_rest_a_product() {
        let model = ModelConfig {
            fatigue_max_impressions: 2,
            fatigue_days: 1,
            ..ModelConfig::default()
        };
        let as_of = 5 * DAY_US;
        let shown = |user, product, shown_at, clicked| Impression {
            user,
            product,
            shown_at,
            clicked,
        };
        let rows = [
            // User 0, product 1: twice in the window, never clicked.
            shown(0, 1, as_of - DAY_US, false),
            shown(0, 1, as_of - 1, false),
            // Product 2: twice, once clicked.
            shown(0, 2, as_of - 10, false),
            shown(0, 2, as_of - 20, true),
            // Product 3: once in the window, once before it, once at as_of.
            shown(0, 3, as_of - 5, false),
            shown(0, 3, as_of - DAY_US - 1, false),
            shown(0, 3, as_of, false),
            // User 1, product 1: the same impression twice is two events.
            shown(1, 1, as_of - 7, false),
            shown(1, 1, as_of - 7, false),
        ];
        let fatigued = Fatigue::derive(&rows, 2, as_of, &model).unwrap();
        assert_eq!(fatigued.get(0), [1]);
        assert_eq!(fatigued.get(1), [1]);
    }
}
