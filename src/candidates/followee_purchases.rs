//! `FolloweePurchases`: the products that a user's followees bought,
//! accumulated per product in a per-thread sparse accumulator.
//!
//! The accumulator is a dense array over products plus the list of
//! products touched for the current user, so one user costs only what its
//! followees' supporting purchases cost, and nothing is allocated per user:
//! the arrays live as long as the thread's share of the work.

use std::ops::Range;

use crate::filters::{
    ALREADY_BOUGHT, AlreadyBought, FATIGUE, Fatigue, HIDDEN_BUYERS, HiddenBuyers,
    SENSITIVE_CATEGORIES, SOCIAL_PROOF, SensitiveCategories, SocialProof, Tally,
};
use crate::graph::{MUTED, MUTUAL};
use crate::memory::{huge_filled, prefetch};
use crate::scoring::{Features, SocialV1};
use crate::world::Context;
use crate::world::catalog::Catalog;

/// One supporting buyer of a product, as visited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Visit {
    pub product: u32,
    pub buyer: u32,
    /// tie·recency, unrounded.
    pub weight: f64,
}

/// A product with its social proof for the current user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub product: u32,
    pub buyers: u32,
    pub proof: f64,
}

/// One product's running totals for the current user, side by side so
/// that an accumulation touches one cache line.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    proof: f64,
    buyers: u32,
    /// `>= stamp` marks the product excluded for the current user: `stamp`
    /// for this user's marks, [`ALWAYS`] for a product no one is shown.
    excluded: u32,
}

/// The exclusion mark of a product excluded for every user.
const ALWAYS: u32 = u32::MAX;

/// Per-thread scratch space for accumulating one user at a time, and the
/// filters' tally of every user it accumulated.
pub struct Accumulator {
    slots: Vec<Slot>,
    /// Per product, the candidate filter that excluded it (when marked).
    excluded_by: Vec<u8>,
    stamp: u32,
    touched: Vec<u32>,
    /// The admitted followees of the current user: (buyer, tie, where its
    /// supporting purchases sit).
    sources: Vec<(u32, f64, Range<usize>)>,
    /// Every (product, buyer) pair visited for the current user.
    pub visits: Vec<Visit>,
    /// What the filters kept and removed, over every user so far.
    pub tally: Tally,
}

impl Accumulator {
    pub const NAME: &'static str = "followee_purchases";

    /// Scratch for `catalog`, with the products of `sensitive_categories`
    /// excluded for everyone.
    pub fn new(catalog: &Catalog, sensitive_categories: &[String]) -> Accumulator {
        let mut accumulator = Accumulator {
            slots: huge_filled(catalog.len(), Slot::default()),
            excluded_by: huge_filled(catalog.len(), 0),
            stamp: 0,
            touched: Vec::new(),
            sources: Vec::new(),
            visits: Vec::new(),
            tally: Tally::default(),
        };
        for p in SensitiveCategories::products(catalog, sensitive_categories) {
            accumulator.slots[p as usize].excluded = ALWAYS;
            accumulator.excluded_by[p as usize] = SENSITIVE_CATEGORIES as u8;
        }
        accumulator
    }

    /// Asks for what [`Accumulator::collect`] will read of the users after
    /// `users[i]` to be brought into the cache, a stage per user ahead, so
    /// that each stage reads what the one before brought in and the misses
    /// overlap with the work on `users[i]` instead of stalling it: three
    /// users ahead, where each followee's purchases sit, and its flags; two
    /// ahead, each followee's first purchases; one ahead, the accumulator's
    /// slot and the scorer's features of each product they name.
    #[inline]
    pub fn prepare(&self, ctx: &Context, users: &[u32], i: usize) {
        let support = &ctx.purchases.support;
        let supported = support.values();
        if let Some(&u) = users.get(i + 3) {
            for &f in ctx.graph.followees(u).0 {
                support.prefetch(f);
                if let Some(flags) = ctx.flags.get(f as usize) {
                    prefetch(flags);
                }
            }
        }
        if let Some(&u) = users.get(i + 2) {
            for &f in ctx.graph.followees(u).0 {
                if let Some(first) = supported.get(support.range(f).start) {
                    prefetch(first);
                }
            }
        }
        if let Some(&u) = users.get(i + 1) {
            for &f in ctx.graph.followees(u).0 {
                for s in supported.get(support.range(f)).unwrap_or_default() {
                    if let Some(slot) = self.slots.get(s.product as usize) {
                        prefetch(slot);
                    }
                    Features::prefetch(ctx, s.product);
                }
            }
        }
    }

