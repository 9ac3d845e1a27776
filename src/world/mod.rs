//! The read-only world that every stage reads (`docs/contract.md` §2): the domain types (the
//! catalog, the derived purchases, the graph, the people's flags), derived
//! once from the loaded tables by [`build`] and shared by all threads.

pub mod build;
pub mod catalog;
pub mod purchases;

pub use build::{Rows, build, build_keeping_rows};

use crate::graph::FollowGraph;
use crate::ids::{Grouped, IdMap};
use crate::load::people::{HIDES_PURCHASES, OPTED_OUT, SUSPENDED};
use crate::world::catalog::Catalog;
use crate::world::purchases::Purchases;

/// Everything the model needs, over dense user and product indices.
pub struct Context {
    /// The run's reference instant, epoch µs.
    pub as_of: i64,
    pub users: IdMap,
    pub graph: FollowGraph,
    /// Per dense user, [`OPTED_OUT`], [`SUSPENDED`] and [`HIDES_PURCHASES`] bits.
    pub flags: Vec<u8>,
    /// Per dense user, everyone blocked by or blocking them, ascending.
    pub blocks: Grouped<u32>,
    pub catalog: Catalog,
    pub purchases: Purchases,
    /// Per dense user, fatigued products, ascending.
    pub fatigued: Grouped<u32>,
    /// The users to score, ascending: followers with a follow that is not a
    /// self-follow, less the opted-out and suspended, in this shard.
    pub scored_users: Vec<u32>,
}

impl Context {
    /// `followers` are the shard's users with a follow that is not a
    /// self-follow, dense, ascending.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        as_of: i64,
        users: IdMap,
        graph: FollowGraph,
        followers: &[u32],
        flags: Vec<u8>,
        blocks: Grouped<u32>,
        catalog: Catalog,
        purchases: Purchases,
        fatigued: Grouped<u32>,
    ) -> Context {
        let scored_users = followers
            .iter()
            .copied()
            .filter(|&u| flags[u as usize] & (OPTED_OUT | SUSPENDED) == 0)
            .collect();
        Context {
            as_of,
            users,
            graph,
            flags,
            blocks,
            catalog,
            purchases,
            fatigued,
            scored_users,
        }
    }

    /// Whether `u` is suspended.
    #[inline]
    pub fn suspended(&self, u: u32) -> bool {
        self.flags[u as usize] & SUSPENDED != 0
    }

    /// Whether `u` hides its purchases.
    #[inline]
    pub fn hides_purchases(&self, u: u32) -> bool {
        self.flags[u as usize] & HIDES_PURCHASES != 0
    }

    /// Whether there is a block between `a` and `b`, either way.
    #[inline]
    pub fn blocked(&self, a: u32, b: u32) -> bool {
        let list = self.blocks.get(a);
        !list.is_empty() && list.binary_search(&b).is_ok()
    }
}
