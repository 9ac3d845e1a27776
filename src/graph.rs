//! The follow graph: compressed sparse rows over dense user ids, built in
//! place by the loader, with petgraph's graph traits so that petgraph's
//! algorithms run on it.
//!
//! Row `u` lists whom `u` follows, ascending, each edge with its flags:
//! [`MUTED`] (u muted the followee) and [`MUTUAL`] (the followee follows u
//! back, muted or not). Duplicate rows are already collapsed and
//! self-follows dropped by the loader.
//!
//! The rows are three arrays sized once: 32-bit row offsets (4 bytes per
//! account), the followees (4 bytes per edge) and the flags (1 byte per
//! edge); nothing grows by doubling and no edge list sits beside them.
//!
//! A graph loaded for scoring holds only the edges scoring can use (see
//! `load::follows`); a full one holds every follow, and only a full one
//! answers [`FollowGraph::follows`] for any pair.

use std::iter::Copied;
use std::ops::Range;
use std::slice::Iter;

use fixedbitset::FixedBitSet;
use petgraph::Directed;
use petgraph::visit::{
    GraphBase, GraphProp, IntoNeighbors, IntoNodeIdentifiers, NodeCompactIndexable, NodeCount,
    NodeIndexable, Visitable,
};

use rayon::prelude::*;

use crate::error::{Error, Result};

/// The follower muted the followee: not social proof.
pub const MUTED: u8 = 1;
/// The followee also follows the follower.
pub const MUTUAL: u8 = 2;

/// Who follows whom, over dense user indices.
#[derive(Debug, Clone, Default)]
pub struct FollowGraph {
    /// Row `u` is `targets[offsets[u]..offsets[u + 1]]`.
    offsets: Vec<u32>,
    targets: Vec<u32>,
    flags: Vec<u8>,
}

impl FollowGraph {
    /// The graph from its rows: `offsets` (one per user and one more,
    /// from 0 up to the edge count), `targets` (each row ascending, no
    /// repeats, every target a user) and one flags byte per edge. Anything
    /// else is an internal error, never a panic later.
    pub fn from_rows(offsets: Vec<u32>, targets: Vec<u32>, flags: Vec<u8>) -> Result<FollowGraph> {
        let bad = |what: &str| Err(Error::Internal(format!("the follow graph's {what}")));
        let users = offsets.len().saturating_sub(1);
        if offsets.first() != Some(&0)
            || offsets.last().map(|&o| o as usize) != Some(targets.len())
            || flags.len() != targets.len()
        {
            return bad("rows do not add up to its edges");
        }
        if offsets.par_windows(2).any(|w| w[0] > w[1]) {
            return bad("row offsets go backwards");
        }
        let graph = FollowGraph {
            offsets,
            targets,
            flags,
        };
        let rows_ok = (0..users as u32).into_par_iter().all(|u| {
            let row = graph.followees(u).0;
            row.windows(2).all(|w| w[0] < w[1]) && row.last().is_none_or(|&t| (t as usize) < users)
        });
        if !rows_ok {
            return bad("rows are not ascending, or name an unknown user");
        }
        Ok(graph)
    }

    /// Builds the graph over `users` nodes from edges `(follower, followee,
    /// flags)` sorted by follower then followee, without repeats.
    pub fn from_sorted_edges(users: usize, edges: &[(u32, u32, u8)]) -> Result<FollowGraph> {
        if edges.len() >= u32::MAX as usize {
            return Err(Error::Internal(format!(
                "{} follows do not fit the graph's 32-bit offsets",
                edges.len()
            )));
        }
        if edges
            .windows(2)
            .any(|w| (w[0].0, w[0].1) >= (w[1].0, w[1].1))
        {
            return Err(Error::Internal(
                "the follow graph's edges are not sorted by follower".into(),
            ));
        }
        let mut offsets = vec![0u32; users + 1];
        for &(a, _, _) in edges {
            match offsets.get_mut(a as usize + 1) {
                Some(n) => *n += 1,
                None => return Err(Error::Internal(format!("follower {a} is not a user"))),
            }
        }
        for u in 0..users {
            offsets[u + 1] += offsets[u];
        }
        FollowGraph::from_rows(
            offsets,
            edges.iter().map(|e| e.1).collect(),
            edges.iter().map(|e| e.2).collect(),
        )
    }

