//! Named pause points for fault-injection tests.
//!
//! A test that must stop a process at an exact step of publishing (to
//! kill it there, or to let another publisher overtake it) sets
//! `BOUGHTBY_PAUSE_AT` to the point's name and `BOUGHTBY_PAUSE_DIR` to a
//! folder. On reaching that point the process creates
//! `<dir>/<point>.<pid>` and waits until the file is removed: the test
//! sees the file, does what it needs (SIGKILL, start another process),
//! then removes the file to let the process go on. Without both variables
//! a pause point does nothing. The points, in publishing order:
//!
//! - `writing`: the part's first rows are handed to its writer;
//! - `staged`: the part is written and sealed; the lock is not taken yet;
//! - `lock-wait`: another publisher holds the output's lock (reached once);
//! - `locked`: the lock is held; LATEST not read yet;
//! - `uploaded`: (object storage) one file is uploaded whole: a part or a
//!   marker of a shard, or a file of a run (parts first, the manifest
//!   last); reached at every upload;
//! - `installed`: the run folder is in place (on object storage: every
//!   file uploaded); LATEST not moved;
//! - `history`: LATEST has moved; its history entry is written under a
//!   temporary name, not yet renamed;
//! - `published`: LATEST names the run and its move is recorded; old runs
//!   not pruned;
//! - `pruning`: an old run is renamed aside, not yet removed.

use std::path::PathBuf;
use std::time::Duration;

/// Pauses here if a test asked for `point` (see the module's doc).
pub fn point(point: &str) {
    let (Some(at), Some(dir)) = (
        std::env::var_os("BOUGHTBY_PAUSE_AT"),
        std::env::var_os("BOUGHTBY_PAUSE_DIR"),
    ) else {
        return;
    };
    if !at.to_string_lossy().split(',').any(|p| p == point) {
        return;
    }
    let flag = PathBuf::from(dir).join(format!("{point}.{}", std::process::id()));
    if std::fs::write(&flag, b"").is_err() {
        return;
    }
    while flag.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
}
