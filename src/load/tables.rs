//! Finding and reading one input table: a file or a folder of parts,
//! Parquet or CSV, into Polars frames; then typed, checked columns.
//!
//! Every check names the table, the part file, the column and, for a bad
//! value, the 1-based row within that file and the value itself.

use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::*;

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
    pub frame: DataFrame,
}

/// A table's parts in path order, with its size on disk.
pub struct Table {
    pub name: &'static str,
    pub path: PathBuf,
    pub bytes: u64,
    pub parts: Vec<Part>,
}

impl Table {
    /// Rows over all parts.
    pub fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.frame.height()).sum()
    }
}

fn fault(table: &'static str, file: &Path, problem: impl Into<String>) -> Error {
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

/// Lists the part files of a table: the file itself, or every part below a
/// folder (Hive `key=value` sub-folders included), skipping names that
/// start with `_` or `.`, in path order.
pub fn list_parts(table: &'static str, path: &Path) -> Result<(Vec<PathBuf>, Format)> {
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
    let mut files = Vec::new();
    walk(table, path, &mut files)?;
    files.sort();
    let Some(first) = files.first() else {
        return Err(fault(table, path, "folder holds no .parquet or .csv part"));
    };
    let format = Format::of(first).expect("walk keeps parts only");
    if let Some(other) = files.iter().find(|f| Format::of(f) != Some(format)) {
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
    Ok((files, format))
}

fn walk(table: &'static str, dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| fault(table, dir, format!("cannot list: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| fault(table, dir, format!("cannot list: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| fault(table, &path, format!("cannot read: {e}")))?;
        if kind.is_dir() {
            walk(table, &path, files)?;
        } else if Format::of(&path).is_some() {
            files.push(path);
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

/// Reads every part of a table, keeping only the `columns` it has.
pub fn read_table(table: &'static str, path: &Path, columns: &[&str]) -> Result<Table> {
    let (files, format) = list_parts(table, path)?;
    let mut parts = Vec::with_capacity(files.len());
    let mut bytes = 0;
    for file in files {
        bytes += fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let frame = match format {
            Format::Parquet => read_parquet(table, &file, columns)?,
            Format::Csv => read_csv(table, &file, columns)?,
        };
        parts.push(Part {
            table,
            file,
            format,
            frame,
        });
    }
    Ok(Table {
        name: table,
        path: path.to_path_buf(),
        bytes,
        parts,
    })
}

fn read_parquet(table: &'static str, file: &Path, columns: &[&str]) -> Result<DataFrame> {
    let unreadable = |e: PolarsError| fault(table, file, format!("cannot read as Parquet: {e}"));
    let handle =
        fs::File::open(file).map_err(|e| fault(table, file, format!("cannot open: {e}")))?;
    let mut reader = ParquetReader::new(handle);
    let schema = reader.schema().map_err(unreadable)?;
    let present: Vec<String> = columns
        .iter()
        .filter(|c| schema.contains(c))
        .map(|c| c.to_string())
        .collect();
    reader
        .with_columns(Some(present))
        .finish()
        .map_err(unreadable)
}

fn read_csv(table: &'static str, file: &Path, columns: &[&str]) -> Result<DataFrame> {
    let unreadable = |e: PolarsError| fault(table, file, format!("cannot read as CSV: {e}"));
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

/// Reads the typed, checked values of one column of a part.
impl Part {
    /// An error at `column` of this part; `row` is 0-based here and reported 1-based.
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
            row: row.map(|r| r as u64 + 1),
            value,
            problem,
        }
        .into()
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
        self.fault(
            column,
            None,
            None,
            format!("has type {found}, expected {expected}"),
        )
    }

    fn null(&self, column: &str, row: usize) -> Error {
        self.fault(
            column,
            Some(row),
            None,
            "null in a required column".to_string(),
        )
    }

    /// Non-negative 64-bit ids of a required column.
    pub fn ids(&self, column: &str) -> Result<Vec<i64>> {
        let values = self.required_ints(column, "not an id (a non-negative 64-bit integer)")?;
        if let Some(row) = values.iter().position(|&id| id < 0) {
            let value = values[row].to_string();
            return Err(self.fault(column, Some(row), Some(value), "negative id".to_string()));
        }
        Ok(values)
    }

    /// 64-bit integers of a required column.
    pub fn required_ints(&self, column: &str, not_int: &str) -> Result<Vec<i64>> {
        let values = self.ints(self.required(column)?, column)?;
        values
            .into_iter()
            .enumerate()
            .map(|(row, v)| match v {
                None => Err(self.null(column, row)),
                Some(Err(text)) => {
                    Err(self.fault(column, Some(row), Some(text), not_int.to_string()))
                }
                Some(Ok(x)) => Ok(x),
            })
            .collect()
    }

    /// Optional integers (a missing column is all nulls).
    pub fn opt_ints(&self, column: &str) -> Result<Vec<Option<i64>>> {
        let Some(series) = self.series(column) else {
            return Ok(vec![None; self.frame.height()]);
        };
        self.ints(series, column)?
            .into_iter()
            .enumerate()
            .map(|(row, v)| match v {
                None => Ok(None),
                Some(Ok(x)) => Ok(Some(x)),
                Some(Err(text)) => Err(self.fault(
                    column,
                    Some(row),
                    Some(text),
                    "not a 64-bit integer".to_string(),
                )),
            })
            .collect()
    }

    /// Integers of any width; a value that is not one is kept as its text.
    #[allow(clippy::type_complexity)]
    fn ints(&self, series: &Series, column: &str) -> Result<Vec<Option<Result<i64, String>>>> {
        let dtype = series.dtype();
        if dtype == &DataType::String {
            let ca = series.str().expect("checked dtype");
            return Ok(ca
                .iter()
                .map(|v| v.map(|s| s.parse::<i64>().map_err(|_| s.to_string())))
                .collect());
        }
        if dtype == &DataType::UInt64 {
            let ca = series.u64().expect("checked dtype");
            return Ok(ca
                .iter()
                .map(|v| v.map(|x| i64::try_from(x).map_err(|_| x.to_string())))
                .collect());
        }
        if !dtype.is_integer() {
            return Err(self.wrong_type(column, dtype, "an integer"));
        }
        let cast = series
            .cast(&DataType::Int64)
            .map_err(|_| self.wrong_type(column, dtype, "an integer"))?;
        Ok(cast
            .i64()
            .expect("cast to Int64")
            .iter()
            .map(|v| v.map(Ok))
            .collect())
    }

    /// A required timestamp column as epoch µs (any unit, any zone read as
    /// UTC, finer than µs rounded down).
    pub fn timestamps(&self, column: &str) -> Result<Vec<i64>> {
        let series = self.required(column)?;
        let dtype = series.dtype().clone();
        let values: Vec<Option<Result<i64, String>>> = match &dtype {
            DataType::String => series
                .str()
                .expect("checked dtype")
                .iter()
                .map(|v| v.map(|s| time::parse_rfc3339_us(s).ok_or_else(|| s.to_string())))
                .collect(),
            DataType::Datetime(unit, _) => {
                let to_us = |x: i64| match unit {
                    TimeUnit::Nanoseconds => x.div_euclid(1_000),
                    TimeUnit::Microseconds => x,
                    TimeUnit::Milliseconds => x.saturating_mul(1_000),
                };
                let physical = series
                    .cast(&DataType::Int64)
                    .map_err(|_| self.wrong_type(column, &dtype, "a timestamp"))?;
                physical
                    .i64()
                    .expect("cast to Int64")
                    .iter()
                    .map(|v| v.map(|x| Ok(to_us(x))))
                    .collect()
            }
            other => return Err(self.wrong_type(column, other, "a timestamp")),
        };
        values
            .into_iter()
            .enumerate()
            .map(|(row, v)| match v {
                None => Err(self.null(column, row)),
                Some(Ok(t)) => Ok(t),
                Some(Err(text)) => Err(self.fault(
                    column,
                    Some(row),
                    Some(text),
                    "not an RFC 3339 timestamp with Z or an offset".to_string(),
                )),
            })
            .collect()
    }

    /// An optional boolean column; nulls and a missing column take `default`.
    pub fn bools(&self, column: &str, default: bool) -> Result<Vec<bool>> {
        let Some(series) = self.series(column) else {
            return Ok(vec![default; self.frame.height()]);
        };
        match series.dtype() {
            DataType::Boolean => Ok(series
                .bool()
                .expect("checked dtype")
                .iter()
                .map(|v| v.unwrap_or(default))
                .collect()),
            DataType::String => series
                .str()
                .expect("checked dtype")
                .iter()
                .enumerate()
                .map(|(row, v)| match v {
                    None => Ok(default),
                    Some("true") => Ok(true),
                    Some("false") => Ok(false),
                    Some(other) => Err(self.fault(
                        column,
                        Some(row),
                        Some(other.to_string()),
                        "not a boolean (true or false)".to_string(),
                    )),
                })
                .collect(),
            other => Err(self.wrong_type(column, other, "a boolean")),
        }
    }

    /// A text column mapped through `code`, which names the accepted values
    /// in its error; `required` makes a missing column or a null an error.
    pub fn codes<T>(
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
                None => {
                    return (0..self.frame.height())
                        .map(|_| code(None).map_err(|e| self.fault(column, None, None, e)))
                        .collect();
                }
            }
        };
        // Dictionary-encoded text may arrive as a categorical column.
        let text = match series.dtype() {
            DataType::Categorical(..) | DataType::Enum(..) => series
                .cast(&DataType::String)
                .map_err(|_| self.wrong_type(column, series.dtype(), "a string"))?,
            _ => series.clone(),
        };
        let ca = text
            .str()
            .map_err(|_| self.wrong_type(column, series.dtype(), "a string"))?;
        ca.iter()
            .enumerate()
            .map(|(row, v)| {
                if required && v.is_none() {
                    return Err(self.null(column, row));
                }
                code(v).map_err(|problem| {
                    self.fault(column, Some(row), v.map(str::to_string), problem)
                })
            })
            .collect()
    }
}
