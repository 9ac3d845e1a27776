//! `boughtby rollback`: the explicit override of the as_of order.
//!
//! Under the output's lock, LATEST moves to a kept run (`--to`, or by
//! default the run LATEST named before the current one, from the
//! history), once that run is checked complete (its manifest, and every
//! part's SHA-256). Guards do not apply. The delta from the run it leaves
//! to the run it restores is written under the restored run
//! (`delta-from-<left>/`), so caches can follow; then LATEST moves and the
//! move is recorded in the history.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::output::delta::{self, DeltaInfo};
use crate::output::history::{self, Move};
use crate::output::lock::{LockTimes, OutputLock};
use crate::output::manifest::Manifest;
use crate::output::parquet::sha256_file;
use crate::output::publish::{self, Latest};
use crate::storage::Remote;
use crate::time;

/// What a rollback did.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// What LATEST named before (as written, complete or not).
    pub from: Option<String>,
    pub to: String,
    /// The delta from the run left to the run restored, when the run left
    /// was complete.
    pub delta: Option<DeltaInfo>,
}

/// Who rolls back and why.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub to: Option<String>,
    pub reason: Option<String>,
    pub by: Option<String>,
}

/// Moves LATEST of `out` back as `request` says.
pub fn rollback(out: &Path, request: &Request, times: LockTimes) -> Result<RolledBack> {
    if publish::latest(out)?.is_none() {
        return Err(Error::Usage(format!(
            "{} has no LATEST: there is nothing to roll back",
            out.display()
        )));
    }
    let lock = OutputLock::acquire(out, times, "rollback")?;
    let written = publish::latest(out)?;
    let current = match Latest::read(&lock, out)? {
        Latest::Run { run_id, .. } => Some(run_id),
        Latest::Damaged { .. } | Latest::None => None,
    };
    history::recover(&lock, out, current.as_deref())?;
    let to = match (&request.to, &written) {
        (Some(to), _) => to.clone(),
        (None, Some(now)) => history::before(out, now)?.ok_or_else(|| {
            Error::Usage(format!(
                "the history of {} names no run before {now}: name one with --to",
                out.display()
            ))
        })?,
        (None, None) => return Err(Error::Internal("LATEST vanished under the lock".into())),
    };
    if written.as_deref() == Some(to.as_str()) {
        return Err(Error::Usage(format!("LATEST already names {to}")));
    }
    let (restored, _copy) = local_copy(out, &to)?;
    let manifest = complete_run(out, &restored, &to)?;
    let as_of = time::parse_rfc3339_us(&manifest.as_of).ok_or_else(|| {
        Error::DamagedOutput(format!(
            "the manifest of {to} has as_of {:?}",
            manifest.as_of
        ))
    })?;
    let delta = match &current {
        Some(left) => {
            let (left_dir, _left_copy) = publish::local_run(out, left)?;
            Some(write_delta(out, &restored, &left_dir, left, &to, as_of)?)
        }
        None => None,
    };
    publish::publish_latest(&lock, out, &to)?;
    let mut entry = Move::now(written.as_deref(), &to, "rollback", request.by.as_deref());
    entry.reason = request.reason.clone();
    entry.forced = true;
    if let Err(e) = history::record(&lock, out, &entry) {
        tracing::warn!(error = %e, "LATEST moved, but its history entry could not be written");
    }
    Ok(RolledBack {
        from: written,
        to,
        delta,
    })
}

/// The manifest of `run_id` in `out`, once the run is checked complete:
/// a run folder with a readable manifest whose every part hashes as it
/// says. Anything else names the run and what is wrong (exit 1).
fn complete_run(out: &Path, dir: &Path, run_id: &str) -> Result<Manifest> {
    let refuse = |why: String| Error::Usage(format!("cannot roll back to {run_id}: {why}"));
    let manifest =
        Manifest::read(&out.join(run_id)).map_err(|e| refuse(format!("incomplete: {e}")))?;
    for part in &manifest.parts {
        let path = dir.join(&part.file);
        let sha = sha256_file(&path).map_err(|e| refuse(format!("incomplete: {e}")))?;
        if sha != part.sha256 {
            return Err(refuse(format!("part {} is damaged", path.display())));
        }
    }
    Ok(manifest)
}

/// `run_id`'s folder, checked to be one, as a local folder (a copy of its
/// parts on object storage; a part that cannot be fetched is incomplete).
fn local_copy(out: &Path, run_id: &str) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    let refuse = |why: String| Error::Usage(format!("cannot roll back to {run_id}: {why}"));
    if !publish::is_run_id(run_id) {
        return Err(refuse("not a run id (YYYYMMDDTHHMMSSZ-xxxxxxxx)".into()));
    }
    let dir = out.join(run_id);
    match Remote::of(out)? {
        None if !dir.is_dir() => Err(refuse(format!("{} is missing (pruned?)", dir.display()))),
        None => Ok((dir, None)),
        Some(remote) => {
            if remote.child(run_id).list()?.is_empty() {
                return Err(refuse(format!("{} is missing (pruned?)", dir.display())));
            }
            publish::local_run(out, run_id).map_err(|e| refuse(format!("incomplete: {e}")))
        }
    }
}

/// Writes the delta from `left` (its folder `left_dir`) to `to` (its
/// folder `dir`) under `to`, whole or not at all; on object storage it is
/// then uploaded, one whole object.
fn write_delta(
    out: &Path,
    dir: &Path,
    left_dir: &Path,
    left: &str,
    to: &str,
    as_of: i64,
) -> Result<DeltaInfo> {
    let name = format!("delta-from-{left}");
    let scratch = format!(".{name}.tmp-{}", std::process::id());
    let target = delta::Target {
        dir,
        as_of,
        run_id: to,
        users: None,
    };
    let mut info = delta::write(Some((left, left_dir)), &target, &scratch)?;
    if let Some(remote) = Remote::of(out)? {
        let file = info.file.replacen(&scratch, &name, 1);
        remote.child(to).upload(&dir.join(&info.file), &file)?;
        let _ = fs::remove_dir_all(dir.join(&scratch));
        info.file = file;
        return Ok(info);
    }
    let final_dir = dir.join(&name);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
    }
    fs::rename(dir.join(&scratch), &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    info.file = info.file.replacen(&scratch, &name, 1);
    Ok(info)
}
