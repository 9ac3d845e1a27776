//! Publishing on object storage (`docs/contract.md`, "Object storage").
//!
//! A run is staged on the local disk as everywhere (parts, delta,
//! manifest), then uploaded under `<out>/<run_id>/`: every part whole (a
//! single put, or a multipart upload completed at the end), the manifest
//! last. With no atomic rename, the manifest is the commit point: it names
//! every part and its checksum, and a reader goes by it, never by listing.
//! A rerun of a run id that finds objects under its folder writes its
//! parts under new names (`part-00000-of-00001.a2.parquet`, the attempt
//! after the highest found), so that a reader that followed LATEST to the
//! old manifest still finds the old parts; the parts no manifest names are
//! removed at the next prune, never sooner.
//!
//! Every step here takes the held [`OutputLock`] as a witness, as on disk.

use std::path::{Path, PathBuf};

use object_store::PutMode;

use crate::error::{Error, Result};
use crate::output::history::{self, Move};
use crate::output::lock::{LOCK_FILE, OutputLock};
use crate::output::manifest::{self, Manifest};
use crate::output::publish::{LATEST, is_run_id};
use crate::output::remote_lock::RemoteLock;
use crate::storage::{Put, Remote};

/// The object-store side of a held lock: an error if the lock is a file.
pub fn held(lock: &OutputLock) -> Result<&RemoteLock> {
    lock.remote()
        .ok_or_else(|| Error::Internal("a local lock guards an object-store output".into()))
}

/// `name` with the attempt `n` (2 and up) before its extension.
fn attempt_name(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.a{n}.{ext}"),
        None => format!("{name}.a{n}"),
    }
}

/// The attempt a file name carries (1 without a suffix).
fn attempt_of(name: &str) -> u32 {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    stem.rsplit_once(".a")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

/// Gives the parts and delta of a run staged in `staging` the names of
/// the next attempt at `run_id` (unchanged for a first attempt), renaming
/// the local files and the manifest's entries alike.
pub fn name_attempt(
    _lock: &OutputLock,
    out: &Remote,
    run_id: &str,
    staging: &Path,
    manifest: &mut Manifest,
) -> Result<()> {
    let existing = out.child(run_id).list()?;
    if existing.is_empty() {
        return Ok(());
    }
    let n = existing
        .iter()
        .map(|o| attempt_of(&o.name))
        .max()
        .unwrap_or(1)
        + 1;
    let rename = |file: &mut String| -> Result<()> {
        let renamed = attempt_name(file, n);
        let (from, to) = (staging.join(&*file), staging.join(&renamed));
        std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
        *file = renamed;
        Ok(())
    };
    for part in &mut manifest.parts {
        rename(&mut part.file)?;
    }
    if let Some(delta) = &mut manifest.delta {
        rename(&mut delta.file)?;
    }
    Ok(())
}

/// Uploads the run staged in `staging` (its manifest written, its files
/// named by [`name_attempt`]) under `<out>/<run_id>/`: every file the
/// manifest names, then the manifest. The local staging is removed.
pub fn install(_lock: &OutputLock, out: &Remote, staging: &Path, run_id: &str) -> Result<PathBuf> {
    let manifest = Manifest::read(staging)?;
    let run = out.child(run_id);
    let mut files: Vec<&str> = manifest.parts.iter().map(|p| p.file.as_str()).collect();
    if let Some(delta) = &manifest.delta {
        files.push(&delta.file);
    }
    for file in files {
        run.upload(&staging.join(file), file)?;
    }
    run.upload(&staging.join(manifest::FILE_NAME), manifest::FILE_NAME)?;
    if let Err(e) = std::fs::remove_dir_all(staging) {
        tracing::warn!(path = %staging.display(), error = %e, "cannot remove the local staging");
    }
    Ok(PathBuf::from(run.url()))
}

/// The run id LATEST names (as written) and its version.
pub fn read_latest(out: &Remote) -> Result<Option<(String, object_store::UpdateVersion)>> {
    Ok(out.get(LATEST)?.map(|f| {
        (
            String::from_utf8_lossy(&f.bytes).trim_end().to_string(),
            f.version,
        )
    }))
}

/// Replaces LATEST by a conditional write from the version read under the
/// lock; a refused write (LATEST moved meanwhile) is an error, exit 2.
pub fn publish_latest(lock: &OutputLock, out: &Remote, run_id: &str) -> Result<()> {
    let held = held(lock)?;
    held.check_held()?;
    let seen = match held.latest_seen() {
        Some(seen) => seen,
        None => out.head(LATEST)?.map(|(_, v, _)| v),
    };
    let mode = match seen {
        None => PutMode::Create,
        Some(v) => PutMode::Update(v),
    };
    match out.put(LATEST, format!("{run_id}\n").into_bytes(), mode)? {
        Put::Done(v) => {
            held.saw_latest(Some(v));
            Ok(())
        }
        Put::Refused => Err(Error::Publish(format!(
            "{} changed since this publisher read it (its conditional write was refused): \
             another writer moved it; run {run_id} is written, not published",
            out.url_of(LATEST)
        ))),
    }
}

/// Removes all but the newest `keep` runs (never the one LATEST names nor
/// `previous`), each manifest first so that no run is ever seen complete
/// with parts missing; in the runs kept, the parts and deltas of earlier
/// attempts that no manifest names; and run folders without a manifest
/// (an upload that died; under the lock nobody else uploads). Returns the
/// runs removed; warns, never fails.
pub fn prune(_lock: &OutputLock, out: &Remote, keep: usize, previous: Option<&str>) -> Vec<String> {
    let warn = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(path = %what, error = %e, "cannot prune; left for the next run");
    };
    let latest = match read_latest(out) {
        Ok(Some((text, _))) => text,
        Ok(None) => return Vec::new(),
        Err(e) => {
            warn(&out.url_of(LATEST), &e);
            return Vec::new();
        }
    };
    let mut runs = match out.folders() {
        Ok(names) => names
            .into_iter()
            .filter(|n| is_run_id(n))
            .collect::<Vec<_>>(),
        Err(e) => {
            warn(out.url(), &e);
            return Vec::new();
        }
    };
    runs.sort_unstable_by(|a, b| b.cmp(a));
    let mut removed = Vec::new();
    for (i, name) in runs.iter().enumerate() {
        let run = out.child(name);
        let pinned = *name == latest || Some(name.as_str()) == previous;
        let manifest = run.get_text(manifest::FILE_NAME);
        let old = i >= keep && !pinned;
        let incomplete = matches!(manifest, Ok(None)) && !pinned;
        if old || incomplete {
            let gone = run.delete(manifest::FILE_NAME).and_then(|()| {
                crate::pause::point("pruning");
                run.delete_all()
            });
            match gone {
                Ok(()) => removed.push(name.clone()),
                Err(e) => warn(run.url(), &e),
            }
            continue;
        }
        if let Ok(Some(text)) = manifest
            && let Ok(m) = serde_json::from_str::<Manifest>(&text)
            && let Err(e) = remove_unnamed(&run, &m, *name == latest)
        {
            warn(run.url(), &e);
        }
    }
    removed
}

