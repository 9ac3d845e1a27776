//! The delta of a run against a base run: the users whose *shown* slots
//! changed (any of slot, position, product_id, merchant_id, buyer_count,
//! top_buyer_ids; a change of score alone is not one), as `upsert` rows
//! holding the new slots, and the users who had slots and have none, as
//! one `delete` row each (`slot` 0, the other columns zero or empty).
//! Applying the deltas of a chain of runs in order to an empty map of
//! user → slots gives the last run's shown slots.
//!
//! Both runs are read user by user in ascending id, merging their parts
//! (each sorted by user), each run on a thread of its own that hands over
//! blocks of whole users while this one compares them, so memory stays at
//! a batch per part and a few blocks per run whatever the runs' size. The
//! delta is one part, sorted and indexed like the slots.
//!
//! A whole run takes its delta as it writes its part: against a base, the
//! new rows come from the writer, never read back, and the base is read
//! while the users are scored ([`write_fed`]); with no base, every row is
//! an upsert in the part's order, so each row group the writer finishes is
//! copied as it is, with only `op` encoded ([`write_copied`]). That delta
//! is taken against what LATEST named when scoring started ([`BaseSeen`]);
//! the commit keeps it only if LATEST names the same, unchanged, under the
//! lock, and otherwise writes the delta again with [`write`], which also
//! serves sharded commits and rollbacks (a first run of one part is then
//! copied from the finished part).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::parquet::{
    ColumnsInParallel, EncodeOn, ROW_GROUP_ROWS, WrittenGroup, properties, slot_columns,
};
use crate::output::read::{SlotColumns, check_schema, part_files};
use crate::output::schema;
use crate::rows::SlotRows;
use crate::time::DAY_US;

pub const UPSERT: &str = "upsert";
pub const DELETE: &str = "delete";

/// The delta as the manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaInfo {
    /// The run it is taken against; none for a first run (every user an upsert).
    pub base_run_id: Option<String>,
    pub upserted_users: u64,
    pub deleted_users: u64,
    pub rows: u64,
    /// Relative to the run folder.
    pub file: String,
    pub sha256: String,
}

