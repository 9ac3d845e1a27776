//! The job file: plain serde structs with the contract's defaults.
//!
//! A job is one TOML file. Relative input and output paths are resolved
//! against the folder of that file; unknown keys are an error; `validate`
//! applies the contract's config checks. The engine sees [`Job`], never the
//! raw TOML nor the command line.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::time;

/// The job file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub inputs: Inputs,
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub selection: SelectionConfig,
    #[serde(default)]
    pub guard: GuardConfig,
}

/// Where the six tables are: a file, or a folder of parts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub follows: PathBuf,
    pub purchases: PathBuf,
    pub products: PathBuf,
    pub users: Option<PathBuf>,
    pub blocks: Option<PathBuf>,
    pub impressions: Option<PathBuf>,
}

/// The `[run]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// The run's reference instant, RFC 3339 or a date; default today 00:00 UTC.
    pub as_of: Option<String>,
    /// The output folder; default `out` beside the job file.
    pub output: Option<PathBuf>,
    /// Published runs kept in the output folder; older ones are pruned
    /// after a successful publish (the run in LATEST is always kept).
    pub keep_runs: i64,
    /// What a bad row does: fail the run, or be skipped and counted.
    pub on_bad_rows: BadRows,
    /// With `skip`: the most bad rows a table may have, as a fraction of
    /// its rows, before the run fails all the same.
    pub max_bad_fraction: f64,
    /// How long a publisher waits for another one holding the output's
    /// lock before it gives up (exit 2, naming the holder).
    pub lock_wait_seconds: f64,
    /// On object storage: a lock object older than this (by the store's
    /// last-modified time) is taken over; its holder renews it every
    /// quarter of it.
    pub lock_expiry_seconds: f64,
    /// Follows rows read at a time (whole row groups, at least this many):
    /// fewer rows, less memory while reading, more slices. The environment
    /// variable `BOUGHTBY_READ_ROWS` overrides it (the tests read a few rows
    /// at a time).
    pub read_rows: i64,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            as_of: None,
            output: None,
            keep_runs: 7,
            on_bad_rows: BadRows::Fail,
            max_bad_fraction: 0.001,
            lock_wait_seconds: 600.0,
            lock_expiry_seconds: 3600.0,
            read_rows: 1 << 20,
        }
    }
}

/// `[run] on_bad_rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BadRows {
    /// The first bad row fails the run (exit 1).
    Fail,
    /// Row-level faults (a null, negative or unknown value) skip the row.
    Skip,
}

/// What loading does with bad rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BadRowPolicy {
    pub mode: BadRows,
    pub max_fraction: f64,
}

impl BadRowPolicy {
    /// The policy of the protective tables (users, blocks, impressions):
    /// a bad row there always fails the run, since skipping it would drop
    /// the protection it carries.
    pub const FAIL_CLOSED: BadRowPolicy = BadRowPolicy {
        mode: BadRows::Fail,
        max_fraction: 0.0,
    };
}

impl Default for BadRowPolicy {
    fn default() -> Self {
        BadRowPolicy {
            mode: BadRows::Fail,
            max_fraction: 0.0,
        }
    }
}

/// The `[guard]` section: refusals before publishing, against the run in
/// LATEST (a first run has nothing to compare with).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Refuse when slots or users with slots drop by more than this share.
    pub max_drop: f64,
    /// Refuse when an input's row count drops by more than this share.
    pub max_input_drop: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_drop: 0.5,
            max_input_drop: 0.5,
        }
    }
}

