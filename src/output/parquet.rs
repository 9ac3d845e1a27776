//! Writing slot rows to one Parquet part: zstd, page-level statistics (and
//! so the page index), a bloom filter on user_id, sorted-by metadata, and
//! row groups cut only between users.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int8Array, Int32Array, Int64Array, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{FieldRef, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{
    PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData, SortingColumn,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::output::schema;
use crate::rows::SlotRows;
use crate::time::DAY_US;

/// Rows per row group, roughly: a group closes at the first user boundary
/// past this many rows.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Rows per data page, at most: with the page index, one user's lookup
/// decodes a page or two of each column (a few thousand rows) rather than
/// its whole row group (65,536 rows), for a slightly larger file.
pub const PAGE_ROWS: usize = 2_048;

/// A written part as the manifest records it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PartInfo {
    /// Relative to the run folder.
    pub file: String,
    pub rows: u64,
    pub sha256: String,
}

/// The slots columns written without a dictionary (dotted Parquet column
/// paths; the buyers' list element is named by [`super::schema`]).
pub(crate) const PLAIN_COLUMNS: [&str; 4] =
    ["user_id", "product_id", "score", "top_buyer_ids.list.item"];

fn column_path(dotted: &str) -> Vec<String> {
    dotted.split('.').map(str::to_string).collect()
}

/// The part file name of shard `i` of `n`.
pub fn part_name(i: u32, n: u32) -> String {
    format!("part-{i:05}-of-{n:05}.parquet")
}

/// `users` bounds the distinct user ids of the part. Each row group has its
/// own bloom filter, sized for the users of one group (at most about
/// ROW_GROUP_ROWS, one row each), not the whole part's: the writer starts
/// each group's filter at that size and folds it down once the group is
/// written, so a filter sized for 40M users would start at 32 MiB in every
/// group.
///
/// The columns whose values are nearly all distinct within a row group
/// ([`PLAIN_COLUMNS`]) are written without a dictionary: it would save
/// little, and a lookup reading one page of such a column would first
/// have to read and decode the column's whole dictionary page (180 to
/// 490 KB per column on a large run), which made up most of a lookup.
pub(crate) fn properties(users: u64) -> WriterProperties {
    let user_id = ColumnPath::from("user_id");
    let per_group = users.clamp(1, ROW_GROUP_ROWS as u64);
    let mut builder = WriterProperties::builder();
    for column in PLAIN_COLUMNS {
        builder =
            builder.set_column_dictionary_enabled(ColumnPath::new(column_path(column)), false);
    }
    builder
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(None)
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_column_bloom_filter_enabled(user_id.clone(), true)
        .set_column_bloom_filter_max_ndv(user_id, per_group)
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 1,
                descending: false,
                nulls_first: false,
            },
        ]))
        .build()
}

/// Writes `chunks` (each holding whole users, in order) to `path`.
pub fn write_part(
    path: &Path,
    relative_name: &str,
    chunks: &[SlotRows],
    as_of: i64,
    run_id: &str,
) -> Result<PartInfo> {
    let users = chunks.iter().map(SlotRows::users).sum();
    let mut writer = PartWriter::create(path, users, as_of, run_id)?;
    for chunk in chunks {
        writer.write(chunk)?;
    }
    writer.finish(relative_name)
}

/// A part being written, chunk after chunk of whole users in order, its
/// columns encoded on the caller's thread (a writer beside the scorers)
/// until [`PartWriter::encode_on_the_pool`].
pub struct PartWriter<'a> {
    writer: ColumnsInParallel,
    schema: SchemaRef,
    repeated: Repeated<'a>,
    rows: u64,
    /// The users written (their first slots).
    users: u64,
}

impl<'a> PartWriter<'a> {
    /// Creates `path`; `users` (at most) sizes the bloom filter.
    pub fn create(path: &Path, users: u64, as_of: i64, run_id: &'a str) -> Result<PartWriter<'a>> {
        let schema = schema::slots_schema();
        let writer =
            ColumnsInParallel::create(path, schema.clone(), properties(users), EncodeOn::Here)?;
        Ok(PartWriter {
            writer,
            schema,
            repeated: Repeated::new(as_of, run_id),
            rows: 0,
            users: 0,
        })
    }

    /// Keeps each row group written, to be taken with
    /// [`PartWriter::take_written`] and copied elsewhere.
    pub fn keeping_groups(mut self) -> PartWriter<'a> {
        self.writer = self.writer.keeping_groups();
        self
    }

