//! Reading one user's slots from the published run, as the timeline
//! service does (through [`crate::serving::Slots`]), and the pieces it
//! shares with the delta: listing a run's parts, checking a part's schema,
//! decoding a slots batch.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use arrow::array::{
    AsArray, Float64Array, Int8Array, Int32Array, Int64Array, ListArray, PrimitiveArray,
    RecordBatch,
};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Int64Type, TimestampMicrosecondType};

use crate::error::{Error, Result};
use crate::output::schema::slots_schema;
use crate::rows::{SlotRow, SlotRows};

/// One user's rows of the published run, and what it took to find them.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub run_id: String,
    pub rows: Vec<SlotRow>,
    /// `valid_from` and `valid_until` of the rows, epoch µs (when any).
    pub valid: Option<(i64, i64)>,
    pub row_groups_read: usize,
    pub row_groups_total: usize,
}

/// The part files of a run folder, in name order.
pub fn part_files(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = run_dir.join("slots");
    let mut parts: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    parts.sort();
    Ok(parts)
}

/// Finds `user_id`'s rows in the run that `<out>/LATEST` names (see
/// [`crate::serving::Slots`], which a service keeps open).
pub fn user_slots(out: &Path, user_id: i64) -> Result<Lookup> {
    crate::serving::Slots::open(out)?.lookup(user_id)
}

/// A part that is not in the slots schema (a foreign or damaged file) is
/// an error naming the first column that differs, never a panic.
pub(crate) fn check_schema(path: &Path, found: &arrow::datatypes::Schema) -> Result<()> {
    let expected = slots_schema();
    for field in expected.fields() {
        let problem = match found.field_with_name(field.name()) {
            Err(_) => "is missing".to_string(),
            Ok(f) if !types_match(f.data_type(), field.data_type()) => {
                format!("has type {}, expected {}", f.data_type(), field.data_type())
            }
            Ok(_) => continue,
        };
        return Err(Error::DamagedOutput(format!(
            "part {} is not a slots part: column {} {problem}",
            path.display(),
            field.name()
        )));
    }
    if found.fields().first().map(|f| f.name().as_str()) != Some("user_id") {
        return Err(Error::DamagedOutput(format!(
            "part {} is not a slots part: its first column is not user_id",
            path.display()
        )));
    }
    Ok(())
}

/// Whether a column's type is the schema's (list element names aside).
fn types_match(found: &DataType, expected: &DataType) -> bool {
    match (found, expected) {
        (DataType::List(a), DataType::List(b)) => a.data_type() == b.data_type(),
        (a, b) => a == b,
    }
}

/// The slot columns a delta compares and writes, resolved from a batch
/// once (a column that is not as written is an error, never a panic).
pub(crate) struct SlotColumns {
    pub user_id: Int64Array,
    slot: Int8Array,
    position: Int32Array,
    product_id: Int64Array,
    merchant_id: Int64Array,
    score: Float64Array,
    buyer_count: Int32Array,
    buyers: ListArray,
}

impl SlotColumns {
    /// The columns read (every slot column but `run_id` and the window).
    pub const NAMES: [&'static str; 8] = [
        "user_id",
        "slot",
        "position",
        "product_id",
        "merchant_id",
        "score",
        "buyer_count",
        "top_buyer_ids",
    ];

    pub fn of(batch: &RecordBatch, path: &Path) -> Result<SlotColumns> {
        fn get<T: ArrowPrimitiveType>(
            batch: &RecordBatch,
            name: &str,
            path: &Path,
        ) -> Result<PrimitiveArray<T>> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<T>())
                .cloned()
                .ok_or_else(|| damaged(name, path))
        }
        let buyers = batch
            .column_by_name("top_buyer_ids")
            .and_then(|c| c.as_list_opt::<i32>())
            .filter(|l| l.values().as_primitive_opt::<Int64Type>().is_some())
            .cloned()
            .ok_or_else(|| damaged("top_buyer_ids", path))?;
        Ok(SlotColumns {
            user_id: get(batch, "user_id", path)?,
            slot: get(batch, "slot", path)?,
            position: get(batch, "position", path)?,
            product_id: get(batch, "product_id", path)?,
            merchant_id: get(batch, "merchant_id", path)?,
            score: get(batch, "score", path)?,
            buyer_count: get(batch, "buyer_count", path)?,
            buyers,
        })
    }

    pub fn len(&self) -> usize {
        self.user_id.len()
    }

    /// Row `i` as a [`SlotRow`].
    pub fn row(&self, i: usize) -> SlotRow {
        let offsets = self.buyers.value_offsets();
        let buyers = offsets[i] as usize..offsets[i + 1] as usize;
        SlotRow {
            user_id: self.user_id.value(i),
            slot: self.slot.value(i),
            position: self.position.value(i),
            product_id: self.product_id.value(i),
            merchant_id: self.merchant_id.value(i),
            score: self.score.value(i),
            buyer_count: self.buyer_count.value(i),
            // Checked to be Int64 when resolved.
            top_buyer_ids: self
                .buyers
                .values()
                .as_primitive_opt::<Int64Type>()
                .map(|ids| ids.values()[buyers].to_vec())
                .unwrap_or_default(),
        }
    }

    /// Appends rows `range` to `rows`.
    pub fn append(&self, rows: &mut SlotRows, range: Range<usize>) {
        rows.user_id
            .extend_from_slice(&self.user_id.values()[range.clone()]);
        rows.slot
            .extend_from_slice(&self.slot.values()[range.clone()]);
        rows.position
            .extend_from_slice(&self.position.values()[range.clone()]);
        rows.product_id
            .extend_from_slice(&self.product_id.values()[range.clone()]);
        rows.merchant_id
            .extend_from_slice(&self.merchant_id.values()[range.clone()]);
        rows.score
            .extend_from_slice(&self.score.values()[range.clone()]);
        rows.buyer_count
            .extend_from_slice(&self.buyer_count.values()[range.clone()]);
        // Checked to be Int64 when resolved.
        if let Some(ids) = self.buyers.values().as_primitive_opt::<Int64Type>() {
            rows.extend_buyers(
                &self.buyers.value_offsets()[range.start..=range.end],
                ids.values(),
            );
        }
    }
}

fn damaged(column: &str, path: &Path) -> Error {
    Error::DamagedOutput(format!(
        "{}: column {column} is not as written",
        path.display()
    ))
}

/// Appends the rows of `user_id` in `batch` (a slots batch of the part at
/// `path`) to `lookup`. `valid` is the part's one (valid_from,
/// valid_until) when known, and the batch may then lack those two columns.
pub(crate) fn decode(
    batch: &RecordBatch,
    path: &Path,
    user_id: i64,
    valid: Option<(i64, i64)>,
    lookup: &mut Lookup,
) -> Result<()> {
    let columns = SlotColumns::of(batch, path)?;
    let read_valid = match valid {
        Some(_) => None,
        None => {
            let window = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
                    .ok_or_else(|| damaged(name, path))
            };
            Some((window("valid_from")?, window("valid_until")?))
        }
    };
    for i in (0..columns.len()).filter(|&i| columns.user_id.value(i) == user_id) {
        lookup.rows.push(columns.row(i));
        lookup.valid = match read_valid {
            Some((from, until)) => Some((from.value(i), until.value(i))),
            None => valid,
        };
    }
    Ok(())
}
