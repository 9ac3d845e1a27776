//! The follows table into the follow graph, streamed.
//!
//! Every row is checked; self-follows are dropped and duplicate rows
//! collapse into one edge, muted if any of its rows is (both counted). The
//! table is read a slice of row groups at a time and never held whole: a
//! table sorted by follower (as `boughtby generate` writes it) is cut into
//! runs of one follower, each deduplicated on its own. One thread reads and
//! checks the slices and cuts them where a run ends (a run that goes on in
//! the next slice is carried over); workers take the runs in parallel, and
//! their chunks are joined in order. Any other order is detected at the
//! first follower that comes after a greater one; the table is then read
//! again, gathered and sorted (24 bytes per row while loading).
//!
//! A graph for scoring keeps only what scoring can use: the follows of an
//! account with a supporting purchase (a *supporter*), unmuted, each
//! flagged [`MUTUAL`] when followed back. To know "followed back", the
//! supporters' own follows are kept until the flags are set. Every other
//! follow is only counted: its follower is a scored user, and its
//! duplicates are counted, but it costs nothing afterwards.

use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
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
    let keep = Keep { shard, supporters };
    // Sorted by follower: one pass. This thread reads and checks the
    // slices and cuts them at runs; workers take the runs.
    let (streamed, mut edges) = keep.take_runs(|feed| {
        stream_table("follows", path, &columns, policy, slice_rows, |part| {
            Ok(match feed.feed(Rows::of(part)?) {
                true => ControlFlow::Continue(()),
                false => ControlFlow::Break(()),
            })
        })
    });
    let table = if edges.sorted {
        streamed?
    } else {
        // Any other order: gather what the shard needs, sort, then runs.
        tracing::debug!("follows are not sorted by follower: sorting them");
        let mut gathered: Vec<(i64, i64, bool)> = Vec::new();
        let table = stream_table("follows", path, &columns, policy, slice_rows, |part| {
            let rows = Rows::of(part)?;
            for i in 0..rows.a.len() {
                let (a, b) = (rows.a[i], rows.b[i]);
                if shard.owns(a) || shard.owns(b) {
                    gathered.push((a, b, rows.m[i]));
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        gathered.par_sort_unstable();
        let ((), sorted) = keep.take_runs(|feed| {
            for chunk in gathered.chunks(slice_rows) {
                feed.feed(Rows {
                    a: chunk.iter().map(|r| r.0).collect(),
                    b: chunk.iter().map(|r| r.1).collect(),
                    m: chunk.iter().map(|r| r.2).collect(),
                });
            }
        });
        debug_assert!(sorted.sorted);
        edges = sorted;
        table
    };
    tracing::debug!(
        rows = table.rows(),
        kept = edges.kept(),
        sorted = edges.sorted,
        "follows read"
    );
    let (users, graph, followers) = edges.finish(supporters)?;
    Ok(Follows {
        users,
        graph,
        followers,
        table,
        self_follows: edges.self_follows,
        duplicate_follows: edges.duplicates,
    })
}

/// One slice's good rows, as columns (self-follows included).
struct Rows {
    a: Vec<i64>,
    b: Vec<i64>,
    m: Vec<bool>,
}

impl Rows {
    const fn empty() -> Rows {
        Rows {
            a: Vec::new(),
            b: Vec::new(),
            m: Vec::new(),
        }
    }

    /// The slice's rows, checked; in skip mode without its bad rows.
    fn of(part: &Part) -> Result<Rows> {
        let mut rows = Rows {
            a: part.ids("follower_id")?,
            b: part.ids("followee_id")?,
            m: part.bools("muted", false)?,
        };
        if part.has_bad_rows() {
            let good: Vec<usize> = (0..rows.a.len()).filter(|&i| !part.is_bad(i)).collect();
            rows = Rows {
                a: good.iter().map(|&i| rows.a[i]).collect(),
                b: good.iter().map(|&i| rows.b[i]).collect(),
                m: good.iter().map(|&i| rows.m[i]).collect(),
            };
        }
        Ok(rows)
    }

    fn append(&mut self, other: &Rows, range: Range<usize>) {
        self.a.extend_from_slice(&other.a[range.clone()]);
        self.b.extend_from_slice(&other.b[range.clone()]);
        self.m.extend_from_slice(&other.m[range]);
    }
}

/// Whole runs for a worker: `head` (one follower's run carried over from
/// earlier slices, or nothing), then `body[range]`.
struct Job {
    seq: usize,
    head: Rows,
    body: Arc<Rows>,
    range: Range<usize>,
}

/// Cuts slices at runs: the last run of a slice may go on in the next one,
/// so it is carried over and handed out with the runs after it.
struct Feed {
    carry: Rows,
    seq: usize,
    send: SyncSender<Job>,
    /// Set by a worker that found rows out of follower order.
    unsorted: Arc<AtomicBool>,
}

impl Feed {
    /// Hands out the whole runs of `rows`; false once the rows are known
    /// to be out of order (nothing more is taken).
    fn feed(&mut self, rows: Rows) -> bool {
        if self.unsorted.load(Ordering::Relaxed) {
            return false;
        }
        let n = rows.a.len();
        // Where the carried follower's rows end, and where the last run starts.
        let carried = self.carry.a.first().copied();
        let head_end = match carried {
            Some(x) => rows.a.iter().position(|&a| a != x).unwrap_or(n),
            None => 0,
        };
        let Some(&last) = rows.a.last() else {
            return true;
        };
        if head_end == n {
            self.carry.append(&rows, 0..n);
            return true;
        }
        let tail = n - rows.a.iter().rev().position(|&a| a != last).unwrap_or(n);
        let tail = tail.max(head_end);
        let mut head = std::mem::replace(&mut self.carry, Rows::empty());
        head.append(&rows, 0..head_end);
        self.carry.append(&rows, tail..n);
        self.send(head, Arc::new(rows), head_end..tail)
    }

    fn send(&mut self, head: Rows, body: Arc<Rows>, range: Range<usize>) -> bool {
        let job = Job {
            seq: self.seq,
            head,
            body,
            range,
        };
        self.seq += 1;
        self.send.send(job).is_ok()
    }

    /// Hands out the last run.
    fn finish(mut self) {
        let head = std::mem::replace(&mut self.carry, Rows::empty());
        self.send(head, Arc::new(Rows::empty()), 0..0);
    }
}

/// What the shard keeps of the follows.
#[derive(Clone, Copy)]
struct Keep<'a> {
    shard: Shard,
    supporters: Option<&'a IdSet>,
}

impl Keep<'_> {
    #[inline]
    fn supports(&self, id: i64) -> bool {
        self.supporters.is_none_or(|s| s.contains(id))
    }

    /// Runs `produce` with a feed on this thread while workers take the
    /// runs it hands out; returns its result and the runs taken, in order.
    fn take_runs<T: Send>(&self, produce: impl FnOnce(&mut Feed) -> T + Send) -> (T, Edges) {
        let workers = rayon::current_num_threads().max(1);
        let unsorted = Arc::new(AtomicBool::new(false));
        let (send, receive) = mpsc::sync_channel::<Job>(workers);
        let receive = Mutex::new(receive);
        let taken = Mutex::new(Vec::new());
        let produced = thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    let mut scratch = Vec::new();
                    loop {
                        let job = receive.lock().expect("no worker panics").recv();
                        let Ok(job) = job else { break };
                        let mut chunk = Chunk::default();
                        let head = &job.head;
                        let sorted = chunk.take(self, head, 0..head.a.len(), &mut scratch)
                            && chunk.take(self, &job.body, job.range.clone(), &mut scratch);
                        if !sorted {
                            unsorted.store(true, Ordering::Relaxed);
                        }
                        taken
                            .lock()
                            .expect("no worker panics")
                            .push((job.seq, chunk));
                    }
                });
            }
            let mut feed = Feed {
                carry: Rows::empty(),
                seq: 0,
                send,
                unsorted: unsorted.clone(),
            };
            let produced = produce(&mut feed);
            feed.finish();
            produced
        });
        let mut chunks = taken.into_inner().expect("no worker panics");
        chunks.sort_unstable_by_key(|c| c.0);
        let chunks: Vec<Chunk> = chunks.into_iter().map(|c| c.1).collect();
        // Runs in order within each chunk; across chunks, each starts after
        // the one before ends.
        let mut sorted = !unsorted.load(Ordering::Relaxed);
        let mut last = -1;
        for chunk in chunks.iter().filter(|c| c.rows > 0) {
            sorted &= last < chunk.first;
            last = chunk.last;
        }
        let edges = Edges {
            sorted,
            self_follows: chunks.iter().map(|c| c.self_follows).sum(),
            duplicates: chunks.iter().map(|c| c.duplicates).sum(),
            chunks,
        };
        (produced, edges)
    }
}

