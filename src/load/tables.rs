//! Finding and reading one input table: a file or a folder of parts,
//! Parquet or CSV, into Polars frames; then typed, checked columns.
//!
//! Every check names the table, the part file, the column and, for a bad
//! value, the 1-based row within that file and the value itself.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;

use polars::prelude::*;
use polars_buffer::Buffer;

use crate::config::{BadRowPolicy, BadRows};
use crate::error::{Error, InputFault, Result};
use crate::time;

/// The two formats a part may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// One part file of a table, read.
pub struct Part {
    pub table: &'static str,
    pub file: PathBuf,
    pub format: Format,
    /// The part's rows, or one slice of them (see [`stream_table`]);
    /// emptied once a streamed slice has been consumed.
    pub frame: DataFrame,
    /// The frame's first row within the file (0 unless streamed).
    offset: usize,
    /// Rows the frame held when read.
    rows: usize,
    /// Bytes of the file the slice decoded (its column chunks; a CSV
    /// part's whole file); 0 for a part read whole.
    bytes: u64,
    policy: BadRowPolicy,
    /// Rows found bad and skipped (skip mode only): row in the file → reason.
    bad: RefCell<BTreeMap<usize, String>>,
}

/// A table's parts in path order, with its size on disk.
pub struct Table {
    pub name: &'static str,
    pub path: PathBuf,
    pub bytes: u64,
    pub parts: Vec<Part>,
    /// Bytes the reader asked for: whole CSV parts; of a Parquet part, its
    /// footer (all that is not row-group data) and the column chunks of the
    /// row groups decoded.
    pub bytes_read: u64,
    /// Every file of the table with its size, when it holds files that
    /// were listed but not read (a partitioned table read in part); else
    /// the parts read are the snapshot.
    pub listing: Option<Vec<(PathBuf, u64)>>,
    /// The rows are one shard's share of the table, not all of it.
    pub shard_rows: bool,
}

impl Table {
    /// Rows over all parts.
    pub fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.rows).sum()
    }

    /// Part files read (a streamed file counts once).
    pub fn files(&self) -> usize {
        let mut files: Vec<&Path> = self.parts.iter().map(|p| p.file.as_path()).collect();
        files.dedup();
        files.len()
    }

    /// The rows skipped as bad, counted by `"<table>: <reason>"`; an error
    /// when they are more than the policy's fraction of the table's rows.
    pub fn skipped(&self) -> Result<BTreeMap<String, u64>> {
        let mut counts = BTreeMap::new();
        let mut total = 0u64;
        for part in &self.parts {
            for reason in part.bad.borrow().values() {
                *counts
                    .entry(format!("{}: {reason}", self.name))
                    .or_insert(0) += 1;
                total += 1;
            }
        }
        let rows = self.rows() as u64;
        let policy = self.parts.first().map(|p| p.policy).unwrap_or_default();
        // A shard's share is judged with the whole table, at commit
        // (`load::judge_shared_skips`).
        if !self.shard_rows && total > 0 && total as f64 > policy.max_fraction * rows as f64 {
            let first = self.parts.iter().find_map(|p| {
                p.bad
                    .borrow()
                    .iter()
                    .next()
                    .map(|(r, why)| (p.file.clone(), *r, why.clone()))
            });
            let Some(first) = first else {
                return Err(Error::Internal(format!(
                    "table {}: {total} bad rows counted but none found",
                    self.name
                )));
            };
            return Err(InputFault {
                table: self.name,
                file: first.0,
                column: None,
                row: Some(first.1 as u64 + 1),
                value: None,
                problem: format!(
                    "{total} of {rows} rows are bad, more than max_bad_fraction {} allows (first: {})",
                    policy.max_fraction, first.2
                ),
            }
            .into());
        }
        Ok(counts)
    }
}

/// A fault of a whole file or folder of `table`.
pub(crate) fn fault(table: &'static str, file: &Path, problem: impl Into<String>) -> Error {
    InputFault {
        table,
        file: file.to_path_buf(),
        column: None,
        row: None,
        value: None,
        problem: problem.into(),
    }
    .into()
}

/// How much of a table file [`read_ahead`] asks for.
const READ_AHEAD: i64 = 1 << 30;

/// Asks the kernel, on a thread of its own, to start reading the first
/// bytes of a local table file into the page cache (Linux:
/// `posix_fadvise` `WILLNEED`), without waiting for them. Called for the
/// follows before the purchases are read: pages that other jobs pushed out
/// of the cache since the last run then come back meanwhile, in one
/// request, instead of a fault at a time once the stream reaches them. A
/// hint: a folder, a URL or any error leaves things as they are.
pub fn read_ahead(path: &Path) {
    #[cfg(target_os = "linux")]
    {
        let Ok(file) = fs::File::open(path) else {
            return;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return;
        }
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: posix_fadvise reads no memory of ours; on a
            // descriptor this thread owns it only starts reads into the
            // page cache, and its result is ignored.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, READ_AHEAD, libc::POSIX_FADV_WILLNEED);
            }
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
}