    /// Accumulates `u`'s candidates and hands each to `emit`, in no
    /// particular order. Followees are walked in ascending id, so each
    /// product's proof is summed in ascending buyer id, as the contract asks.
    /// The supporter filters decide which followees vouch; the candidate
    /// filters mark the products the user is never shown; each removal is
    /// counted once, by the first filter (in pipeline order) that makes it.
    pub fn collect(
        &mut self,
        ctx: &Context,
        model: &SocialV1,
        u: u32,
        mut emit: impl FnMut(Candidate),
    ) {
        self.next_stamp();
        for (filter, products) in [
            (ALREADY_BOUGHT, AlreadyBought::excluded(ctx, u)),
            (FATIGUE, Fatigue::excluded(ctx, u)),
        ] {
            for &p in products {
                let slot = &mut self.slots[p as usize];
                if slot.excluded < self.stamp {
                    slot.excluded = self.stamp;
                    self.excluded_by[p as usize] = filter as u8;
                }
            }
        }
        // First the followees that may vouch, in a tight loop whose
        // lookups do not wait on each other; then their purchases.
        self.sources.clear();
        let support = &ctx.purchases.support;
        let (followees, flags) = ctx.graph.followees(u);
        for (&f, &flags) in followees.iter().zip(flags) {
            let range = support.range(f);
            if range.is_empty() {
                continue;
            }
            let supports = range.len() as u64;
            self.tally.supports += supports;
            if !SocialProof::admits(ctx, u, f, flags & MUTED != 0) {
                self.tally.removed[SOCIAL_PROOF] += supports;
            } else if !HiddenBuyers::admits(ctx, f) {
                self.tally.removed[HIDDEN_BUYERS] += supports;
            } else {
                self.sources
                    .push((f, model.tie(flags & MUTUAL != 0), range));
            }
        }
        // Then the purchases, in order (their lines and the slots they
        // name were asked for users ago, by `prepare`).
        self.visits.clear();
        let supported = support.values();
        for (f, tie, range) in self.sources.drain(..) {
            for s in &supported[range] {
                let slot = &mut self.slots[s.product as usize];
                if slot.buyers == 0 {
                    self.touched.push(s.product);
                }
                if slot.excluded >= self.stamp {
                    // Counted once per product: `buyers` marks it seen.
                    if slot.buyers == 0 {
                        slot.buyers = 1;
                        self.tally.removed[self.excluded_by[s.product as usize] as usize] += 1;
                    }
                    continue;
                }
                let weight = tie * s.recency;
                slot.buyers += 1;
                slot.proof += weight;
                self.visits.push(Visit {
                    product: s.product,
                    buyer: f,
                    weight,
                });
            }
        }
        self.tally.candidates += self.touched.len() as u64;
        for &p in &self.touched {
            let slot = &mut self.slots[p as usize];
            if slot.excluded < self.stamp {
                emit(Candidate {
                    product: p,
                    buyers: slot.buyers,
                    proof: slot.proof,
                });
            }
            slot.buyers = 0;
            slot.proof = 0.0;
        }
        self.touched.clear();
    }

    fn next_stamp(&mut self) {
        if self.stamp == ALWAYS - 1 {
            for slot in &mut self.slots {
                if slot.excluded != ALWAYS {
                    slot.excluded = 0;
                }
            }
            self.stamp = 0;
        }
        self.stamp += 1;
    }
}