/// Marks an edge that scoring walks (its followee is a supporter and its
/// follower is in the shard); only while loading.
const CANDIDATE: u8 = 4;
/// Marks a follow by a supporter: it tells whom the supporter follows
/// back; only while loading.
const BY_SUPPORTER: u8 = 8;

/// The runs of one job: what they keep, and what they counted.
#[derive(Default)]
struct Chunk {
    /// Rows seen, and the first and last follower among them.
    rows: usize,
    first: i64,
    last: i64,
    /// Kept edges, by follower: `(follower, first index in targets)`,
    /// ascending; then each edge's followee and flags, ascending within a
    /// follower (9 bytes per kept edge).
    heads: Vec<(i64, usize)>,
    targets: Vec<i64>,
    flags: Vec<u8>,
    /// The shard's followers with a follow that is not a self-follow.
    followers: Vec<i64>,
    self_follows: u64,
    duplicates: u64,
}

impl Chunk {
    /// Takes the runs of `rows[range]`; false when a follower comes after
    /// a greater one.
    fn take(
        &mut self,
        keep: &Keep,
        rows: &Rows,
        range: Range<usize>,
        scratch: &mut Vec<(i64, bool)>,
    ) -> bool {
        let (a, b, m) = (
            &rows.a[range.clone()],
            &rows.b[range.clone()],
            &rows.m[range],
        );
        let Some(&first) = a.first() else {
            return true;
        };
        if self.rows == 0 {
            self.first = first;
        } else if first <= self.last {
            return false;
        }
        self.rows += a.len();
        let mut start = 0;
        while start < a.len() {
            let follower = a[start];
            let end = start
                + a[start..]
                    .iter()
                    .position(|&x| x != follower)
                    .unwrap_or(a.len() - start);
            if end < a.len() && a[end] < follower {
                return false;
            }
            self.run(keep, follower, &b[start..end], &m[start..end], scratch);
            start = end;
        }
        self.last = a[a.len() - 1];
        true
    }

