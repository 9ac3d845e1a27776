//! Defines `World`: a backtest's inputs, read once — the context of the
//! nightly run at the cut, the raw purchase rows and the truth — and the
//! re-derivation of what a model setting changes, so that a sweep reads no
//! file twice for the same settings.
//!
//! The context is exactly what `world::build` gives for the job moved to the
//! cut; only the purchase arrays (lookback_days, half_life_days) and the
//! fatigued pairs (fatigue_days, fatigue_max_impressions) depend on model
//! settings, and [`World::prepare`] replaces just those.

use crate::config::{Job, ModelConfig, SelectionConfig};
use crate::error::Result;
use crate::eval::metrics::{Contributions, Shelf, Truth};
use crate::eval::slates::Slates;
use crate::eval::split::{self, Cut};
use crate::eval::{Bootstrap, Evaluation, Named};
use crate::filters::Fatigue;
use crate::load::GraphScope;
use crate::load::impressions::Impression;
use crate::load::purchases::PurchaseRow;
use crate::shard::Shard;
use crate::world::Context;
use crate::world::{self, purchases as derived};

/// What the purchase arrays depend on: lookback_days, half_life_days (bits).
pub fn purchase_key(model: &ModelConfig) -> (i64, u64) {
    (model.lookback_days, model.half_life_days.to_bits())
}

/// What the fatigued pairs depend on: fatigue_days, fatigue_max_impressions.
pub fn fatigue_key(model: &ModelConfig) -> (i64, i64) {
    (model.fatigue_days, model.fatigue_max_impressions)
}

/// A backtest's inputs at the cut.
pub struct World {
    pub cut: Cut,
    /// The job as the nightly run at the cut would see it.
    pub job: Job,
    /// The context at the cut, derived for the settings of [`World::prepare`].
    pub ctx: Context,
    /// Every purchase row, the holdout's included (the loader's windows keep
    /// them out of the context).
    pub rows: Vec<PurchaseRow>,
    /// The impressions of known users and products, to derive fatigue
    /// again without reading the table again.
    pub impressions: Vec<Impression>,
    pub truth: Truth,
    derived: ModelConfig,
}

impl World {
    /// Reads the inputs of `job` for a backtest whose holdout is the last
    /// `holdout_days` days before the job's as_of.
    pub fn load(job: &Job, holdout_days: i64) -> Result<World> {
        let cut = Cut::new(job.as_of, holdout_days)?;
        let at_cut = cut.job_at_cut(job);
        let (ctx, _report, raw) =
            world::build_keeping_rows(&at_cut, Shard::WHOLE, GraphScope::Full)?;
        let rows = raw.purchases;
        let truth = split::truth(&rows, &ctx.users, &ctx.catalog, &cut)?;
        Ok(World {
            cut,
            derived: at_cut.model.clone(),
            job: at_cut,
            ctx,
            rows,
            impressions: raw.impressions,
            truth,
        })
    }

    /// Makes the context the one `model` would see at the cut, re-deriving
    /// only what differs from the settings it was derived for.
    pub fn prepare(&mut self, model: &ModelConfig) -> Result<()> {
        if purchase_key(model) != purchase_key(&self.derived) {
            self.ctx.purchases = derived::derive(
                &self.rows,
                &self.ctx.users,
                &self.ctx.catalog,
                self.cut.cut,
                model,
                Shard::WHOLE,
            )?;
        }
        if fatigue_key(model) != fatigue_key(&self.derived) {
            self.ctx.fatigued =
                Fatigue::derive(&self.impressions, self.ctx.users.len(), self.cut.cut, model)?;
        }
        self.derived = model.clone();
        Ok(())
    }

    /// Users scored at the cut.
    pub fn users_scored(&self) -> u64 {
        self.ctx.scored_users.len() as u64
    }

    /// Each user's share of the metrics of `slates`.
    pub fn contributions(&self, slates: &Slates, selection: &SelectionConfig) -> Contributions {
        Contributions::new(
            slates.iter(),
            &self.truth,
            selection.positions.len(),
            self.shelf(),
        )
    }

    /// A backtest's figures on this world.
    pub fn evaluation(&self, results: Vec<Named>, bootstrap: Bootstrap) -> Evaluation {
        let truth_users = (0..self.ctx.users.len() as u32)
            .filter(|&u| !self.truth.of(u).is_empty())
            .count() as u64;
        Evaluation {
            as_of: self.cut.as_of_text(),
            cut: self.cut.cut_text(),
            holdout_days: self.cut.holdout_days,
            results,
            users_scored: self.users_scored(),
            truth_pairs: self.truth.pairs() as u64,
            truth_users,
            bootstrap,
        }
    }

    /// The catalog as the metrics see it.
    pub fn shelf(&self) -> Shelf<'_> {
        Shelf {
            merchant: &self.ctx.catalog.merchant,
            available: &self.ctx.catalog.available,
        }
    }
}