    /// Appends whole users; a row group closes at the first user boundary
    /// past [`ROW_GROUP_ROWS`].
    pub fn write(&mut self, chunk: &SlotRows) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let batch = to_batch(&self.schema, chunk, &mut self.repeated)?;
        self.writer.write(batch)?;
        self.rows += chunk.len() as u64;
        self.users += chunk.users();
        Ok(())
    }

    /// Encodes the columns of the row groups still to be written on the
    /// threads of the pool, all at once: for when the pool has nothing
    /// else to do (the scorers are done), never while it waits on this
    /// writer.
    pub fn encode_on_the_pool(&mut self) {
        self.writer.encoding = EncodeOn::Pool;
    }

    /// Ends the row group being written, if it has rows.
    pub fn end_group(&mut self) -> Result<()> {
        self.writer.flush()
    }

    /// The row groups written since last asked, their bytes in the file.
    pub(crate) fn take_written(&mut self) -> Result<Vec<WrittenGroup>> {
        self.writer.take_written()
    }

    /// The users written so far.
    pub fn users(&self) -> u64 {
        self.users
    }

    /// Closes and syncs the file; `relative_name` is its name in the run.
    pub fn finish(self, relative_name: &str) -> Result<PartInfo> {
        Ok(PartInfo {
            file: relative_name.to_string(),
            rows: self.rows,
            sha256: self.writer.finish()?,
        })
    }
}

/// The SHA-256 of a file's bytes, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(hasher))
}

/// The columns that hold one value on every row of a part (valid_from,
/// valid_until, run_id), built once for as many rows as the largest chunk
/// so far: each chunk takes a slice of them (no copy), where building them
/// for each chunk wrote about 60 bytes per row.
struct Repeated<'a> {
    as_of: i64,
    run_id: &'a str,
    columns: [ArrayRef; 3],
}

impl<'a> Repeated<'a> {
    /// Rows the columns are first built for (a chunk of 512 users holds
    /// about 1,400).
    const FIRST_ROWS: usize = 4096;

    fn new(as_of: i64, run_id: &'a str) -> Repeated<'a> {
        Repeated {
            as_of,
            run_id,
            columns: Self::build(as_of, run_id, Self::FIRST_ROWS),
        }
    }

    fn build(as_of: i64, run_id: &str, rows: usize) -> [ArrayRef; 3] {
        let stamp = |t: i64| {
            Arc::new(TimestampMicrosecondArray::from(vec![t; rows]).with_timezone("UTC"))
                as ArrayRef
        };
        let run_ids = StringArray::from_iter_values(std::iter::repeat_n(run_id, rows));
        [stamp(as_of), stamp(as_of + DAY_US), Arc::new(run_ids)]
    }

    /// The three columns for `rows` rows.
    fn take(&mut self, rows: usize) -> [ArrayRef; 3] {
        let built = self.columns[0].len();
        if rows > built {
            self.columns = Self::build(self.as_of, self.run_id, rows.max(built * 2));
        }
        self.columns.each_ref().map(|c| c.slice(0, rows))
    }
}

fn to_batch(schema: &SchemaRef, rows: &SlotRows, repeated: &mut Repeated) -> Result<RecordBatch> {
    let [valid_from, valid_until, run_ids] = repeated.take(rows.len());
    let columns = slot_columns(rows, [valid_from, valid_until], run_ids)?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Internal(format!("slot rows do not fit the schema: {e}")))
}

