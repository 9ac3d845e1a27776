//! Publishing a run without ever showing a reader half of it
//! (`docs/contract.md` §5).
//!
//! A run is written into a staging folder beside the runs
//! (`.staging-<run_id>-<pid>`), parts first and the manifest last, then
//! renamed into `<out>/<run_id>`. `LATEST` is replaced by writing a
//! temporary file, syncing it and renaming it over the old one, so a reader
//! sees the old run id or the new one, never a mix. A failure before the
//! rename leaves the previous LATEST and its run untouched; the rename is
//! the commit point, and nothing after it (syncing the folder, pruning)
//! can turn a published run into a failure: it warns.
//!
//! All of this runs under the output's lock: every step that changes what
//! a reader may see takes the held [`OutputLock`] as a witness.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::output::lock::OutputLock;
use crate::output::manifest::Manifest;
use crate::output::remote;
use crate::storage::Remote;

pub const LATEST: &str = "LATEST";

/// Writes `bytes` to `path` and syncs the file.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Moves a complete staging folder to `<out>/<run_id>`. A rerun of the
/// same night and config replaces the earlier folder with one atomic
/// exchange (Linux `renameat2`), so a reader following LATEST never finds
/// the folder missing; the old content is then removed.
pub fn install(lock: &OutputLock, out: &Path, staging: &Path, run_id: &str) -> Result<PathBuf> {
    if let Some(remote) = Remote::of(out)? {
        return remote::install(lock, &remote, staging, run_id);
    }
    let target = out.join(run_id);
    if target.exists() {
        exchange(staging, &target)?;
        sync_dir(out)?;
        fs::remove_dir_all(staging).map_err(|e| Error::io(staging, e))?;
    } else {
        fs::rename(staging, &target).map_err(|e| Error::io(&target, e))?;
        sync_dir(out)?;
    }
    Ok(target)
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::Internal(format!("path {} holds a NUL byte", p.display())))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths; the call only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(b, std::io::Error::last_os_error()))
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    // No atomic exchange here: move the old folder aside, then the new in.
    let aside = b.with_extension(format!("replaced-{}", std::process::id()));
    fs::rename(b, &aside).map_err(|e| Error::io(b, e))?;
    fs::rename(a, b).map_err(|e| Error::io(b, e))?;
    fs::rename(&aside, a).map_err(|e| Error::io(a, e))
}

/// A published run's folder as a local folder: the folder itself on a
/// disk; on object storage, a temporary copy of the parts its manifest
/// names (for a delta or a check), removed when the second value drops.
pub fn local_run(out: &Path, run_id: &str) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    let Some(remote) = Remote::of(out)? else {
        return Ok((out.join(run_id), None));
    };
    let copy = tempfile::Builder::new()
        .prefix("boughtby-run-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    remote::fetch_run(&remote, run_id, copy.path())?;
    Ok((copy.path().to_path_buf(), Some(copy)))
}