/// The `[model]` section: `social_v1` and its tuning values.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The model; only `social_v1` exists.
    pub name: String,
    /// A purchase counts when `as_of - lookback_days <= purchased_at < as_of`.
    pub lookback_days: i64,
    /// Recency halves every `half_life_days`.
    pub half_life_days: f64,
    /// Extra tie strength when the buyer follows the user back.
    pub mutual_bonus: f64,
    pub w_proof: f64,
    pub w_buyers: f64,
    pub w_popularity: f64,
    pub w_price: f64,
    /// Impressions without a click, within `fatigue_days`, that stop a product.
    pub fatigue_max_impressions: i64,
    pub fatigue_days: i64,
    /// Categories never promoted (exact, case-sensitive). Left out of the
    /// settings hash while empty, so jobs written before it keep their run
    /// ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sensitive_categories: Vec<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            name: "social_v1".to_string(),
            lookback_days: 30,
            half_life_days: 7.0,
            mutual_bonus: 0.5,
            w_proof: 1.0,
            w_buyers: 0.5,
            w_popularity: -0.1,
            w_price: 0.2,
            fatigue_max_impressions: 3,
            fatigue_days: 14,
            sensitive_categories: Vec::new(),
        }
    }
}

/// The `[selection]` section: thresholds, caps and timeline positions.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// Slot k goes to `positions[k-1]`; its length is the most slots a user gets.
    pub positions: Vec<i64>,
    pub min_buyers: i64,
    pub min_score: f64,
    pub max_per_merchant: i64,
    pub max_per_category: i64,
    /// How many buyers a slot names.
    pub max_buyers_shown: i64,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        SelectionConfig {
            positions: vec![4, 14, 30],
            min_buyers: 1,
            min_score: 0.2,
            max_per_merchant: 1,
            max_per_category: 2,
            max_buyers_shown: 3,
        }
    }
}

/// A checked job, every path resolved, ready for the engine.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job file it came from.
    pub path: PathBuf,
    pub inputs: Inputs,
    /// Epoch microseconds, whole seconds.
    pub as_of: i64,
    pub output: PathBuf,
    pub model: ModelConfig,
    pub selection: SelectionConfig,
    /// Whether as_of was given (command line or job file), not defaulted.
    pub as_of_explicit: bool,
    pub keep_runs: usize,
    pub bad_rows: BadRowPolicy,
    pub guard: GuardConfig,
    /// How long to wait for the output's lock.
    pub lock_wait: std::time::Duration,
    /// When an object-store lock not renewed is taken over.
    pub lock_expiry: std::time::Duration,
    /// Follows rows read at a time.
    pub read_rows: usize,
}

/// What the command line may override in a job, already typed.
#[derive(Debug, Clone)]
pub struct Overrides {
    /// The run's as_of (epoch µs, whole seconds, checked): wins over the
    /// job's `[run] as_of`.
    pub as_of: Option<i64>,
    pub output: Option<PathBuf>,
    /// The as_of when neither gives one: today 00:00 UTC.
    pub today: i64,
}

impl Default for Overrides {
    /// No overrides; "today" from the clock.
    fn default() -> Self {
        Overrides {
            as_of: None,
            output: None,
            today: time::today_midnight_us(),
        }
    }
}