/// Lists the part files of a table: the file itself, or every part below a
/// folder (Hive `key=value` sub-folders included), skipping names that
/// start with `_` or `.`, in path order. Symlinks are followed; a folder or
/// a part reached twice (a symlink loop, or two links to one target) is an
/// error, since its rows would be read twice.
pub fn list_parts(table: &'static str, path: &Path) -> Result<(Vec<PathBuf>, Format)> {
    // A table given as a URL is read from a local copy (see storage::spool).
    if let Some(local) = crate::storage::spool::fetch(table, path)? {
        return list_parts(table, &local);
    }
    let meta = fs::metadata(path).map_err(|e| fault(table, path, format!("cannot read: {e}")))?;
    if meta.is_file() {
        let format = Format::of(path).ok_or_else(|| {
            fault(
                table,
                path,
                "is neither a .parquet nor a .csv file".to_string(),
            )
        })?;
        return Ok((vec![path.to_path_buf()], format));
    }
    let mut walked = Walk::default();
    walked.dir(table, path)?;
    let mut files = walked.files;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let Some((first, format)) = files.first().cloned() else {
        return Err(fault(table, path, "folder holds no .parquet or .csv part"));
    };
    if let Some((other, _)) = files.iter().find(|(_, f)| *f != format) {
        return Err(fault(
            table,
            other,
            format!(
                "parts of one table must share one format, but {} is {:?} and this one is not",
                first.display(),
                format
            ),
        ));
    }
    Ok((files.into_iter().map(|(file, _)| file).collect(), format))
}

/// The parts found below a folder, and the real (canonical) folders and
/// files seen so far, to follow symlinks without looping.
#[derive(Default)]
struct Walk {
    files: Vec<(PathBuf, Format)>,
    seen: HashSet<PathBuf>,
}

impl Walk {
    /// Marks `path` seen by its canonical path; an error if it was already.
    fn first_visit(&mut self, table: &'static str, path: &Path) -> Result<()> {
        let real =
            fs::canonicalize(path).map_err(|e| fault(table, path, format!("cannot read: {e}")))?;
        if !self.seen.insert(real.clone()) {
            return Err(fault(
                table,
                path,
                format!(
                    "{} is reached twice in this folder of parts (a symlink loop, or two \
                     symlinks to one target), so its rows would be read twice",
                    real.display()
                ),
            ));
        }
        Ok(())
    }