    /// One follower's rows: collapses repeats, drops self-follows, keeps
    /// what is needed.
    fn run(
        &mut self,
        keep: &Keep,
        a: i64,
        followees: &[i64],
        muted: &[bool],
        scratch: &mut Vec<(i64, bool)>,
    ) {
        let owned = keep.shard.owns(a);
        scratch.clear();
        scratch.extend(followees.iter().copied().zip(muted.iter().copied()));
        if !followees.is_sorted() {
            scratch.sort_unstable_by_key(|&(b, _)| b);
        }
        let first = self.targets.len();
        let by_supporter = if keep.supports(a) { BY_SUPPORTER } else { 0 };
        let mut followed = false;
        let mut i = 0;
        while i < scratch.len() {
            let (b, mut muted) = scratch[i];
            let mut j = i + 1;
            while j < scratch.len() && scratch[j].0 == b {
                muted |= scratch[j].1;
                j += 1;
            }
            if b == a {
                self.self_follows += u64::from(owned) * (j - i) as u64;
            } else {
                followed = true;
                self.duplicates += u64::from(owned) * (j - i - 1) as u64;
                let candidate = owned && keep.supports(b);
                if candidate || (by_supporter != 0 && keep.shard.owns(b)) {
                    let muted = if muted { MUTED } else { 0 };
                    let candidate = if candidate { CANDIDATE } else { 0 };
                    self.targets.push(b);
                    self.flags.push(muted | candidate | by_supporter);
                }
            }
            i = j;
        }
        if owned && followed {
            self.followers.push(a);
        }
        if self.targets.len() > first {
            self.heads.push((a, first));
        }
    }