impl Job {
    /// Reads, resolves and checks the job file at `path`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Job> {
        let text = fs::read_to_string(path).map_err(|e| Error::config(path, e.to_string()))?;
        let file: JobFile =
            toml::from_str(&text).map_err(|e| Error::config(path, e.to_string().trim_end()))?;
        Job::from_file(path, file, overrides)
    }

    /// Resolves and checks an already parsed job file.
    pub fn from_file(path: &Path, file: JobFile, overrides: &Overrides) -> Result<Job> {
        let base = path.parent().unwrap_or(Path::new("."));
        // A URL (object storage) is taken as given.
        let resolve = |p: &Path| {
            if crate::storage::is_url(p) {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let inputs = Inputs {
            follows: resolve(&file.inputs.follows),
            purchases: resolve(&file.inputs.purchases),
            products: resolve(&file.inputs.products),
            users: file.inputs.users.as_deref().map(resolve),
            blocks: file.inputs.blocks.as_deref().map(resolve),
            impressions: file.inputs.impressions.as_deref().map(resolve),
        };
        let as_of = match (overrides.as_of, &file.run.as_of) {
            (Some(as_of), _) => as_of,
            (None, Some(text)) => time::parse_as_of(text)
                .map_err(|e| Error::config(path, format!("run.as_of {e}")))?,
            (None, None) => overrides.today,
        };
        let output = match &overrides.output {
            Some(dir) => dir.clone(),
            None => resolve(file.run.output.as_deref().unwrap_or(Path::new("out"))),
        };
        check_model(&file.model).map_err(|m| Error::config(path, m))?;
        check_selection(&file.selection).map_err(|m| Error::config(path, m))?;
        check_run(&file.run, &file.guard).map_err(|m| Error::config(path, m))?;
        let named = [
            ("inputs.follows", Some(&inputs.follows)),
            ("inputs.purchases", Some(&inputs.purchases)),
            ("inputs.products", Some(&inputs.products)),
            ("inputs.users", inputs.users.as_ref()),
            ("inputs.blocks", inputs.blocks.as_ref()),
            ("inputs.impressions", inputs.impressions.as_ref()),
            ("run.output", Some(&output)),
        ];
        for (key, value) in named {
            if let Some(url) = value.filter(|p| crate::storage::is_url(p)) {
                crate::storage::check_url(url)
                    .map_err(|m| Error::config(path, format!("{key} {m}")))?;
            }
        }
        Ok(Job {
            path: path.to_path_buf(),
            inputs,
            as_of,
            output,
            model: file.model,
            selection: file.selection,
            as_of_explicit: overrides.as_of.is_some() || file.run.as_of.is_some(),
            keep_runs: file.run.keep_runs as usize,
            bad_rows: BadRowPolicy {
                mode: file.run.on_bad_rows,
                max_fraction: file.run.max_bad_fraction,
            },
            guard: file.guard,
            lock_wait: std::time::Duration::from_secs_f64(file.run.lock_wait_seconds),
            lock_expiry: std::time::Duration::from_secs_f64(file.run.lock_expiry_seconds),
            read_rows: std::env::var("BOUGHTBY_READ_ROWS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or(file.run.read_rows as usize),
        })
    }

    /// The first 8 hex digits of the settings hash (see [`config_hash`]).
    pub fn run_id(&self) -> String {
        format!(
            "{}-{}",
            time::format_compact(self.as_of),
            &config_hash(&self.model, &self.selection)[..8]
        )
    }
}

/// SHA-256, in lowercase hex, of the compact JSON
/// `{"model":{...},"selection":{...}}` of the resolved settings, keys sorted
/// alphabetically at every level, numbers as serde_json prints them (floats
/// always with a fraction or exponent, e.g. `7.0`). Two jobs with the same
/// settings, written differently (`7` or `7.0`, defaults left out or spelled
/// out), hash the same.
pub fn config_hash(model: &ModelConfig, selection: &SelectionConfig) -> String {
    let hex = Sha256::digest(settings_json(model, selection).to_string().as_bytes());
    hex.iter().map(|b| format!("{b:02x}")).collect()
}

/// The resolved settings as one JSON object, as hashed and as written in the
/// manifest.
pub fn settings_json(model: &ModelConfig, selection: &SelectionConfig) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert(
        "model".into(),
        serde_json::to_value(model).expect("plain struct"),
    );
    map.insert(
        "selection".into(),
        serde_json::to_value(selection).expect("plain struct"),
    );
    serde_json::Value::Object(map)
}

fn finite(name: &str, x: f64) -> Result<(), String> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(format!("{name} must be a finite number, not {x}"))
    }
}

/// The largest magnitude a weight or `mutual_bonus` may have. It keeps
/// every score finite: recency is at most 1 and a user has fewer than 2^32
/// supporting buyers, so `proof` stays below 2^32 · (1 + 1e6) ≈ 4.3e15;
/// `ln(1 + n)` and `popularity` stay below ln(2^32) ≈ 22.2 and
/// `|price_fit|` below 2 · ln(2^63) ≈ 87.4. The score is then below
/// 1e6 · 4.4e15 ≈ 4.4e21, and the rounding's `score · 1e9` below 4.4e30,
/// far from f64's 1.8e308. No sensible tuning comes near the bound.
pub const MAX_WEIGHT: f64 = 1e6;

