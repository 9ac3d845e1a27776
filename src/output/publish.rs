//! Publishing a run without ever showing a reader half of it.
//!
//! A run is written into a staging folder beside the runs
//! (`.staging-<run_id>-<pid>`), parts first and the manifest last, then
//! renamed into `<out>/<run_id>`. `LATEST` is replaced by writing a
//! temporary file, syncing it and renaming it over the old one, so a reader
//! sees the old run id or the new one, never a mix. A failure before the
//! rename leaves the previous LATEST and its run untouched.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

/// A fresh, empty staging folder for `run_id` inside `out`.
pub fn staging_dir(out: &Path, run_id: &str) -> Result<PathBuf> {
    fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let dir = out.join(format!(".staging-{run_id}-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    fs::create_dir_all(dir.join("slots")).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// Moves a complete staging folder to `<out>/<run_id>`, replacing an
/// earlier run of the same id (a rerun of the same night and config).
pub fn install(out: &Path, staging: &Path, run_id: &str) -> Result<PathBuf> {
    let target = out.join(run_id);
    let mut replaced = None;
    if target.exists() {
        let aside = out.join(format!(".replaced-{run_id}-{}", std::process::id()));
        fs::rename(&target, &aside).map_err(|e| Error::io(&target, e))?;
        replaced = Some(aside);
    }
    fs::rename(staging, &target).map_err(|e| Error::io(&target, e))?;
    sync_dir(out)?;
    if let Some(aside) = replaced {
        fs::remove_dir_all(&aside).map_err(|e| Error::io(&aside, e))?;
    }
    Ok(target)
}

/// The run id that `<out>/LATEST` names, if any.
pub fn latest(out: &Path) -> Result<Option<String>> {
    let path = out.join(LATEST);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim_end().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Points `<out>/LATEST` at `run_id`, atomically.
pub fn publish_latest(out: &Path, run_id: &str) -> Result<()> {
    let tmp = out.join(format!(".{LATEST}.tmp-{}", std::process::id()));
    write_synced(&tmp, format!("{run_id}\n").as_bytes())?;
    fs::rename(&tmp, out.join(LATEST)).map_err(|e| Error::io(out.join(LATEST), e))?;
    sync_dir(out)
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
    fn publish_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        assert_eq!(latest(out).unwrap(), None);
        for round in 0..2 {
            let staging = staging_dir(out, "r1").unwrap();
            fs::write(staging.join("marker"), format!("{round}")).unwrap();
            let run = install(out, &staging, "r1").unwrap();
            publish_latest(out, "r1").unwrap();
            assert_eq!(
                fs::read_to_string(run.join("marker")).unwrap(),
                format!("{round}")
            );
        }
        assert_eq!(latest(out).unwrap().as_deref(), Some("r1"));
        let names: Vec<_> = fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "only r1 and LATEST remain: {names:?}");
    }
}
