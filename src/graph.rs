//! The follow graph: petgraph's compressed sparse rows over dense user ids.
//!
//! Row `u` lists whom `u` follows, ascending, each edge weighted by its
//! flags: [`MUTED`] (u muted the followee) and [`MUTUAL`] (the followee
//! follows u back, muted or not). Duplicate rows are already collapsed and
//! self-follows dropped by the loader.
//!
//! A graph loaded for scoring holds only the edges scoring can use (see
//! `load::follows`); a full one holds every follow, and only a full one
//! answers [`FollowGraph::follows`] for any pair.

use petgraph::Directed;
use petgraph::csr::Csr;

use crate::error::{Error, Result};

/// The follower muted the followee: not social proof.
pub const MUTED: u8 = 1;
/// The followee also follows the follower.
pub const MUTUAL: u8 = 2;

/// Who follows whom, over dense user indices.
pub struct FollowGraph {
    csr: Csr<(), u8, Directed, u32>,
}

impl FollowGraph {
    /// Builds the graph over `users` nodes from edges `(follower, followee,
    /// flags)` sorted by follower then followee, without repeats.
    pub fn from_sorted_edges(users: usize, edges: &[(u32, u32, u8)]) -> Result<FollowGraph> {
        let mut csr = Csr::from_sorted_edges(edges).map_err(|_| {
            Error::Internal("the follow graph's edges are not sorted by follower".into())
        })?;
        while csr.node_count() < users {
            csr.add_node(());
        }
        Ok(FollowGraph { csr })
    }

    /// The accounts `u` follows, ascending, with each follow's flags.
    #[inline]
    pub fn followees(&self, u: u32) -> (&[u32], &[u8]) {
        (self.csr.neighbors_slice(u), self.csr.edges_slice(u))
    }

    /// Whether `f` follows `u` back, for a follow `u → f` the graph holds:
    /// the edge's [`MUTUAL`] flag, where the loader put the one rule for it
    /// (the `followed_back` column, or else the reverse follow).
    #[inline]
    pub fn followed_back(&self, u: u32, f: u32) -> bool {
        let (followees, flags) = self.followees(u);
        followees
            .binary_search(&f)
            .ok()
            .and_then(|i| flags.get(i))
            .is_some_and(|x| x & MUTUAL != 0)
    }

    /// Whether `a` follows `b` (muted or not), among the edges held.
    #[inline]
    pub fn follows(&self, a: u32, b: u32) -> bool {
        self.csr.contains_edge(a, b)
    }

    pub fn out_degree(&self, u: u32) -> usize {
        self.csr.out_degree(u)
    }

    pub fn user_count(&self) -> usize {
        self.csr.node_count()
    }

    pub fn edge_count(&self) -> usize {
        self.csr.edge_count()
    }

    /// The petgraph structure, for its algorithms.
    pub fn csr(&self) -> &Csr<(), u8, Directed, u32> {
        &self.csr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_flags_and_lookups() {
        let g =
            FollowGraph::from_sorted_edges(4, &[(0, 1, 0), (0, 2, MUTED | MUTUAL), (2, 0, MUTUAL)])
                .unwrap();
        assert_eq!(g.user_count(), 4);
        assert_eq!(g.followees(0), (&[1, 2][..], &[0, MUTED | MUTUAL][..]));
        assert!(g.follows(2, 0));
        assert!(g.followed_back(0, 2) && g.followed_back(2, 0));
        assert!(!g.followed_back(0, 1) && !g.followed_back(1, 0));
        assert!(!g.follows(1, 0));
        assert_eq!(g.out_degree(3), 0);
        assert_eq!(g.edge_count(), 3);
    }
}
