//! The follows table into the follow graph, streamed.
//!
//! Every row is checked; self-follows are dropped and duplicate rows
//! collapse into one edge, muted if any of its rows is (both counted). The
//! table is read a slice of row groups at a time and never held whole: a
//! table sorted by follower (as `boughtby generate` writes it) is
//! cut into runs of one follower, each deduplicated on its own; any other
//! order is first gathered and sorted (24 bytes per row while loading).
//!
//! A graph for scoring keeps only what scoring can use: the follows of an
//! account with a supporting purchase (a *supporter*), unmuted, each
//! flagged [`MUTUAL`] when followed back. To know "followed back", the
//! supporters' own follows are kept until the flags are set. Every other
//! follow is only counted: its follower is a scored user, and its
//! duplicates are counted, but it costs nothing afterwards.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use rayon::prelude::*;

use crate::config::BadRowPolicy;
use crate::error::Result;
use crate::graph::{FollowGraph, MUTED, MUTUAL};
use crate::ids::{IdMap, IdSet};
use crate::load::tables::{Part, Table, stream_table};
use crate::shard::Shard;

/// Rows per slice read (whole row groups, at least this many), unless
/// `BOUGHTBY_READ_ROWS` says otherwise: fewer rows, less memory while
/// reading, more slices.
const SLICE_ROWS: usize = 1 << 20;

fn slice_rows() -> usize {
    std::env::var("BOUGHTBY_READ_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(SLICE_ROWS)
}

/// The graph, the users it knows, and what was dropped on the way.
pub struct Follows {
    pub users: IdMap,
    pub graph: FollowGraph,
    /// The shard's distinct followers with a follow that is not a
    /// self-follow, dense, ascending.
    pub followers: Vec<u32>,
    pub table: Table,
    pub self_follows: u64,
    pub duplicate_follows: u64,
}

/// Loads the follows that `shard` needs. With `supporters`, only the
/// follows scoring can use are kept (see the module); without, every
/// follow of the shard's users and every follow pointing at them is.
/// Self-follows and duplicates are counted by the shard of the follower,
/// so shards' counts add up.
pub fn load(
    path: &Path,
    policy: BadRowPolicy,
    shard: Shard,
    supporters: Option<&IdSet>,
) -> Result<Follows> {
    let columns = ["follower_id", "followee_id", "muted"];
    let slice_rows = slice_rows();
    // Sorted by follower: one pass, runs deduplicated as they end. One
    // thread reads and checks the slices while another takes their rows.
    let mut self_follows = 0;
    let (streamed, mut edges) = thread::scope(|scope| {
        let (send, receive) = mpsc::sync_channel::<Vec<(i64, i64, bool)>>(1);
        let taker = scope.spawn(move || {
            let mut edges = Edges::new(shard, supporters);
            for rows in receive {
                for (a, b, m) in rows {
                    if !edges.push(a, b, m) {
                        return edges;
                    }
                }
            }
            edges
        });
        let streamed = stream_table("follows", path, &columns, policy, slice_rows, |part| {
            let mut rows = Vec::with_capacity(part.frame.height());
            each_row(part, shard, &mut self_follows, |a, b, m| {
                rows.push((a, b, m))
            })?;
            // The taker hangs up once the rows are out of order.
            Ok(match send.send(rows) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            })
        });
        drop(send);
        let edges = taker.join().expect("the row taker does not panic");
        streamed.map(|table| (table, edges))
    })?;
    let table = if edges.sorted {
        streamed
    } else {
        // Any other order: gather what the shard needs, sort, then runs.
        tracing::debug!("follows are not sorted by follower: sorting them");
        edges = Edges::new(shard, supporters);
        self_follows = 0;
        let mut gathered: Vec<(i64, i64, bool)> = Vec::new();
        let table = stream_table("follows", path, &columns, policy, slice_rows, |part| {
            each_row(part, shard, &mut self_follows, |a, b, m| {
                if shard.owns(a) || shard.owns(b) {
                    gathered.push((a, b, m));
                }
            })?;
            Ok(ControlFlow::Continue(()))
        })?;
        gathered.par_sort_unstable();
        for (a, b, m) in gathered {
            edges.push(a, b, m);
        }
        table
    };
    tracing::debug!(
        rows = table.rows(),
        kept = edges.targets.len(),
        sorted = edges.sorted,
        "follows read"
    );
    let (users, graph, followers, duplicate_follows) = edges.finish()?;
    Ok(Follows {
        users,
        graph,
        followers,
        table,
        self_follows,
        duplicate_follows,
    })
}

