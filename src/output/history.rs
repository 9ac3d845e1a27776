//! `<out>/_history/`: every move of LATEST, one JSON object a move.
//!
//! A move is recorded under the output's lock right after LATEST moves
//! (publish, forced publish, rollback), as a file named by the time in
//! microseconds (zero-padded, so names sort in time order) and the run it
//! moved to, written to a temporary name, synced and renamed: a writer
//! killed mid-append leaves a hidden temporary file that readers skip, and
//! never half an entry. A publisher that finds the newest entry's `to`
//! differing from LATEST (a move whose record was lost) first records that
//! move as `recovered`.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::lock::{OutputLock, host_name};
use crate::output::publish::write_synced;
use crate::storage::Remote;
use crate::time;

pub const DIR: &str = "_history";

/// One move of LATEST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// When, RFC 3339 with microseconds.
    pub time: String,
    /// The run LATEST named before (none for a first publish).
    pub from: Option<String>,
    pub to: String,
    /// `run`, `commit`, `rollback` or `recovered`.
    pub command: String,
    pub reason: Option<String>,
    pub forced: bool,
    pub user: String,
    pub host: String,
}

impl Move {
    /// A move made now by this process.
    pub fn now(from: Option<&str>, to: &str, command: &str, by: Option<&str>) -> Move {
        let user = by
            .map(str::to_string)
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "unknown".to_string());
        Move {
            time: time::format_rfc3339_micros(chrono::Utc::now().timestamp_micros()),
            from: from.map(str::to_string),
            to: to.to_string(),
            command: command.to_string(),
            reason: None,
            forced: false,
            user,
            host: host_name(),
        }
    }
}

/// The name of `entry` after the newest entry's name: its time in µs,
/// zero-padded, and the run it moved to. The newest entry's time bounds
/// this one's from below, so that names sort in the order the moves were
/// made even if the clock stepped back.
pub fn entry_name(newest: Option<&str>, entry: &Move) -> String {
    let micros = time::parse_rfc3339_us(&entry.time).unwrap_or_default();
    let last = newest
        .and_then(|n| n.split('-').next())
        .and_then(|s| s.parse::<i64>().ok());
    let after = last.map_or(micros, |last| micros.max(last + 1));
    format!("{after:020}-{}.json", entry.to)
}

/// Appends `entry` to the history of `out`.
pub fn record(lock: &OutputLock, out: &Path, entry: &Move) -> Result<()> {
    if let Some(remote) = Remote::of(out)? {
        return crate::output::remote::record(lock, &remote, entry);
    }
    let dir = out.join(DIR);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = entry_name(entry_names(&dir)?.last().map(String::as_str), entry);
    let text = serde_json::to_string_pretty(entry)
        .map_err(|e| Error::Internal(format!("history entry does not serialise: {e}")))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    write_synced(&tmp, format!("{text}\n").as_bytes())?;
    crate::pause::point("history");
    let path = dir.join(&name);
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(&dir, e))
}

/// The names of the entries, oldest first (temporary files left out).
fn entry_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !n.starts_with('.') && n.ends_with(".json"))
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(dir, e)),
    };
    names.sort();
    Ok(names)
}

/// Every move of `out`, oldest first.
pub fn read(out: &Path) -> Result<Vec<Move>> {
    if let Some(remote) = Remote::of(out)? {
        return crate::output::remote::read_history(&remote);
    }
    let dir = out.join(DIR);
    entry_names(&dir)?
        .into_iter()
        .map(|name| {
            let path = dir.join(name);
            let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            serde_json::from_str(&text).map_err(|e| {
                Error::DamagedOutput(format!("history entry {} is damaged: {e}", path.display()))
            })
        })
        .collect()
}

/// Records the move to `latest` that the history is missing, if any (its
/// newest entry moved elsewhere, or there is none though LATEST is set).
pub fn recover(lock: &OutputLock, out: &Path, latest: Option<&str>) -> Result<()> {
    let Some(latest) = latest else {
        return Ok(());
    };
    let newest = read(out)?.pop();
    if newest.as_ref().is_some_and(|m| m.to == latest) {
        return Ok(());
    }
    let from = newest.map(|m| m.to);
    let entry = Move::now(from.as_deref(), latest, "recovered", None);
    record(lock, out, &entry)
}

/// The run LATEST named before `current`, from the history: the `from`
/// of the newest move to `current`.
pub fn before(out: &Path, current: &str) -> Result<Option<String>> {
    Ok(read(out)?
        .into_iter()
        .rev()
        .find(|m| m.to == current)
        .and_then(|m| m.from))
}