/// Whether `name` is a run folder's name: `YYYYMMDDTHHMMSSZ-xxxxxxxx`.
pub fn is_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// Removes all but the newest `keep` runs (by as_of, then id), never the
/// one LATEST names nor `previous` (the one it named before, which a
/// rollback returns to), and leftovers of writers that died (private staging
/// folders and temporary LATEST files of processes that are gone).
/// Returns the runs removed. Called after LATEST has moved, so it never
/// fails: what it cannot remove it reports and leaves to the next prune.
pub fn prune(lock: &OutputLock, out: &Path, keep: usize, previous: Option<&str>) -> Vec<String> {
    match Remote::of(out) {
        Ok(Some(remote)) => return remote::prune(lock, &remote, keep, previous),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot prune; left for the next run");
            return Vec::new();
        }
    }
    let warn = |path: &Path, e: &dyn std::fmt::Display| {
        tracing::warn!(path = %path.display(), error = %e, "cannot prune; left for the next run");
    };
    let latest = match fs::read_to_string(out.join(LATEST)) {
        Ok(text) => text.trim_end().to_string(),
        Err(e) => {
            // Without knowing what LATEST names, nothing is safe to remove.
            warn(&out.join(LATEST), &e);
            return Vec::new();
        }
    };
    let entries = match fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) => {
            warn(out, &e);
            return Vec::new();
        }
    };
    let mut runs = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().to_string();
        if is_run_id(&name) {
            runs.push(name);
        } else if name.starts_with(".pruned-") || is_dead_writer(&name) {
            let path = entry.path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = removed {
                warn(&path, &e);
            }
        }
    }
    runs.sort_unstable_by(|a, b| b.cmp(a));
    let mut removed = Vec::new();
    for name in runs.into_iter().skip(keep) {
        if name == latest || Some(name.as_str()) == previous {
            continue;
        }
        // Renamed aside first, so a reader never finds a run folder with a
        // manifest and missing parts; an interrupted removal is finished
        // by the next prune.
        let path = out.join(&name);
        let aside = out.join(format!(".pruned-{name}"));
        if let Err(e) = fs::rename(&path, &aside) {
            warn(&path, &e);
            continue;
        }
        crate::pause::point("pruning");
        if let Err(e) = fs::remove_dir_all(&aside) {
            warn(&aside, &e);
        }
        removed.push(name);
    }
    removed
}

/// Whether `name` is a private staging folder (`.staging-<run_id>.pid-<pid>`)
/// or a temporary LATEST file (`.LATEST.tmp-<pid>`) of a process that is
/// gone. Shared staging folders of sharded runs carry no pid and stay.
fn is_dead_writer(name: &str) -> bool {
    let pid = if name.starts_with(".staging-") {
        name.rsplit_once(".pid-").map(|(_, pid)| pid)
    } else {
        name.strip_prefix(&format!(".{LATEST}.tmp-"))
    };
    pid.and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| !process_alive(pid))
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// The run id that `<out>/LATEST` names, if any, as written (not checked).
pub fn latest(out: &Path) -> Result<Option<String>> {
    if let Some(remote) = Remote::of(out)? {
        return Ok(remote::read_latest(&remote)?.map(|(text, _)| text));
    }
    let path = out.join(LATEST);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim_end().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// What LATEST names, read under the output's lock before publishing.
#[derive(Debug)]
pub enum Latest {
    /// No LATEST: a first run.
    None,
    /// A complete run, with its manifest (the guards compare against it).
    Run {
        run_id: String,
        manifest: Box<Manifest>,
    },
    /// LATEST names no complete run (garbage, or a run folder without a
    /// readable manifest); only `--force` publishes over it.
    Damaged { text: String, problem: String },
}

impl Latest {
    /// Reads LATEST and checks that it names a complete run.
    pub fn read(lock: &OutputLock, out: &Path) -> Result<Latest> {
        let text = match Remote::of(out)? {
            Some(remote) => {
                // The version read is what LATEST's move is conditional on.
                let read = remote::read_latest(&remote)?;
                remote::held(lock)?.saw_latest(read.as_ref().map(|(_, v)| v.clone()));
                read.map(|(text, _)| text)
            }
            None => latest(out)?,
        };
        let Some(text) = text else {
            return Ok(Latest::None);
        };
        if !is_run_id(&text) {
            let problem = "is not a run id (YYYYMMDDTHHMMSSZ-xxxxxxxx)".to_string();
            return Ok(Latest::Damaged { text, problem });
        }
        match Manifest::read(&out.join(&text)) {
            Ok(manifest) => Ok(Latest::Run {
                run_id: text,
                manifest: Box::new(manifest),
            }),
            Err(e) => Ok(Latest::Damaged {
                problem: format!("names no complete run: {e}"),
                text,
            }),
        }
    }

    /// The run id LATEST names, when it names a complete run.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            Latest::Run { run_id, .. } => Some(run_id),
            _ => None,
        }
    }

    /// The error that stops publishing over a damaged LATEST.
    pub fn damaged_error(out: &Path, text: &str, problem: &str) -> Error {
        Error::DamagedLatest(format!(
            "{} ({text:?}) {problem}; point it at a complete run \
             (`echo RUN_ID > {}`, RUN_ID a folder with a _manifest.json) or force the \
             publish, which goes over it without the guards",
            out.join(LATEST).display(),
            out.join(LATEST).display()
        ))
    }
}