/// The delta's schema: the slots' columns, then `op`.
pub fn delta_schema() -> SchemaRef {
    let mut fields: Vec<Field> = schema::slots_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("op", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The new run whose delta is written: its folder (parts under `slots/`),
/// as_of and id.
pub struct Target<'a> {
    pub dir: &'a Path,
    pub as_of: i64,
    pub run_id: &'a str,
    /// The run's users with slots, when its markers tell: a first run of
    /// one part then has its delta copied from the part (see [`write`]).
    pub users: Option<u64>,
}

/// Writes the delta of `target` against `base` (its id and folder) into
/// `target.dir/<sub>/part-00000-of-00001.parquet`; `sub` is relative to
/// the run folder as the manifest names it.
pub fn write(base: Option<(&str, &Path)>, target: &Target, sub: &str) -> Result<DeltaInfo> {
    if base.is_none()
        && let Some(users) = target.users
        && let [part] = part_files(target.dir)?.as_slice()
    {
        return every_row(part, target, sub, users);
    }
    thread::scope(|threads| {
        let new = Stream::spawn(threads, Some(target.dir));
        compare(threads, base, new, target, sub)
    })
}

/// The delta of a first run of one part, holding `users` users: every row
/// an upsert, in the part's order, so the part's column chunks are copied
/// as they are and only `op` is encoded.
fn every_row(part: &Path, target: &Target, sub: &str, users: u64) -> Result<DeltaInfo> {
    let mut delta = EveryRow::create(target, sub, EncodeOn::Pool)?;
    let rows = delta.writer.copy_groups(part, upserts)?;
    delta.finish(users, rows)
}

/// A delta of every row as an upsert, being written: its name in the run
/// and its writer.
struct EveryRow {
    name: String,
    writer: ColumnsInParallel,
}

impl EveryRow {
    fn create(target: &Target, sub: &str, encode_on: EncodeOn) -> Result<EveryRow> {
        let (name, path) = delta_file(target, sub)?;
        let properties = properties(ROW_GROUP_ROWS as u64);
        let writer = ColumnsInParallel::create(&path, delta_schema(), properties, encode_on)?;
        Ok(EveryRow { name, writer })
    }

    /// Closes the delta, which holds `rows` rows of `users` users.
    fn finish(self, users: u64, rows: u64) -> Result<DeltaInfo> {
        Ok(DeltaInfo {
            base_run_id: None,
            upserted_users: users,
            deleted_users: 0,
            rows,
            file: self.name,
            sha256: self.writer.finish()?,
        })
    }
}

/// The `op` column of `n` upserts.
fn upserts(n: usize) -> Vec<ArrayRef> {
    vec![Arc::new(StringArray::from(vec![UPSERT; n])) as ArrayRef]
}

/// The two ends of a first run's delta copied as its part is written:
/// [`Copies`] for the part's writer, [`Copied`] for [`write_copied`].
pub fn copies() -> (Copies, Copied) {
    let (send, receive) = mpsc::sync_channel(16);
    (Copies(send), Copied(receive))
}

/// What the part's writer hands over: a row group whose bytes are in the
/// part, or the end of the part, with its users.
enum Copy {
    Group(WrittenGroup),
    End { users: u64 },
}

/// Where the part's writer hands over each row group once its bytes are
/// in the part file.
pub struct Copies(SyncSender<Copy>);

impl Copies {
    /// Hands over `groups`; false once the delta has stopped (it then
    /// fails, and says why).
    pub(crate) fn groups(&self, groups: Vec<WrittenGroup>) -> bool {
        groups
            .into_iter()
            .all(|g| self.0.send(Copy::Group(g)).is_ok())
    }

    /// The part is whole, with `users` users.
    pub fn finish(self, users: u64) {
        let _ = self.0.send(Copy::End { users });
    }
}

/// The part's row groups, as [`write_copied`] receives them.
pub struct Copied(Receiver<Copy>);

/// [`every_row`] while the part is written: each row group is copied once
/// the part's writer has written it (`part`, the file it writes), so that
/// the copy and its writing back to disk overlap the scoring rather than
/// follow it. Fails when the writer stops before the part is whole.
pub fn write_copied(part: &Path, target: &Target, sub: &str, copied: Copied) -> Result<DeltaInfo> {
    let mut delta = EveryRow::create(target, sub, EncodeOn::Here)?;
    // Opened with the first group: the part exists by then.
    let mut source: Option<File> = None;
    let mut rows = 0;
    for copy in copied.0 {
        match copy {
            Copy::Group(group) => {
                if source.is_none() {
                    source = Some(File::open(part).map_err(|e| Error::io(part, e))?);
                }
                if let Some(file) = &source {
                    rows += group.rows() as u64;
                    delta.writer.copy_group(part, file, group, upserts)?;
                }
            }
            Copy::End { users } => return delta.finish(users, rows),
        }
    }
    Err(Error::Internal(
        "the part's writer stopped before the part was whole".into(),
    ))
}

/// Creates the delta's folder; the delta file's name (relative to the run
/// folder) and path.
fn delta_file(target: &Target, sub: &str) -> Result<(String, PathBuf)> {
    let folder = target.dir.join(sub);
    fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    let name = format!("{sub}/part-00000-of-00001.parquet");
    let path = target.dir.join(&name);
    Ok((name, path))
}

/// [`write`], with the new run's rows taken from `fed` as they are
/// produced instead of read back from its parts: the run's writer hands
/// them over through the other end, [`Feed`], once it has written them.
pub fn write_fed(
    base: Option<(&str, &Path)>,
    target: &Target,
    sub: &str,
    fed: Fed,
) -> Result<DeltaInfo> {
    thread::scope(|threads| {
        let new = Stream::receiving(fed.0);
        compare(threads, base, new, target, sub)
    })
}

/// The two ends of a fed delta: [`Feed`] for the run's writer, [`Fed`] for
/// [`write_fed`].
pub fn feed() -> (Feed, Fed) {
    let (send, receive) = mpsc::sync_channel(4);
    let feed = Feed {
        send,
        last_user: None,
    };
    (feed, Fed(receive))
}

/// The new run's rows, as [`write_fed`] receives them.
pub struct Fed(Receiver<Result<Block>>);

/// Where the run's writer hands its rows to a fed delta, in ascending
/// user order, whole users at a time.
pub struct Feed {
    send: SyncSender<Result<Block>>,
    last_user: Option<i64>,
}

impl Feed {
    /// Hands over `rows` (whole users, after those handed over before);
    /// false once the delta has stopped (it then fails, and says why).
    pub fn rows(&mut self, rows: SlotRows) -> bool {
        let mut users: Vec<(i64, usize)> = Vec::new();
        for (i, &user) in rows.user_id.iter().enumerate() {
            match users.last_mut() {
                Some(last) if last.0 == user => last.1 = i + 1,
                _ => users.push((user, i + 1)),
            }
        }
        let in_order = match (self.last_user, users.first()) {
            (Some(before), Some(&(first, _))) => before < first,
            _ => true,
        } && users.windows(2).all(|w| w[0].0 < w[1].0);
        if let Some(&(last, _)) = users.last() {
            self.last_user = Some(last);
        }
        let block = match in_order {
            true => Ok(Block {
                rows,
                users,
                last: false,
            }),
            false => Err(Error::Internal(
                "a fed delta's rows are not whole users in ascending order".into(),
            )),
        };
        self.send.send(block).is_ok() && in_order
    }

    /// Every row has been handed over.
    pub fn finish(self) {
        let _ = self.send.send(Ok(Block {
            last: true,
            ..Block::default()
        }));
    }
}

/// Compares the runs user by user (the base read on a thread of its own)
/// and writes the delta.
fn compare<'s>(
    threads: &'s thread::Scope<'s, '_>,
    base: Option<(&str, &'s Path)>,
    mut new: Stream,
    target: &Target,
    sub: &str,
) -> Result<DeltaInfo> {
    let (name, path) = delta_file(target, sub)?;
    let mut out = DeltaWriter::create(&path, target)?;
    let mut old = Stream::spawn(threads, base.map(|b| b.1));
    loop {
        let order = match (old.peek()?, new.peek()?) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(u), Some(v)) => u.cmp(&v),
        };
        // The lower user first: only in the base, a delete; only in the
        // new run, an upsert; in both, an upsert when what shows changed.
        match order {
            Ordering::Less => {
                out.delete(old.user())?;
                old.advance();
            }
            Ordering::Greater => {
                out.upsert(&new.block.rows, new.range())?;
                new.advance();
            }
            Ordering::Equal => {
                if !same_shown(&old.block.rows, old.range(), &new.block.rows, new.range()) {
                    out.upsert(&new.block.rows, new.range())?;
                }
                old.advance();
                new.advance();
            }
        }
    }
    out.finish(base.map(|(id, _)| id.to_string()), name)
}