/// The slots schema's columns of `rows`, in order, given their
/// `valid_from` and `valid_until` and their `run_id` columns (the one
/// place the slot columns are laid out, for the parts and the deltas).
pub(crate) fn slot_columns(
    rows: &SlotRows,
    valid: [ArrayRef; 2],
    run_ids: ArrayRef,
) -> Result<Vec<ArrayRef>> {
    let offsets = OffsetBuffer::new(rows.buyer_offsets.clone().into());
    let buyers = ListArray::try_new(
        schema::buyer_item(),
        offsets,
        Arc::new(Int64Array::from(rows.buyer_ids.clone())),
        None,
    )
    .map_err(|e| Error::Internal(format!("slot rows do not form a list column: {e}")))?;
    let [valid_from, valid_until] = valid;
    Ok(vec![
        Arc::new(Int64Array::from(rows.user_id.clone())),
        Arc::new(Int8Array::from(rows.slot.clone())),
        Arc::new(Int32Array::from(rows.position.clone())),
        Arc::new(Int64Array::from(rows.product_id.clone())),
        Arc::new(Int64Array::from(rows.merchant_id.clone())),
        Arc::new(Float64Array::from(rows.score.clone())),
        Arc::new(Int32Array::from(rows.buyer_count.clone())),
        Arc::new(buyers),
        valid_from,
        valid_until,
        run_ids,
    ])
}

/// A Parquet file written a row group at a time, each group's columns
/// encoded on the threads of the pool at once (zstd, statistics, the bloom
/// filter: what makes writing slow), for a writer that would otherwise
/// leave the other cores idle, or one after another on the writer's own
/// thread ([`EncodeOn::Here`]), for a writer beside busy scorers. The bytes
/// are those [`ArrowWriter`] writes for the same batches and row groups:
/// the same column writers take the same batches in the same order.
pub(crate) struct ColumnsInParallel {
    path: PathBuf,
    file: SerializedFileWriter<Out>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    encoding: EncodeOn,
    /// The current row group's batches, and their rows.
    pending: Vec<RecordBatch>,
    rows: usize,
    groups: usize,
    /// The row groups written since last taken, when they are kept for
    /// copying ([`ColumnsInParallel::keeping_groups`]).
    written: Option<Vec<WrittenGroup>>,
}

/// Where a row group's columns are encoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum EncodeOn {
    /// On the threads of the pool, all at once.
    Pool,
    /// On the writer's thread, one after another.
    Here,
}

/// A row group as its file holds it: each column chunk's metadata (where
/// it lies in the file), bloom filter and page indexes. It is what copying
/// the group into another file takes ([`ColumnsInParallel::copy_group`]).
pub(crate) struct WrittenGroup {
    rows: usize,
    columns: Vec<ColumnCloseResult>,
}

impl WrittenGroup {
    /// The group `placed` (as the file's writer closed it), whose chunks'
    /// bloom filters and page indexes are those of `encoded`, the chunks
    /// before they were placed: their offset indexes are moved to where
    /// the pages lie, one after another from the chunk's first data page.
    fn placed(placed: &RowGroupMetaData, encoded: Vec<ColumnCloseResult>) -> Result<WrittenGroup> {
        if placed.num_columns() != encoded.len() {
            return Err(Error::Internal(format!(
                "a row group of {} columns placed for {} encoded",
                placed.num_columns(),
                encoded.len()
            )));
        }
        let rows = usize::try_from(placed.num_rows()).unwrap_or(0);
        let columns = placed
            .columns()
            .iter()
            .zip(encoded)
            .map(|(column, close)| {
                let offset_index = close.offset_index.map(|mut index| {
                    let mut at = column.data_page_offset();
                    for page in &mut index.page_locations {
                        page.offset = at;
                        at += i64::from(page.compressed_page_size);
                    }
                    index
                });
                ColumnCloseResult {
                    bytes_written: column.compressed_size() as u64,
                    rows_written: rows as u64,
                    metadata: column.clone(),
                    bloom_filter: close.bloom_filter,
                    column_index: close.column_index,
                    offset_index,
                }
            })
            .collect();
        Ok(WrittenGroup { rows, columns })
    }

    /// Row group `g` of the finished Parquet file `source` (at `path`),
    /// whose footer is `metadata`.
    fn of_file(
        path: &Path,
        source: &File,
        metadata: &ParquetMetaData,
        g: usize,
    ) -> Result<WrittenGroup> {
        let failed = |e| Error::parquet(path, e);
        let group = metadata
            .row_groups()
            .get(g)
            .ok_or_else(|| Error::Internal(format!("{} has no row group {g}", path.display())))?;
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        let page_index = metadata.page_index();
        let mut columns = Vec::with_capacity(group.num_columns());
        for (c, column) in group.columns().iter().enumerate() {
            columns.push(ColumnCloseResult {
                bytes_written: column.compressed_size() as u64,
                rows_written: rows as u64,
                metadata: column.clone(),
                bloom_filter: Sbbf::read_from_column_chunk(column, source).map_err(failed)?,
                column_index: page_index.and_then(|i| i.column_index(g, c)).cloned(),
                offset_index: page_index.and_then(|i| i.offset_index(g, c)).cloned(),
            });
        }
        Ok(WrittenGroup { rows, columns })
    }

