//! Input tables given as URLs, spooled to local files.
//!
//! A table named by a URL (one object, or a prefix holding parts) is
//! downloaded object by object into a private folder of the system's
//! temporary directory (`boughtby-inputs-<pid>/`), keeping the relative
//! names, and read from there by the ordinary loader. Memory stays bounded
//! (objects stream to disk chunk by chunk); the disk holds one copy of the
//! inputs for the length of the load. [`release`] removes the folder once
//! the inputs are loaded; a folder left by a process that died is removed
//! by the next spool.
//!
//! Every spooled file remembers the URL it came from ([`source_of`]), so
//! that the manifest and the markers name the object, not the copy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::storage::Remote;

fn sources() -> &'static Mutex<HashMap<PathBuf, String>> {
    static SOURCES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    SOURCES.get_or_init(Default::default)
}

fn folder() -> PathBuf {
    std::env::temp_dir().join(format!("boughtby-inputs-{}", std::process::id()))
}

/// Downloads the table at `url` (an object, or every object below a
/// prefix, `_` and `.` names included: the loader skips them as on a
/// disk) and returns the local path to read it from: the file, or the
/// folder. `None` when `url` is not a URL.
pub fn fetch(table: &str, url: &Path) -> Result<Option<PathBuf>> {
    let Some(remote) = Remote::of(url)? else {
        return Ok(None);
    };
    if let Some(local) = fetched().lock().unwrap_or_else(|p| p.into_inner()).get(url) {
        return Ok(Some(local.clone()));
    }
    clear_dead();
    let local = download(table, url, &remote)?;
    fetched()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(url.to_path_buf(), local.clone());
    Ok(Some(local))
}

/// The tables already spooled by this process: URL → local path.
fn fetched() -> &'static Mutex<HashMap<PathBuf, PathBuf>> {
    static FETCHED: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    FETCHED.get_or_init(Default::default)
}

fn download(table: &str, url: &Path, remote: &Remote) -> Result<PathBuf> {
    // A folder of its own per URL fetched (a table may be fetched in
    // pieces, a partition at a time).
    static FETCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = FETCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = folder().join(format!("{table}-{n}"));
    if base.exists() {
        std::fs::remove_dir_all(&base).map_err(|e| Error::io(&base, e))?;
    }
    std::fs::create_dir_all(&base).map_err(|e| Error::io(&base, e))?;
    let objects = list(url)?.unwrap_or_default();
    if objects.is_empty() {
        return Err(Error::Input(Box::new(crate::error::InputFault {
            table: crate::load::TABLES
                .iter()
                .find(|t| **t == table)
                .copied()
                .unwrap_or("input"),
            file: url.to_path_buf(),
            column: None,
            row: None,
            value: None,
            problem: "no such object, and no object below it".into(),
        })));
    }
    let mut map = sources().lock().unwrap_or_else(|p| p.into_inner());
    // One object: its own file; a folder of them: a folder.
    if let [(only, bytes)] = objects.as_slice()
        && only.as_path() == Path::new(remote.url())
        && let Some((parent, name)) = remote.url().rsplit_once('/')
    {
        tracing::info!(table, url = %remote.url(), objects = 1, bytes, "fetching an input from object storage");
        let local = base.join(name);
        Remote::of(Path::new(parent))?
            .ok_or_else(|| Error::Internal(format!("{parent} is not a URL")))?
            .download(name, &local)?;
        map.insert(local.clone(), remote.url().to_string());
        return Ok(local);
    }
    let folder = base.join("parts");
    let prefix = format!("{}/", remote.url());
    let bytes: u64 = objects.iter().map(|(_, size)| size).sum();
    tracing::info!(table, url = %remote.url(), objects = objects.len(), bytes, "fetching an input from object storage");
    for (object, _) in &objects {
        let object = object.to_string_lossy();
        let name = object.strip_prefix(&prefix).unwrap_or(&object);
        let local = folder.join(name);
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        remote.download(name, &local)?;
        map.insert(local, object.to_string());
    }
    map.insert(folder.clone(), remote.url().to_string());
    Ok(folder)
}

/// The objects of a table given as a URL (one object, or every object
/// below a prefix) with their sizes, listed, not downloaded: for a
/// snapshot that names files it does not read. `None` when `url` is not a
/// URL.
pub fn list(url: &Path) -> Result<Option<Vec<(PathBuf, u64)>>> {
    let Some(remote) = Remote::of(url)? else {
        return Ok(None);
    };
    let name = remote.url().rsplit('/').next().unwrap_or("").to_string();
    if let Some(parent) = parent_of(&remote)
        && let Some((size, _, _)) = parent.head(&name)?
    {
        return Ok(Some(vec![(PathBuf::from(remote.url()), size)]));
    }
    Ok(Some(
        remote
            .list()?
            .into_iter()
            .map(|o| (PathBuf::from(remote.url_of(&o.name)), o.size))
            .collect(),
    ))
}

/// The folder holding `remote`, when it has one below the bucket.
fn parent_of(remote: &Remote) -> Option<Remote> {
    let (parent, _) = remote.url().rsplit_once('/')?;
    if parent.ends_with(":/") {
        return None;
    }
    Remote::of(Path::new(parent)).ok().flatten()
}

/// The URL a spooled file or folder was downloaded from; the path itself
/// for anything else.
pub fn source_of(path: &Path) -> PathBuf {
    sources()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(path)
        .map_or_else(|| path.to_path_buf(), PathBuf::from)
}

/// Removes this process's spooled inputs (once loaded).
pub fn release() {
    fetched().lock().unwrap_or_else(|p| p.into_inner()).clear();
    let dir = folder();
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        tracing::warn!(path = %dir.display(), error = %e, "cannot remove the spooled inputs");
    }
}

/// Removes the spool folders of processes that are gone.
fn clear_dead() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().to_string();
        let dead = name
            .strip_prefix("boughtby-inputs-")
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
            });
        if dead && cfg!(target_os = "linux") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