    fn dir(&mut self, table: &'static str, dir: &Path) -> Result<()> {
        self.first_visit(table, dir)?;
        let entries =
            fs::read_dir(dir).map_err(|e| fault(table, dir, format!("cannot list: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| fault(table, dir, format!("cannot list: {e}")))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            // `fs::metadata` follows symlinks, unlike `entry.file_type()`.
            let meta = fs::metadata(&path)
                .map_err(|e| fault(table, &path, format!("cannot read: {e}")))?;
            if meta.is_dir() {
                self.dir(table, &path)?;
            } else if let Some(format) = Format::of(&path).filter(|_| meta.is_file()) {
                self.first_visit(table, &path)?;
                self.files.push((path, format));
            } else {
                return Err(fault(
                    table,
                    &path,
                    "foreign file in a folder of parts (only .parquet or .csv parts, \
                     and names starting with _ or . are skipped)",
                ));
            }
        }
        Ok(())
    }
}

/// Reads every part of a table, keeping only the `columns` it has.
pub fn read_table(
    table: &'static str,
    path: &Path,
    columns: &[&str],
    policy: BadRowPolicy,
) -> Result<Table> {
    let (files, format) = list_parts(table, path)?;
    let mut parts = Vec::with_capacity(files.len());
    let mut bytes = 0;
    for file in files {
        bytes += fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let frame = match format {
            Format::Parquet => read_parquet(table, &file, columns, None, None)?,
            Format::Csv => read_csv(table, &file, columns)?,
        };
        parts.push(Part::new(table, file, format, frame, 0, policy));
    }
    Ok(Table {
        name: table,
        path: path.to_path_buf(),
        bytes_read: bytes,
        bytes,
        parts,
        listing: None,
        shard_rows: false,
    })
}

/// Reads a table like [`read_table`], but one slice at a time (whole row
/// groups of at least `slice_rows` rows of a Parquet part; a CSV part
/// whole), so that the table is never held in memory at once.
///
/// Slices are decoded and turned into `T` by `convert` on a few threads
/// at once, each slice's frame dropped as soon as it is converted; `each`
/// then takes them on this thread in file order, then row order, until it
/// breaks off. At most two slices per thread are held beyond the one
/// `each` has. Every Parquet part's footer is read first (a part that is
/// not Parquet fails before any rows are read); after that an error is
/// the first in slice order: a slice's own, or one `each` returns. The
/// returned table keeps the row counts and bad rows of the slices read.
pub fn stream_table<T: Send>(
    table: &'static str,
    path: &Path,
    columns: &[&str],
    policy: BadRowPolicy,
    slice_rows: usize,
    convert: impl Fn(&Part) -> Result<T> + Sync,
    mut each: impl FnMut(&Part, T) -> Result<ControlFlow<()>>,
) -> Result<Table> {
    let (files, format) = list_parts(table, path)?;
    let (mut bytes, mut bytes_read) = (0, 0);
    let mut slices: Vec<Planned> = Vec::new();
    for file in files {
        let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        bytes += size;
        match format {
            Format::Parquet => {
                let (cut, metadata) = parquet_slices(table, &file, slice_rows, columns)?;
                bytes_read += footer_bytes(&metadata, size);
                for (offset, len, chunk_bytes) in cut {
                    let at = Some((offset, len));
                    slices.push((file.clone(), at, chunk_bytes, Some(metadata.clone())));
                }
            }
            Format::Csv => slices.push((file, None, size, None)),
        }
    }
    // A slice to read: its file, rows (a Parquet part's), column-chunk
    // bytes and the file's metadata.
    type Planned = (
        PathBuf,
        Option<(usize, usize)>,
        u64,
        Option<FileMetadataRef>,
    );
    let read = |(file, at, chunk_bytes, metadata): &Planned| -> Result<(Part, T)> {
        let frame = match format {
            Format::Parquet => read_parquet(table, file, columns, *at, metadata.clone())?,
            Format::Csv => read_csv(table, file, columns)?,
        };
        let offset = at.map_or(0, |a| a.0);
        let mut part = Part::new(table, file.clone(), format, frame, offset, policy);
        part.bytes = *chunk_bytes;
        let converted = convert(&part)?;
        part.frame = DataFrame::empty();
        Ok((part, converted))
    };
    let threads = rayon::current_num_threads().clamp(1, slices.len().max(1));
    let stop = AtomicBool::new(false);
    let mut parts = Vec::new();
    let outcome = thread::scope(|scope| -> Result<()> {
        // Thread `t` reads slices t, t + threads, ...: taking them back in
        // turn from each thread's channel restores the order.
        let mut taken = Vec::with_capacity(threads);
        for t in 0..threads {
            let (send, receive) = mpsc::sync_channel(1);
            taken.push(receive);
            let (slices, read, stop) = (&slices, &read, &stop);
            scope.spawn(move || {
                for slice in slices.iter().skip(t).step_by(threads) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let result = read(slice);
                    let failed = result.is_err();
                    if send.send(result).is_err() || failed {
                        break;
                    }
                }
            });
        }
        let mut outcome = Ok(());
        for i in 0..slices.len() {
            let Ok(result) = taken[i % threads].recv() else {
                outcome = Err(Error::Internal("a reading thread stopped early".into()));
                break;
            };
            let flow = result.and_then(|(part, converted)| {
                let flow = each(&part, converted);
                parts.push(part);
                flow
            });
            match flow {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(())) => break,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        // Whatever the outcome, let the readers finish: those waiting to
        // hand over a slice are released by their channel being dropped.
        stop.store(true, Ordering::Relaxed);
        drop(taken);
        outcome
    });
    outcome?;
    bytes_read += parts.iter().map(|p| p.bytes).sum::<u64>();
    Ok(Table {
        name: table,
        path: path.to_path_buf(),
        bytes,
        parts,
        bytes_read,
        listing: None,
        shard_rows: false,
    })
}

/// `(offset, rows, bytes)` of a file: the bytes are those of the column
/// chunks the slice decodes.
type Slice = (usize, usize, u64);

/// The bytes of a Parquet file that are not row-group data: its footer
/// (with any page index and bloom filters) and magic numbers.
fn footer_bytes(metadata: &FileMetadataRef, size: u64) -> u64 {
    let data: u64 = metadata
        .row_groups
        .iter()
        .flat_map(|g| g.byte_ranges_iter())
        .map(|r| r.end.saturating_sub(r.start))
        .sum();
    size.saturating_sub(data)
}

/// Cuts a Parquet file into `(offset, rows, bytes)` slices of whole row
/// groups, each at least `slice_rows` rows but the last; with the file's
/// metadata, so that each slice does not parse the footer again.
fn parquet_slices(
    table: &'static str,
    file: &Path,
    slice_rows: usize,
    columns: &[&str],
) -> Result<(Vec<Slice>, FileMetadataRef)> {
    let unreadable = |e: PolarsError| fault(table, file, format!("cannot read as Parquet: {e}"));
    let handle =
        fs::File::open(file).map_err(|e| fault(table, file, format!("cannot open: {e}")))?;
    let mut reader = ParquetReader::new(handle);
    let metadata = reader.get_metadata().map_err(unreadable)?;
    let mut slices = Vec::new();
    let (mut start, mut len, mut bytes) = (0, 0, 0);
    for group in &metadata.row_groups {
        len += group.num_rows();
        // The chunks of `columns` in this row group.
        bytes += columns
            .iter()
            .filter_map(|c| group.columns_under_root_iter(c))
            .flatten()
            .map(|chunk| {
                let r = chunk.byte_range();
                r.end.saturating_sub(r.start)
            })
            .sum::<u64>();
        if len >= slice_rows {
            slices.push((start, len, bytes));
            start += len;
            len = 0;
            bytes = 0;
        }
    }
    if len > 0 || slices.is_empty() {
        slices.push((start, len, bytes));
    }
    Ok((slices, metadata.clone()))
}

fn read_parquet(
    table: &'static str,
    file: &Path,
    columns: &[&str],
    slice: Option<(usize, usize)>,
    metadata: Option<FileMetadataRef>,
) -> Result<DataFrame> {
    let unreadable = |e: PolarsError| fault(table, file, format!("cannot read as Parquet: {e}"));
    let handle =
        fs::File::open(file).map_err(|e| fault(table, file, format!("cannot open: {e}")))?;
    let mut reader = ParquetReader::new(handle);
    if let Some(metadata) = metadata {
        reader.set_metadata(metadata);
    }
    let schema = reader.schema().map_err(unreadable)?;
    let mut present = Vec::with_capacity(columns.len());
    for column in columns {
        let Some(field) = schema.get(column) else {
            continue;
        };
        // Polars fails, or panics, on a column type it was not built for:
        // such a column is refused here, before Polars converts it.
        if !polars_holds(field.dtype()) {
            use ArrowDataType as A;
            let dtype = field.dtype();
            let decimal = matches!(
                dtype,
                A::Decimal(..) | A::Decimal32(..) | A::Decimal64(..) | A::Decimal256(..)
            );
            let problem = if decimal {
                format!("has type {dtype:?}: decimals of more than 38 digits are not read")
            } else {
                format!(
                    "has type {dtype:?}, which no column of the contract has (integers, \
                     decimals of scale 0, timestamps, dates, strings, booleans)"
                )
            };
            return Err(InputFault {
                table,
                file: file.to_path_buf(),
                column: Some(column.to_string()),
                row: None,
                value: None,
                problem,
            }
            .into());
        }
        present.push(column.to_string());
    }
    reader
        .with_columns(Some(present))
        .with_slice(slice)
        .finish()
        .map_err(unreadable)
}

/// Whether Polars, with the features this crate enables, reads a Parquet
/// column of this Arrow type into a series without failing: the types the
/// contract accepts, and the plain ones the typed readers name as wrong
/// (floats, binary).
fn polars_holds(dtype: &ArrowDataType) -> bool {
    use ArrowDataType as A;
    match dtype {
        A::Null
        | A::Boolean
        | A::Int8
        | A::Int16
        | A::Int32
        | A::Int64
        | A::UInt8
        | A::UInt16
        | A::UInt32
        | A::UInt64
        | A::Float32
        | A::Float64
        | A::Utf8
        | A::LargeUtf8
        | A::Utf8View
        | A::Binary
        | A::LargeBinary
        | A::BinaryView
        | A::Date32
        | A::Date64
        | A::Timestamp(..) => true,
        // Polars holds decimals of up to 38 digits (in an i128).
        A::Decimal(digits, _)
        | A::Decimal32(digits, _)
        | A::Decimal64(digits, _)
        | A::Decimal256(digits, _) => *digits <= 38,
        A::Dictionary(_, values, _) => {
            !matches!(values.as_ref(), A::Dictionary(..)) && polars_holds(values)
        }
        _ => false,
    }
}

/// Checks that the header of a CSV part names no column twice (Polars
/// would rename the second one and read the first as if alone).
fn check_csv_header(table: &'static str, file: &Path) -> Result<()> {
    let unreadable = |e: PolarsError| fault(table, file, format!("cannot read as CSV: {e}"));
    let header = CsvReadOptions::default()
        .with_has_header(false)
        .with_infer_schema_length(Some(0))
        .with_n_rows(Some(1))
        .try_into_reader_with_file_path(Some(file.to_path_buf()))
        .map_err(unreadable)?
        .finish()
        .map_err(unreadable)?;
    let mut seen = HashSet::new();
    for column in header.columns() {
        let name = column
            .as_materialized_series()
            .str()
            .map_err(|e| Error::Internal(format!("a CSV header read as text is not text: {e}")))?
            .get(0)
            .unwrap_or("")
            .to_string();
        if !seen.insert(name.clone()) {
            return Err(InputFault {
                table,
                file: file.to_path_buf(),
                column: Some(name),
                row: None,
                value: None,
                problem: "the header names this column more than once".to_string(),
            }
            .into());
        }
    }
    Ok(())
}

fn read_csv(table: &'static str, file: &Path, columns: &[&str]) -> Result<DataFrame> {
    let unreadable = |e: PolarsError| fault(table, file, format!("cannot read as CSV: {e}"));
    check_csv_header(table, file)?;
    // Every column as text: types are the contract's, never guessed.
    let frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(true)
        .try_into_reader_with_file_path(Some(file.to_path_buf()))
        .map_err(unreadable)?
        .finish()
        .map_err(unreadable)?;
    let present: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|c| frame.column(c).is_ok())
        .collect();
    frame.select(present).map_err(unreadable)
}

/// What an integer column of the contract may be.
const INTEGER: &str = "an integer or a decimal of scale 0";

/// A Polars failure where the code has already checked that it cannot fail.
fn internal(e: PolarsError) -> Error {
    Error::Internal(format!("reading a checked column: {e}"))
}

/// The `Int64` values of a series cast to `Int64`.
fn int64(series: &Series) -> Result<&Int64Chunked> {
    series.i64().map_err(internal)
}

/// The text of a `String` series.
fn text(series: &Series) -> Result<&StringChunked> {
    series.str().map_err(internal)
}

/// Reads the typed, checked values of one column of a part.
///
/// A row-level fault (a null in a required column, a negative id, a value
/// that does not parse or is not allowed) fails at once under
/// `on_bad_rows = "fail"`; under `"skip"` the row is marked bad, a
/// placeholder stands in, and the loader drops the row ([`Part::is_bad`]).
/// Faults of the whole column (missing, wrong type) always fail.
impl Part {
    fn new(
        table: &'static str,
        file: PathBuf,
        format: Format,
        frame: DataFrame,
        offset: usize,
        policy: BadRowPolicy,
    ) -> Part {
        Part {
            table,
            file,
            format,
            rows: frame.height(),
            bytes: 0,
            frame,
            offset,
            policy,
            bad: RefCell::new(BTreeMap::new()),
        }
    }

