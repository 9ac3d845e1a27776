//! The staging folder of a run and the markers that prove its parts whole.
//!
//! Every process of a run, sharded or not, writes its part into
//! `<out>/.staging-<run_id>[.pid-<pid>]/slots/` under a temporary name, syncs
//! it, renames it to `part-{i:05}-of-{n:05}.parquet`, and only then writes
//! its marker `_markers/part-{i:05}-of-{n:05}.json` (row count, SHA-256,
//! counts, inputs, stage times). A part without a marker is unfinished; a
//! part whose bytes do not hash to its marker's SHA-256 is damaged.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filters::FilterCount;
use crate::output::manifest::{InputEntry, Stage};
use crate::output::parquet::{PartInfo, sha256_file};
use crate::output::publish::write_synced;
use crate::shard::Shard;

pub const MARKERS: &str = "_markers";

/// One input file as a shard saw it: the input snapshot a commit checks
/// every shard against.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotFile {
    pub table: String,
    pub path: String,
    pub bytes: u64,
}

/// What one process of a run proves about its part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartMarker {
    pub run_id: String,
    /// The run's as_of, epoch µs.
    pub as_of: i64,
    /// The full hash of the settings the part was scored with.
    pub config_hash: String,
    pub shard: u32,
    pub shards: u32,
    pub part: PartInfo,
    pub users_scored: u64,
    pub users_with_slots: u64,
    /// What each filter kept and removed for this shard's users.
    pub filters: Vec<FilterCount>,
    /// Counted by the shard of the row's user, so shards add up.
    pub ignored: BTreeMap<String, u64>,
    /// Bad rows skipped; every shard reads (and counts) all of them.
    pub skipped: BTreeMap<String, u64>,
    pub inputs: Vec<InputEntry>,
    /// Tables this shard read only its share of (follows partitioned by
    /// shard): their rows and skipped rows add up over the shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows_by_shard: Vec<String>,
    /// Every file of every input, with its size: all parts of a run must
    /// have read the same snapshot.
    pub snapshot: Vec<SnapshotFile>,
    pub stages: Vec<Stage>,
}

/// The shared staging folder of a sharded run.
pub fn shared_dir(out: &Path, run_id: &str) -> PathBuf {
    out.join(format!(".staging-{run_id}"))
}

/// The private staging folder of an unsharded run; for an output on
/// object storage (and a shard's part before its upload), a folder of the
/// system's temporary directory.
pub fn private_dir(out: &Path, run_id: &str) -> PathBuf {
    let name = format!(".staging-{run_id}.pid-{}", std::process::id());
    if crate::storage::is_url(out) {
        std::env::temp_dir().join(format!("boughtby{name}"))
    } else {
        out.join(name)
    }
}

/// Uploads a sealed part of `dir` and then its marker into the shared
/// staging folder `to` of an output on object storage: a marker is never
/// seen without its whole part.
pub fn upload_sealed(dir: &Path, shard: Shard, to: &crate::storage::Remote) -> Result<()> {
    let part = format!("slots/{}", shard.part_name());
    let marker = format!(
        "{MARKERS}/{}",
        shard.part_name().replace(".parquet", ".json")
    );
    to.upload(&dir.join(&part), &part)?;
    to.upload(&dir.join(&marker), &marker)
}