/// What LATEST named when a fed delta started, in a local output: the
/// run's id and its manifest's bytes (none for no LATEST). A delta taken
/// against it is the run's delta only if the commit, under the output's
/// lock, finds the same: the same run, not replaced since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseSeen {
    pub run_id: Option<String>,
    manifest: Option<Vec<u8>>,
}

impl BaseSeen {
    /// What LATEST names now (read without the lock); none when that
    /// cannot be told (LATEST unreadable, its run without a manifest).
    pub fn now(out: &Path) -> Option<BaseSeen> {
        let run_id = crate::output::publish::latest(out).ok()?;
        let manifest = match &run_id {
            Some(id) => Some(fs::read(out.join(id).join(crate::output::manifest::FILE_NAME)).ok()?),
            None => None,
        };
        Some(BaseSeen { run_id, manifest })
    }

    /// The base's id and folder, as [`write_fed`] takes them.
    pub fn run<'b>(&'b self, out: &Path) -> Option<(&'b str, PathBuf)> {
        self.run_id.as_deref().map(|id| (id, out.join(id)))
    }
}

/// Whether two users' slots (rows `x` of `a`, rows `y` of `b`) show the
/// same (score aside).
fn same_shown(a: &SlotRows, x: Range<usize>, b: &SlotRows, y: Range<usize>) -> bool {
    fn buyers<'r>(r: &'r SlotRows, rows: &Range<usize>) -> (&'r [i64], i32) {
        let (from, to) = (r.buyer_offsets[rows.start], r.buyer_offsets[rows.end]);
        (&r.buyer_ids[from as usize..to as usize], from)
    }
    let ((ids_a, from_a), (ids_b, from_b)) = (buyers(a, &x), buyers(b, &y));
    // Each row's list length, from the offsets relative to the user's first.
    let lengths_equal = a.buyer_offsets[x.start..=x.end]
        .iter()
        .map(|o| o - from_a)
        .eq(b.buyer_offsets[y.start..=y.end].iter().map(|o| o - from_b));
    a.slot[x.clone()] == b.slot[y.clone()]
        && a.position[x.clone()] == b.position[y.clone()]
        && a.product_id[x.clone()] == b.product_id[y.clone()]
        && a.merchant_id[x.clone()] == b.merchant_id[y.clone()]
        && a.buyer_count[x] == b.buyer_count[y]
        && lengths_equal
        && ids_a == ids_b
}

/// Rows per block a run's reader hands over (whole users, so a block may
/// hold a few more).
const BLOCK_ROWS: usize = 16_384;

/// Whole users of a run, in ascending id: the rows, and where each
/// user's end (`(user, end row)`, a user's rows starting where the
/// previous user's end).
#[derive(Default)]
struct Block {
    rows: SlotRows,
    users: Vec<(i64, usize)>,
    /// The run's last block.
    last: bool,
}