/// Hands every good row of a slice that is not a self-follow to `row`,
/// counting the self-follows of the shard's users.
fn each_row(
    part: &Part,
    shard: Shard,
    self_follows: &mut u64,
    mut row: impl FnMut(i64, i64, bool),
) -> Result<()> {
    let followers = part.ids("follower_id")?;
    let followees = part.ids("followee_id")?;
    let muted = part.bools("muted", false)?;
    let rows = followers.into_iter().zip(followees).zip(muted).enumerate();
    for (i, ((a, b), m)) in rows {
        if part.is_bad(i) {
            continue;
        }
        if a == b {
            *self_follows += u64::from(shard.owns(a));
        } else {
            row(a, b, m);
        }
    }
    Ok(())
}

/// Marks an edge that scoring walks (its followee is a supporter and its
/// follower is in the shard); only while loading.
const CANDIDATE: u8 = 4;
/// Marks a follow by a supporter: it tells whom the supporter follows
/// back; only while loading.
const BY_SUPPORTER: u8 = 8;

/// The follows so far, taken one follower's run at a time.
struct Edges<'a> {
    shard: Shard,
    supporters: Option<&'a IdSet>,
    /// The current run's follower (-1 before the first row).
    follower: i64,
    run: Vec<(i64, bool)>,
    /// Whether every row so far came in follower order.
    sorted: bool,
    /// Kept edges, by follower: `(follower, first index in targets)`,
    /// ascending; then each edge's followee and flags, ascending within a
    /// follower (9 bytes per kept edge).
    heads: Vec<(i64, usize)>,
    targets: Vec<i64>,
    flags: Vec<u8>,
    followers: Vec<i64>,
    duplicates: u64,
}

