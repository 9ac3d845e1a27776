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
//! account with a supporting purchase (a *supporter*), each flagged
//! [`MUTED`] when muted (the social-proof filter decides what a mute
//! does) and [`MUTUAL`] when followed back. Every other follow is only
//! counted: its follower is a scored user, and its duplicates are counted,
//! but it costs nothing afterwards.
//!
//! "Followed back" is decided here, once, and every reader of the graph
//! takes it from [`MUTUAL`]: for a follow u → f it is the table's
//! `followed_back` column when the table has one (true if any duplicate
//! row says so, a null false; the reverse rows are not consulted), and
//! otherwise whether the table also holds f → u. Deriving it needs the
//! supporters' own follows, kept until the flags are set, and so every
//! shard reads the whole table; with the column a shard needs only its own
//! followers' rows, which is what lets a partitioned table (see
//! [`crate::load::partitions`]) be read a partition at a time.

use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use polars_buffer::Buffer;
use rayon::prelude::*;

use crate::config::BadRowPolicy;
use crate::error::{Error, Result};
use crate::graph::{FollowGraph, MUTED, MUTUAL};
use crate::ids::{IdMap, IdSet};
use crate::load::partitions::Partitioned;
use crate::load::tables::{Part, Table, stream_table};
use crate::memory::{huge_filled, huge_vec};
use crate::shard::Shard;

/// The optional column that says whether a follow is followed back.
pub const FOLLOWED_BACK: &str = "followed_back";

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
    slice_rows: usize,
    shard: Shard,
    supporters: Option<&IdSet>,
) -> Result<Follows> {
    let slice_rows = slice_rows.max(1);
    match supporters {
        Some(set) => read(path, policy, slice_rows, shard, &Scoring::new(set)),
        None => {
            debug_assert_eq!(shard.count, 1, "a full graph is for the whole run");
            read(path, policy, slice_rows, Shard::WHOLE, &Full)
        }
    }
}

fn read<S: Scope>(
    path: &Path,
    policy: BadRowPolicy,
    slice_rows: usize,
    shard: Shard,
    scope: &S,
) -> Result<Follows> {
    let (table, mut edges) = match Partitioned::detect("follows", path)? {
        None => read_source(path, None, policy, slice_rows, shard, scope)?,
        Some(layout) => {
            // Only the partitions the run reads are opened; the others
            // are listed for the input snapshot.
            let listing = layout.listing("follows")?;
            let mut table = Table {
                name: "follows",
                path: path.to_path_buf(),
                bytes: listing.iter().map(|f| f.1).sum(),
                parts: Vec::new(),
                bytes_read: 0,
                listing: Some(listing),
                shard_rows: shard.count > 1,
            };
            let mut all: Option<Edges<S::Key>> = None;
            for index in layout.to_read("follows", shard)? {
                let partition = Shard {
                    index,
                    count: layout.count,
                };
                let dir = layout.dir(index);
                let (read, edges) =
                    read_source(&dir, Some(partition), policy, slice_rows, shard, scope)?;
                table.parts.extend(read.parts);
                table.bytes_read += read.bytes_read;
                all = Some(match all {
                    None => edges,
                    Some(mut all) => {
                        all.merge(edges);
                        all
                    }
                });
            }
            let edges = all.ok_or_else(|| {
                Error::Internal("a partitioned table has at least one partition".into())
            })?;
            (table, edges)
        }
    };
    tracing::debug!(
        rows = table.rows(),
        kept = edges.kept(),
        sorted = edges.sorted,
        bytes_read = table.bytes_read,
        "follows read"
    );
    let (users, graph, followers) = edges.finish(scope)?;
    Ok(Follows {
        users,
        graph,
        followers,
        table,
        self_follows: edges.self_follows,
        duplicate_follows: edges.duplicates,
    })
}

