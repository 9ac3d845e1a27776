//! Reading one user's slots from the published run, as the timeline
//! service does: row-group statistics and the bloom filter on user_id pick
//! the row groups that can hold the user, and only those are decoded.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float64Type, Int8Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};
use crate::output::publish;
use crate::output::schema::slots_schema;
use crate::rows::SlotRow;

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

/// Finds `user_id`'s rows in the run that `<out>/LATEST` names.
pub fn user_slots(out: &Path, user_id: i64) -> Result<Lookup> {
    let run_id = publish::latest(out)?.ok_or_else(|| {
        Error::Usage(format!(
            "no published run in {} (it has no {} file)",
            out.display(),
            publish::LATEST
        ))
    })?;
    if !publish::is_run_id(&run_id) {
        return Err(Error::DamagedOutput(format!(
            "{} names {run_id:?}, which is not a run id (YYYYMMDDTHHMMSSZ-xxxxxxxx)",
            out.join(publish::LATEST).display()
        )));
    }
    let mut lookup = Lookup {
        run_id: run_id.clone(),
        rows: Vec::new(),
        valid: None,
        row_groups_read: 0,
        row_groups_total: 0,
    };
    for path in part_files(&out.join(&run_id))? {
        let parquet_err = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
        check_schema(&path, builder.schema())?;
        let groups = candidate_groups(&path, user_id, &mut lookup.row_groups_total)?;
        if groups.is_empty() {
            continue;
        }
        lookup.row_groups_read += groups.len();
        let reader = builder
            .with_row_groups(groups)
            .build()
            .map_err(parquet_err)?;
        for batch in reader {
            let batch = batch.map_err(|e| parquet_err(e.into()))?;
            decode(&batch, user_id, &mut lookup)?;
        }
    }
    Ok(lookup)
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

/// The row groups of `path` whose statistics and bloom filter admit `user_id`.
fn candidate_groups(path: &Path, user_id: i64, total: &mut usize) -> Result<Vec<usize>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let options = ReadOptionsBuilder::new()
        .with_reader_properties(
            ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        )
        .build();
    let parquet_err = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let reader = SerializedFileReader::new_with_options(file, options).map_err(parquet_err)?;
    let meta = reader.metadata();
    *total += meta.num_row_groups();
    let mut groups = Vec::new();
    for i in 0..meta.num_row_groups() {
        let in_range = match meta.row_group(i).column(0).statistics() {
            Some(Statistics::Int64(s)) => {
                s.min_opt().is_none_or(|&min| min <= user_id)
                    && s.max_opt().is_none_or(|&max| user_id <= max)
            }
            _ => true,
        };
        if !in_range {
            continue;
        }
        let group = reader.get_row_group(i).map_err(parquet_err)?;
        if group
            .get_column_bloom_filter(0)
            .is_none_or(|bloom| bloom.check(&user_id))
        {
            groups.push(i);
        }
    }
    Ok(groups)
}

fn decode(batch: &RecordBatch, user_id: i64, lookup: &mut Lookup) -> Result<()> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("slots part lacks column {name}")))
    };
    let users = column("user_id")?.as_primitive::<Int64Type>();
    let slot = column("slot")?.as_primitive::<Int8Type>();
    let position = column("position")?.as_primitive::<Int32Type>();
    let product = column("product_id")?.as_primitive::<Int64Type>();
    let merchant = column("merchant_id")?.as_primitive::<Int64Type>();
    let score = column("score")?.as_primitive::<Float64Type>();
    let count = column("buyer_count")?.as_primitive::<Int32Type>();
    let buyers = column("top_buyer_ids")?.as_list::<i32>();
    let from = column("valid_from")?.as_primitive::<TimestampMicrosecondType>();
    let until = column("valid_until")?.as_primitive::<TimestampMicrosecondType>();
    for i in (0..batch.num_rows()).filter(|&i| users.value(i) == user_id) {
        let shown = buyers.value(i);
        lookup.rows.push(SlotRow {
            user_id,
            slot: slot.value(i),
            position: position.value(i),
            product_id: product.value(i),
            merchant_id: merchant.value(i),
            score: score.value(i),
            buyer_count: count.value(i),
            top_buyer_ids: shown.as_primitive::<Int64Type>().values().to_vec(),
        });
        lookup.valid = Some((from.value(i), until.value(i)));
    }
    Ok(())
}