/// Removes the parts and deltas under `run` that its manifest does not
/// name (earlier attempts); rollback deltas (`delta-from-*`) stay. In the
/// run LATEST names (just published), the attempt its manifest replaced
/// stays too, for readers that followed LATEST to that manifest: it goes
/// at the next prune.
fn remove_unnamed(run: &Remote, manifest: &Manifest, latest: bool) -> Result<()> {
    let mut named: Vec<&str> = manifest.parts.iter().map(|p| p.file.as_str()).collect();
    if let Some(d) = &manifest.delta {
        named.push(&d.file);
    }
    let current = named.first().map_or(1, |n| attempt_of(n));
    let below = if latest {
        current.saturating_sub(1)
    } else {
        u32::MAX
    };
    for object in run.list()? {
        let attempt = object.name.starts_with("slots/") || object.name.starts_with("delta/");
        if attempt && !named.contains(&object.name.as_str()) && attempt_of(&object.name) < below {
            run.delete(&object.name)?;
        }
    }
    Ok(())
}

/// Records a move of LATEST in `<out>/_history/` (one object a move; a
/// single put is whole or absent).
pub fn record(_lock: &OutputLock, out: &Remote, entry: &Move) -> Result<()> {
    let dir = out.child(history::DIR);
    let names = entry_names(&dir)?;
    let text = serde_json::to_string_pretty(entry)
        .map_err(|e| Error::Internal(format!("history entry does not serialise: {e}")))?;
    let name = history::entry_name(names.last().map(String::as_str), entry);
    crate::pause::point("history");
    dir.put_over(&name, format!("{text}\n").into_bytes())
}

/// The history entries' names, oldest first.
pub fn entry_names(dir: &Remote) -> Result<Vec<String>> {
    Ok(dir
        .list()?
        .into_iter()
        .map(|o| o.name)
        .filter(|n| !n.starts_with('.') && !n.contains('/') && n.ends_with(".json"))
        .collect())
}

/// Every move recorded, oldest first.
pub fn read_history(out: &Remote) -> Result<Vec<Move>> {
    let dir = out.child(history::DIR);
    entry_names(&dir)?
        .into_iter()
        .map(|name| {
            let text = dir.get_text(&name)?.unwrap_or_default();
            serde_json::from_str(&text).map_err(|e| {
                Error::DamagedOutput(format!(
                    "history entry {} is damaged: {e}",
                    dir.url_of(&name)
                ))
            })
        })
        .collect()
}

/// Downloads the parts (and nothing else) the manifest of `run_id` names
/// into `to` (`to/slots/...`), for a delta or a check; the manifest.
pub fn fetch_run(out: &Remote, run_id: &str, to: &Path) -> Result<Manifest> {
    let run = out.child(run_id);
    let manifest = Manifest::read(Path::new(run.url()))?;
    for part in &manifest.parts {
        let local = to.join(&part.file);
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        run.download(&part.file, &local)?;
    }
    Ok(manifest)
}

/// Whether the lock object exists (for messages and tests).
pub fn locked(out: &Remote) -> Result<bool> {
    Ok(out.head(LOCK_FILE)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_named_before_the_extension() {
        let name = "slots/part-00000-of-00001.parquet";
        assert_eq!(attempt_of(name), 1);
        let second = attempt_name(name, 2);
        assert_eq!(second, "slots/part-00000-of-00001.a2.parquet");
        assert_eq!(attempt_of(&second), 2);
        assert_eq!(attempt_of(&attempt_name(name, 13)), 13);
        assert_eq!(attempt_of("_manifest.json"), 1);
    }
}
