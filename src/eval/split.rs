//! Defines the backtest's time split: the cut `T = as_of - D days`, the job
//! the nightly run would have been at `T`, and the truth after it.
//!
//! The model at `T` only ever sees rows before `T`: the loader's window
//! (`purchased_at < as_of`), "owned before as_of" and the fatigue window
//! (`shown_at < as_of`) all end at the job's as_of, which here is `T`.
//! Follows, users and blocks carry no time and are taken as given.

use crate::config::Job;
use crate::error::{Error, Result};
use crate::eval::metrics::Truth;
use crate::ids::IdMap;
use crate::load::purchases::PurchaseRow;
use crate::time::{self, DAY_US};
use crate::world::catalog::Catalog;

/// The longest holdout accepted, as for lookback_days.
const MAX_HOLDOUT_DAYS: i64 = 36_500;

/// A backtest's instants, epoch µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// The end of the holdout: the job's as_of.
    pub as_of: i64,
    /// `as_of - holdout_days` days: the model's as_of.
    pub cut: i64,
    pub holdout_days: i64,
}

impl Cut {
    /// The cut `holdout_days` whole days before `as_of`.
    pub fn new(as_of: i64, holdout_days: i64) -> Result<Cut> {
        if !(1..=MAX_HOLDOUT_DAYS).contains(&holdout_days) {
            return Err(Error::Usage(format!(
                "holdout_days must be between 1 and {MAX_HOLDOUT_DAYS}, not {holdout_days}"
            )));
        }
        Ok(Cut {
            as_of,
            cut: as_of - holdout_days * DAY_US,
            holdout_days,
        })
    }

    /// `job` as the nightly run at the cut: the same inputs and settings,
    /// as_of moved to `T`.
    pub fn job_at_cut(&self, job: &Job) -> Job {
        let mut at_cut = job.clone();
        at_cut.as_of = self.cut;
        at_cut
    }

    /// Whether an instant falls in the holdout, `T <= t < as_of`.
    #[inline]
    pub fn in_holdout(&self, t: i64) -> bool {
        self.cut <= t && t < self.as_of
    }

    /// `as_of` in RFC 3339.
    pub fn as_of_text(&self) -> String {
        time::format_rfc3339(self.as_of)
    }

    /// `T` in RFC 3339.
    pub fn cut_text(&self) -> String {
        time::format_rfc3339(self.cut)
    }
}

/// The truth: every non-refunded purchase in the holdout, of any
/// visibility, as distinct (user, product) pairs. Buyers outside the follow
/// graph can never have slots and products outside the catalog are ignored
/// by the contract, so neither can be hit; they are left out.
pub fn truth(rows: &[PurchaseRow], users: &IdMap, catalog: &Catalog, cut: &Cut) -> Result<Truth> {
    let pairs = rows
        .iter()
        .filter(|r| !r.refunded && cut.in_holdout(r.purchased_at))
        .filter_map(|r| Some((users.index(r.buyer_id)?, catalog.ids.index(r.product_id)?)))
        .collect();
    Truth::new(users.len(), pairs)
}
