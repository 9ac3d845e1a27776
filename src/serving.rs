//! `Slots`: the timeline service's read path, as a library.
//!
//! [`Slots::open`] pins the run LATEST names and reads, once, each part's
//! footer, its page index and the bloom filters on `user_id`;
//! [`Slots::get`] then finds one user's rows touching only the row groups
//! whose statistics and bloom filter admit the user, and within them only
//! the pages whose `user_id` range holds it. `get` takes `&self` and opens
//! its own file handle, so one `Slots` serves many threads.
//! [`Slots::refresh`] moves to the run LATEST names now. `boughtby slots`
//! is a thin command over it.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};
use crate::output::publish;
use crate::output::read::{Lookup, check_schema, decode, part_files};
use crate::rows::SlotRow;

/// The run LATEST named when opened (or refreshed), indexed for lookups.
pub struct Slots {
    out: PathBuf,
    run_id: String,
    parts: Vec<Part>,
}

/// One part: its metadata (footer and page index) and each row group's
/// user range, bloom filter and pages.
struct Part {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    groups: Vec<Group>,
    /// The columns a lookup decodes: the slots' own, without `run_id`, and
    /// without `valid_from`/`valid_until` when `valid` holds them.
    columns: ProjectionMask,
    /// `valid_from` and `valid_until` when one value each for the whole
    /// part (as a run writes them), from the row groups' statistics.
    valid: Option<(i64, i64)>,
}

struct Group {
    min: i64,
    max: i64,
    rows: usize,
    bloom: Option<Sbbf>,
    /// The `user_id` pages: (min, max, first row, rows); empty without a
    /// page index (the whole group is read then).
    pages: Vec<(i64, i64, usize, usize)>,
}

impl Slots {
    /// Opens the run that `<output>/LATEST` names.
    pub fn open(output: &Path) -> Result<Slots> {
        let run_id = published(output)?;
        let parts = part_files(&output.join(&run_id))?
            .into_iter()
            .map(open_part)
            .collect::<Result<Vec<Part>>>()?;
        Ok(Slots {
            out: output.to_path_buf(),
            run_id,
            parts,
        })
    }

    /// The run being read.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Moves to the run LATEST names now; whether it changed.
    pub fn refresh(&mut self) -> Result<bool> {
        if published(&self.out)? == self.run_id {
            return Ok(false);
        }
        *self = Slots::open(&self.out)?;
        Ok(true)
    }

    /// `user_id`'s rows, by slot; none is a normal answer.
    pub fn get(&self, user_id: i64) -> Result<Vec<SlotRow>> {
        Ok(self.lookup(user_id)?.rows)
    }

    /// `user_id`'s rows with what it took to find them.
    pub fn lookup(&self, user_id: i64) -> Result<Lookup> {
        let mut lookup = Lookup {
            run_id: self.run_id.clone(),
            rows: Vec::new(),
            valid: None,
            row_groups_read: 0,
            row_groups_total: 0,
        };
        for part in &self.parts {
            lookup.row_groups_total += part.groups.len();
            for (g, group) in part.groups.iter().enumerate() {
                let admits = group.min <= user_id
                    && user_id <= group.max
                    && group.bloom.as_ref().is_none_or(|b| b.check(&user_id));
                if !admits {
                    continue;
                }
                lookup.row_groups_read += 1;
                read_group(part, g, group, user_id, &mut lookup)?;
            }
        }
        Ok(lookup)
    }
}

/// The run id LATEST names, checked to be one.
fn published(out: &Path) -> Result<String> {
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
    Ok(run_id)
}