    /// The group's rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
}

impl ColumnsInParallel {
    pub(crate) fn create(
        path: &Path,
        schema: SchemaRef,
        properties: WriterProperties,
        encoding: EncodeOn,
    ) -> Result<ColumnsInParallel> {
        let failed = |source| Error::parquet(path, source);
        let writer = ArrowWriter::try_new(create_out(path)?, schema.clone(), Some(properties))
            .map_err(failed)?;
        let (file, factory) = writer.into_serialized_writer().map_err(failed)?;
        Ok(ColumnsInParallel {
            path: path.to_path_buf(),
            file,
            factory,
            schema,
            encoding,
            pending: Vec::new(),
            rows: 0,
            groups: 0,
            written: None,
        })
    }

    /// Keeps each row group written, for [`ColumnsInParallel::take_written`].
    pub(crate) fn keeping_groups(mut self) -> ColumnsInParallel {
        self.written = Some(Vec::new());
        self
    }

    /// The row groups written since last asked, once their bytes are in
    /// the file (none unless [`ColumnsInParallel::keeping_groups`]).
    pub(crate) fn take_written(&mut self) -> Result<Vec<WrittenGroup>> {
        match &mut self.written {
            Some(written) if !written.is_empty() => {
                let groups = std::mem::take(written);
                self.file
                    .inner_mut()
                    .flush()
                    .map_err(|e| Error::io(&self.path, e))?;
                Ok(groups)
            }
            _ => Ok(Vec::new()),
        }
    }

    fn failed(&self, source: parquet::errors::ParquetError) -> Error {
        Error::parquet(&self.path, source)
    }