    /// An error at `column` of this part; `row` is 0-based within the
    /// frame here and reported 1-based within the file.
    pub fn fault(
        &self,
        column: &str,
        row: Option<usize>,
        value: Option<String>,
        problem: String,
    ) -> Error {
        InputFault {
            table: self.table,
            file: self.file.clone(),
            column: Some(column.to_string()),
            row: row.map(|r| (self.offset + r) as u64 + 1),
            value,
            problem,
        }
        .into()
    }

    /// A fault of one row: an error, or in skip mode a mark on the row.
    pub fn row_fault(
        &self,
        column: &str,
        row: usize,
        value: Option<String>,
        problem: &str,
    ) -> Result<()> {
        match self.policy.mode {
            BadRows::Fail => Err(self.fault(column, Some(row), value, problem.to_string())),
            BadRows::Skip => {
                self.bad
                    .borrow_mut()
                    .entry(self.offset + row)
                    .or_insert_with(|| format!("{column}: {problem}"));
                Ok(())
            }
        }
    }

    /// Whether `row` was marked bad (and is to be dropped).
    #[inline]
    /// Whether skip mode marked any row of this part.
    pub fn has_bad_rows(&self) -> bool {
        !self.bad.borrow().is_empty()
    }

    pub fn is_bad(&self, row: usize) -> bool {
        let bad = self.bad.borrow();
        !bad.is_empty() && bad.contains_key(&(self.offset + row))
    }

