//! The follows table into the follow graph.
//!
//! Every row is checked; self-follows are dropped and duplicate rows
//! collapse into one edge, muted if any of its rows is (both counted).

use std::path::Path;

use rayon::prelude::*;

use crate::error::Result;
use crate::graph::FollowGraph;
use crate::ids::IdMap;
use crate::load::tables::{Table, read_table};

/// The graph, the users it knows, and what was dropped on the way.
pub struct Follows {
    pub users: IdMap,
    pub graph: FollowGraph,
    pub table: Table,
    pub self_follows: u64,
    pub duplicate_follows: u64,
}

pub fn load(path: &Path) -> Result<Follows> {
    let table = read_table("follows", path, &["follower_id", "followee_id", "muted"])?;
    let mut raw: Vec<(i64, i64, bool)> = Vec::with_capacity(table.rows());
    for part in &table.parts {
        let followers = part.ids("follower_id")?;
        let followees = part.ids("followee_id")?;
        let muted = part.bools("muted", false)?;
        for ((a, b), m) in followers.into_iter().zip(followees).zip(muted) {
            raw.push((a, b, m));
        }
    }
    let rows = raw.len() as u64;
    raw.retain(|(a, b, _)| a != b);
    let self_follows = rows - raw.len() as u64;

    let mut ids: Vec<i64> = Vec::with_capacity(raw.len() * 2);
    ids.extend(raw.iter().flat_map(|&(a, b, _)| [a, b]));
    let users = IdMap::from_ids(ids)?;
    let dense = |id: i64| users.index(id).expect("every endpoint is in the map");
    let mut edges: Vec<(u32, u32, bool)> = raw
        .par_iter()
        .map(|&(a, b, m)| (dense(a), dense(b), m))
        .collect();
    drop(raw);
    edges.par_sort_unstable();
    // Sorted with `false < true`, the last row of a pair carries "any muted".
    let before = edges.len() as u64;
    edges.dedup_by(|next, kept| {
        let same = next.0 == kept.0 && next.1 == kept.1;
        if same {
            kept.2 |= next.2;
        }
        same
    });
    let duplicate_follows = before - edges.len() as u64;
    let graph = FollowGraph::from_sorted_edges(users.len(), &edges);
    Ok(Follows {
        users,
        graph,
        table,
        self_follows,
        duplicate_follows,
    })
}