fn check_model(m: &ModelConfig) -> Result<(), String> {
    if m.name != "social_v1" {
        return Err(format!(
            "model.name {:?} is unknown (the only model is \"social_v1\")",
            m.name
        ));
    }
    for (name, x) in [
        ("model.half_life_days", m.half_life_days),
        ("model.mutual_bonus", m.mutual_bonus),
        ("model.w_proof", m.w_proof),
        ("model.w_buyers", m.w_buyers),
        ("model.w_popularity", m.w_popularity),
        ("model.w_price", m.w_price),
    ] {
        finite(name, x)?;
        if name != "model.half_life_days" && x.abs() > MAX_WEIGHT {
            return Err(format!(
                "{name} must lie within ±{MAX_WEIGHT:e} (so that every score is finite), not {x}"
            ));
        }
    }
    if m.half_life_days <= 0.0 {
        return Err(format!(
            "model.half_life_days must be > 0, not {}",
            m.half_life_days
        ));
    }
    if !(1..=36_500).contains(&m.lookback_days) {
        return Err(format!(
            "model.lookback_days must be between 1 and 36500, not {}",
            m.lookback_days
        ));
    }
    if m.fatigue_max_impressions < 1 {
        return Err(format!(
            "model.fatigue_max_impressions must be >= 1, not {}",
            m.fatigue_max_impressions
        ));
    }
    if m.fatigue_days < 0 {
        return Err(format!(
            "model.fatigue_days must be >= 0, not {}",
            m.fatigue_days
        ));
    }
    Ok(())
}

fn check_run(run: &RunSection, guard: &GuardConfig) -> Result<(), String> {
    if run.keep_runs < 1 {
        return Err(format!("run.keep_runs must be >= 1, not {}", run.keep_runs));
    }
    for (name, x) in [
        ("run.max_bad_fraction", run.max_bad_fraction),
        ("guard.max_drop", guard.max_drop),
        ("guard.max_input_drop", guard.max_input_drop),
    ] {
        finite(name, x)?;
        if !(0.0..=1.0).contains(&x) {
            return Err(format!("{name} must be between 0 and 1, not {x}"));
        }
    }
    if run.read_rows < 1 {
        return Err(format!("run.read_rows must be >= 1, not {}", run.read_rows));
    }
    let wait = run.lock_wait_seconds;
    if !(0.0..=604_800.0).contains(&wait) {
        return Err(format!(
            "run.lock_wait_seconds must be between 0 and 604800 (a week), not {wait}"
        ));
    }
    let expiry = run.lock_expiry_seconds;
    if !(1.0..=604_800.0).contains(&expiry) {
        return Err(format!(
            "run.lock_expiry_seconds must be between 1 and 604800 (a week), not {expiry}"
        ));
    }
    Ok(())
}