/// A run's users as its reader thread hands them over.
struct Stream {
    receive: Option<Receiver<Result<Block>>>,
    block: Block,
    /// The current user's index in `block.users`.
    at: usize,
    /// The last block has been received (or there is no run).
    ended: bool,
}

impl Stream {
    /// Starts reading the run in `dir` (none: an empty run).
    fn spawn<'s>(threads: &'s thread::Scope<'s, '_>, dir: Option<&'s Path>) -> Stream {
        let Some(dir) = dir else {
            return Stream {
                receive: None,
                block: Block::default(),
                at: 0,
                ended: true,
            };
        };
        let (send, receive) = mpsc::sync_channel(2);
        threads.spawn(move || {
            if let Err(e) = read_run(dir, &send) {
                let _ = send.send(Err(e));
            }
        });
        Stream::receiving(receive)
    }

    /// The run whose blocks arrive on `receive`.
    fn receiving(receive: Receiver<Result<Block>>) -> Stream {
        Stream {
            receive: Some(receive),
            block: Block::default(),
            at: 0,
            ended: false,
        }
    }

    /// The current user, receiving the next block when this one is done.
    fn peek(&mut self) -> Result<Option<i64>> {
        while self.at == self.block.users.len() {
            if self.ended {
                return Ok(None);
            }
            let received = match &self.receive {
                Some(r) => r.recv(),
                None => return Ok(None),
            };
            // A reader that stops without its last block has failed.
            let block =
                received.map_err(|_| Error::Internal("a run's reader stopped early".into()))??;
            self.ended = block.last;
            self.block = block;
            self.at = 0;
        }
        Ok(Some(self.block.users[self.at].0))
    }

    /// The current user (after a `peek` that found one).
    fn user(&self) -> i64 {
        self.block.users[self.at].0
    }

    /// The current user's rows in `block.rows`.
    fn range(&self) -> Range<usize> {
        let start = match self.at {
            0 => 0,
            i => self.block.users[i - 1].1,
        };
        start..self.block.users[self.at].1
    }

    fn advance(&mut self) {
        self.at += 1;
    }
}

/// Reads the run in `dir` user by user into blocks, merging its parts.
fn read_run(dir: &Path, send: &SyncSender<Result<Block>>) -> Result<()> {
    let mut run = RunRows::open(dir)?;
    loop {
        let mut block = Block::default();
        while block.rows.len() < BLOCK_ROWS {
            match run.next_user(&mut block.rows)? {
                Some(user) => block.users.push((user, block.rows.len())),
                None => {
                    block.last = true;
                    let _ = send.send(Ok(block));
                    return Ok(());
                }
            }
        }
        if send.send(Ok(block)).is_err() {
            // The comparison stopped (on an error of its own).
            return Ok(());
        }
    }
}

/// One run's rows, user by user in ascending id, merged over its parts.
struct RunRows {
    parts: Vec<PartCursor>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
}

impl RunRows {
    fn open(run_dir: &Path) -> Result<RunRows> {
        let mut parts = Vec::new();
        let mut heap = BinaryHeap::new();
        for path in part_files(run_dir)? {
            let mut cursor = PartCursor::open(path)?;
            if let Some(user) = cursor.peek()? {
                heap.push(Reverse((user, parts.len())));
            }
            parts.push(cursor);
        }
        Ok(RunRows { parts, heap })
    }

    /// Appends the next user's rows to `rows` and returns the user.
    fn next_user(&mut self, rows: &mut SlotRows) -> Result<Option<i64>> {
        let Some(Reverse((user, _))) = self.heap.peek().copied() else {
            return Ok(None);
        };
        // A user's rows are in one part; should two parts hold the same
        // user, their rows are taken together.
        while let Some(Reverse((u, i))) = self.heap.peek().copied() {
            if u != user {
                break;
            }
            self.heap.pop();
            self.parts[i].take(user, rows)?;
            if let Some(next) = self.parts[i].peek()? {
                self.heap.push(Reverse((next, i)));
            }
        }
        Ok(Some(user))
    }
}

/// A part read batch by batch (the columns a delta compares or writes).
struct PartCursor {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    batch: Option<SlotColumns>,
    row: usize,
}

impl PartCursor {
    fn open(path: PathBuf) -> Result<PartCursor> {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let parquet_err = |source| Error::parquet(path.as_path(), source);
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
        check_schema(&path, builder.schema())?;
        let fields = builder.schema().fields();
        let columns = ProjectionMask::roots(
            builder.parquet_schema(),
            (0..fields.len()).filter(|&i| SlotColumns::NAMES.contains(&fields[i].name().as_str())),
        );
        let reader = builder
            .with_projection(columns)
            .build()
            .map_err(parquet_err)?;
        Ok(PartCursor {
            path,
            reader,
            batch: None,
            row: 0,
        })
    }

