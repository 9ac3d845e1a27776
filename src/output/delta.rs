//! The delta of a run against a base run: the users whose *shown* slots
//! changed (any of slot, position, product_id, merchant_id, buyer_count,
//! top_buyer_ids; a change of score alone is not one), as `upsert` rows
//! holding the new slots, and the users who had slots and have none, as
//! one `delete` row each (`slot` 0, the other columns zero or empty).
//! Applying the deltas of a chain of runs in order to an empty map of
//! user → slots gives the last run's shown slots.
//!
//! Both runs are read user by user in ascending id, merging their parts
//! (each sorted by user), so memory stays at a batch per part whatever the
//! runs' size. The delta is one part, sorted and indexed like the slots.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int8Type, Int32Type, Int64Type, Schema, SchemaRef,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::parquet::{ROW_GROUP_ROWS, close_synced, properties, slot_columns};
use crate::output::read::{check_schema, part_files};
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
}

/// Writes the delta of `target` against `base` (its id and folder) into
/// `target.dir/<sub>/part-00000-of-00001.parquet`; `sub` is relative to
/// the run folder as the manifest names it.
pub fn write(base: Option<(&str, &Path)>, target: &Target, sub: &str) -> Result<DeltaInfo> {
    let folder = target.dir.join(sub);
    fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    let name = format!("{sub}/part-00000-of-00001.parquet");
    let path = target.dir.join(&name);
    let mut out = DeltaWriter::create(&path, target)?;
    let mut new = RunRows::open(target.dir)?;
    let mut old = match base {
        Some((_, dir)) => Some(RunRows::open(dir)?),
        None => None,
    };
    let mut next_old = || -> Result<Option<(i64, SlotRows)>> {
        match old.as_mut() {
            Some(rows) => rows.next_user(),
            None => Ok(None),
        }
    };
    let (mut a, mut b) = (next_old()?, new.next_user()?);
    loop {
        let order = match (&a, &b) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((u, _)), Some((v, _))) => u.cmp(v),
        };
        // The lower user first: only in the base, a delete; only in the
        // new run, an upsert; in both, an upsert when what shows changed.
        if order != Ordering::Greater
            && let Some((u, before)) = a.take()
        {
            match (order, b.take()) {
                (Ordering::Equal, Some((_, after))) => {
                    if !same_shown(&before, &after) {
                        out.upsert(&after)?;
                    }
                    b = new.next_user()?;
                }
                (_, after) => {
                    out.delete(u)?;
                    b = after;
                }
            }
            a = next_old()?;
        } else if let Some((_, after)) = b.take() {
            out.upsert(&after)?;
            b = new.next_user()?;
        }
    }
    out.finish(base.map(|(id, _)| id.to_string()), name)
}

/// Whether two users' slots show the same (score aside).
fn same_shown(a: &SlotRows, b: &SlotRows) -> bool {
    a.slot == b.slot
        && a.position == b.position
        && a.product_id == b.product_id
        && a.merchant_id == b.merchant_id
        && a.buyer_count == b.buyer_count
        && a.buyer_offsets == b.buyer_offsets
        && a.buyer_ids == b.buyer_ids
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

    fn next_user(&mut self) -> Result<Option<(i64, SlotRows)>> {
        let Some(Reverse((user, _))) = self.heap.peek().copied() else {
            return Ok(None);
        };
        let mut rows = SlotRows::default();
        // A user's rows are in one part; should two parts hold the same
        // user, their rows are taken together.
        while let Some(Reverse((u, i))) = self.heap.peek().copied() {
            if u != user {
                break;
            }
            self.heap.pop();
            self.parts[i].take(user, &mut rows)?;
            if let Some(next) = self.parts[i].peek()? {
                self.heap.push(Reverse((next, i)));
            }
        }
        Ok(Some((user, rows)))
    }
}

/// A part read batch by batch.
struct PartCursor {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    batch: Option<RecordBatch>,
    row: usize,
}

impl PartCursor {
    fn open(path: PathBuf) -> Result<PartCursor> {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let parquet_err = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
        check_schema(&path, builder.schema())?;
        let reader = builder.build().map_err(parquet_err)?;
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
                && self.row < batch.num_rows()
            {
                return Ok(Some(
                    column::<Int64Type>(batch, "user_id", &self.path)?.value(self.row),
                ));
            }
            match self.reader.next() {
                Some(batch) => {
                    self.batch = Some(batch.map_err(|e| Error::Parquet {
                        path: self.path.clone(),
                        source: e.into(),
                    })?);
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
            let path = &self.path;
            let i = self.row;
            let buyers = batch
                .column_by_name("top_buyer_ids")
                .and_then(|c| c.as_list_opt::<i32>())
                .ok_or_else(|| Error::DamagedOutput(format!("{}: no buyers list", path.display())))?
                .value(i);
            let buyers = buyers.as_primitive_opt::<Int64Type>().ok_or_else(|| {
                Error::DamagedOutput(format!("{}: buyers not Int64", path.display()))
            })?;
            rows.user_id.push(user);
            rows.slot
                .push(column::<Int8Type>(batch, "slot", path)?.value(i));
            rows.position
                .push(column::<Int32Type>(batch, "position", path)?.value(i));
            rows.product_id
                .push(column::<Int64Type>(batch, "product_id", path)?.value(i));
            rows.merchant_id
                .push(column::<Int64Type>(batch, "merchant_id", path)?.value(i));
            rows.score
                .push(column::<Float64Type>(batch, "score", path)?.value(i));
            rows.buyer_count
                .push(column::<Int32Type>(batch, "buyer_count", path)?.value(i));
            rows.buyer_ids.extend(buyers.values().iter().copied());
            rows.buyer_offsets.push(rows.buyer_ids.len() as i32);
            self.row += 1;
        }
        Ok(())
    }
}

/// A primitive column of a slots batch (checked against the schema first).
fn column<'b, T: arrow::datatypes::ArrowPrimitiveType>(
    batch: &'b RecordBatch,
    name: &str,
    path: &Path,
) -> Result<&'b arrow::array::PrimitiveArray<T>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<T>())
        .ok_or_else(|| {
            Error::DamagedOutput(format!(
                "{}: column {name} is not as written",
                path.display()
            ))
        })
}

/// The delta part being written: whole users, in ascending id.
struct DeltaWriter<'a> {
    path: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
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
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let schema = delta_schema();
        let writer = ArrowWriter::try_new(
            BufWriter::new(file),
            schema.clone(),
            Some(properties(ROW_GROUP_ROWS as u64)),
        )
        .map_err(|source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(DeltaWriter {
            path: path.to_path_buf(),
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

    fn upsert(&mut self, user: &SlotRows) -> Result<()> {
        self.pending.append(user);
        self.ops.extend(std::iter::repeat_n(UPSERT, user.len()));
        self.upserted += u64::from(!user.is_empty());
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
        let parquet_err = |source| Error::Parquet {
            path: self.path.clone(),
            source,
        };
        self.writer.write(&batch).map_err(parquet_err)?;
        if self.writer.in_progress_rows() >= ROW_GROUP_ROWS {
            self.writer.flush().map_err(parquet_err)?;
        }
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
            sha256: close_synced(self.writer, &self.path)?,
        })
    }
}