    /// The targets of head `i`.
    fn run_of(&self, i: usize) -> Range<usize> {
        let end = self.heads.get(i + 1).map_or(self.targets.len(), |h| h.1);
        self.heads[i].1..end
    }
}

/// The follows taken, in follower order.
struct Edges {
    sorted: bool,
    chunks: Vec<Chunk>,
    self_follows: u64,
    duplicates: u64,
}

impl Edges {
    fn kept(&self) -> usize {
        self.chunks.iter().map(|c| c.targets.len()).sum()
    }

    /// The users, the graph and the dense followers.
    fn finish(&mut self, supporters: Option<&IdSet>) -> Result<(IdMap, FollowGraph, Vec<u32>)> {
        let chunks = std::mem::take(&mut self.chunks);
        let full = supporters.is_none();
        let mut ids: Vec<i64> = chunks
            .iter()
            .flat_map(|c| c.followers.iter().copied())
            .collect();
        match supporters {
            // Every endpoint.
            None => {
                for c in &chunks {
                    ids.extend_from_slice(&c.targets);
                    ids.extend(c.heads.iter().map(|&(a, _)| a));
                }
            }
            // The scored users and whoever can support them: a supporter's
            // follow of anyone else cannot matter.
            Some(supporters) => ids.extend(supporters.iter().map(|(_, id)| id)),
        }
        let users = IdMap::from_ids(ids)?;

        // (u, f) for every follow f -> u by a supporter, sorted: a walk
        // along it beside the edges (u, f) finds each one followed back.
        let mut back: Vec<(i64, i64)> = chunks
            .par_iter()
            .flat_map_iter(|c| {
                (0..c.heads.len()).flat_map(move |i| {
                    let f = c.heads[i].0;
                    c.run_of(i)
                        .filter(|&e| c.flags[e] & BY_SUPPORTER != 0)
                        .map(move |e| (c.targets[e], f))
                })
            })
            .collect();
        back.par_sort_unstable();

        // A followee's dense index: through a table beside the supporters
        // when only their follows are walked.
        let supporter_dense: Vec<u32> = match supporters {
            None => Vec::new(),
            Some(supporters) => {
                let mut table = vec![u32::MAX; supporters.slot_count()];
                for (slot, id) in supporters.iter() {
                    table[slot] = users.index(id).expect("supporters are in the map");
                }
                table
            }
        };
        let followee = |b: i64| match supporters {
            None => users.index(b).expect("every endpoint is in the map"),
            Some(supporters) => supporter_dense[supporters.slot(b).expect("a supporter")],
        };

        // The graph's edges, dense; dense order is id order, so they stay
        // sorted by follower, then followee.
        let mut edges = Vec::new();
        let mut next = 0;
        for c in &chunks {
            for (i, &(a, _)) in c.heads.iter().enumerate() {
                let mut dense_a = None;
                for e in c.run_of(i) {
                    if !full && c.flags[e] & (CANDIDATE | MUTED) != CANDIDATE {
                        continue;
                    }
                    let b = c.targets[e];
                    while next < back.len() && back[next] < (a, b) {
                        next += 1;
                    }
                    let mutual = next < back.len() && back[next] == (a, b);
                    let a = *dense_a
                        .get_or_insert_with(|| users.index(a).expect("followers are in the map"));
                    let flags = (c.flags[e] & MUTED) | if mutual { MUTUAL } else { 0 };
                    edges.push((a, followee(b), flags));
                }
            }
        }
        drop((back, supporter_dense));
        let dense = |id: i64| users.index(id).expect("every follower is in the map");
        let followers = chunks
            .iter()
            .flat_map(|c| c.followers.iter().map(|&a| dense(a)))
            .collect();
        drop(chunks);
        let graph = FollowGraph::from_sorted_edges(users.len(), &edges);
        Ok((users, graph, followers))
    }
}
