//! `FolloweePurchases`: the products that a user's followees bought,
//! accumulated per product in a per-thread sparse accumulator.
//!
//! The accumulator is a dense array over products plus the list of
//! products touched for the current user, so one user costs only what its
//! followees' supporting purchases cost, and nothing is allocated per user:
//! the arrays live as long as the thread's share of the work.

use std::ops::Range;

use crate::context::Context;
use crate::filters::already_bought::AlreadyBought;
use crate::filters::fatigue::Fatigue;
use crate::filters::social_proof::SocialProof;
use crate::graph::{MUTED, MUTUAL};
use crate::scoring::SocialV1;

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
    /// `== stamp` marks the product excluded for the current user.
    excluded: u32,
}

/// Per-thread scratch space for accumulating one user at a time.
pub struct Accumulator {
    slots: Vec<Slot>,
    stamp: u32,
    touched: Vec<u32>,
    /// The admitted followees of the current user: (buyer, tie, where its
    /// supporting purchases sit).
    sources: Vec<(u32, f64, Range<usize>)>,
    /// Every (product, buyer) pair visited for the current user.
    pub visits: Vec<Visit>,
}

impl Accumulator {
    pub const NAME: &'static str = "followee_purchases";

    pub fn new(products: usize) -> Accumulator {
        Accumulator {
            slots: vec![Slot::default(); products],
            stamp: 0,
            touched: Vec::new(),
            sources: Vec::new(),
            visits: Vec::new(),
        }
    }

    /// Accumulates `u`'s candidates and hands each to `emit`, in no
    /// particular order. Followees are walked in ascending id, so each
    /// product's proof is summed in ascending buyer id, as the contract asks.
    pub fn collect(
        &mut self,
        ctx: &Context,
        model: &SocialV1,
        u: u32,
        mut emit: impl FnMut(Candidate),
    ) {
        self.next_stamp();
        for &p in AlreadyBought::excluded(ctx, u)
            .iter()
            .chain(Fatigue::excluded(ctx, u))
        {
            self.slots[p as usize].excluded = self.stamp;
        }
        // First the followees that may vouch, in a tight loop whose
        // lookups do not wait on each other; then their purchases.
        self.sources.clear();
        let support = &ctx.purchases.support;
        let (followees, flags) = ctx.graph.followees(u);
        for (&f, &flags) in followees.iter().zip(flags) {
            let range = support.range(f);
            if !range.is_empty() && SocialProof::admits(ctx, u, f, flags & MUTED != 0) {
                self.sources
                    .push((f, model.tie(flags & MUTUAL != 0), range));
            }
        }
        self.visits.clear();
        let supported = support.values();
        for (f, tie, range) in self.sources.drain(..) {
            for s in &supported[range] {
                let slot = &mut self.slots[s.product as usize];
                if slot.excluded == self.stamp {
                    continue;
                }
                let weight = tie * s.recency;
                if slot.buyers == 0 {
                    self.touched.push(s.product);
                }
                slot.buyers += 1;
                slot.proof += weight;
                self.visits.push(Visit {
                    product: s.product,
                    buyer: f,
                    weight,
                });
            }
        }
        for &p in &self.touched {
            let slot = &mut self.slots[p as usize];
            emit(Candidate {
                product: p,
                buyers: slot.buyers,
                proof: slot.proof,
            });
            slot.buyers = 0;
            slot.proof = 0.0;
        }
        self.touched.clear();
    }

    fn next_stamp(&mut self) {
        if self.stamp == u32::MAX {
            for slot in &mut self.slots {
                slot.excluded = 0;
            }
            self.stamp = 0;
        }
        self.stamp += 1;
    }
}
