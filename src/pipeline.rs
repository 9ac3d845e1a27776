//! The stages in order, in one place: for every scored user, in parallel,
//!
//! 1. candidate source: [`crate::candidates::FolloweePurchases`'s
//!    accumulator](Accumulator), which applies the filters of
//!    [`crate::filters::FILTERS`] as it walks (supporters: social_proof,
//!    hidden_buyers; candidates: sensitive_categories, already_bought,
//!    fatigue) and counts what each removed;
//! 2. scorer: [`SocialV1`] over [`Features`];
//! 3. selector: [`Selector`] (thresholds, order, caps, positions);
//! 4. decorator: the buyers shown, by [`BuyersShown`].
//!
//! Everything here is pure: it reads the [`Context`] and the config and
//! cannot fail (only the sink that takes the rows can). Users are split
//! into fixed chunks whose results are kept in chunk order, so the rows are
//! the same whatever the thread count.

use std::sync::Mutex;

use rayon::prelude::*;

use crate::candidates::Accumulator;
use crate::config::{ModelConfig, SelectionConfig};
use crate::error::{Error, Result};
use crate::filters::Tally;
use crate::memory::prefetch;
use crate::rows::SlotRows;
use crate::scoring::{Features, SocialV1};
use crate::selection::{BuyersShown, Scored, Selector};
use crate::world::Context;

/// Users per unit of parallel work.
const CHUNK: usize = 512;
/// Chunks scored before their rows are handed on: enough to keep every
/// core busy, few enough that rows waiting to be written stay small.
const WINDOW: usize = 256;
/// The fewest chunks of a window. Windows shrink towards the end (to a
/// quarter of the chunks left), so that the rows the writer still has to
/// write once every user is scored, those of the last window, are few.
const LAST_WINDOW: usize = 16;

/// What scoring produced: rows in user order, as chunks, and counts.
pub struct Scoring {
    pub chunks: Vec<SlotRows>,
    pub counts: Counts,
}

/// What scoring counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub users_scored: u64,
    pub users_with_slots: u64,
    pub slots: u64,
    /// What each filter kept and removed.
    pub filters: Tally,
}

/// Scores every user of the context.
pub fn score_all(
    ctx: &Context,
    model: &ModelConfig,
    selection: &SelectionConfig,
) -> Result<Scoring> {
    let mut chunks = Vec::new();
    let counts = score_into(ctx, model, selection, &|_| {}, &mut |rows| {
        chunks.push(rows);
        Ok(())
    })?;
    Ok(Scoring { chunks, counts })
}

/// Scores every user of the context a window at a time, handing each
/// chunk's rows to `sink` in user order (so a writer can take them while
/// the next window is scored) and telling `done` how many users each
/// finished chunk held (for a progress bar). Stops at the first error of
/// `sink`.
pub fn score_into(
    ctx: &Context,
    model: &ModelConfig,
    selection: &SelectionConfig,
    done: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(SlotRows) -> Result<()>,
) -> Result<Counts> {
    // One worker (and its scratch) per thread of the pool.
    let workers: Vec<Mutex<Worker>> = (0..rayon::current_num_threads())
        .map(|_| Mutex::new(Worker::new(ctx, model, selection)))
        .collect();
    let mut counts = Counts {
        users_scored: ctx.scored_users.len() as u64,
        ..Counts::default()
    };
    let mut left = ctx.scored_users.as_slice();
    while !left.is_empty() {
        let size = (left.len().div_ceil(CHUNK) / 4).clamp(LAST_WINDOW, WINDOW);
        let (window, rest) = left.split_at(left.len().min(size * CHUNK));
        left = rest;
        let chunks: Vec<SlotRows> = window
            .par_chunks(CHUNK)
            .map(|users| {
                let thread = rayon::current_thread_index().unwrap_or(0) % workers.len();
                // A poisoned lock only means another chunk panicked, which
                // fails the run anyway; its scratch is reset per user.
                let mut worker = workers[thread]
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut rows = SlotRows::default();
                worker.users(users, &mut rows);
                done(users.len() as u64);
                rows
            })
            .collect();
        for rows in chunks {
            counts.slots += rows.len() as u64;
            counts.users_with_slots += rows.users();
            sink(rows)?;
        }
    }
    for worker in workers {
        let worker = worker
            .into_inner()
            .map_err(|_| Error::Internal("a scoring worker panicked".into()))?;
        counts.filters.add(&worker.accumulator.tally);
    }
    Ok(counts)
}

