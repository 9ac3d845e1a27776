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
//!
//! On object storage (`s3://` output) the same reads are ranged requests:
//! the footer, the page index and the bloom filters once per part when
//! opened, then per lookup only the pages admitted (see [`ObjectPart`]);
//! a part is never downloaded whole. The parts are those the manifest
//! names (a folder may hold parts of an earlier attempt until pruned).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::bloom_filter::Sbbf;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, FileReader, Length};
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};
use crate::output::manifest::Manifest;
use crate::output::publish;
use crate::output::read::{Lookup, check_schema, decode, part_files};
use crate::rows::SlotRow;
use crate::storage::Remote;

/// The run LATEST named when opened (or refreshed), indexed for lookups.
pub struct Slots {
    out: PathBuf,
    run_id: String,
    parts: Vec<Part>,
    /// Bytes fetched from object storage so far (0 on a disk).
    fetched: Arc<AtomicU64>,
}

/// One part: its metadata (footer and page index) and each row group's
/// user range, bloom filter and pages.
struct Part {
    path: PathBuf,
    /// An object's ranged reader; `None` for a local file (opened per
    /// lookup).
    object: Option<ObjectPart>,
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
        let fetched = Arc::new(AtomicU64::new(0));
        let parts = match Remote::of(output)? {
            None => part_files(&output.join(&run_id))?
                .into_iter()
                .map(open_part)
                .collect::<Result<Vec<Part>>>()?,
            Some(remote) => open_objects(&remote, &run_id, &fetched)?,
        };
        Ok(Slots {
            out: output.to_path_buf(),
            run_id,
            parts,
            fetched,
        })
    }

    /// Bytes fetched from object storage since opened (0 on a disk).
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The parts' size in bytes on object storage (0 on a disk).
    pub fn bytes_total(&self) -> u64 {
        self.parts
            .iter()
            .filter_map(|p| p.object.as_ref().map(|o| o.size))
            .sum()
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
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let again = File::open(&path).map_err(|e| Error::io(&path, e))?;
    index_part(path, None, file, again)
}

/// The parts the manifest of `run_id` names, opened for ranged reads.
fn open_objects(remote: &Remote, run_id: &str, fetched: &Arc<AtomicU64>) -> Result<Vec<Part>> {
    let run = remote.child(run_id);
    let manifest = Manifest::read(Path::new(run.url()))?;
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for part in &manifest.parts {
        let Some((size, _, _)) = run.head(&part.file)? else {
            return Err(Error::DamagedOutput(format!(
                "part {} of the published run is missing",
                run.url_of(&part.file)
            )));
        };
        let object = ObjectPart {
            run: run.clone(),
            name: part.file.clone(),
            size,
            fetched: fetched.clone(),
        };
        let path = PathBuf::from(run.url_of(&part.file));
        parts.push(index_part(
            path,
            Some(object.clone()),
            object.clone(),
            object,
        )?);
    }
    Ok(parts)
}

/// One part on object storage, read by ranged requests, counting the
/// bytes it fetches.
#[derive(Clone)]
struct ObjectPart {
    run: Remote,
    name: String,
    size: u64,
    fetched: Arc<AtomicU64>,
}

impl Length for ObjectPart {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for ObjectPart {
    type T = std::io::Cursor<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let rest = usize::try_from(self.size.saturating_sub(start))
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        self.get_bytes(start, rest).map(std::io::Cursor::new)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let end = start.saturating_add(length as u64).min(self.size);
        let bytes = self
            .run
            .get_range(&self.name, start..end)
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        self.fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

/// Reads a part's footer, page index and bloom filters through `reader`
/// (and `again`, a second handle on the same bytes).
fn index_part<R: ChunkReader + 'static>(
    path: PathBuf,
    object: Option<ObjectPart>,
    file: R,
    again: R,
) -> Result<Part> {
    let parquet_err = |source| Error::parquet(path.as_path(), source);
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
    let reader = SerializedFileReader::new_with_options(again, with_blooms).map_err(parquet_err)?;
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
        object,
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
    match &part.object {
        Some(object) => read_pages(object.clone(), part, g, group, user_id, lookup),
        None => {
            let path = &part.path;
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            read_pages(file, part, g, group, user_id, lookup)
        }
    }
}

/// Reads, through `reader`, the pages of row group `g` that can hold
/// `user_id`.
fn read_pages<R: ChunkReader + 'static>(
    reader: R,
    part: &Part,
    g: usize,
    group: &Group,
    user_id: i64,
    lookup: &mut Lookup,
) -> Result<()> {
    let path = &part.path;
    let parquet_err = |source| Error::parquet(path.as_path(), source);
    let mut builder =
        ParquetRecordBatchReaderBuilder::new_with_metadata(reader, part.metadata.clone())
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
        decode(&batch, &part.path, user_id, part.valid, lookup)?;
    }
    Ok(())
}