    /// Adds `batch` to the current row group, which is written once it
    /// holds [`ROW_GROUP_ROWS`] rows or more.
    pub(crate) fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        self.pending.push(batch);
        if self.rows >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the current row group, if it has rows.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            self.pending.clear();
            return Ok(());
        }
        let writers = self
            .factory
            .create_column_writers(self.groups)
            .map_err(|e| self.failed(e))?;
        let fields = self.schema.fields();
        if writers.len() != fields.len() {
            return Err(Error::Internal(format!(
                "{} column writers for {} columns: a nested column has more than one leaf",
                writers.len(),
                fields.len()
            )));
        }
        let pending = &self.pending;
        let column = |(c, (writer, field)): (usize, (ArrowColumnWriter, &FieldRef))| {
            encode(writer, field, pending.iter().map(|b| b.column(c)))
        };
        let chunks = match self.encoding {
            EncodeOn::Pool => writers
                .into_par_iter()
                .zip(fields.par_iter())
                .enumerate()
                .map(column)
                .collect::<std::result::Result<Vec<_>, _>>(),
            EncodeOn::Here => writers
                .into_iter()
                .zip(fields.iter())
                .enumerate()
                .map(column)
                .collect::<std::result::Result<Vec<_>, _>>(),
        }
        .map_err(|e| self.failed(e))?;
        let encoded: Option<Vec<ColumnCloseResult>> = self
            .written
            .as_ref()
            .map(|_| chunks.iter().map(|c| c.close().clone()).collect());
        let path = &self.path;
        let failed = |source| Error::parquet(path, source);
        let mut group = self.file.next_row_group().map_err(failed)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group).map_err(failed)?;
        }
        let placed = group.close().map_err(failed)?;
        if let (Some(written), Some(encoded)) = (&mut self.written, encoded) {
            written.push(WrittenGroup::placed(&placed, encoded)?);
        }
        self.groups += 1;
        self.pending.clear();
        self.rows = 0;
        Ok(())
    }

    /// Appends the row groups of the finished Parquet file `from`, whose
    /// columns are this file's first columns, with [`Self::copy_group`].
    /// Returns the rows appended.
    pub(crate) fn copy_groups(
        &mut self,
        from: &Path,
        rest: impl Fn(usize) -> Vec<ArrayRef>,
    ) -> Result<u64> {
        let source = File::open(from).map_err(|e| Error::io(from, e))?;
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(&source)
            .map_err(|e| Error::parquet(from, e))?;
        let mut rows = 0;
        for g in 0..metadata.num_row_groups() {
            let group = WrittenGroup::of_file(from, &source, &metadata, g)?;
            rows += group.rows as u64;
            self.copy_group(from, &source, group, &rest)?;
        }
        Ok(rows)
    }

    /// Appends a row group of `source` (the Parquet file at `from`, whose
    /// columns are this file's first columns): its column chunks are
    /// copied as they are (pages, statistics, page index, bloom filter),
    /// and this file's other columns are encoded from `rest`, called with
    /// the group's row count.
    pub(crate) fn copy_group(
        &mut self,
        from: &Path,
        source: &File,
        group: WrittenGroup,
        rest: impl Fn(usize) -> Vec<ArrayRef>,
    ) -> Result<()> {
        self.flush()?;
        let ours = self.file.schema_descr();
        let columns = ours.num_columns();
        let copied = group.columns.len();
        let same = copied <= columns
            && group.columns.iter().enumerate().all(|(i, c)| {
                let (a, b) = (c.metadata.column_descr(), ours.column(i));
                a.path() == b.path() && a.physical_type() == b.physical_type()
            });
        if !same {
            return Err(Error::Internal(format!(
                "{}'s columns are not the first columns of {}",
                from.display(),
                self.path.display()
            )));
        }
        let fields = self.schema.fields().get(copied..).unwrap_or_default();
        let writers = self
            .factory
            .create_column_writers(self.groups)
            .map_err(|e| self.failed(e))?;
        let arrays = rest(group.rows);
        let encoded = writers
            .into_iter()
            .skip(copied)
            .zip(fields.iter().zip(&arrays))
            .map(|(writer, (field, array))| encode(writer, field, [array]))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.failed(e))?;
        if encoded.len() + copied != columns {
            return Err(Error::Internal(format!(
                "{} columns encoded beside {copied} copied, for {columns}",
                encoded.len(),
            )));
        }
        let path = &self.path;
        let failed = |source| Error::parquet(path, source);
        let mut out = self.file.next_row_group().map_err(failed)?;
        for close in group.columns {
            out.append_column(source, close).map_err(failed)?;
        }
        for chunk in encoded {
            chunk.append_to_row_group(&mut out).map_err(failed)?;
        }
        out.close().map_err(failed)?;
        self.groups += 1;
        Ok(())
    }

    /// Writes the last row group and the footer, syncs the file and
    /// returns its SHA-256.
    pub(crate) fn finish(mut self) -> Result<String> {
        self.flush()?;
        let written = self.file.into_inner();
        synced(written, &self.path)
    }
}

/// One column of a row group through its column writer: `arrays` are the
/// column's pieces, in row order.
fn encode<'a>(
    mut writer: ArrowColumnWriter,
    field: &FieldRef,
    arrays: impl IntoIterator<Item = &'a ArrayRef>,
) -> parquet::errors::Result<ArrowColumnChunk> {
    for array in arrays {
        for leaf in compute_leaves(field, array)? {
            writer.write(&leaf)?;
        }
    }
    writer.close()
}

/// The file a Parquet writer closed into (footer written), flushed and
/// synced; its SHA-256.
fn synced(written: parquet::errors::Result<Out>, path: &Path) -> Result<String> {
    let Hashing { file, sha, .. } = written
        .map_err(|source| Error::parquet(path, source))?
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    Ok(hex(sha))
}

/// Where a Parquet file is written: buffered, and hashed as it goes.
pub(crate) type Out = BufWriter<Hashing>;

/// Creates `path` to write a Parquet file into.
fn create_out(path: &Path) -> Result<Out> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    Ok(BufWriter::with_capacity(
        1 << 20,
        Hashing {
            file,
            sha: Sha256::new(),
            written: 0,
            started: 0,
        },
    ))
}