/// One thread's stages and scratch space.
pub struct Worker<'a> {
    ctx: &'a Context,
    model: SocialV1,
    selector: Selector<'a>,
    accumulator: Accumulator,
    candidates: Vec<Scored>,
    chosen: Vec<Scored>,
    buyers_shown: BuyersShown,
    shown: Vec<(f64, u32)>,
    /// The products of the rows of the users so far, and the buyers they
    /// name, in row order, before their ids are looked up.
    products: Vec<u32>,
    buyers: Vec<u32>,
}

impl<'a> Worker<'a> {
    pub fn new(ctx: &'a Context, model: &ModelConfig, selection: &'a SelectionConfig) -> Self {
        Worker {
            ctx,
            model: SocialV1::new(model),
            selector: Selector {
                config: selection,
                catalog: &ctx.catalog,
            },
            accumulator: Accumulator::new(&ctx.catalog, &model.sensitive_categories),
            candidates: Vec::new(),
            chosen: Vec::new(),
            buyers_shown: BuyersShown::new(selection),
            shown: Vec::new(),
            products: Vec::new(),
            buyers: Vec::new(),
        }
    }

    /// Appends the slots of dense user `u` to `rows`.
    pub fn user(&mut self, u: u32, rows: &mut SlotRows) {
        self.users(&[u], rows);
    }

    /// Appends the slots of each of `users` to `rows`, in order. What each
    /// user's walk will read is asked for a few users ahead, and the
    /// products' and buyers' ids and the merchants (read at random, once
    /// the slots are chosen) are looked up together at the end, each asked
    /// for a few ahead, so that their misses overlap instead of each one
    /// stalling its user.
    pub fn users(&mut self, users: &[u32], rows: &mut SlotRows) {
        self.products.clear();
        self.buyers.clear();
        for (i, &u) in users.iter().enumerate() {
            self.accumulator.prepare(self.ctx, users, i);
            self.slots_of(u, rows);
        }
        const AHEAD: usize = 16;
        let catalog = &self.ctx.catalog;
        rows.product_id.reserve(self.products.len());
        rows.merchant_id.reserve(self.products.len());
        for (k, &p) in self.products.iter().enumerate() {
            if let Some(&next) = self.products.get(k + AHEAD) {
                catalog.ids.prefetch_id(next);
                if let Some(merchant_id) = catalog.merchant_id.get(next as usize) {
                    prefetch(merchant_id);
                }
            }
            rows.product_id.push(catalog.ids.id(p));
            rows.merchant_id.push(catalog.merchant_id[p as usize]);
        }
        let ids = &self.ctx.users;
        rows.buyer_ids.reserve(self.buyers.len());
        for (k, &b) in self.buyers.iter().enumerate() {
            if let Some(&next) = self.buyers.get(k + AHEAD) {
                ids.prefetch_id(next);
            }
            rows.buyer_ids.push(ids.id(b));
        }
    }

    /// Appends the slots of dense user `u` to `rows`, but for their
    /// products' and buyers' ids (and merchants): those wait in
    /// `self.products` and `self.buyers` (each slot's buyer offset counts
    /// the buyers, after the ids `rows` already holds).
    fn slots_of(&mut self, u: u32, rows: &mut SlotRows) {
        let ctx = self.ctx;
        let model = &self.model;
        let selector = &self.selector;
        let candidates = &mut self.candidates;
        candidates.clear();
        self.accumulator.collect(ctx, model, u, |c| {
            let score = model.score(&Features::of(ctx, u, c.product, c.proof, c.buyers));
            if selector.passes(c.buyers, score) {
                candidates.push(Scored {
                    product: c.product,
                    buyers: c.buyers,
                    score,
                });
            }
        });
        self.selector.select(&mut self.candidates, &mut self.chosen);
        let user_id = ctx.users.id(u);
        for (k, c) in self.chosen.iter().enumerate() {
            let shown = self
                .buyers_shown
                .of(&self.accumulator.visits, c.product, &mut self.shown);
            self.buyers.extend(shown.iter().map(|&(_, b)| b));
            rows.user_id.push(user_id);
            rows.slot.push(k as i8 + 1);
            rows.position.push(self.selector.config.positions[k] as i32);
            self.products.push(c.product);
            rows.score.push(c.score);
            rows.buyer_count.push(c.buyers as i32);
            let offset = rows.buyer_ids.len() + self.buyers.len();
            rows.buyer_offsets.push(offset as i32);
        }
    }
}