/// Creates the staging folder and its sub-folders (they may exist).
pub fn prepare(dir: &Path) -> Result<()> {
    for sub in ["slots", MARKERS] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Where shard `shard` writes its part before renaming it into place.
pub fn temporary_part(dir: &Path, shard: Shard) -> PathBuf {
    dir.join("slots")
        .join(format!(".{}.tmp-{}", shard.part_name(), std::process::id()))
}

/// Renames a written temporary part into place and writes its marker.
pub fn seal(dir: &Path, shard: Shard, temporary: &Path, marker: &PartMarker) -> Result<()> {
    let part = dir.join(&marker.part.file);
    fs::rename(temporary, &part).map_err(|e| Error::io(&part, e))?;
    let name = shard.part_name().replace(".parquet", ".json");
    let final_path = dir.join(MARKERS).join(&name);
    let tmp = dir
        .join(MARKERS)
        .join(format!(".{name}.tmp-{}", std::process::id()));
    let text = serde_json::to_string_pretty(marker)
        .map_err(|e| Error::Internal(format!("marker does not serialise: {e}")))?;
    write_synced(&tmp, text.as_bytes())?;
    fs::rename(&tmp, &final_path).map_err(|e| Error::io(&final_path, e))
}

fn damaged(message: String) -> Error {
    Error::Parts(message)
}

/// Checks that the staging folder holds exactly one whole part per shard
/// index of one shard count, all of `run_id`, scored with the settings of
/// `config_hash` from one input snapshot, and nothing foreign; returns the
/// markers in shard order. Anything else is refused, naming the part.
pub fn verify(dir: &Path, run_id: &str, config_hash: &str) -> Result<Vec<PartMarker>> {
    let markers_dir = dir.join(MARKERS);
    let mut markers: Vec<PartMarker> = Vec::new();
    for path in visible_files(&markers_dir)? {
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let marker: PartMarker = serde_json::from_str(&text)
            .map_err(|e| damaged(format!("marker {} is damaged: {e}", path.display())))?;
        if marker.run_id != run_id {
            return Err(damaged(format!(
                "marker {} belongs to run {}, not {run_id}",
                path.display(),
                marker.run_id
            )));
        }
        // A marker is named after the part it proves: a copy under another
        // name would count that part twice.
        let shard = Shard {
            index: marker.shard,
            count: marker.shards,
        };
        let own_name = shard.part_name().replace(".parquet", ".json");
        if path
            .file_name()
            .is_none_or(|n| n.to_string_lossy() != own_name)
            || marker.shard >= marker.shards
            || marker.part.file != format!("slots/{}", shard.part_name())
        {
            return Err(damaged(format!(
                "marker {} is not the marker of its part (it says shard {} of {}, part {}; \
                 that marker is {own_name})",
                path.display(),
                marker.shard,
                marker.shards,
                marker.part.file
            )));
        }
        if marker.config_hash != config_hash {
            return Err(damaged(format!(
                "part {} was scored with other settings (config hash {}, the job's is {config_hash})",
                marker.part.file, marker.config_hash
            )));
        }
        markers.push(marker);
    }
    let Some(first) = markers.first().cloned() else {
        return Err(damaged(format!(
            "no finished part in {} (stage every shard of the run first)",
            dir.display()
        )));
    };
    let shards = first.shards;
    if let Some(m) = markers.iter().find(|m| m.shards != shards) {
        return Err(damaged(format!(
            "parts of different shard counts in {}: {} of {} and {} of {shards}",
            dir.display(),
            m.part.file,
            m.shards,
            first.part.file
        )));
    }
    for m in &markers[1..] {
        if let Some(problem) = snapshot_difference(&first, m) {
            return Err(damaged(format!(
                "part {} was staged from other inputs than part {}: {problem} \
                 (rerun every shard on one snapshot)",
                m.part.file, first.part.file
            )));
        }
    }
    markers.sort_by_key(|m| m.shard);
    if let Some(pair) = markers.windows(2).find(|w| w[0].shard == w[1].shard) {
        return Err(damaged(format!(
            "part {} has two markers",
            pair[0].part.file
        )));
    }
    let missing: Vec<String> = (0..shards)
        .filter(|i| !markers.iter().any(|m| m.shard == *i))
        .map(|i| {
            let shard = Shard {
                index: i,
                count: shards,
            };
            format!("shard {shard} ({})", shard.part_name())
        })
        .collect();
    if !missing.is_empty() {
        return Err(damaged(format!(
            "run {run_id} is missing {} of {shards} parts: {} (stage those shards again)",
            missing.len(),
            missing.join(", ")
        )));
    }
    let expected: Vec<String> = markers.iter().map(|m| m.part.file.clone()).collect();
    for path in visible_files(&dir.join("slots"))? {
        let name = format!(
            "slots/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        if !expected.contains(&name) {
            return Err(damaged(format!(
                "foreign file {} in the parts of run {run_id} ({shards} shards)",
                path.display()
            )));
        }
    }
    for m in &markers {
        check_part(dir, m)?;
    }
    Ok(markers)
}

/// How `b`'s input snapshot differs from `a`'s, if it does.
fn snapshot_difference(a: &PartMarker, b: &PartMarker) -> Option<String> {
    if a.as_of != b.as_of {
        return Some(format!("as_of {} against {}", b.as_of, a.as_of));
    }
    for (x, y) in a.snapshot.iter().zip(&b.snapshot) {
        if x != y {
            return Some(format!(
                "{} file {} of {} bytes against {} of {} bytes",
                y.table, y.path, y.bytes, x.path, x.bytes
            ));
        }
    }
    if a.snapshot.len() != b.snapshot.len() {
        return Some(format!(
            "{} input files against {}",
            b.snapshot.len(),
            a.snapshot.len()
        ));
    }
    if a.rows_by_shard != b.rows_by_shard {
        return Some(format!(
            "tables read by shares {:?} against {:?}",
            b.rows_by_shard, a.rows_by_shard
        ));
    }
    for (x, y) in a.inputs.iter().zip(&b.inputs) {
        // A table read by shares has each shard's own row count.
        let shared = a.rows_by_shard.contains(&x.table);
        let same = match shared {
            true => (&x.table, &x.path, x.bytes) == (&y.table, &y.path, y.bytes),
            false => x == y,
        };
        if !same {
            return Some(format!(
                "table {} of {} rows against {}",
                y.table, y.rows, x.rows
            ));
        }
    }
    (a.inputs.len() != b.inputs.len()).then(|| "another set of tables".to_string())
}

/// The part is there, hashes to its marker and holds the rows it says.
fn check_part(dir: &Path, m: &PartMarker) -> Result<()> {
    let path = dir.join(&m.part.file);
    if !path.is_file() {
        return Err(damaged(format!("part {} is missing", path.display())));
    }
    let sha = sha256_file(&path)?;
    if sha != m.part.sha256 {
        return Err(damaged(format!(
            "part {} is damaged: its SHA-256 is {sha}, its marker says {}",
            path.display(),
            m.part.sha256
        )));
    }
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let rows = SerializedFileReader::new(file)
        .map_err(|e| {
            damaged(format!(
                "part {} is not readable Parquet: {e}",
                path.display()
            ))
        })?
        .metadata()
        .file_metadata()
        .num_rows() as u64;
    if rows != m.part.rows {
        return Err(damaged(format!(
            "part {} holds {rows} rows, its marker says {}",
            path.display(),
            m.part.rows
        )));
    }
    Ok(())
}

/// Removes what only the staging needed — the markers and temporary files
/// of writers that died — so the published run holds its parts and
/// manifest only. Called once the manifest is written.
pub fn tidy(dir: &Path) -> Result<()> {
    let markers = dir.join(MARKERS);
    if markers.exists() {
        fs::remove_dir_all(&markers).map_err(|e| Error::io(&markers, e))?;
    }
    let slots = dir.join("slots");
    for entry in fs::read_dir(&slots).map_err(|e| Error::io(&slots, e))? {
        let path = entry.map_err(|e| Error::io(&slots, e))?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Files of a folder, sorted, leaving out names starting with `.`
/// (temporary files of unfinished writers).
fn visible_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}