    /// The user of the next row, loading the next batch when needed.
    fn peek(&mut self) -> Result<Option<i64>> {
        loop {
            if let Some(batch) = &self.batch
                && self.row < batch.len()
            {
                return Ok(Some(batch.user_id.value(self.row)));
            }
            match self.reader.next() {
                Some(batch) => {
                    let batch = batch.map_err(|e| Error::parquet(&self.path, e.into()))?;
                    self.batch = Some(SlotColumns::of(&batch, &self.path)?);
                    self.row = 0;
                }
                None => {
                    self.batch = None;
                    return Ok(None);
                }
            }
        }
    }

    /// Appends the rows of `user` (the next ones) to `rows`.
    fn take(&mut self, user: i64, rows: &mut SlotRows) -> Result<()> {
        while self.peek()? == Some(user) {
            let Some(batch) = &self.batch else {
                break;
            };
            let users = &batch.user_id.values()[self.row..];
            let n = users.iter().position(|&u| u != user).unwrap_or(users.len());
            batch.append(rows, self.row..self.row + n);
            self.row += n;
        }
        Ok(())
    }
}

/// The delta part being written: whole users, in ascending id.
struct DeltaWriter<'a> {
    writer: ColumnsInParallel,
    schema: SchemaRef,
    target: &'a Target<'a>,
    pending: SlotRows,
    ops: Vec<&'static str>,
    upserted: u64,
    deleted: u64,
    rows: u64,
}

impl<'a> DeltaWriter<'a> {
    fn create(path: &Path, target: &'a Target<'a>) -> Result<DeltaWriter<'a>> {
        let schema = delta_schema();
        let properties = properties(ROW_GROUP_ROWS as u64);
        let writer = ColumnsInParallel::create(path, schema.clone(), properties, EncodeOn::Pool)?;
        Ok(DeltaWriter {
            writer,
            schema,
            target,
            pending: SlotRows::default(),
            ops: Vec::new(),
            upserted: 0,
            deleted: 0,
            rows: 0,
        })
    }

    /// Upserts the user whose rows are `rows[range]`.
    fn upsert(&mut self, rows: &SlotRows, range: Range<usize>) -> Result<()> {
        self.ops.extend(std::iter::repeat_n(UPSERT, range.len()));
        self.upserted += u64::from(!range.is_empty());
        self.pending.append_range(rows, range);
        self.after_user()
    }

    fn delete(&mut self, user: i64) -> Result<()> {
        let p = &mut self.pending;
        p.user_id.push(user);
        p.slot.push(0);
        p.position.push(0);
        p.product_id.push(0);
        p.merchant_id.push(0);
        p.score.push(0.0);
        p.buyer_count.push(0);
        p.buyer_offsets.push(p.buyer_ids.len() as i32);
        self.ops.push(DELETE);
        self.deleted += 1;
        self.after_user()
    }

    /// Writes the pending rows once there are enough of them (whole users).
    fn after_user(&mut self) -> Result<()> {
        if self.pending.len() >= 8192 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = self.batch()?;
        self.writer.write(batch)?;
        self.rows += self.pending.len() as u64;
        self.pending = SlotRows::default();
        self.ops.clear();
        Ok(())
    }

    fn batch(&self) -> Result<RecordBatch> {
        let upsert: Vec<bool> = self.ops.iter().map(|&op| op == UPSERT).collect();
        let stamp = |t: i64| {
            let values: Vec<i64> = upsert.iter().map(|&u| if u { t } else { 0 }).collect();
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")) as ArrayRef
        };
        let run_ids: Vec<&str> = upsert
            .iter()
            .map(|&u| if u { self.target.run_id } else { "" })
            .collect();
        let mut columns = slot_columns(
            &self.pending,
            [stamp(self.target.as_of), stamp(self.target.as_of + DAY_US)],
            Arc::new(StringArray::from(run_ids)),
        )?;
        columns.push(Arc::new(StringArray::from(self.ops.clone())));
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::Internal(format!("delta rows do not fit the schema: {e}")))
    }

    fn finish(mut self, base_run_id: Option<String>, file: String) -> Result<DeltaInfo> {
        self.flush()?;
        Ok(DeltaInfo {
            base_run_id,
            upserted_users: self.upserted,
            deleted_users: self.deleted,
            rows: self.rows,
            file,
            sha256: self.writer.finish()?,
        })
    }
}