/// A file that hashes what is written to it, so that a written file's
/// SHA-256 is known without reading it back (the commit still reads each
/// part back to check it against its marker).
pub(crate) struct Hashing {
    file: File,
    sha: Sha256,
    /// Bytes written, and how many of them the disk was asked to write.
    written: u64,
    started: u64,
}

/// Written bytes the disk is asked to start writing once this many wait
/// (Linux: `sync_file_range`), so that they go to the disk while the rest
/// is made, and the sync that ends the file waits on little.
const WRITE_BEHIND: u64 = 8 << 20;

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha.update(&buf[..n]);
        self.written += n as u64;
        if self.written - self.started >= WRITE_BEHIND {
            write_behind(&self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Asks the disk to start writing `len` bytes of `file` from `offset`,
/// without waiting for them (only a hint: the sync that ends the file is
/// what makes them durable, and a refusal changes nothing).
fn write_behind(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) {
            // SAFETY: sync_file_range reads no memory of ours; on a
            // descriptor this file owns it only starts the write-back of
            // pages already written, and any error is ignored.
            unsafe {
                libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// A finished SHA-256, lowercase hex.
fn hex(sha: Sha256) -> String {
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampMicrosecondType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    /// A file written through [`Hashing`] past several write-behind
    /// requests holds every byte, in order, and hashes to what it reports.
    #[test]
    fn a_file_written_behind_holds_and_hashes_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("behind.bin");
        let mut out = create_out(&path).unwrap();
        let mut all = Vec::new();
        for k in 0..600u32 {
            // Writes of uneven sizes, 27 MB in all.
            let piece: Vec<u8> = (0..45_001 + k)
                .map(|i| (i.wrapping_mul(31).wrapping_add(k)) as u8)
                .collect();
            out.write_all(&piece).unwrap();
            all.extend_from_slice(&piece);
        }
        let sha = synced(Ok(out), &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), all);
        assert_eq!(sha, sha256_file(&path).unwrap());
        assert_eq!(sha, hex(Sha256::new_with_prefix(&all)));
    }

    /// Chunks smaller and larger than the repeated columns were first
    /// built for (so that they grow, twice) carry as_of, the next day and
    /// the run id on every row, and every other column as written.
    #[test]
    fn every_row_of_a_part_carries_the_run_and_its_day() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part.parquet");
        let (as_of, run_id) = (1_700_000_000_000_000, "20261124T000000Z-0a0b0c0d");
        let mut writer = PartWriter::create(&path, 20_000, as_of, run_id).unwrap();
        let (mut first, mut written) = (0, SlotRows::default());
        for users in [1, 2_000, 5, 9_000, 1_500] {
            let chunk = rows(first, users);
            writer.write(&chunk).unwrap();
            written.append(&chunk);
            first += users;
        }
        writer.finish("part.parquet").unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut read = SlotRows::default();
        for batch in reader {
            let batch = batch.unwrap();
            let stamps = |name: &str| -> Vec<i64> {
                let column = batch.column_by_name(name).unwrap();
                column
                    .as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .to_vec()
            };
            assert!(stamps("valid_from").iter().all(|&t| t == as_of));
            assert!(stamps("valid_until").iter().all(|&t| t == as_of + DAY_US));
            let run_ids = batch.column_by_name("run_id").unwrap().as_string::<i32>();
            assert!(run_ids.iter().all(|r| r == Some(run_id)));
            let columns = crate::output::read::SlotColumns::of(&batch, &path).unwrap();
            columns.append(&mut read, 0..columns.len());
        }
        assert_eq!(read.len(), 3 * 12_506);
        assert_eq!(read, written);
    }

    /// `users` users from `first` on, each with three slots and up to
    /// three buyers, with values that vary from row to row.
    fn rows(first: i64, users: i64) -> SlotRows {
        let mut rows = SlotRows::default();
        for u in first..first + users {
            for k in 0..3i64 {
                rows.user_id.push(u);
                rows.slot.push(k as i8 + 1);
                rows.position.push([4, 14, 30][k as usize]);
                rows.product_id.push((u * 7_919 + k * 104_729) % 1_000_003);
                rows.merchant_id.push((u + k) % 97);
                rows.score.push(((u * 3 + k) % 1_000) as f64 / 7.0);
                let buyers = (u + k) % 4;
                rows.buyer_count.push(buyers as i32 + 1);
                rows.buyer_ids.extend((0..buyers).map(|b| u * 10 + b));
                rows.buyer_offsets.push(rows.buyer_ids.len() as i32);
            }
        }
        rows
    }

    /// `n` batches of 10,000 users (30,000 rows) each, users ascending.
    fn batches(schema: &SchemaRef, n: i64) -> Vec<RecordBatch> {
        (0..n)
            .map(|b| {
                let mut repeated = Repeated::new(1_000, "run");
                to_batch(schema, &rows(b * 10_000, 10_000), &mut repeated).unwrap()
            })
            .collect()
    }

    /// `batches` with an `op` column of upserts beside them, in `wide`.
    fn with_op(batches: &[RecordBatch], wide: &SchemaRef) -> Vec<RecordBatch> {
        batches
            .iter()
            .map(|batch| {
                let mut columns = batch.columns().to_vec();
                columns.push(Arc::new(StringArray::from(vec![
                    "upsert";
                    batch.num_rows()
                ])));
                RecordBatch::try_new(wide.clone(), columns).unwrap()
            })
            .collect()
    }

    /// Writes `batches` with `ArrowWriter`, a row group closing once it
    /// holds ROW_GROUP_ROWS rows; returns the row groups written.
    fn with_arrow_writer(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> usize {
        let file = File::create(path).unwrap();
        let mut writer =
            ArrowWriter::try_new(file, schema.clone(), Some(properties(70_000))).unwrap();
        for batch in batches {
            writer.write(batch).unwrap();
            if writer.in_progress_rows() >= ROW_GROUP_ROWS {
                writer.flush().unwrap();
            }
        }
        writer.close().unwrap().num_row_groups()
    }

    /// Writes `batches` with [`ColumnsInParallel`]; returns the SHA-256.
    fn in_parallel(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> String {
        let mut writer =
            ColumnsInParallel::create(path, schema.clone(), properties(70_000), EncodeOn::Pool)
                .unwrap();
        for batch in batches {
            writer.write(batch.clone()).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn columns_written_in_parallel_are_the_bytes_arrow_writer_writes() {
        let dir = tempfile::tempdir().unwrap();
        let schema = schema::slots_schema();
        // 7 batches of 30,000 rows: a row group ends after the batch that
        // takes it past ROW_GROUP_ROWS, so two groups of 90,000 rows and a
        // last one of 30,000.
        let batches = batches(&schema, 7);
        let reference = dir.path().join("reference.parquet");
        assert_eq!(with_arrow_writer(&reference, &schema, &batches), 3);

        let parallel = dir.path().join("parallel.parquet");
        let sha = in_parallel(&parallel, &schema, &batches);
        assert_eq!(sha, sha256_file(&parallel).unwrap());
        let here = dir.path().join("here.parquet");
        let mut writer =
            ColumnsInParallel::create(&here, schema.clone(), properties(70_000), EncodeOn::Here)
                .unwrap();
        for batch in &batches {
            writer.write(batch.clone()).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), sha256_file(&here).unwrap());
        let reference = std::fs::read(&reference).unwrap();
        for written in [parallel, here] {
            let bytes = std::fs::read(&written).unwrap();
            assert!(
                reference == bytes,
                "{}: {} bytes against {}",
                written.display(),
                bytes.len(),
                reference.len()
            );
        }
    }

    /// Row groups copied one by one as they are written (their places
    /// taken from the writer, the file still open), with one more column
    /// encoded beside them, make the bytes ArrowWriter writes for the same
    /// rows with that column.
    #[test]
    fn groups_copied_as_written_are_the_bytes_of_the_rows_written_with_the_new_column() {
        let dir = tempfile::tempdir().unwrap();
        let slots = schema::slots_schema();
        let wide = crate::output::delta::delta_schema();
        let op = |n: usize| Arc::new(StringArray::from(vec!["upsert"; n])) as ArrayRef;
        // One batch per row group (90,000, 90,000 and 30,000 rows): a
        // column writer cuts pages where its writes end, so the reference
        // must take `op` in the same pieces as the copy does.
        let small = batches(&slots, 7);
        let batches: Vec<RecordBatch> = small
            .chunks(3)
            .map(|group| arrow::compute::concat_batches(&slots, group).unwrap())
            .collect();
        let part = dir.path().join("part.parquet");
        let mut writer =
            ColumnsInParallel::create(&part, slots.clone(), properties(70_000), EncodeOn::Here)
                .unwrap()
                .keeping_groups();
        let copied = dir.path().join("copied.parquet");
        let mut copy =
            ColumnsInParallel::create(&copied, wide.clone(), properties(70_000), EncodeOn::Here)
                .unwrap();
        let mut groups = 0;
        let mut copy_written = |writer: &mut ColumnsInParallel, copy: &mut ColumnsInParallel| {
            let source = File::open(&part).unwrap();
            for group in writer.take_written().unwrap() {
                groups += 1;
                copy.copy_group(&part, &source, group, |n| vec![op(n)])
                    .unwrap();
            }
        };
        for batch in &batches {
            writer.write(batch.clone()).unwrap();
            copy_written(&mut writer, &mut copy);
        }
        // The last group is written by `flush`, before the footer.
        writer.flush().unwrap();
        copy_written(&mut writer, &mut copy);
        assert_eq!(groups, 3);
        writer.finish().unwrap();
        copy.finish().unwrap();

        let wide_batches = with_op(&batches, &wide);
        let written = dir.path().join("written.parquet");
        assert_eq!(with_arrow_writer(&written, &wide, &wide_batches), 3);
        let (a, b) = (
            std::fs::read(&written).unwrap(),
            std::fs::read(&copied).unwrap(),
        );
        assert!(a == b, "{} bytes against {}", b.len(), a.len());
    }

    /// Copying a file's row groups with one more column encoded beside them
    /// reads back as writing the same rows with that column does, and keeps
    /// each copied chunk's page index and bloom filter.
    #[test]
    fn copied_row_groups_read_as_the_rows_written_with_the_new_column() {
        let dir = tempfile::tempdir().unwrap();
        let slots = schema::slots_schema();
        let batches = batches(&slots, 5);
        let part = dir.path().join("part.parquet");
        in_parallel(&part, &slots, &batches);

        // The reference: the same rows with `op`, written whole by
        // ArrowWriter.
        let wide = crate::output::delta::delta_schema();
        let op = |n: usize| Arc::new(StringArray::from(vec!["upsert"; n])) as ArrayRef;
        let wide_batches = with_op(&batches, &wide);
        let written = dir.path().join("written.parquet");
        with_arrow_writer(&written, &wide, &wide_batches);
        let copied = dir.path().join("copied.parquet");
        let mut writer =
            ColumnsInParallel::create(&copied, wide.clone(), properties(70_000), EncodeOn::Pool)
                .unwrap();
        assert_eq!(writer.copy_groups(&part, |n| vec![op(n)]).unwrap(), 150_000);
        writer.finish().unwrap();

        let read = |path: &Path| -> Vec<RecordBatch> {
            let file = File::open(path).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            reader.map(|b| b.unwrap()).collect()
        };
        let (a, b) = (read(&written), read(&copied));
        assert_eq!(a.iter().map(|b| b.num_rows()).sum::<usize>(), 150_000);
        assert_eq!(
            arrow::compute::concat_batches(&wide, &a).unwrap(),
            arrow::compute::concat_batches(&wide, &b).unwrap()
        );

        let source = File::open(&copied).unwrap();
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&source)
            .unwrap();
        assert_eq!(metadata.num_row_groups(), 2);
        let index = metadata.page_index().unwrap();
        let first = a[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        for (g, group) in metadata.row_groups().iter().enumerate() {
            for c in 0..wide.fields().len() {
                let pages = index.offset_index(g, c).map(|o| o.page_locations().len());
                assert!(
                    pages.unwrap_or(0) > 0,
                    "group {g} column {c}: no offset index"
                );
                assert!(index.column_index(g, c).is_some(), "group {g} column {c}");
            }
            let filter = Sbbf::read_from_column_chunk(group.column(0), &source).unwrap();
            let filter = filter.unwrap_or_else(|| panic!("group {g}: no bloom filter on user_id"));
            assert!(g > 0 || filter.check(&first));
        }
    }
}