    /// Whether the part has `column` (of any type, nulls or not).
    pub fn has_column(&self, column: &str) -> bool {
        self.series(column).is_some()
    }

    fn series(&self, column: &str) -> Option<&Series> {
        self.frame
            .column(column)
            .ok()
            .map(|c| c.as_materialized_series())
    }

    fn required(&self, column: &str) -> Result<&Series> {
        self.series(column)
            .ok_or_else(|| self.fault(column, None, None, "required column is missing".to_string()))
    }

    fn wrong_type(&self, column: &str, found: &DataType, expected: &str) -> Error {
        let hint = match (found, self.format) {
            (DataType::String, Format::Parquet) => " (text is read as a value only in a CSV part)",
            _ => "",
        };
        self.fault(
            column,
            None,
            None,
            format!("has type {found}, expected {expected}{hint}"),
        )
    }

    /// Non-negative 64-bit ids of a required column.
    pub fn ids(&self, column: &str) -> Result<Vec<i64>> {
        let mut values = self.required_ints(column, "not an id (a non-negative 64-bit integer)")?;
        // No id negative (no sign bit among them all): nothing to report.
        if values.iter().fold(0, |bits, &id| bits | id) >= 0 {
            return Ok(values);
        }
        for (row, id) in values.iter_mut().enumerate() {
            if *id < 0 {
                self.row_fault(column, row, Some(id.to_string()), "negative id")?;
                *id = 0;
            }
        }
        Ok(values)
    }

