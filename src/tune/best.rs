//! Defines `best.toml`: the winning candidate as a complete job file that
//! runs from anywhere — the original job with absolute input and output
//! paths, the tune's as_of, and every `[model]` and `[selection]` key
//! spelled out. Any other section or `[run]` key of the job is kept as is.

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::{Job, ModelConfig, SelectionConfig};
use crate::error::{Error, Result};
use crate::eval::{Cut, Metrics};
use crate::time;
use crate::tune::grid::{Grid, MODEL_KEYS, SELECTION_KEYS, toml_of};
use crate::tune::report::file_name;
use crate::tune::spell::Candidate;

/// The `[inputs]` keys, in the job file's usual order.
const INPUT_KEYS: [&str; 6] = crate::load::TABLES;

/// The absolute form of `path`: canonical when it exists.
pub fn absolute(path: &Path) -> PathBuf {
    fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The text of `best.toml` for `best`, whose backtest gave `metrics`.
pub fn best_toml(
    job: &Job,
    grid: &Grid,
    cut: &Cut,
    best: &Candidate,
    metrics: &Metrics,
    candidates: usize,
) -> Result<String> {
    let objective = metrics.get(grid.objective).unwrap_or_default();
    let header = format!(
        "# Written by `boughtby tune`: candidate {} of {candidates}, the best by {} ({objective}),\n\
         # for the job {} with the grid {}.\n\
         # Backtest: model at the cut {}, holdout {} days to {}:\n\
         #   precision {}, hit_rate {}, recall {}, ndcg {},\n\
         #   user_coverage {}, catalog_coverage {}, merchant_gini {}, slots {}.\n\
         # Reproduce: boughtby eval --config best.toml --holdout-days {}\n\
         # Paths are absolute so that this file runs from anywhere. [run] as_of is the\n\
         # tune's: nightly runs pass --as-of.\n\n",
        best.id,
        grid.objective,
        file_name(&job.path),
        file_name(&grid.path),
        cut.cut_text(),
        cut.holdout_days,
        cut.as_of_text(),
        metrics.precision,
        metrics.hit_rate,
        metrics.recall,
        metrics.ndcg,
        metrics.user_coverage,
        metrics.catalog_coverage,
        metrics.merchant_gini,
        metrics.slots,
        cut.holdout_days,
    );
    job_toml(job, &header, &best.model, &best.selection)
}

/// `job` as a complete job file after `header` (comment lines): absolute
/// input and output paths, the job's as_of, every `[model]` and
/// `[selection]` key of `model` and `selection` spelled out, any other
/// section or `[run]` key kept as is.
pub fn job_toml(
    job: &Job,
    header: &str,
    model: &ModelConfig,
    selection: &SelectionConfig,
) -> Result<String> {
    let text = fs::read_to_string(&job.path).map_err(|e| Error::io(&job.path, e))?;
    let original: toml::Table =
        toml::from_str(&text).map_err(|e| Error::config(&job.path, e.to_string()))?;
    let base = job.path.parent().unwrap_or(Path::new("."));

    let mut inputs = toml::Table::new();
    if let Some(given) = original.get("inputs").and_then(toml::Value::as_table) {
        for (table, path) in given {
            let resolved = match path.as_str() {
                Some(p) => toml::Value::String(absolute(&base.join(p)).display().to_string()),
                None => path.clone(),
            };
            inputs.insert(table.clone(), resolved);
        }
    }
    let mut run = original
        .get("run")
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_default();
    run.insert("as_of".into(), time::format_rfc3339(job.as_of).into());
    run.insert(
        "output".into(),
        absolute(&job.output).display().to_string().into(),
    );

    let mut out = header.to_string();
    let model_keys: Vec<&str> = MODEL_KEYS.to_vec();
    let selection_keys: Vec<&str> = SELECTION_KEYS.to_vec();
    let sections = [
        ("inputs", inputs, INPUT_KEYS.to_vec()),
        ("run", run, vec!["as_of", "output"]),
        ("model", toml_of(model), model_keys),
        ("selection", toml_of(selection), selection_keys),
    ];
    for (name, table, order) in &sections {
        out.push_str(&section(name, table, order));
    }
    let rest = original
        .iter()
        .filter(|(k, _)| !sections.iter().any(|(name, _, _)| name == k));
    for (name, value) in rest {
        match value.as_table() {
            Some(table) => out.push_str(&section(name, table, &[])),
            None => {
                return Err(Error::config(
                    &job.path,
                    format!("top-level key {name} is not a section"),
                ));
            }
        }
    }
    Ok(out)
}

/// `[name]` and its keys: those of `order` first, in that order, then the
/// rest as the table holds them. Values are written by the `toml` crate.
fn section(name: &str, table: &toml::Table, order: &[&str]) -> String {
    let mut text = format!("[{name}]\n");
    let known = order.iter().filter_map(|k| table.get(*k).map(|v| (*k, v)));
    let rest = table
        .iter()
        .filter(|(k, _)| !order.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v));
    for (key, value) in known.chain(rest) {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text.push('\n');
    text
}
