//! The follow graph: petgraph's compressed sparse rows over dense user ids.
//!
//! Row `u` lists whom `u` follows, ascending, each edge weighted by its
//! muted flag. Duplicate rows are already collapsed and self-follows
//! dropped by the loader.

use petgraph::Directed;
use petgraph::csr::Csr;

/// Who follows whom, over dense user indices.
pub struct FollowGraph {
    csr: Csr<(), bool, Directed, u32>,
}

impl FollowGraph {
    /// Builds the graph over `users` nodes from edges `(follower, followee,
    /// muted)` sorted by follower then followee, without repeats.
    pub fn from_sorted_edges(users: usize, edges: &[(u32, u32, bool)]) -> FollowGraph {
        let mut csr = Csr::from_sorted_edges(edges).expect("the loader sorts and dedups edges");
        while csr.node_count() < users {
            csr.add_node(());
        }
        FollowGraph { csr }
    }

    /// The accounts `u` follows, ascending, with each follow's muted flag.
    #[inline]
    pub fn followees(&self, u: u32) -> (&[u32], &[bool]) {
        (self.csr.neighbors_slice(u), self.csr.edges_slice(u))
    }

    /// Whether `a` follows `b` (muted or not).
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
    pub fn csr(&self) -> &Csr<(), bool, Directed, u32> {
        &self.csr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_flags_and_lookups() {
        let g = FollowGraph::from_sorted_edges(4, &[(0, 1, false), (0, 2, true), (2, 0, false)]);
        assert_eq!(g.user_count(), 4);
        assert_eq!(g.followees(0), (&[1, 2][..], &[false, true][..]));
        assert!(g.follows(2, 0));
        assert!(!g.follows(1, 0));
        assert_eq!(g.out_degree(3), 0);
        assert_eq!(g.edge_count(), 3);
    }
}
