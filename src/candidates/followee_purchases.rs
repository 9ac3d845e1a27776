//! `FolloweePurchases`: the products that a user's followees bought,
//! accumulated per product in a per-thread sparse accumulator.
//!
//! The accumulator is a dense array over products plus the list of
//! products touched for the current user, so one user costs only what its
//! followees' supporting purchases cost, and nothing is allocated per user:
//! the arrays live as long as the thread's share of the work.

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

/// Per-thread scratch space for accumulating one user at a time.
pub struct Accumulator {
    buyers: Vec<u32>,
    proof: Vec<f64>,
    /// `excluded[p] == stamp` marks p as excluded for the current user.
    excluded: Vec<u32>,
    stamp: u32,
    touched: Vec<u32>,
    /// Every (product, buyer) pair visited for the current user.
    pub visits: Vec<Visit>,
}

impl Accumulator {
    pub const NAME: &'static str = "followee_purchases";

    pub fn new(products: usize) -> Accumulator {
        Accumulator {
            buyers: vec![0; products],
            proof: vec![0.0; products],
            excluded: vec![0; products],
            stamp: 0,
            touched: Vec::new(),
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
            self.excluded[p as usize] = self.stamp;
        }
        self.visits.clear();
        let (followees, flags) = ctx.graph.followees(u);
        for (&f, &flags) in followees.iter().zip(flags) {
            let supported = ctx.purchases.support.get(f);
            if supported.is_empty() || !SocialProof::admits(ctx, u, f, flags & MUTED != 0) {
                continue;
            }
            let tie = model.tie(flags & MUTUAL != 0);
            for s in supported {
                let p = s.product as usize;
                if self.excluded[p] == self.stamp {
                    continue;
                }
                let weight = tie * s.recency;
                if self.buyers[p] == 0 {
                    self.touched.push(s.product);
                }
                self.buyers[p] += 1;
                self.proof[p] += weight;
                self.visits.push(Visit {
                    product: s.product,
                    buyer: f,
                    weight,
                });
            }
        }
        for &p in &self.touched {
            let i = p as usize;
            emit(Candidate {
                product: p,
                buyers: self.buyers[i],
                proof: self.proof[i],
            });
            self.buyers[i] = 0;
            self.proof[i] = 0.0;
        }
        self.touched.clear();
    }

    fn next_stamp(&mut self) {
        if self.stamp == u32::MAX {
            self.excluded.fill(0);
            self.stamp = 0;
        }
        self.stamp += 1;
    }
}
