//! The lock of an output on object storage: the object `<out>/.lock`.
//!
//! An object store has no flock and no atomic rename, but it has
//! conditional writes, and they are enough:
//!
//! - taking the lock is creating `.lock` with `If-None-Match: *`
//!   (`PutMode::Create`): of two publishers exactly one succeeds;
//! - the holder writes who it is (host, process, command, since when) and
//!   rewrites the object every quarter of `[run] lock_expiry_seconds` from a
//!   thread of its own, each time conditionally on the version it wrote
//!   last (`If-Match`), which refreshes the store's last-modified time;
//! - a waiter that finds the object's last-modified time older than the
//!   expiry (its holder died without releasing it, say by SIGKILL) takes it
//!   over by rewriting it conditionally on the version it read: of two
//!   waiters only one succeeds;
//! - a holder whose renewal is refused has lost the lock (it was taken
//!   over); it stops publishing before moving LATEST;
//! - the holder deletes the object when done (if the object is still its
//!   own).
//!
//! The LATEST object is replaced conditionally too ([`RemoteLock`] keeps
//! the version the publisher read), so even a publisher that lost the lock
//! unknowingly cannot overwrite a move it did not see.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use object_store::{PutMode, UpdateVersion};

use crate::error::{Error, Result};
use crate::output::lock::{LOCK_FILE, LockTimes};
use crate::storage::{Put, Remote};

/// A held lock object, renewed until dropped.
pub struct RemoteLock {
    remote: Remote,
    /// The version of the lock object this holder wrote last.
    version: Arc<Mutex<UpdateVersion>>,
    lost: Arc<AtomicBool>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    renewer: Option<JoinHandle<()>>,
    /// The version of LATEST read under this lock (`Some(None)`: there was
    /// no LATEST), which a move of LATEST is conditional on.
    latest_seen: Mutex<Option<Option<UpdateVersion>>>,
}

impl std::fmt::Debug for RemoteLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteLock({})", self.remote.url_of(LOCK_FILE))
    }
}

impl RemoteLock {
    /// Takes the lock object of `remote`, waiting at most `times.wait`.
    pub fn acquire(
        remote: Remote,
        times: LockTimes,
        command: &str,
        me: &str,
    ) -> Result<RemoteLock> {
        let started = Instant::now();
        let mut waiting = false;
        let version = loop {
            if let Put::Done(v) = remote.put(LOCK_FILE, me.as_bytes().to_vec(), PutMode::Create)? {
                break v;
            }
            let Some(held) = remote.get(LOCK_FILE)? else {
                // Released between the two requests: try again at once.
                continue;
            };
            let holder = String::from_utf8_lossy(&held.bytes).trim().to_string();
            let age = chrono::Utc::now().timestamp_micros() - held.modified;
            if age > times.expiry.as_micros() as i64 {
                let mode = PutMode::Update(held.version.clone());
                if let Put::Done(v) = remote.put(LOCK_FILE, me.as_bytes().to_vec(), mode)? {
                    tracing::warn!(
                        lock = %remote.url_of(LOCK_FILE),
                        %holder,
                        age_seconds = age / 1_000_000,
                        "took over a lock not renewed for longer than run.lock_expiry_seconds"
                    );
                    break v;
                }
                continue;
            }
            if !waiting {
                waiting = true;
                tracing::info!(lock = %remote.url_of(LOCK_FILE), %holder, "waiting for another publisher");
                crate::pause::point("lock-wait");
            }
            let waited = started.elapsed();
            if waited >= times.wait {
                return Err(Error::Publish(format!(
                    "output {} is locked by another publisher ({holder}); gave up after {:.0} s \
                     (run.lock_wait_seconds = {}); nothing was published",
                    remote.url(),
                    waited.as_secs_f64(),
                    times.wait.as_secs_f64()
                )));
            }
            std::thread::sleep((times.wait - waited).min(Duration::from_millis(200)));
        };
        let version = Arc::new(Mutex::new(version));
        let lost = Arc::new(AtomicBool::new(false));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let renewer = {
            let (remote, version, lost, stop) =
                (remote.clone(), version.clone(), lost.clone(), stop.clone());
            let every = times.expiry / 4;
            let me = me.to_string();
            let command = command.to_string();
            std::thread::Builder::new()
                .name("lock-renewal".into())
                .spawn(move || renew(&remote, &version, &lost, &stop, every, &me, &command))
                .map_err(|e| Error::Internal(format!("cannot start the lock's renewal: {e}")))?
        };
        Ok(RemoteLock {
            remote,
            version,
            lost,
            stop,
            renewer: Some(renewer),
            latest_seen: Mutex::new(None),
        })
    }

    /// An error when the lock was taken over since it was acquired.
    pub fn check_held(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Publish(format!(
                "the lock {} was taken over by another publisher (not renewed within \
                 run.lock_expiry_seconds); nothing more is published",
                self.remote.url_of(LOCK_FILE)
            )));
        }
        Ok(())
    }

    /// Remembers the version of LATEST read under the lock.
    pub fn saw_latest(&self, version: Option<UpdateVersion>) {
        *self.latest_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(version);
    }

    /// The version of LATEST read under the lock, if it was read.
    pub fn latest_seen(&self) -> Option<Option<UpdateVersion>> {
        self.latest_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Rewrites the lock object every `every` until told to stop; a refused
/// rewrite means the lock was taken over.
fn renew(
    remote: &Remote,
    version: &Mutex<UpdateVersion>,
    lost: &AtomicBool,
    stop: &(Mutex<bool>, Condvar),
    every: Duration,
    me: &str,
    command: &str,
) {
    let (stopped, wake) = stop;
    let mut guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let (g, _) = wake
            .wait_timeout(guard, every)
            .unwrap_or_else(|p| p.into_inner());
        guard = g;
        if *guard {
            return;
        }
        let current = version.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let text = format!(
            "{me}, renewed {} ({command})",
            crate::time::format_rfc3339(chrono::Utc::now().timestamp_micros())
        );
        match remote.put(LOCK_FILE, text.into_bytes(), PutMode::Update(current)) {
            Ok(Put::Done(v)) => *version.lock().unwrap_or_else(|p| p.into_inner()) = v,
            Ok(Put::Refused) => {
                lost.store(true, Ordering::SeqCst);
                tracing::warn!(lock = %remote.url_of(LOCK_FILE), "the lock was taken over by another publisher");
                return;
            }
            Err(e) => {
                tracing::warn!(lock = %remote.url_of(LOCK_FILE), error = %e, "cannot renew the lock; trying again");
            }
        }
    }
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        {
            let (stopped, wake) = &*self.stop;
            *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
            wake.notify_all();
        }
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        if self.lost.load(Ordering::SeqCst) {
            return;
        }
        // Deleted only while it is still ours (a delete cannot be
        // conditional; the window between the two requests is small).
        let ours = self
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match self.remote.head(LOCK_FILE) {
            Ok(Some((_, v, _))) if v.e_tag == ours.e_tag => {
                if let Err(e) = self.remote.delete(LOCK_FILE) {
                    tracing::warn!(error = %e, "cannot release the lock; it expires");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot release the lock; it expires"),
        }
    }
}
