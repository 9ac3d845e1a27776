//! `_manifest.json`: what a run read, computed and wrote. Written last;
//! its presence marks the run complete.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filters::FilterCount;
use crate::output::delta::DeltaInfo;
use crate::output::parquet::PartInfo;

pub const FILE_NAME: &str = "_manifest.json";

/// One input as read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputEntry {
    pub table: String,
    pub path: String,
    pub bytes: u64,
    pub rows: u64,
}

/// The run's counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub users_scored: u64,
    pub users_with_slots: u64,
    pub slots: u64,
    /// Rows the contract says to ignore, by reason.
    pub ignored: BTreeMap<String, u64>,
    /// Bad rows skipped by configuration, by table and reason.
    pub skipped: BTreeMap<String, u64>,
    /// What each filter kept and removed, in pipeline order (absent from
    /// manifests written before filters were counted).
    #[serde(default)]
    pub filters: Vec<FilterCount>,
}

/// How long one stage took.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stage {
    pub name: String,
    pub seconds: f64,
}

/// The manifest, schema version 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub schema_version: u32,
    pub run_id: String,
    pub as_of: String,
    pub model: String,
    pub config_hash: String,
    pub config: serde_json::Value,
    pub inputs: Vec<InputEntry>,
    pub counts: Counts,
    pub parts: Vec<PartInfo>,
    pub stages: Vec<Stage>,
    pub forced: bool,
    /// The delta against the run LATEST named before (published runs
    /// only; absent from manifests written before deltas).
    #[serde(default)]
    pub delta: Option<DeltaInfo>,
}

impl Manifest {
    /// Writes the manifest into `run_dir` and syncs it.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let path = run_dir.join(FILE_NAME);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Internal(format!("manifest does not serialise: {e}")))?;
        crate::output::publish::write_synced(&path, format!("{text}\n").as_bytes())
    }

    /// Reads the manifest of `run_dir`.
    pub fn read(run_dir: &Path) -> Result<Manifest> {
        let path = run_dir.join(FILE_NAME);
        let text = match crate::storage::Remote::of(run_dir)? {
            Some(remote) => remote.get_text(FILE_NAME)?.ok_or_else(|| {
                Error::io(&path, std::io::Error::from(std::io::ErrorKind::NotFound))
            })?,
            None => std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?,
        };
        serde_json::from_str(&text).map_err(|e| {
            Error::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }
}