/// Reads one source of follows — the table, or one partition of it —
/// into runs: sorted by follower, in one pass, where this thread reads and
/// checks the slices and cuts them at runs and workers take the runs; in
/// any other order, a second pass gathers what the shard needs and sorts
/// it. Rows of a partition are checked to belong to it.
fn read_source<S: Scope>(
    path: &Path,
    partition: Option<Shard>,
    policy: BadRowPolicy,
    slice_rows: usize,
    shard: Shard,
    scope: &S,
) -> Result<(Table, Edges<S::Key>)> {
    let columns = ["follower_id", "followee_id", "muted", FOLLOWED_BACK];
    // The table's slices, checked, in order; every part must agree on
    // whether it has `followed_back` (`given`).
    let read = |given: &mut Option<bool>, each: &mut dyn FnMut(Rows) -> Result<ControlFlow<()>>| {
        let convert = |part: &Part| Rows::of(part, partition);
        stream_table(
            "follows",
            path,
            &columns,
            policy,
            slice_rows,
            convert,
            |part, rows| {
                check_given(part, &rows, given)?;
                each(rows)
            },
        )
    };
    let mut given = None;
    let (streamed, edges) = take_runs(shard, scope, |feed| {
        read(&mut given, &mut |rows| {
            Ok(match feed.feed(rows) {
                true => ControlFlow::Continue(()),
                false => ControlFlow::Break(()),
            })
        })
    });
    if edges.sorted {
        return Ok((streamed?, edges));
    }
    tracing::debug!("follows are not sorted by follower: sorting them");
    let mut given = None;
    let mut gathered: Vec<(i64, i64, u8)> = Vec::new();
    let table = read(&mut given, &mut |rows| {
        for i in 0..rows.a.len() {
            let (a, b) = (rows.a[i], rows.b[i]);
            // Without the column, the rows pointing at the shard's users
            // tell who follows them back.
            if shard.owns(a) || (!rows.given && shard.owns(b)) {
                gathered.push((a, b, rows.m[i]));
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    gathered.par_sort_unstable();
    let given = given.unwrap_or(false);
    let ((), sorted) = take_runs(shard, scope, |feed| {
        for chunk in gathered.chunks(slice_rows) {
            feed.feed(Rows {
                a: chunk.iter().map(|r| r.0).collect::<Vec<_>>().into(),
                b: chunk.iter().map(|r| r.1).collect::<Vec<_>>().into(),
                m: chunk.iter().map(|r| r.2).collect(),
                given,
            });
        }
    });
    debug_assert!(sorted.sorted);
    Ok((table, sorted))
}

/// One slice's good rows, as columns (self-follows included): each row's
/// flags are [`MUTED`] and, from the `followed_back` column, [`MUTUAL`].
/// The ids are shared with the frame they were decoded into (not copied),
/// and a run carried over shares them with its slice.
struct Rows {
    a: Buffer<i64>,
    b: Buffer<i64>,
    m: Vec<u8>,
    /// The table has `followed_back`: it alone says who follows back.
    given: bool,
}

impl Rows {
    const fn empty() -> Rows {
        Rows {
            a: Buffer::new(),
            b: Buffer::new(),
            m: Vec::new(),
            given: false,
        }
    }

    /// The slice's rows, checked; in skip mode without its bad rows.
    ///
    /// Skipping fails closed: `muted` is protective (a bad value fails
    /// whatever `on_bad_rows` says), and so is a bad row that mutes, since
    /// dropping it could unmute a duplicate of the same follow.
    ///
    /// `given` is whether the part has `followed_back` (every part must
    /// agree: [`check_given`]). In a `partition` the column is required
    /// and every follower must belong to the partition.
    fn of(part: &Part, partition: Option<Shard>) -> Result<Rows> {
        let has = part.has_column(FOLLOWED_BACK);
        if let Some(p) = partition.filter(|_| !has) {
            let problem = format!(
                "required column is missing: every partition of follows partitioned by shard \
                 carries followed_back (partition shard={} of {})",
                p.index, p.count
            );
            return Err(part.fault(FOLLOWED_BACK, None, None, problem));
        }
        let a = part.ids_shared("follower_id")?;
        if let Some(p) = partition {
            let wrong = (0..a.len()).find(|&i| !p.owns(a[i]) && !part.is_bad(i));
            if let Some(i) = wrong {
                let home = Shard::index_of(a[i], p.count);
                let problem = format!(
                    "row in the wrong partition: follower {} is in shard {home} of {}, \
                     so its rows belong in shard={home}, not shard={}",
                    a[i], p.count, p.index
                );
                return Err(part.fault("follower_id", Some(i), Some(a[i].to_string()), problem));
            }
        }
        let mut m = vec![0; a.len()];
        part.mark_bools("muted", true, MUTED, &mut m)?;
        if has {
            part.mark_bools(FOLLOWED_BACK, false, MUTUAL, &mut m)?;
        }
        let mut rows = Rows {
            a,
            b: part.ids_shared("followee_id")?,
            m,
            given: has,
        };
        if part.has_bad_rows() {
            if let Some(row) = (0..rows.a.len()).find(|&i| rows.m[i] & MUTED != 0 && part.is_bad(i))
            {
                let problem = "a bad row that mutes a follow is never skipped \
                               (skipping it could unmute that follow)";
                return Err(part.fault("muted", Some(row), Some("true".into()), problem.into()));
            }
            let good: Vec<usize> = (0..rows.a.len()).filter(|&i| !part.is_bad(i)).collect();
            rows = Rows {
                a: good.iter().map(|&i| rows.a[i]).collect::<Vec<_>>().into(),
                b: good.iter().map(|&i| rows.b[i]).collect::<Vec<_>>().into(),
                m: good.iter().map(|&i| rows.m[i]).collect(),
                given: has,
            };
        }
        Ok(rows)
    }

    /// Appends `other[range]`: shared with `other` when these rows are
    /// empty, copied when they are not.
    fn append(&mut self, other: &Rows, range: Range<usize>) {
        fn joined(ids: &Buffer<i64>, other: &Buffer<i64>, range: Range<usize>) -> Buffer<i64> {
            if ids.is_empty() {
                return other.clone().sliced(range);
            }
            let mut joined = Vec::with_capacity(ids.len() + range.len());
            joined.extend_from_slice(ids);
            joined.extend_from_slice(&other[range]);
            joined.into()
        }
        self.a = joined(&self.a, &other.a, range.clone());
        self.b = joined(&self.b, &other.b, range.clone());
        self.m.extend_from_slice(&other.m[range]);
    }
}

/// Whether the table has `followed_back`, as its first part said: every
/// part must agree.
fn check_given(part: &Part, rows: &Rows, given: &mut Option<bool>) -> Result<()> {
    let has = rows.given;
    if *given.get_or_insert(has) == has {
        return Ok(());
    }
    let problem = if has {
        "this part has the column and the parts before it do not: a table has \
         followed_back in every part or in none"
    } else {
        "this part lacks the column and the parts before it have it: a table has \
         followed_back in every part or in none"
    };
    Err(part.fault(FOLLOWED_BACK, None, None, problem.into()))
}

/// Whole runs for a worker: `head` (one follower's run carried over from
/// earlier slices, or nothing), then `body[range]`.
struct Job {
    seq: usize,
    /// The rows carry `followed_back`.
    given: bool,
    head: Rows,
    body: Arc<Rows>,
    range: Range<usize>,
}

/// Cuts slices at runs: the last run of a slice may go on in the next one,
/// so it is carried over and handed out with the runs after it.
struct Feed {
    carry: Rows,
    /// The last rows fed carried `followed_back`.
    given: bool,
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
        self.given = rows.given;
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
            given: self.given,
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

/// The dense index of an id the map should hold but does not (checked
/// before the graph is built: an internal error, never a panic).
const MISSING: u32 = u32::MAX;

/// What a load keeps of the follows (see the module).
trait Scope: Sync {
    /// How a kept edge names its followee.
    type Key: Copy + Ord + Send + Sync + Default;

    /// Appends, for each followee of one of the shard's followers, its key
    /// when the follow is kept. Muted follows are kept (flagged): the mute
    /// is the social-proof filter's rule, applied and counted there.
    fn candidates(&self, followees: &[i64], keys: &mut Vec<Option<Self::Key>>);

    /// The follower's key when its own follows tell whom it follows back.
    fn follows_back(&self, follower: i64) -> Option<Self::Key>;

    /// The ids the graph knows besides the scored users.
    fn more_ids(&self, chunks: &[Chunk<Self::Key>]) -> Vec<i64>;

    /// A key's dense index.
    fn dense<'s>(&'s self, users: &'s IdMap) -> impl Fn(Self::Key) -> u32 + Sync + 's;

    /// Keys that number `0..n` (supporters' ranks): `Some(n)`; ids: `None`.
    fn numbered(&self) -> Option<usize>;

    /// A key's number when keys are numbered (see [`Scope::numbered`]).
    fn number(&self, key: Self::Key) -> Option<usize>;
}

/// Every follow, by id: validate, eval and explain ask about any pair.
/// Only with the whole shard.
struct Full;

impl Scope for Full {
    type Key = i64;

    fn candidates(&self, followees: &[i64], keys: &mut Vec<Option<i64>>) {
        keys.extend(followees.iter().copied().map(Some));
    }

    fn follows_back(&self, follower: i64) -> Option<i64> {
        Some(follower)
    }

    fn more_ids(&self, chunks: &[Chunk<i64>]) -> Vec<i64> {
        let heads = chunks.iter().flat_map(|c| c.heads.iter().map(|h| h.0));
        let targets = chunks.iter().flat_map(|c| c.targets.iter().copied());
        heads.chain(targets).collect()
    }

    fn dense<'s>(&'s self, users: &'s IdMap) -> impl Fn(i64) -> u32 + Sync + 's {
        |id| users.index(id).unwrap_or(MISSING)
    }

    fn numbered(&self) -> Option<usize> {
        None
    }

    fn number(&self, _: i64) -> Option<usize> {
        None
    }
}

/// The follows of supporters, each supporter named by its rank
/// among them in id order (so ranks sort like ids, in 4 bytes).
struct Scoring {
    /// The supporters, each slot holding its id's rank.
    set: IdSet<u32>,
    /// Ids by rank, ascending.
    ids: Vec<i64>,
}

impl Scoring {
    fn new(set: &IdSet) -> Scoring {
        let (set, ids) = set.ranked();
        Scoring { set, ids }
    }

    #[inline]
    fn rank(&self, id: i64) -> Option<u32> {
        self.set.get(id)
    }
}

impl Scope for Scoring {
    type Key = u32;

    fn candidates(&self, followees: &[i64], keys: &mut Vec<Option<u32>>) {
        self.set.get_each(followees, keys);
    }

    #[inline]
    fn follows_back(&self, follower: i64) -> Option<u32> {
        self.rank(follower)
    }

    fn more_ids(&self, _: &[Chunk<u32>]) -> Vec<i64> {
        self.ids.clone()
    }

    fn dense<'s>(&'s self, users: &'s IdMap) -> impl Fn(u32) -> u32 + Sync + 's {
        // Read at random, once per kept edge: on huge pages.
        let mut by_rank: Vec<u32> = huge_vec(self.ids.len());
        by_rank.extend(
            self.ids
                .iter()
                .map(|&id| users.index(id).unwrap_or(MISSING)),
        );
        move |rank| by_rank.get(rank as usize).copied().unwrap_or(MISSING)
    }

    fn numbered(&self) -> Option<usize> {
        Some(self.ids.len())
    }

    #[inline]
    fn number(&self, rank: u32) -> Option<usize> {
        Some(rank as usize)
    }
}

/// Runs `produce` with a feed on this thread while workers take the runs
/// it hands out; returns its result and the runs taken, in order.
fn take_runs<S: Scope, T: Send>(
    shard: Shard,
    scope: &S,
    produce: impl FnOnce(&mut Feed) -> T + Send,
) -> (T, Edges<S::Key>) {
    let workers = rayon::current_num_threads().max(1);
    let unsorted = Arc::new(AtomicBool::new(false));
    let (send, receive) = mpsc::sync_channel::<Job>(workers);
    let receive = Mutex::new(receive);
    let taken = Mutex::new(Vec::new());
    let produced = thread::scope(|threads| {
        for _ in 0..workers {
            threads.spawn(|| {
                let mut scratch = Scratch {
                    keys: Vec::new(),
                    rows: Vec::new(),
                };
                let mut sizes = Sizes::default();
                loop {
                    // A poisoned lock means a worker panicked, which the
                    // scope re-raises: nothing is lost by going on.
                    let job = receive
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .recv();
                    let Ok(job) = job else { break };
                    let head = &job.head;
                    let rows = head.a.len() + job.range.len();
                    let mut chunk = Taking::new(shard, scope, job.given, sizes.guess(rows));
                    let sorted = chunk.take(head, 0..head.a.len(), &mut scratch)
                        && chunk.take(&job.body, job.range.clone(), &mut scratch);
                    if !sorted {
                        unsorted.store(true, Ordering::Relaxed);
                    }
                    let chunk = chunk.done();
                    sizes = Sizes::of(&chunk);
                    taken
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push((job.seq, chunk));
                }
            });
        }
        let mut feed = Feed {
            carry: Rows::empty(),
            given: false,
            seq: 0,
            send,
            unsorted: unsorted.clone(),
        };
        let produced = produce(&mut feed);
        feed.finish();
        produced
    });
    let mut chunks = taken
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    chunks.sort_unstable_by_key(|c| c.0);
    let chunks: Vec<Chunk<S::Key>> = chunks.into_iter().map(|c| c.1).collect();
    // Runs in order within each chunk; across chunks, each starts after the
    // one before ends.
    let mut sorted = !unsorted.load(Ordering::Relaxed);
    let mut last = -1;
    for chunk in chunks.iter().filter(|c| c.rows > 0) {
        sorted &= last < chunk.first;
        last = chunk.last;
    }
    let edges = Edges {
        sorted,
        merged: false,
        self_follows: chunks.iter().map(|c| c.self_follows).sum(),
        duplicates: chunks.iter().map(|c| c.duplicates).sum(),
        chunks,
        reverse_batch: REVERSE_BATCH,
    };
    (produced, edges)
}

/// The runs of one job: what they keep, and what they counted.
struct Chunk<K> {
    /// Rows seen, and the first and last follower among them.
    rows: usize,
    first: i64,
    last: i64,
    /// Kept edges, by follower: `(follower, first index in targets)`,
    /// ascending; then each edge's followee key and flags, ascending within
    /// a follower.
    heads: Vec<(i64, usize)>,
    targets: Vec<K>,
    flags: Vec<u8>,
    /// The follows that tell who follows back, one list per follower whose
    /// own follows count (every follower in a full load, each supporter
    /// when scoring): `(follower key, first index in back)`, ascending;
    /// then the followees (of the shard), ascending within a follower.
    lists: Vec<(K, u32)>,
    back: Vec<i64>,
    /// The shard's followers with a follow that is not a self-follow.
    followers: Vec<i64>,
    self_follows: u64,
    duplicates: u64,
}

/// A worker's buffers for one follower's run: the followees' keys, then
/// the rows with their keys, to be sorted and collapsed.
struct Scratch<K> {
    keys: Vec<Option<K>>,
    rows: Vec<(i64, u8, Option<K>)>,
}

/// The lengths of a chunk's vectors, per row taken. A worker starts each
/// chunk's vectors at what its last chunk needed for as many rows, with a
/// margin: grown by doubling from empty, each would be copied a few times
/// over into fresh memory (1.4% of a medium run's CPU samples).
#[derive(Clone, Copy, Default)]
struct Sizes {
    rows: usize,
    heads: usize,
    targets: usize,
    lists: usize,
    back: usize,
    followers: usize,
}

impl Sizes {
    fn of<K>(c: &Chunk<K>) -> Sizes {
        Sizes {
            rows: c.rows,
            heads: c.heads.len(),
            targets: c.targets.len(),
            lists: c.lists.len(),
            back: c.back.len(),
            followers: c.followers.len(),
        }
    }

    /// The lengths to reserve for `rows` rows: the last chunk's, scaled to
    /// `rows`, and an eighth more; none before the first chunk.
    fn guess(&self, rows: usize) -> Sizes {
        let scale = |n: usize| match self.rows {
            0 => 0,
            // In u128, so that no product overflows.
            seen => (n as u128 * rows as u128 * 9 / 8 / seen as u128) as usize,
        };
        Sizes {
            rows,
            heads: scale(self.heads),
            targets: scale(self.targets),
            lists: scale(self.lists),
            back: scale(self.back),
            followers: scale(self.followers),
        }
    }
}

/// A chunk being taken, with what it needs to know.
struct Taking<'a, S: Scope> {
    shard: Shard,
    scope: &'a S,
    /// The rows carry `followed_back`: no follow-back lists are kept.
    given: bool,
    chunk: Chunk<S::Key>,
}

impl<'a, S: Scope> Taking<'a, S> {
    /// A chunk whose vectors start with room for `sizes`.
    fn new(shard: Shard, scope: &'a S, given: bool, sizes: Sizes) -> Taking<'a, S> {
        Taking {
            shard,
            scope,
            given,
            chunk: Chunk {
                rows: 0,
                first: 0,
                last: 0,
                heads: Vec::with_capacity(sizes.heads),
                targets: Vec::with_capacity(sizes.targets),
                flags: Vec::with_capacity(sizes.targets),
                lists: Vec::with_capacity(sizes.lists),
                back: Vec::with_capacity(sizes.back),
                followers: Vec::with_capacity(sizes.followers),
                self_follows: 0,
                duplicates: 0,
            },
        }
    }

    /// The chunk, its vectors trimmed to their length (they grew by
    /// doubling, and all chunks together hold every kept follow).
    fn done(self) -> Chunk<S::Key> {
        let mut c = self.chunk;
        c.heads.shrink_to_fit();
        c.targets.shrink_to_fit();
        c.flags.shrink_to_fit();
        c.lists.shrink_to_fit();
        c.back.shrink_to_fit();
        c.followers.shrink_to_fit();
        c
    }

    /// Takes the runs of `rows[range]`; false when a follower comes after
    /// a greater one.
    fn take(&mut self, rows: &Rows, range: Range<usize>, scratch: &mut Scratch<S::Key>) -> bool {
        let (a, b, m) = (
            &rows.a[range.clone()],
            &rows.b[range.clone()],
            &rows.m[range],
        );
        let Some(&first) = a.first() else {
            return true;
        };
        let c = &mut self.chunk;
        if c.rows == 0 {
            c.first = first;
        } else if first <= c.last {
            return false;
        }
        c.rows += a.len();
        c.last = a[a.len() - 1];
        // With the whole shard every follower is the shard's, so the keys
        // of a window of the range's followees (about WINDOW rows, whole
        // runs) are looked up at once: the look-ups of many short runs
        // overlap, and the window's keys and followees are still in the
        // cache when its runs are taken. Else run by run, for the shard's
        // followers only.
        const WINDOW: usize = 16_384;
        let whole = self.shard.count == 1;
        let Scratch { keys, rows: sorted } = scratch;
        let mut window = 0..0;
        let mut start = 0;
        while start < a.len() {
            if whole && start >= window.end {
                // The window ends where a run does (or with the range).
                let mut end = (start + WINDOW).min(a.len());
                let last = a[end - 1];
                end += a[end..]
                    .iter()
                    .position(|&x| x != last)
                    .unwrap_or(a.len() - end);
                window = start..end;
                keys.clear();
                self.scope.candidates(&b[window.clone()], keys);
            }
            let follower = a[start];
            let len = a[start..].iter().position(|&x| x != follower);
            let end = start + len.unwrap_or(a.len() - start);
            if end < a.len() && a[end] < follower {
                return false;
            }
            let followees = &b[start..end];
            let run_keys = match whole {
                true => &keys[start - window.start..end - window.start],
                false => {
                    keys.clear();
                    match self.shard.owns(follower) {
                        true => self.scope.candidates(followees, keys),
                        false => keys.resize(followees.len(), None),
                    }
                    &keys[..]
                }
            };
            self.run(follower, followees, &m[start..end], run_keys, sorted);
            start = end;
        }
        true
    }

    /// One follower's rows: collapses repeats (a flag of any repeat holds),
    /// drops self-follows, keeps what is needed.
    fn run(
        &mut self,
        a: i64,
        followees: &[i64],
        flags: &[u8],
        keys: &[Option<S::Key>],
        scratch: &mut Vec<(i64, u8, Option<S::Key>)>,
    ) {
        let (shard, scope, c) = (self.shard, self.scope, &mut self.chunk);
        let owned = shard.owns(a);
        // A run in strictly ascending followee order (as `generate`
        // writes it) is read where it lies; any other is copied and sorted
        // so that repeats sit together, then collapsed.
        let ascending = followees.windows(2).all(|w| w[0] < w[1]);
        let first = c.targets.len();
        let back = if self.given {
            None
        } else {
            scope.follows_back(a)
        };
        let back_start = c.back.len();
        let followed;
        if ascending {
            // No repeats, and a self-follow at most once: the rows on
            // either side of it are taken as they lie.
            let own = followees.binary_search(&a).ok();
            c.self_follows += u64::from(owned && own.is_some());
            followed = followees.len() > usize::from(own.is_some());
            let (before, after) = match own {
                Some(i) => (0..i, i + 1..followees.len()),
                None => (0..followees.len(), 0..0),
            };
            for side in [before, after] {
                for (&key, &flags) in keys[side.clone()].iter().zip(&flags[side.clone()]) {
                    if let Some(key) = key {
                        c.targets.push(key);
                        c.flags.push(flags);
                    }
                }
                if back.is_some() {
                    c.back
                        .extend(followees[side].iter().copied().filter(|&b| shard.owns(b)));
                }
            }
        } else {
            // Copied and sorted, so that repeats sit together.
            scratch.clear();
            scratch.extend(
                followees
                    .iter()
                    .zip(flags)
                    .zip(keys.iter())
                    .map(|((&b, &f), &k)| (b, f, k)),
            );
            scratch.sort_unstable_by_key(|&(b, _, _)| b);
            let len = scratch.len();
            let mut any = false;
            let mut i = 0;
            while i < len {
                let (b, mut flags, key) = scratch[i];
                let mut j = i + 1;
                while j < len && scratch[j].0 == b {
                    flags |= scratch[j].1;
                    j += 1;
                }
                let rows = (j - i) as u64;
                i = j;
                if b == a {
                    c.self_follows += u64::from(owned) * rows;
                    continue;
                }
                any = true;
                c.duplicates += u64::from(owned) * (rows - 1);
                if let Some(key) = key {
                    c.targets.push(key);
                    c.flags.push(flags);
                }
                if back.is_some() && shard.owns(b) {
                    c.back.push(b);
                }
            }
            followed = any;
        }
        if owned && followed {
            c.followers.push(a);
        }
        if let Some(key) = back.filter(|_| c.back.len() > back_start) {
            c.lists.push((key, back_start as u32));
        }
        if c.targets.len() > first {
            c.heads.push((a, first));
        }
    }
}

fn missing() -> Error {
    Error::Internal("a follow's endpoint is missing from the id map".into())
}

/// The graph's rows, built in place from the chunks: each follower's row
/// length counted, the offsets summed, then each run copied into its row
/// with its followees made dense (dense order is id order, and rank order,
/// so a run stays ascending). Chunks in follower order fill disjoint
/// stretches of the rows in parallel; merged chunks (partitions, whose
/// followers interleave) fill them one after another.
fn rows<K: Copy + Send + Sync, S: Scope<Key = K>>(
    users: &IdMap,
    chunks: Vec<Chunk<K>>,
    scope: &S,
    merged: bool,
) -> Result<FollowGraph> {
    let total = chunks.iter().map(|c| c.targets.len()).sum::<usize>();
    if total >= u32::MAX as usize {
        return Err(Error::Internal(format!(
            "{total} kept follows do not fit the graph's 32-bit offsets"
        )));
    }
    let heads: Vec<Vec<u32>> = chunks
        .par_iter()
        .map(|c| {
            let ids: Vec<i64> = c.heads.iter().map(|h| h.0).collect();
            users.indices(&ids, MISSING)
        })
        .collect();
    // The graph's arrays, read at random by the follow-backs and scoring,
    // on huge pages (see `memory`).
    let mut offsets = huge_filled(users.len() + 1, 0u32);
    for (c, heads) in chunks.iter().zip(&heads) {
        for (i, &a) in heads.iter().enumerate() {
            let length = offsets.get_mut(a as usize + 1).ok_or_else(missing)?;
            *length += c.run_of(i).len() as u32;
        }
    }
    for u in 0..users.len() {
        offsets[u + 1] += offsets[u];
    }
    let dense = scope.dense(users);
    let mut targets = huge_filled(total, 0u32);
    let mut flags = huge_filled(total, 0u8);
    // Copies chunk `c`'s runs into `targets`/`flags`, which start at row
    // offset `base`; a follower whose row is not exactly its run (two runs
    // of one follower) is a bug.
    let fill = |c: &Chunk<K>, heads: &[u32], base: usize, targets: &mut [u32], flags: &mut [u8]| {
        for (i, &a) in heads.iter().enumerate() {
            let run = c.run_of(i);
            let (start, end) = (
                offsets[a as usize] as usize,
                offsets[a as usize + 1] as usize,
            );
            let row = start.wrapping_sub(base)..end.wrapping_sub(base);
            let (Some(t), Some(f)) = (targets.get_mut(row.clone()), flags.get_mut(row)) else {
                return Err(Error::Internal("a follower's row is out of place".into()));
            };
            if t.len() != run.len() {
                return Err(Error::Internal(
                    "a follower's follows came in two runs".into(),
                ));
            }
            for (t, &k) in t.iter_mut().zip(&c.targets[run.clone()]) {
                *t = dense(k);
            }
            f.copy_from_slice(&c.flags[run]);
        }
        Ok(())
    };
    if merged {
        for (c, heads) in chunks.into_iter().zip(heads) {
            fill(&c, &heads, 0, &mut targets, &mut flags)?;
        }
    } else {
        // In follower order, chunk after chunk: each fills the stretch
        // its runs' rows make, and the stretches follow one another.
        let mut parts = Vec::with_capacity(chunks.len());
        let (mut rest_t, mut rest_f) = (targets.as_mut_slice(), flags.as_mut_slice());
        let mut base = 0;
        for c in &chunks {
            let (t, tail_t) = rest_t.split_at_mut(c.targets.len());
            let (f, tail_f) = rest_f.split_at_mut(c.targets.len());
            parts.push((base, t, f));
            (rest_t, rest_f) = (tail_t, tail_f);
            base += c.targets.len();
        }
        // Each chunk is dropped once copied, so the rows grow as the
        // chunks shrink.
        chunks.into_par_iter().zip(heads).zip(parts).try_for_each(
            |((c, heads), (base, t, f))| {
                // A chunk's first row must start where its stretch does.
                let first = heads
                    .first()
                    .map_or(base, |&a| offsets[a as usize] as usize);
                if first != base {
                    return Err(Error::Internal(
                        "the follows' chunks are not in follower order".into(),
                    ));
                }
                fill(&c, &heads, base, t, f)
            },
        )?;
    }
    drop(dense);
    FollowGraph::from_rows(offsets, targets, flags)
}

/// Kept edges whose reverse is looked up at once (16 bytes each), at most,
/// unless that would take more than [`REVERSE_BATCHES`] batches (a batch
/// costs a pass over the runs' cursors, and without numbered keys a scan
/// of every kept edge).
const REVERSE_BATCH: usize = 1 << 21;
const REVERSE_BATCHES: usize = 16;

/// One kept edge u → f, turned around to be found in f's list.
#[derive(Clone, Copy, Default)]
struct Turned<K> {
    followee: K,
    follower: i64,
    /// The edge's place among all chunks' targets.
    at: u32,
}

/// Flags [`MUTUAL`] every kept edge u → f whose follower u is in f's list
/// of follows (`list_of(f)`, ascending). The edges are turned around and
/// grouped by f, ascending by u within a group, a batch of followees at a
/// time, then merged with the lists: each list is walked once, in order,
/// instead of searched once per edge (a search that misses the cache at
/// nearly every step). Numbered keys are grouped by counting, written
/// straight from the runs (the chunks are in follower order unless
/// `merged`, so each group comes out in order); other keys, and merged
/// chunks, by a sort.
fn mark_mutual<'l, K: Copy + Ord + Send + Sync + Default, S: Scope<Key = K>>(
    chunks: &mut [Chunk<K>],
    scope: &S,
    merged: bool,
    batch_edges: usize,
    list_of: impl Fn(K) -> &'l [i64] + Sync,
) -> Result<()> {
    let starts: Vec<usize> = chunks
        .iter()
        .scan(0, |at, c| {
            let start = *at;
            *at += c.targets.len();
            Some(start)
        })
        .collect();
    let total = chunks.iter().map(|c| c.targets.len()).sum::<usize>();
    if total >= u32::MAX as usize {
        return Err(Error::Internal(format!(
            "{total} kept follows do not fit in 32-bit positions"
        )));
    }
    // Chunks in follower order are grouped by counting (see below), on
    // every thread at once: thread t takes the chunks of `spans[t]`, a
    // contiguous share of the edges, and writes each followee's edges of
    // its chunks after those of the threads before it.
    let threads = rayon::current_num_threads().max(1);
    let bounds: Vec<usize> = (0..=threads)
        .map(|t| match t {
            t if t == threads => chunks.len(),
            t => starts.partition_point(|&s| s < t * total / threads),
        })
        .collect();
    let spans: Vec<Range<usize>> = bounds.windows(2).map(|w| w[0]..w[1].max(w[0])).collect();
    // Edges per followee number and span, and batches of followees with at
    // most about `batch_edges` edges each; keys that are not numbered go
    // in one batch.
    let counts: Option<Vec<Vec<u32>>> = scope.numbered().map(|n| {
        spans
            .par_iter()
            .map(|span| {
                // Counted into at random, once per kept edge: on huge pages.
                let mut counts = huge_filled(n, 0u32);
                for c in &chunks[span.clone()] {
                    for &t in &c.targets {
                        if let Some(count) = scope.number(t).and_then(|k| counts.get_mut(k)) {
                            *count += 1;
                        }
                    }
                }
                counts
            })
            .collect()
    });
    let per_key: Option<Vec<u32>> = counts.as_ref().map(|counts| {
        let n = counts.first().map_or(0, Vec::len);
        (0..n).map(|k| counts.iter().map(|c| c[k]).sum()).collect()
    });
    let batches: Vec<Range<usize>> = match &per_key {
        None => std::iter::once(0..usize::MAX).collect(),
        Some(per_key) => {
            let mut batches = Vec::new();
            let (mut start, mut edges) = (0, 0usize);
            for (k, &count) in per_key.iter().enumerate() {
                if edges > 0 && edges + count as usize > batch_edges {
                    batches.push(start..k);
                    (start, edges) = (k, 0);
                }
                edges += count as usize;
            }
            batches.push(start..per_key.len());
            batches
        }
    };
    // Where each run's edges of the next batch start (numbered keys,
    // chunks in order): runs ascend by key, and batches are taken in
    // ascending order of keys, so each run is walked once in all.
    let mut cursors: Vec<Vec<u32>> = match (&counts, merged) {
        (Some(_), false) => chunks
            .iter()
            .map(|c| c.heads.iter().map(|h| h.1 as u32).collect())
            .collect(),
        _ => Vec::new(),
    };
    let out_of_batch = || Error::Internal("a follow's key is out of its batch".into());
    // The edges of each batch, numbered keys: one buffer for the largest
    // batch, filled again for each (every place is written once).
    let edges_of = |batch: &Range<usize>, counts: &[Vec<u32>]| -> usize {
        counts
            .iter()
            .map(|c| c[batch.clone()].iter().map(|&x| x as usize).sum::<usize>())
            .sum()
    };
    let mut buffer: Vec<Turned<K>> = match (&counts, merged) {
        (Some(counts), false) => {
            let most = batches.iter().map(|b| edges_of(b, counts)).max();
            huge_filled(most.unwrap_or(0), Turned::default())
        }
        _ => Vec::new(),
    };
    let mut sorted: Vec<Turned<K>>;
    for batch in &batches {
        let grouped: &[Turned<K>] = match (&counts, merged) {
            (Some(counts), false) => {
                // A counting sort straight from the runs: each edge is
                // written at its followee's next place, so each group
                // comes out in the chunks' follower order. Each thread's
                // places: per followee of the batch, its share of the
                // followee's group.
                let sum = edges_of(batch, counts);
                let grouped = buffer.get_mut(..sum).ok_or_else(out_of_batch)?;
                // Read at random, once per kept edge: on huge pages.
                let mut places: Vec<Vec<&mut [Turned<K>]>> =
                    (0..threads).map(|_| huge_vec(batch.len())).collect();
                let mut rest: &mut [Turned<K>] = grouped;
                for k in batch.clone() {
                    for (t, places) in places.iter_mut().enumerate() {
                        let (mine, after) = std::mem::take(&mut rest)
                            .split_at_mut_checked(counts[t][k] as usize)
                            .ok_or_else(out_of_batch)?;
                        places.push(mine);
                        rest = after;
                    }
                }
                let mut shares: Vec<&mut [Vec<u32>]> = Vec::with_capacity(threads);
                let mut left: &mut [Vec<u32>] = &mut cursors;
                for span in &spans {
                    let (mine, after) = std::mem::take(&mut left)
                        .split_at_mut_checked(span.len())
                        .ok_or_else(out_of_batch)?;
                    shares.push(mine);
                    left = after;
                }
                let (chunks, starts) = (&*chunks, &starts);
                places
                    .into_par_iter()
                    .zip(shares)
                    .zip(&spans)
                    .try_for_each(|((mut places, cursors), span)| -> Result<()> {
                        for (c, cursors) in span.clone().zip(cursors.iter_mut()) {
                            let (c, start) = (&chunks[c], starts[c]);
                            for (i, cursor) in cursors.iter_mut().enumerate() {
                                let follower = c.heads[i].0;
                                let end = c.run_of(i).end;
                                let mut e = *cursor as usize;
                                while e < end {
                                    let followee = c.targets[e];
                                    let Some(k) = scope.number(followee).filter(|k| *k < batch.end)
                                    else {
                                        break;
                                    };
                                    let place = places
                                        .get_mut(k.wrapping_sub(batch.start))
                                        .ok_or_else(out_of_batch)?;
                                    let (slot, rest) = std::mem::take(place)
                                        .split_first_mut()
                                        .ok_or_else(out_of_batch)?;
                                    let at = (start + e) as u32;
                                    *slot = Turned {
                                        followee,
                                        follower,
                                        at,
                                    };
                                    *place = rest;
                                    e += 1;
                                }
                                *cursor = e as u32;
                            }
                        }
                        Ok(())
                    })?;
                buffer.get(..sum).ok_or_else(out_of_batch)?
            }
            _ => {
                let in_batch = move |key: K| scope.number(key).is_none_or(|k| batch.contains(&k));
                sorted = chunks
                    .par_iter()
                    .zip(&starts)
                    .flat_map_iter(|(c, &start)| {
                        (0..c.heads.len()).flat_map(move |i| {
                            let follower = c.heads[i].0;
                            c.run_of(i)
                                .filter(move |&e| in_batch(c.targets[e]))
                                .map(move |e| Turned {
                                    followee: c.targets[e],
                                    follower,
                                    at: (start + e) as u32,
                                })
                        })
                    })
                    .collect();
                sorted.par_sort_unstable_by_key(|t| (t.followee, t.follower));
                &sorted
            }
        };
        // Each followee's turned-around edges against its list: both
        // ascending by follower.
        let mut mutual: Vec<u32> = grouped
            .par_chunk_by(|x, y| x.followee == y.followee)
            .flat_map_iter(|group| {
                let list = list_of(group[0].followee);
                let mut j = 0;
                group.iter().filter_map(move |t| {
                    while j < list.len() && list[j] < t.follower {
                        j += 1;
                    }
                    (j < list.len() && list[j] == t.follower).then_some(t.at)
                })
            })
            .collect();
        mutual.par_sort_unstable();
        let mut c = 0;
        for at in mutual {
            let at = at as usize;
            while c + 1 < chunks.len() && starts[c + 1] <= at {
                c += 1;
            }
            if let Some(flags) = chunks[c].flags.get_mut(at - starts[c]) {
                *flags |= MUTUAL;
            }
        }
    }
    Ok(())
}

impl<K> Chunk<K> {
    /// The targets of head `i`.
    fn run_of(&self, i: usize) -> Range<usize> {
        let end = self.heads.get(i + 1).map_or(self.targets.len(), |h| h.1);
        self.heads[i].1..end
    }
}

/// A chunk's follow-back lists: their heads, then the followees.
type Lists<K> = (Vec<(K, u32)>, Vec<i64>);

/// The follows taken, in follower order.
struct Edges<K> {
    sorted: bool,
    /// The chunks come from several partitions: each partition's are in
    /// follower order, the whole is sorted when the graph is built.
    merged: bool,
    chunks: Vec<Chunk<K>>,
    self_follows: u64,
    duplicates: u64,
    /// Kept edges turned around at once when flagging follow-backs.
    reverse_batch: usize,
}

impl<K: Copy + Ord + Send + Sync + Default> Edges<K> {
    fn kept(&self) -> usize {
        self.chunks.iter().map(|c| c.targets.len()).sum()
    }

    /// Adds the follows of another partition (whose followers are not
    /// this one's).
    fn merge(&mut self, other: Edges<K>) {
        self.merged = true;
        self.chunks.extend(other.chunks);
        self.self_follows += other.self_follows;
        self.duplicates += other.duplicates;
    }

    /// The users, the graph and the dense followers.
    fn finish<S: Scope<Key = K>>(&mut self, scope: &S) -> Result<(IdMap, FollowGraph, Vec<u32>)> {
        let mut chunks = std::mem::take(&mut self.chunks);
        let started = std::time::Instant::now();
        // Each follower's list of whom it follows back: `(key, chunk,
        // range in its back)`, in key order; found by number when keys are
        // numbered, else by a binary search.
        let lists: Vec<Lists<K>> = chunks
            .iter_mut()
            .map(|c| (std::mem::take(&mut c.lists), std::mem::take(&mut c.back)))
            .collect();
        let mut at: Vec<(K, u32, u32, u32)> = Vec::new();
        for (i, (heads, back)) in lists.iter().enumerate() {
            for (j, &(key, start)) in heads.iter().enumerate() {
                let end = heads.get(j + 1).map_or(back.len(), |h| h.1 as usize);
                at.push((key, i as u32, start, end as u32));
            }
        }
        if self.merged {
            at.sort_unstable_by_key(|e| e.0);
        }
        // Numbered keys find their list in one read: (chunk, start, end)
        // by number, an empty range for a supporter without one; the index
        // by key is then no longer needed (every key has a number), and is
        // freed before the flagging takes its memory.
        let (by_number, at): (Vec<(u32, u32, u32)>, _) = match scope.numbered() {
            None => (Vec::new(), at),
            Some(n) => {
                // Read at random: on huge pages.
                let mut table = huge_filled(n, (0, 0, 0));
                for &(key, chunk, start, end) in &at {
                    if let Some(slot) = scope.number(key).and_then(|k| table.get_mut(k)) {
                        *slot = (chunk, start, end);
                    }
                }
                drop(at);
                (table, Vec::new())
            }
        };
        let list_of = |key: K| -> &[i64] {
            let (chunk, start, end) = match scope.number(key) {
                Some(k) => by_number.get(k).copied().unwrap_or_default(),
                None => match at.binary_search_by_key(&key, |e| e.0) {
                    Ok(i) => (at[i].1, at[i].2, at[i].3),
                    Err(_) => return &[],
                },
            };
            &lists[chunk as usize].1[start as usize..end as usize]
        };
        tracing::debug!(
            follow_backs = lists.iter().map(|l| l.1.len()).sum::<usize>(),
            "follow-backs kept"
        );
        let kept = chunks.iter().map(|c| c.targets.len()).sum::<usize>();
        let batch = self.reverse_batch.max(kept.div_ceil(REVERSE_BATCHES));
        mark_mutual(&mut chunks, scope, self.merged, batch, list_of)?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "follow-backs flagged"
        );
        drop((lists, at, by_number));
        crate::memory::return_freed();

        let mut ids: Vec<i64> = chunks
            .par_iter()
            .flat_map_iter(|c| c.followers.iter().copied())
            .collect();
        ids.extend(scope.more_ids(&chunks));
        let users = IdMap::from_ids(ids)?;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "users mapped");
        // Each chunk's followers made dense on every thread, in order.
        let mut followers: Vec<u32> = chunks
            .par_iter_mut()
            .flat_map_iter(|c| users.indices(&std::mem::take(&mut c.followers), MISSING))
            .collect();
        if self.merged {
            followers.par_sort_unstable();
        }

        // Every endpoint was put in the map above: a miss is a bug.
        if followers.contains(&MISSING) {
            return Err(missing());
        }
        let graph = rows(&users, chunks, scope, self.merged)?;
        crate::memory::return_freed();
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "graph built");
        Ok((users, graph, followers))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Random follows among `n` sparse ids, sorted by follower, with
    /// repeats and self-follows.
    fn random_rows(seed: u64, n: u64, rows: usize) -> Vec<(i64, i64)> {
        // A plain LCG is enough here (load does not use the generator).
        let mut state = seed;
        let mut below = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let id = |k: u64| (k * 7919 + 13) as i64;
        let mut all: Vec<(i64, i64)> = (0..rows).map(|_| (id(below(n)), id(below(n)))).collect();
        all.sort_unstable();
        all
    }

    fn edges_of<S: Scope>(scope: &S, rows: &[(i64, i64)], slice: usize) -> Edges<S::Key> {
        let ((), edges) = take_runs(Shard::WHOLE, scope, |feed| {
            for chunk in rows.chunks(slice) {
                feed.feed(Rows {
                    a: chunk.iter().map(|r| r.0).collect(),
                    b: chunk.iter().map(|r| r.1).collect(),
                    m: vec![0; chunk.len()],
                    given: false,
                });
            }
        });
        edges
    }

    /// Every kept edge's MUTUAL flag against a plain lookup of the
    /// reverse row; returns how many edges were flagged.
    fn check(users: &IdMap, graph: &FollowGraph, rows: &[(i64, i64)]) -> usize {
        let set: BTreeSet<(i64, i64)> = rows.iter().copied().collect();
        let mut flagged = 0;
        for u in 0..users.len() as u32 {
            let (followees, flags) = graph.followees(u);
            for (&f, &x) in followees.iter().zip(flags) {
                let (a, b) = (users.id(u), users.id(f));
                assert_eq!(x & MUTUAL != 0, set.contains(&(b, a)), "{a} -> {b}");
                flagged += usize::from(x & MUTUAL != 0);
            }
        }
        flagged
    }

    #[test]
    fn follow_backs_in_batches_equal_a_plain_lookup() {
        let rows = random_rows(7, 60, 1500);
        let supporters = IdSet::from_ids(rows.iter().step_by(3).map(|r| r.1));
        let scoring = Scoring::new(&supporters);
        // Numbered keys (grouped by counting), whole and in small batches;
        // then ids (grouped by sorting); then merged partitions.
        for batch in [REVERSE_BATCH, 1, 7, 40] {
            let mut edges = edges_of(&scoring, &rows, 97);
            edges.reverse_batch = batch;
            let (users, graph, _) = edges.finish(&scoring).unwrap();
            assert!(check(&users, &graph, &rows) > 0, "batch {batch}");
        }
        let mut edges = edges_of(&Full, &rows, 97);
        edges.reverse_batch = 5;
        let (users, graph, _) = edges.finish(&Full).unwrap();
        assert!(check(&users, &graph, &rows) > 0);
        let (odd, even): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.0 % 2 != 0);
        let mut edges = edges_of(&scoring, &odd, 50);
        edges.merge(edges_of(&scoring, &even, 50));
        edges.reverse_batch = 9;
        let (users, graph, _) = edges.finish(&scoring).unwrap();
        assert!(check(&users, &graph, &rows) > 0);
    }

    /// Runs in ascending order (with and without repeats) and in any
    /// other order: the counts, followers and edges (a mute of any repeat
    /// holds) equal a plain collapse of the rows.
    #[test]
    fn runs_in_any_order_collapse_to_the_distinct_follows() {
        let repeats = random_rows(11, 40, 900);
        let mut distinct = repeats.clone();
        distinct.dedup();
        // Each run turned around: the same follows, out of order.
        let mut turned = repeats.clone();
        turned.sort_by_key(|&(a, b)| (a, std::cmp::Reverse(b)));
        // Slices of more rows than a window of look-ups, whose runs cross
        // the windows' bounds, one of them longer than a window.
        let mut long = random_rows(12, 300, 30_000);
        long.extend((0..20_000).map(|k| (7_919 * 5 + 13, k * 3)));
        long.sort_unstable();
        for (rows, slice) in [
            (&repeats, 64),
            (&distinct, 64),
            (&turned, 64),
            (&long, 40_000),
        ] {
            let muted = |i: usize| u8::from(i.is_multiple_of(5)) * MUTED;
            let ((), mut edges) = take_runs(Shard::WHOLE, &Full, |feed| {
                for (k, chunk) in rows.chunks(slice).enumerate() {
                    feed.feed(Rows {
                        a: chunk.iter().map(|r| r.0).collect::<Vec<_>>().into(),
                        b: chunk.iter().map(|r| r.1).collect::<Vec<_>>().into(),
                        m: (0..chunk.len()).map(|i| muted(k * slice + i)).collect(),
                        given: true,
                    });
                }
            });
            let mut want: BTreeMap<(i64, i64), u8> = BTreeMap::new();
            let mut self_follows = 0;
            for (i, &(a, b)) in rows.iter().enumerate() {
                match a == b {
                    true => self_follows += 1,
                    false => *want.entry((a, b)).or_default() |= muted(i),
                }
            }
            let duplicates = rows.len() as u64 - self_follows - want.len() as u64;
            assert_eq!(
                (edges.self_follows, edges.duplicates),
                (self_follows, duplicates)
            );
            let (users, graph, followers) = edges.finish(&Full).unwrap();
            let mut got = BTreeMap::new();
            for u in 0..users.len() as u32 {
                let (followees, flags) = graph.followees(u);
                for (&f, &x) in followees.iter().zip(flags) {
                    got.insert((users.id(u), users.id(f)), x & MUTED);
                }
            }
            assert_eq!(got, want);
            let want: BTreeSet<i64> = want.keys().map(|k| k.0).collect();
            let got: BTreeSet<i64> = followers.iter().map(|&u| users.id(u)).collect();
            assert_eq!(got, want);
        }
    }
}
