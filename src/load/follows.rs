//! The follows table into the follow graph.
//!
//! Every row is checked; self-follows are dropped and duplicate rows
//! collapse into one edge, muted if any of its rows is (both counted).

use std::path::Path;

use rayon::prelude::*;

use crate::config::BadRowPolicy;
use crate::error::Result;
use crate::graph::FollowGraph;
use crate::ids::IdMap;
use crate::load::tables::{Table, read_table};
use crate::shard::Shard;

/// The graph, the users it knows, and what was dropped on the way.
pub struct Follows {
    pub users: IdMap,
    pub graph: FollowGraph,
    pub table: Table,
    pub self_follows: u64,
    pub duplicate_follows: u64,
}

/// Loads the follows that `shard` needs: those of its users, and those
/// pointing at them (for the mutual bonus). Self-follows and duplicates
/// are counted by the shard of the follower, so shards' counts add up.
pub fn load(path: &Path, policy: BadRowPolicy, shard: Shard) -> Result<Follows> {
    let table = read_table(
        "follows",
        path,
        &["follower_id", "followee_id", "muted"],
        policy,
    )?;
    let mut raw: Vec<(i64, i64, bool)> = Vec::with_capacity(table.rows());
    let mut self_follows = 0;
    for part in &table.parts {
        let followers = part.ids("follower_id")?;
        let followees = part.ids("followee_id")?;
        let muted = part.bools("muted", false)?;
        let rows = followers.into_iter().zip(followees).zip(muted).enumerate();
        for (row, ((a, b), m)) in rows {
            if part.is_bad(row) {
                continue;
            }
            if a == b {
                self_follows += u64::from(shard.owns(a));
            } else if shard.owns(a) || shard.owns(b) {
                raw.push((a, b, m));
            }
        }
    }

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
    // Repeats of a pair collapse into one edge, muted if any row is.
    let mut duplicate_follows = 0;
    edges.dedup_by(|next, kept| {
        let same = next.0 == kept.0 && next.1 == kept.1;
        if same {
            kept.2 |= next.2;
            duplicate_follows += u64::from(shard.owns(users.id(kept.0)));
        }
        same
    });
    let graph = FollowGraph::from_sorted_edges(users.len(), &edges);
    Ok(Follows {
        users,
        graph,
        table,
        self_follows,
        duplicate_follows,
    })
}