    #[inline]
    fn row(&self, u: u32) -> Range<usize> {
        let u = u as usize;
        match (self.offsets.get(u), self.offsets.get(u + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        }
    }

    /// The accounts `u` follows, ascending, with each follow's flags.
    #[inline]
    pub fn followees(&self, u: u32) -> (&[u32], &[u8]) {
        let row = self.row(u);
        (&self.targets[row.clone()], &self.flags[row])
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
        self.followees(a).0.binary_search(&b).is_ok()
    }

    pub fn out_degree(&self, u: u32) -> usize {
        self.row(u).len()
    }

    pub fn user_count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }
}

// petgraph's view of the graph: nodes are the dense user indices, an edge
// is its place in the rows.

impl GraphBase for FollowGraph {
    type NodeId = u32;
    type EdgeId = usize;
}

impl GraphProp for FollowGraph {
    type EdgeType = Directed;
}

impl NodeCount for FollowGraph {
    fn node_count(&self) -> usize {
        self.user_count()
    }
}

impl NodeIndexable for FollowGraph {
    fn node_bound(&self) -> usize {
        self.user_count()
    }

    fn to_index(&self, a: u32) -> usize {
        a as usize
    }

    fn from_index(&self, i: usize) -> u32 {
        i as u32
    }
}

impl NodeCompactIndexable for FollowGraph {}

impl Visitable for FollowGraph {
    type Map = FixedBitSet;

    fn visit_map(&self) -> FixedBitSet {
        FixedBitSet::with_capacity(self.user_count())
    }

    fn reset_map(&self, map: &mut FixedBitSet) {
        map.clear();
        map.grow(self.user_count());
    }
}

impl<'a> IntoNeighbors for &'a FollowGraph {
    type Neighbors = Copied<Iter<'a, u32>>;

    /// Whom `a` follows, ascending (nothing for an unknown node).
    fn neighbors(self, a: u32) -> Self::Neighbors {
        self.followees(a).0.iter().copied()
    }
}

impl IntoNodeIdentifiers for &FollowGraph {
    type NodeIdentifiers = Range<u32>;

    fn node_identifiers(self) -> Range<u32> {
        0..self.user_count() as u32
    }
}

#[cfg(test)]
mod tests {
    use petgraph::algo::{has_path_connecting, tarjan_scc};
    use petgraph::csr::Csr;

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
        assert_eq!(g.followees(9), (&[][..], &[][..]));
    }

    #[test]
    fn rows_that_do_not_add_up_are_refused() {
        assert!(FollowGraph::from_rows(vec![0, 2], vec![1], vec![0]).is_err());
        assert!(FollowGraph::from_rows(vec![0, 2, 2], vec![1, 1], vec![0, 0]).is_err());
        assert!(FollowGraph::from_rows(vec![0, 1, 1], vec![5], vec![0]).is_err());
        assert!(FollowGraph::from_rows(vec![0, 2, 1], vec![1, 0], vec![0, 0]).is_err());
        assert!(FollowGraph::from_sorted_edges(2, &[(1, 0, 0), (0, 1, 0)]).is_err());
        assert!(FollowGraph::from_sorted_edges(2, &[(0, 1, 0), (0, 1, 0)]).is_err());
        assert!(FollowGraph::from_sorted_edges(2, &[(3, 1, 0)]).is_err());
    }

    /// petgraph's algorithms run on the graph and agree with petgraph's
    /// own CSR built from the same edges.
    #[test]
    fn petgraph_algorithms_agree_with_petgraphs_csr() {
        let mut edges = Vec::new();
        let mut state = 17u64;
        for a in 0..60u32 {
            for _ in 0..3 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                let b = (state >> 40) as u32 % 60;
                if b != a {
                    edges.push((a, b, 0u8));
                }
            }
        }
        edges.sort_unstable();
        edges.dedup_by_key(|e| (e.0, e.1));
        let ours = FollowGraph::from_sorted_edges(64, &edges).unwrap();
        let mut theirs: Csr<(), u8, Directed, u32> = Csr::from_sorted_edges(&edges).unwrap();
        while theirs.node_count() < 64 {
            theirs.add_node(());
        }
        let normal = |mut sccs: Vec<Vec<u32>>| {
            sccs.iter_mut().for_each(|c| c.sort_unstable());
            sccs.sort_unstable();
            sccs
        };
        assert_eq!(normal(tarjan_scc(&ours)), normal(tarjan_scc(&theirs)));
        assert!(tarjan_scc(&ours).iter().any(|c| c.len() > 1));
        for (a, b) in [(0, 59), (5, 7), (63, 0), (0, 63), (12, 12)] {
            assert_eq!(
                has_path_connecting(&ours, a, b, None),
                has_path_connecting(&theirs, a, b, None),
                "{a} -> {b}"
            );
        }
    }
}