impl<'a> Edges<'a> {
    fn new(shard: Shard, supporters: Option<&'a IdSet>) -> Edges<'a> {
        Edges {
            shard,
            supporters,
            follower: -1,
            run: Vec::new(),
            sorted: true,
            heads: Vec::new(),
            targets: Vec::new(),
            flags: Vec::new(),
            followers: Vec::new(),
            duplicates: 0,
        }
    }

    /// Takes one follow row; false (and nothing more is taken) when the
    /// rows are not in follower order.
    #[inline]
    fn push(&mut self, a: i64, b: i64, muted: bool) -> bool {
        if a != self.follower {
            if a < self.follower {
                self.sorted = false;
                return false;
            }
            self.end_run();
            self.follower = a;
        }
        self.run.push((b, muted));
        true
    }

    #[inline]
    fn supports(&self, id: i64) -> bool {
        self.supporters.is_none_or(|s| s.contains(id))
    }

    /// Collapses the current run's repeats and keeps what is needed.
    fn end_run(&mut self) {
        if self.run.is_empty() {
            return;
        }
        let a = self.follower;
        let owned = self.shard.owns(a);
        let mut run = std::mem::take(&mut self.run);
        run.sort_unstable_by_key(|&(b, _)| b);
        let mut unique = 0;
        for i in 0..run.len() {
            if unique > 0 && run[unique - 1].0 == run[i].0 {
                run[unique - 1].1 |= run[i].1;
                self.duplicates += u64::from(owned);
            } else {
                run[unique] = run[i];
                unique += 1;
            }
        }
        run.truncate(unique);
        if owned {
            self.followers.push(a);
        }
        let first = self.targets.len();
        let by_supporter = if self.supports(a) { BY_SUPPORTER } else { 0 };
        for &(b, muted) in &run {
            let candidate = owned && self.supports(b);
            if candidate || (by_supporter != 0 && self.shard.owns(b)) {
                let muted = if muted { MUTED } else { 0 };
                let candidate = if candidate { CANDIDATE } else { 0 };
                self.targets.push(b);
                self.flags.push(muted | candidate | by_supporter);
            }
        }
        if self.targets.len() > first {
            self.heads.push((a, first));
        }
        run.clear();
        self.run = run;
    }

    /// The users, the graph, the dense followers and the duplicate count.
    fn finish(mut self) -> Result<(IdMap, FollowGraph, Vec<u32>, u64)> {
        self.end_run();
        let full = self.supporters.is_none();
        let mut ids = self.followers.clone();
        match self.supporters {
            // Every endpoint.
            None => {
                ids.extend_from_slice(&self.targets);
                ids.extend(self.heads.iter().map(|&(a, _)| a));
            }
            // The scored users and whoever can support them: a supporter's
            // follow of anyone else cannot matter.
            Some(supporters) => ids.extend(supporters.iter().map(|(_, id)| id)),
        }
        let users = IdMap::from_ids(ids)?;
        let (heads, targets, flags) = (&self.heads, &self.targets, &self.flags);
        let run = |i: usize| {
            let end = heads.get(i + 1).map_or(targets.len(), |h| h.1);
            heads[i].1..end
        };

        // (u, f) for every follow f -> u by a supporter, sorted: a walk
        // along it beside the edges (u, f) finds each one followed back.
        let mut back: Vec<(i64, i64)> = (0..heads.len())
            .into_par_iter()
            .flat_map_iter(|i| {
                let f = heads[i].0;
                run(i)
                    .filter(|&e| flags[e] & BY_SUPPORTER != 0)
                    .map(move |e| (targets[e], f))
            })
            .collect();
        back.par_sort_unstable();

        // A followee's dense index: through a table beside the supporters
        // when only their follows are walked.
        let supporter_dense: Vec<u32> = match self.supporters {
            None => Vec::new(),
            Some(supporters) => {
                let mut table = vec![u32::MAX; supporters.slot_count()];
                for (slot, id) in supporters.iter() {
                    table[slot] = users.index(id).expect("supporters are in the map");
                }
                table
            }
        };
        let followee = |b: i64| match self.supporters {
            None => users.index(b).expect("every endpoint is in the map"),
            Some(supporters) => supporter_dense[supporters.slot(b).expect("a supporter")],
        };

        // The graph's edges, dense; dense order is id order, so they stay
        // sorted by follower, then followee.
        let mut edges = Vec::new();
        let mut next = 0;
        for (i, &(a, _)) in heads.iter().enumerate() {
            let mut dense_a = None;
            for e in run(i) {
                if !full && flags[e] & (CANDIDATE | MUTED) != CANDIDATE {
                    continue;
                }
                let b = targets[e];
                while next < back.len() && back[next] < (a, b) {
                    next += 1;
                }
                let mutual = next < back.len() && back[next] == (a, b);
                let a = *dense_a
                    .get_or_insert_with(|| users.index(a).expect("followers are in the map"));
                let flags = (flags[e] & MUTED) | if mutual { MUTUAL } else { 0 };
                edges.push((a, followee(b), flags));
            }
        }
        drop((self.heads, self.targets, self.flags, back, supporter_dense));
        let graph = FollowGraph::from_sorted_edges(users.len(), &edges);
        let dense = |id: i64| users.index(id).expect("every follower is in the map");
        let followers = self.followers.iter().map(|&a| dense(a)).collect();
        Ok((users, graph, followers, self.duplicates))
    }
}