fn check_selection(s: &SelectionConfig) -> Result<(), String> {
    finite("selection.min_score", s.min_score)?;
    for (name, x, min) in [
        ("selection.min_buyers", s.min_buyers, 1),
        ("selection.max_per_merchant", s.max_per_merchant, 1),
        ("selection.max_per_category", s.max_per_category, 1),
        ("selection.max_buyers_shown", s.max_buyers_shown, 0),
    ] {
        if x < min {
            return Err(format!("{name} must be >= {min}, not {x}"));
        }
    }
    if s.positions.is_empty() || s.positions.len() > 127 {
        return Err(format!(
            "selection.positions must have 1 to 127 entries, not {}",
            s.positions.len()
        ));
    }
    if s.positions[0] < 1 || s.positions.iter().any(|&p| p > i64::from(i32::MAX)) {
        return Err(format!(
            "selection.positions must be positive 32-bit integers: {:?}",
            s.positions
        ));
    }
    if s.positions.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "selection.positions must be strictly increasing: {:?}",
            s.positions
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Job> {
        let file: JobFile = toml::from_str(text).map_err(|e| Error::config("t", e.to_string()))?;
        Job::from_file(Path::new("jobs/t.toml"), file, &Overrides::default())
    }

    const INPUTS: &str = "[inputs]\nfollows='f'\npurchases='p'\nproducts='c'\n";

    #[test]
    fn defaults_and_relative_paths() {
        let job = parse(&format!("{INPUTS}[run]\nas_of='2026-11-24'\n")).unwrap();
        assert_eq!(job.inputs.follows, Path::new("jobs/f"));
        assert_eq!(job.output, Path::new("jobs/out"));
        let remote = parse(
            "[inputs]\nfollows='s3://b/in/follows'\npurchases='p'\nproducts='c'\n\
             [run]\noutput='s3://b/runs'\n",
        )
        .unwrap();
        assert_eq!(remote.inputs.follows, Path::new("s3://b/in/follows"));
        assert_eq!(remote.inputs.purchases, Path::new("jobs/p"));
        assert_eq!(remote.output, Path::new("s3://b/runs"));
        assert_eq!(remote.lock_expiry, std::time::Duration::from_secs(3600));
        assert_eq!(job.model, ModelConfig::default());
        assert_eq!(job.selection.positions, vec![4, 14, 30]);
        assert!(job.run_id().starts_with("20261124T000000Z-"));
        assert_eq!(job.run_id().len(), 16 + 1 + 8);
    }

    #[test]
    fn integers_accepted_for_floats_and_hash_ignores_spelling() {
        let a = parse(&format!("{INPUTS}[model]\nhalf_life_days = 7\n")).unwrap();
        let b = parse(INPUTS).unwrap();
        assert_eq!(a.model.half_life_days, 7.0);
        assert_eq!(
            config_hash(&a.model, &a.selection),
            config_hash(&b.model, &b.selection)
        );
        let c = parse(&format!("{INPUTS}[model]\nw_price = 0.3\n")).unwrap();
        assert_ne!(
            config_hash(&a.model, &a.selection),
            config_hash(&c.model, &c.selection)
        );
    }

    #[test]
    fn rejects_what_the_contract_rejects() {
        for bad in [
            "[model]\nbogus = 1\n",
            "[model]\nname = 'social_v2'\n",
            "[model]\nlookback_days = 0\n",
            "[model]\nlookback_days = 36501\n",
            "[model]\nhalf_life_days = 0\n",
            "[model]\nw_proof = nan\n",
            "[model]\nw_price = inf\n",
            "[model]\nfatigue_max_impressions = 0\n",
            "[model]\nfatigue_days = -1\n",
            "[selection]\nmin_buyers = 0\n",
            "[selection]\nmax_per_merchant = 0\n",
            "[selection]\nmax_buyers_shown = -1\n",
            "[selection]\npositions = []\n",
            "[selection]\npositions = [0, 3]\n",
            "[selection]\npositions = [3, 3]\n",
            "[selection]\nmin_score = -inf\n",
            "[run]\nas_of = 'yesterday'\n",
            "[run]\nbogus = 1\n",
            "[run]\nkeep_runs = 0\n",
            "[run]\non_bad_rows = 'ignore'\n",
            "[run]\nmax_bad_fraction = 1.5\n",
            "[run]\nlock_expiry_seconds = 0.5\n",
            "[run]\nlock_expiry_seconds = nan\n",
            "[run]\noutput = 'ftp://host/runs'\n",
            "[run]\noutput = 's3:///runs'\n",
            "[guard]\nmax_drop = -0.1\n",
            "[guard]\nbogus = 1\n",
        ] {
            let err = parse(&format!("{INPUTS}{bad}")).expect_err(bad);
            assert_eq!(err.exit_code(), 1, "{bad}");
        }
        let many: Vec<String> = (1..=128).map(|i| i.to_string()).collect();
        let text = format!("{INPUTS}[selection]\npositions = [{}]\n", many.join(","));
        assert!(parse(&text).is_err());
        assert!(parse("[run]\nas_of='2026-11-24'\n").is_err());
    }
}