/// Points `<out>/LATEST` at `run_id`, atomically. Once the rename is done
/// the run is published: a failure to sync the folder after it only warns.
pub fn publish_latest(lock: &OutputLock, out: &Path, run_id: &str) -> Result<()> {
    if let Some(remote) = Remote::of(out)? {
        return remote::publish_latest(lock, &remote, run_id);
    }
    let tmp = out.join(format!(".{LATEST}.tmp-{}", std::process::id()));
    write_synced(&tmp, format!("{run_id}\n").as_bytes())?;
    fs::rename(&tmp, out.join(LATEST)).map_err(|e| Error::io(out.join(LATEST), e))?;
    if let Err(e) = sync_dir(out) {
        tracing::warn!(error = %e, "LATEST moved, but its folder could not be synced");
    }
    Ok(())
}

/// Whether a run of `run_id` may replace `latest` in LATEST without
/// `--force`: its as_of (the run id's leading `YYYYMMDDTHHMMSSZ`) is not
/// earlier.
pub fn may_follow(latest: &str, run_id: &str) -> bool {
    let stamp = |id: &str| id.split('-').next().unwrap_or("").to_string();
    stamp(run_id) >= stamp(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_never_moves_back_in_time() {
        assert!(may_follow(
            "20261123T000000Z-aaaaaaaa",
            "20261124T000000Z-bbbbbbbb"
        ));
        assert!(may_follow(
            "20261124T000000Z-aaaaaaaa",
            "20261124T000000Z-bbbbbbbb"
        ));
        assert!(!may_follow(
            "20261124T000000Z-aaaaaaaa",
            "20261123T235959Z-aaaaaaaa"
        ));
    }

    #[test]
    fn publish_replace_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let lock = OutputLock::acquire(
            out,
            crate::output::lock::LockTimes::waiting(std::time::Duration::ZERO),
            "test",
        )
        .unwrap();
        let lock = &lock;
        assert_eq!(latest(out).unwrap(), None);
        let id = |day: u32| format!("202611{day:02}T000000Z-0123abcd");
        for round in 0..2 {
            let staging = out.join(format!(".staging-x-{round}"));
            fs::create_dir_all(&staging).unwrap();
            fs::write(staging.join("marker"), format!("{round}")).unwrap();
            let run = install(lock, out, &staging, &id(1)).unwrap();
            publish_latest(lock, out, &id(1)).unwrap();
            assert_eq!(
                fs::read_to_string(run.join("marker")).unwrap(),
                format!("{round}")
            );
            assert!(!staging.exists());
        }
        assert_eq!(latest(out).unwrap(), Some(id(1)));
        for day in 2..=5 {
            fs::create_dir_all(out.join(id(day))).unwrap();
        }
        // A staging folder of a process that cannot exist is a leftover.
        fs::create_dir_all(out.join(".staging-x.pid-4294967295")).unwrap();
        fs::create_dir_all(out.join(".staging-20261124T000000Z-12345678")).unwrap();
        let removed = prune(lock, out, 2, None);
        assert_eq!(removed, vec![id(3), id(2)]);
        let mut names: Vec<String> = fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                crate::output::lock::LOCK_FILE.to_string(),
                ".staging-20261124T000000Z-12345678".to_string(),
                id(1),
                id(4),
                id(5),
                LATEST.to_string()
            ]
        );
    }

    #[test]
    fn run_ids_are_recognised() {
        assert!(is_run_id("20261124T000000Z-3f770a01"));
        assert!(!is_run_id("20261124T000000Z-3F770A01"));
        assert!(!is_run_id(".staging-20261124T000000Z-3f770a01"));
        assert!(!is_run_id("LATEST"));
    }
}