    /// [`Part::ids`], shared with the part's frame when the column is
    /// one chunk of 64-bit integers without nulls or negative ids (the
    /// common case, and then nothing is copied); otherwise as checked by
    /// [`Part::ids`].
    pub fn ids_shared(&self, column: &str) -> Result<Buffer<i64>> {
        let series = self.required(column)?;
        let plain = series.dtype() == &DataType::Int64 && series.null_count() == 0;
        let chunk = match plain && series.n_chunks() == 1 {
            true => int64(series)?.downcast_iter().next(),
            false => None,
        };
        if let Some(values) = chunk.map(|c| c.values()) {
            // No id negative (no sign bit among them all).
            if values.iter().fold(0, |bits, &id| bits | id) >= 0 {
                return Ok(values.clone());
            }
        }
        self.ids(column).map(Buffer::from)
    }

    /// 64-bit integers of a required column.
    pub fn required_ints(&self, column: &str, not_int: &str) -> Result<Vec<i64>> {
        let series = self.required(column)?;
        let dtype = series.dtype();
        // The common case, a signed integer column without nulls, is
        // copied straight; everything else goes value by value.
        let signed = matches!(
            dtype,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        );
        if signed && series.null_count() == 0 {
            let cast = series
                .cast(&DataType::Int64)
                .map_err(|_| self.wrong_type(column, dtype, INTEGER))?;
            let mut values = Vec::with_capacity(cast.len());
            for chunk in int64(&cast)?.downcast_iter() {
                values.extend_from_slice(chunk.values());
            }
            return Ok(values);
        }
        let values = self.ints(series, column)?;
        let mut out = Vec::with_capacity(values.len());
        for (row, v) in values.into_iter().enumerate() {
            out.push(match v {
                Some(Ok(x)) => x,
                None => {
                    self.row_fault(column, row, None, "null in a required column")?;
                    0
                }
                Some(Err(text)) => {
                    self.row_fault(column, row, Some(text), not_int)?;
                    0
                }
            });
        }
        Ok(out)
    }

    /// Optional integers (a missing column is all nulls).
    pub fn opt_ints(&self, column: &str) -> Result<Vec<Option<i64>>> {
        let Some(series) = self.series(column) else {
            return Ok(vec![None; self.frame.height()]);
        };
        let values = self.ints(series, column)?;
        let mut out = Vec::with_capacity(values.len());
        for (row, v) in values.into_iter().enumerate() {
            out.push(match v {
                None => None,
                Some(Ok(x)) => Some(x),
                Some(Err(text)) => {
                    self.row_fault(column, row, Some(text), "not a 64-bit integer")?;
                    None
                }
            });
        }
        Ok(out)
    }

