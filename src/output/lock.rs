//! `OutputLock`: one publisher at a time per output folder.
//!
//! Every command that moves LATEST (`run`, `commit`) holds an exclusive
//! advisory lock on `<out>/.lock` for the whole of publishing: reading
//! LATEST, the guards, installing the run folder, replacing LATEST and
//! pruning. The lock is the standard library's `File::try_lock` (`flock`
//! on Linux), so the kernel releases it when its holder dies, even by
//! SIGKILL: a stale lock file never blocks anyone. The holder writes who
//! it is (host, process, command, since when) into the file, so that a
//! publisher that gives up can name it.
//!
//! On object storage (an `s3://` output) there is no flock: the lock is
//! the object `<out>/.lock`, see [`crate::output::remote_lock`]. Either
//! way the held lock is an [`OutputLock`], the witness every step that
//! moves LATEST asks for.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::output::remote_lock::RemoteLock;
use crate::storage::Remote;
use crate::time;

pub const LOCK_FILE: &str = ".lock";

/// The held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct OutputLock {
    held: Held,
    path: PathBuf,
}

#[derive(Debug)]
enum Held {
    /// Held while open (the kernel releases it on close).
    File {
        _file: File,
    },
    Object(Box<RemoteLock>),
}

/// How long a publisher waits for the lock, and (object storage) after
/// how long without renewal a lock object is taken over.
#[derive(Debug, Clone, Copy)]
pub struct LockTimes {
    pub wait: Duration,
    pub expiry: Duration,
}

impl LockTimes {
    /// `wait`, and the default expiry (`[run] lock_expiry_seconds`).
    pub fn waiting(wait: Duration) -> LockTimes {
        LockTimes {
            wait,
            expiry: Duration::from_secs(3600),
        }
    }
}

impl OutputLock {
    /// Takes the lock of `out` (creating the folder if need be), waiting
    /// at most `times.wait` for another holder; then an error naming that
    /// holder.
    pub fn acquire(out: &Path, times: LockTimes, command: &str) -> Result<OutputLock> {
        if let Some(remote) = Remote::of(out)? {
            let lock = RemoteLock::acquire(remote, times, command, &me(command))?;
            crate::pause::point("locked");
            return Ok(OutputLock {
                path: out.join(LOCK_FILE),
                held: Held::Object(Box::new(lock)),
            });
        }
        let wait = times.wait;
        fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let path = out.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let started = Instant::now();
        let mut waiting = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if !waiting {
                        waiting = true;
                        tracing::info!(
                            lock = %path.display(),
                            holder = %holder(&mut file),
                            "waiting for another publisher"
                        );
                        crate::pause::point("lock-wait");
                    }
                    let waited = started.elapsed();
                    if waited >= wait {
                        return Err(Error::Publish(format!(
                            "output {} is locked by another publisher ({}); gave up after {:.0} s \
                             (run.lock_wait_seconds = {}); nothing was published",
                            out.display(),
                            holder(&mut file),
                            waited.as_secs_f64(),
                            wait.as_secs_f64()
                        )));
                    }
                    std::thread::sleep((wait - waited).min(Duration::from_millis(50)));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        let me = me(command);
        // Who holds it is a courtesy to whoever waits: failing to say so
        // does not stop the publishing.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(format!("{me}\n").as_bytes()));
        crate::pause::point("locked");
        Ok(OutputLock {
            held: Held::File { _file: file },
            path,
        })
    }

    /// The lock file (or object).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock object, when the output is on object storage.
    pub fn remote(&self) -> Option<&RemoteLock> {
        match &self.held {
            Held::File { .. } => None,
            Held::Object(lock) => Some(lock),
        }
    }
}

/// Who a holder is, as written into the lock.
fn me(command: &str) -> String {
    format!(
        "host {}, process {}, command {command}, since {}",
        host_name(),
        std::process::id(),
        time::format_rfc3339(chrono::Utc::now().timestamp_micros())
    )
}

/// What the holder wrote into the lock file.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match text.trim() {
        "" => "holder unknown".to_string(),
        who => who.to_string(),
    }
}

/// This machine's host name (`unknown` when it cannot be read).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes
    // at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            OutputLock::acquire(dir.path(), LockTimes::waiting(Duration::ZERO), "run").unwrap();
        let err = OutputLock::acquire(
            dir.path(),
            LockTimes::waiting(Duration::from_millis(120)),
            "commit",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("locked by another publisher"), "{err}");
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("command run"), "{err}");
        drop(first);
        let again =
            OutputLock::acquire(dir.path(), LockTimes::waiting(Duration::ZERO), "commit").unwrap();
        assert_eq!(again.path(), dir.path().join(LOCK_FILE));
    }
}
