//! Defines the leaderboard of a tune: one row per candidate, best first —
//! its rank, whether it keeps within the guard rails, its settings (every
//! `[model]` and `[selection]` key) and every metric — and writes it as
//! Parquet (zstd) and as CSV (RFC 4180, a header row, the same columns).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::config::config_hash;
use crate::error::{Error, Result};
use crate::eval::{METRICS, Metrics};
use crate::tune::grid::{MODEL_KEYS, SELECTION_KEYS, toml_of};
use crate::tune::spell::Candidate;

/// One column of the leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Text(Vec<String>),
}

impl Column {
    fn cell(&self, row: usize) -> String {
        match self {
            Column::Int(v) => v[row].to_string(),
            Column::Float(v) => v[row].to_string(),
            Column::Bool(v) => v[row].to_string(),
            Column::Text(v) => csv_quote(&v[row]),
        }
    }

    fn array(&self) -> ArrayRef {
        match self {
            Column::Int(v) => Arc::new(Int64Array::from(v.clone())),
            Column::Float(v) => Arc::new(Float64Array::from(v.clone())),
            Column::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
            Column::Text(v) => Arc::new(StringArray::from(v.clone())),
        }
    }
}

/// The leaderboard as named columns, rows best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaderboard {
    pub columns: Vec<(String, Column)>,
    pub rows: usize,
}

impl Leaderboard {
    /// The rows of `ranking` (candidate indices, best first).
    pub fn new(
        candidates: &[Candidate],
        metrics: &[Metrics],
        eligible: &[bool],
        ranking: &[usize],
    ) -> Leaderboard {
        let mut columns: Vec<(String, Column)> = vec![
            (
                "rank".into(),
                Column::Int((1..=ranking.len() as i64).collect()),
            ),
            (
                "candidate".into(),
                Column::Int(ranking.iter().map(|&i| candidates[i].id as i64).collect()),
            ),
            (
                "eligible".into(),
                Column::Bool(ranking.iter().map(|&i| eligible[i]).collect()),
            ),
            (
                "config_hash".into(),
                Column::Text(
                    ranking
                        .iter()
                        .map(|&i| {
                            let c = &candidates[i];
                            config_hash(&c.model, &c.selection)[..8].to_string()
                        })
                        .collect(),
                ),
            ),
        ];
        let settings: Vec<(toml::Table, toml::Table)> = ranking
            .iter()
            .map(|&i| {
                (
                    toml_of(&candidates[i].model),
                    toml_of(&candidates[i].selection),
                )
            })
            .collect();
        let keys = MODEL_KEYS
            .iter()
            .map(|k| ("model", *k))
            .chain(SELECTION_KEYS.iter().map(|k| ("selection", *k)));
        for (section, key) in keys {
            let values: Vec<&toml::Value> = settings
                .iter()
                .map(|(m, s)| {
                    if section == "model" {
                        m.get(key)
                    } else {
                        s.get(key)
                    }
                })
                .map(|v| v.unwrap_or(&MISSING))
                .collect();
            let column = match values.first() {
                Some(toml::Value::Integer(_)) => {
                    Column::Int(values.iter().map(|v| v.as_integer().unwrap_or(0)).collect())
                }
                Some(toml::Value::Float(_)) => {
                    Column::Float(values.iter().map(|v| v.as_float().unwrap_or(0.0)).collect())
                }
                _ => Column::Text(values.iter().map(|v| plain(v)).collect()),
            };
            columns.push((format!("{section}.{key}"), column));
        }
        for name in METRICS {
            // Every candidate's metrics hold each of METRICS; a gap shows as NaN.
            let of = |i: usize| metrics[i].get(name).unwrap_or(f64::NAN);
            let column = match name {
                "slots" | "users_with_slots" | "hits" => {
                    Column::Int(ranking.iter().map(|&i| of(i) as i64).collect())
                }
                _ => Column::Float(ranking.iter().map(|&i| of(i)).collect()),
            };
            columns.push((name.to_string(), column));
        }
        Leaderboard {
            columns,
            rows: ranking.len(),
        }
    }

    /// The CSV text: a header row, then one line per candidate.
    pub fn csv(&self) -> String {
        let header: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        let mut text = header.join(",");
        text.push('\n');
        for row in 0..self.rows {
            let cells: Vec<String> = self.columns.iter().map(|(_, c)| c.cell(row)).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        text
    }

    /// Writes the Parquet file.
    pub fn write_parquet(&self, path: &Path) -> Result<()> {
        let arrays: Vec<(String, ArrayRef)> = self
            .columns
            .iter()
            .map(|(name, c)| (name.clone(), c.array()))
            .collect();
        let batch = RecordBatch::try_from_iter(arrays)
            .map_err(|e| Error::Internal(format!("leaderboard batch: {e}")))?;
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let parquet = |source| Error::parquet(path, source);
        let mut writer =
            ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(parquet)?;
        writer.write(&batch).map_err(parquet)?;
        writer.close().map_err(parquet)?;
        Ok(())
    }
}

/// What a key the settings lack shows as (every key is a field, so none).
static MISSING: toml::Value = toml::Value::String(String::new());

/// A TOML value as plain text: strings without quotes, arrays as `[4, 14, 30]`.
pub fn plain(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// RFC 4180 quoting, only where needed.
fn csv_quote(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_where_needed() {
        assert_eq!(csv_quote("social_v1"), "social_v1");
        assert_eq!(csv_quote("[4, 14, 30]"), "\"[4, 14, 30]\"");
        assert_eq!(csv_quote("a\"b"), "\"a\"\"b\"");
    }
}