    /// Integers of any width, or a decimal of scale 0 (text in a CSV part);
    /// a value that is not a 64-bit integer is kept as its text.
    #[allow(clippy::type_complexity)]
    fn ints(&self, series: &Series, column: &str) -> Result<Vec<Option<Result<i64, String>>>> {
        let dtype = series.dtype();
        match dtype {
            DataType::String if self.format == Format::Csv => Ok(text(series)?
                .iter()
                .map(|v| v.map(|s| s.parse::<i64>().map_err(|_| s.to_string())))
                .collect()),
            DataType::UInt64 => Ok(series
                .u64()
                .map_err(internal)?
                .iter()
                .map(|v| v.map(|x| i64::try_from(x).map_err(|_| x.to_string())))
                .collect()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => {
                // Every value of these fits in an i64: the cast loses nothing.
                let cast = series
                    .cast(&DataType::Int64)
                    .map_err(|_| self.wrong_type(column, dtype, INTEGER))?;
                Ok(int64(&cast)?.iter().map(|v| v.map(Ok)).collect())
            }
            DataType::Decimal(_, 0) => Ok(series
                .decimal()
                .map_err(internal)?
                .physical()
                .iter()
                .map(|v| v.map(|x| i64::try_from(x).map_err(|_| x.to_string())))
                .collect()),
            DataType::Null => Ok(vec![None; series.len()]),
            _ => Err(self.wrong_type(column, dtype, INTEGER)),
        }
    }

    /// A required timestamp column as epoch µs (any unit, any zone read as
    /// UTC, finer than µs rounded down; a date is its midnight UTC; RFC 3339
    /// text in a CSV part).
    pub fn timestamps(&self, column: &str) -> Result<Vec<i64>> {
        const TIMESTAMP: &str = "a timestamp or a date";
        let series = self.required(column)?;
        let dtype = series.dtype().clone();
        let physical = || {
            series
                .to_physical_repr()
                .cast(&DataType::Int64)
                .map_err(|_| self.wrong_type(column, &dtype, TIMESTAMP))
        };
        let values: Vec<Option<Result<i64, String>>> = match &dtype {
            DataType::String if self.format == Format::Csv => text(series)?
                .iter()
                .map(|v| v.map(|s| time::parse_rfc3339_us(s).ok_or_else(|| s.to_string())))
                .collect(),
            DataType::Datetime(unit, _) => {
                let to_us = |x: i64| match unit {
                    TimeUnit::Nanoseconds => x.div_euclid(1_000),
                    TimeUnit::Microseconds => x,
                    TimeUnit::Milliseconds => x.saturating_mul(1_000),
                };
                int64(&physical()?)?
                    .iter()
                    .map(|v| v.map(|x| Ok(to_us(x))))
                    .collect()
            }
            DataType::Date => {
                const DAY_US: i64 = 86_400 * 1_000_000;
                int64(&physical()?)?
                    .iter()
                    .map(|v| v.map(|days| Ok(days.saturating_mul(DAY_US))))
                    .collect()
            }
            DataType::Null => vec![None; series.len()],
            other => return Err(self.wrong_type(column, other, TIMESTAMP)),
        };
        let mut out = Vec::with_capacity(values.len());
        for (row, v) in values.into_iter().enumerate() {
            out.push(match v {
                Some(Ok(t)) => t,
                None => {
                    self.row_fault(column, row, None, "null in a required column")?;
                    0
                }
                Some(Err(text)) => {
                    let problem = "not an RFC 3339 timestamp with Z or an offset";
                    self.row_fault(column, row, Some(text), problem)?;
                    0
                }
            });
        }
        Ok(out)
    }

    /// An optional boolean column; nulls and a missing column take `default`.
    pub fn bools(&self, column: &str, default: bool) -> Result<Vec<bool>> {
        self.bools_with(column, default, false)
    }

    /// Sets `bit` in `flags[row]` for each row whose value in the boolean
    /// `column` is true (a missing column, or a null, sets nothing). A
    /// `protective` column carries a protection (a mute): a bad value fails
    /// the read whatever `on_bad_rows` says, since skipping the row would
    /// drop the protection with it. Booleans without nulls are read
    /// straight from their bits, only the set ones visited.
    pub fn mark_bools(
        &self,
        column: &str,
        protective: bool,
        bit: u8,
        flags: &mut [u8],
    ) -> Result<()> {
        if let Some(values) = self.series(column).and_then(|s| s.bool().ok())
            && values.null_count() == 0
            && values.len() == flags.len()
        {
            let mut start = 0;
            for chunk in values.downcast_iter() {
                let bits = chunk.values();
                let end = start + bits.len();
                if bits.set_bits() > 0
                    && let Some(rows) = flags.get_mut(start..end)
                {
                    for row in bits.true_idx_iter() {
                        if let Some(flag) = rows.get_mut(row) {
                            *flag |= bit;
                        }
                    }
                }
                start = end;
            }
            return Ok(());
        }
        let values = self.bools_with(column, false, protective)?;
        for (flag, value) in flags.iter_mut().zip(values) {
            *flag |= bit * u8::from(value);
        }
        Ok(())
    }

    fn bools_with(&self, column: &str, default: bool, protective: bool) -> Result<Vec<bool>> {
        let Some(series) = self.series(column) else {
            return Ok(vec![default; self.frame.height()]);
        };
        match series.dtype() {
            DataType::Boolean => {
                let ca = series.bool().map_err(internal)?;
                Ok(match ca.null_count() {
                    0 => ca
                        .downcast_iter()
                        .flat_map(|chunk| chunk.values().iter())
                        .collect(),
                    _ => ca.iter().map(|v| v.unwrap_or(default)).collect(),
                })
            }
            DataType::Null => Ok(vec![default; series.len()]),
            DataType::String if self.format == Format::Csv => {
                let ca = text(series)?;
                let mut out = Vec::with_capacity(ca.len());
                for (row, v) in ca.iter().enumerate() {
                    out.push(match v {
                        None => default,
                        Some("true") => true,
                        Some("false") => false,
                        Some(other) => {
                            let value = Some(other.to_string());
                            if protective {
                                let problem = "not a boolean (true or false); this column \
                                               protects people, so the row is never skipped";
                                return Err(self.fault(column, Some(row), value, problem.into()));
                            }
                            self.row_fault(column, row, value, "not a boolean (true or false)")?;
                            default
                        }
                    });
                }
                Ok(out)
            }
            other => Err(self.wrong_type(column, other, "a boolean")),
        }
    }

    /// A text column mapped through `code`, whose error names the accepted
    /// values; `required` makes a missing column or a null an error.
    pub fn codes<T: Default>(
        &self,
        column: &str,
        required: bool,
        mut code: impl FnMut(Option<&str>) -> Result<T, String>,
    ) -> Result<Vec<T>> {
        let series = if required {
            self.required(column)?
        } else {
            match self.series(column) {
                Some(s) => s,
                None => return Ok((0..self.frame.height()).map(|_| T::default()).collect()),
            }
        };
        // Dictionary-encoded text arrives as a categorical column; a column
        // of the null type is text that is all nulls.
        let strings = match series.dtype() {
            DataType::String => series.clone(),
            DataType::Categorical(..) | DataType::Enum(..) => series
                .cast(&DataType::String)
                .map_err(|_| self.wrong_type(column, series.dtype(), "a string"))?,
            DataType::Null => {
                Series::full_null(series.name().clone(), series.len(), &DataType::String)
            }
            other => return Err(self.wrong_type(column, other, "a string")),
        };
        let ca = text(&strings)?;
        let mut out = Vec::with_capacity(ca.len());
        for (row, v) in ca.iter().enumerate() {
            if required && v.is_none() {
                self.row_fault(column, row, None, "null in a required column")?;
                out.push(T::default());
                continue;
            }
            match code(v) {
                Ok(x) => out.push(x),
                Err(problem) => {
                    self.row_fault(column, row, v.map(str::to_string), &problem)?;
                    out.push(T::default());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::config::BadRowPolicy;

    /// A Parquet file of `rows` ids 0.. in row groups of `group` rows.
    fn ids_file(dir: &Path, rows: i64, group: usize) -> PathBuf {
        let path = dir.join("t.parquet");
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let batch = RecordBatch::try_from_iter([("id", ids)]).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .build();
        let mut writer = ArrowWriter::try_new(
            fs::File::create(&path).unwrap(),
            batch.schema(),
            Some(props),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    fn first_ids(part: &Part) -> Result<i64> {
        Ok(part.ids("id")?[0])
    }

    #[test]
    fn slices_come_in_order_and_the_first_error_in_that_order_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = ids_file(dir.path(), 40, 2);
        let policy = BadRowPolicy::default();
        let mut seen = Vec::new();
        let table = stream_table("t", &path, &["id"], policy, 2, first_ids, |part, first| {
            assert_eq!(
                part.offset as i64, first,
                "each slice comes with its own part"
            );
            seen.push(first);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(seen, (0..40).step_by(2).collect::<Vec<_>>());
        assert_eq!(table.rows(), 40);

        // Slices 3 and 4 fail to convert, and 4 may well fail first: the
        // error is slice 3's, after the slices before it were taken.
        let failing = |part: &Part| match part.offset {
            6 | 8 => Err(part.fault("id", Some(0), None, format!("at {}", part.offset))),
            _ => first_ids(part),
        };
        let mut seen = Vec::new();
        let error = stream_table("t", &path, &["id"], policy, 2, failing, |_, first| {
            seen.push(first);
            Ok(ControlFlow::Continue(()))
        })
        .err()
        .unwrap();
        assert!(error.to_string().contains("at 6"), "{error}");
        assert_eq!(seen, vec![0, 2, 4]);

        // Breaking off stops the reading.
        let mut seen = Vec::new();
        let table = stream_table("t", &path, &["id"], policy, 4, first_ids, |_, first| {
            seen.push(first);
            Ok(if first >= 8 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
        assert_eq!(seen, vec![0, 4, 8]);
        assert_eq!(table.parts.len(), 3);
    }

    fn part_of(series: Series, mode: BadRows) -> Part {
        let frame = DataFrame::new_infer_height(vec![series.into()]).unwrap();
        let policy = BadRowPolicy {
            mode,
            max_fraction: 1.0,
        };
        Part::new(
            "t",
            PathBuf::from("t.parquet"),
            Format::Parquet,
            frame,
            0,
            policy,
        )
    }

    #[test]
    fn shared_ids_are_the_checked_ids_and_shared_only_when_plain() {
        let plain = part_of(Series::new("id".into(), [3i64, 1, 2]), BadRows::Fail);
        let shared = plain.ids_shared("id").unwrap();
        assert_eq!(&shared[..], &plain.ids("id").unwrap()[..]);
        let column = plain.required("id").unwrap().i64().unwrap();
        let held = column.cont_slice().unwrap().as_ptr();
        assert_eq!(
            shared.as_ptr(),
            held,
            "one plain chunk is shared, not copied"
        );

        // Two chunks, a narrower type, a negative id and a null each take
        // the checked path, with its placeholders and bad rows.
        let mut chunked = Series::new("id".into(), [5i64, 6]);
        chunked.append(&Series::new("id".into(), [7i64])).unwrap();
        let cases = [
            chunked,
            Series::new("id".into(), [4i32, 8]),
            Series::new("id".into(), [4i64, -8, 9]),
            Series::new("id".into(), [Some(4i64), None, Some(9)]),
        ];
        for series in cases {
            let (one, other) = (
                part_of(series.clone(), BadRows::Skip),
                part_of(series, BadRows::Skip),
            );
            let shared = one.ids_shared("id").unwrap();
            assert_eq!(&shared[..], &other.ids("id").unwrap()[..]);
            let bad = |p: &Part| (0..p.rows).filter(|&i| p.is_bad(i)).collect::<Vec<_>>();
            assert_eq!(bad(&one), bad(&other));
        }
        let negative = part_of(Series::new("id".into(), [4i64, -8]), BadRows::Fail);
        let error = negative.ids_shared("id").unwrap_err().to_string();
        assert!(error.contains("negative id"), "{error}");
    }
}