fn open_part(path: PathBuf) -> Result<Part> {
    let parquet_err = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let metadata = ArrowReaderMetadata::load(&file, options).map_err(parquet_err)?;
    check_schema(&path, metadata.schema())?;
    // The bloom filters, read once.
    let with_blooms = ReadOptionsBuilder::new()
        .with_reader_properties(
            ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        )
        .build();
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let reader = SerializedFileReader::new_with_options(file, with_blooms).map_err(parquet_err)?;
    let meta = metadata.metadata();
    let mut groups = Vec::with_capacity(meta.num_row_groups());
    for g in 0..meta.num_row_groups() {
        let row_group = meta.row_group(g);
        let (min, max) = match row_group.column(0).statistics() {
            Some(Statistics::Int64(s)) => (
                s.min_opt().copied().unwrap_or(i64::MIN),
                s.max_opt().copied().unwrap_or(i64::MAX),
            ),
            _ => (i64::MIN, i64::MAX),
        };
        let bloom = reader
            .get_row_group(g)
            .map_err(parquet_err)?
            .get_column_bloom_filter(0)
            .cloned();
        let rows = row_group.num_rows().max(0) as usize;
        let index = meta.page_index_for_row_group(g);
        let pages = match (index.column_index(0), index.offset_index(0)) {
            (Some(ColumnIndexMetaData::INT64(ci)), Some(oi)) => {
                let starts: Vec<usize> = oi
                    .page_locations()
                    .iter()
                    .map(|p| p.first_row_index.max(0) as usize)
                    .collect();
                (0..starts.len())
                    .map(|i| {
                        let end = starts.get(i + 1).copied().unwrap_or(rows);
                        (
                            ci.min_value(i).copied().unwrap_or(i64::MIN),
                            ci.max_value(i).copied().unwrap_or(i64::MAX),
                            starts[i],
                            end.saturating_sub(starts[i]),
                        )
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        groups.push(Group {
            min,
            max,
            rows,
            bloom,
            pages,
        });
    }
    let valid = constant(meta, "valid_from").zip(constant(meta, "valid_until"));
    let skipped: &[&str] = match valid {
        Some(_) => &["run_id", "valid_from", "valid_until"],
        None => &["run_id"],
    };
    let fields = metadata.schema().fields();
    let columns = ProjectionMask::roots(
        metadata.parquet_schema(),
        (0..fields.len()).filter(|&i| !skipped.contains(&fields[i].name().as_str())),
    );
    Ok(Part {
        path,
        metadata,
        groups,
        columns,
        valid,
    })
}

/// The one value of the top-level Int64 (or timestamp) column `name` in
/// every row group, when its statistics say so; a lookup then need not
/// decode it. Each column a lookup reads costs a page and a codec.
fn constant(meta: &ParquetMetaData, name: &str) -> Option<i64> {
    let column = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == name)?;
    let mut value = None;
    for row_group in meta.row_groups() {
        if row_group.num_rows() == 0 {
            continue;
        }
        let Some(Statistics::Int64(s)) = row_group.column(column).statistics() else {
            return None;
        };
        let (Some(&min), Some(&max)) = (s.min_opt(), s.max_opt()) else {
            return None;
        };
        if min != max || value.is_some_and(|v| v != min) || s.null_count_opt() != Some(0) {
            return None;
        }
        value = Some(min);
    }
    value
}

/// Reads the pages of row group `g` that can hold `user_id`.
fn read_group(
    part: &Part,
    g: usize,
    group: &Group,
    user_id: i64,
    lookup: &mut Lookup,
) -> Result<()> {
    let path = &part.path;
    let parquet_err = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut builder =
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, part.metadata.clone())
            .with_row_groups(vec![g])
            .with_projection(part.columns.clone());
    if !group.pages.is_empty() {
        let mut selectors = Vec::new();
        let mut at = 0;
        for &(min, max, first, rows) in &group.pages {
            if min <= user_id && user_id <= max {
                if first > at {
                    selectors.push(RowSelector::skip(first - at));
                }
                selectors.push(RowSelector::select(rows));
                at = first + rows;
            }
        }
        if selectors.is_empty() {
            return Ok(());
        }
        if at < group.rows {
            selectors.push(RowSelector::skip(group.rows - at));
        }
        builder = builder.with_row_selection(RowSelection::from(selectors));
    }
    let reader = builder.build().map_err(parquet_err)?;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(e.into()))?;
        decode(&batch, user_id, part.valid, lookup)?;
    }
    Ok(())
}
