//! Inputs and runs on object storage, against a real S3-compatible
//! server: moto's, from the Python package index, started once per test
//! binary on a free port of 127.0.0.1 (killed when the binary exits).
//! Without moto the tests say why and pass, unless `CI=true`, where a
//! missing moto fails them.
//!
//! The first test checks that the server refuses stale conditional
//! writes; the lock and LATEST tests would prove nothing on a server that
//! does not.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::faults::wait_pause;
use crate::hardening::{expect_code, generate, s, stderr, stdout};
use crate::util::{bin, read_part, run_ok};

// ---------------------------------------------------------------------------
// The server and a bucket
// ---------------------------------------------------------------------------

/// The moto server's port, or why there is none.
fn server() -> Result<u16, String> {
    static PORT: OnceLock<Result<u16, String>> = OnceLock::new();
    let port = PORT.get_or_init(start_moto).clone();
    if let Err(why) = &port {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no S3 test server: {why} (install it: python3 -m pip install 'moto[server]')"
        );
        eprintln!("skipped: no S3 test server: {why}");
    }
    port
}

/// Starts `moto_server` (or `python3 -m moto.server`) from a thread that
/// never ends, with a parent-death signal, so that the server goes when
/// the test binary does.
fn start_moto() -> Result<u16, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let spawn = |program: &str, args: &[&str]| {
            let mut command = Command::new(program);
            command
                .args(args)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; it only sets a flag of
            // the child.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            command.spawn()
        };
        let started = spawn("moto_server", &[])
            .or_else(|_| spawn("python3", &["-m", "moto.server"]))
            .map_err(|e| format!("cannot start moto_server nor python3 -m moto.server: {e}"));
        let mut child = match started {
            Ok(child) => child,
            Err(why) => {
                let _ = send.send(Err(why));
                return;
            }
        };
        let begun = Instant::now();
        let ready = loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break Ok(port);
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Err(format!(
                    "moto exited at start ({status}; is moto[server] installed?)"
                ));
            }
            if begun.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                break Err("moto did not listen within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = send.send(ready);
        // The server lives as long as this thread, which outlives the tests.
        let _ = child.wait();
    });
    receive
        .recv()
        .map_err(|e| format!("the server thread died: {e}"))?
}

/// The environment that points the binary's S3 client at the server.
fn env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
    ]
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A fresh bucket of the server, and a client on it for the checks.
pub(crate) struct Bucket {
    pub(crate) port: u16,
    name: String,
    store: Arc<dyn ObjectStore>,
}

impl Bucket {
    /// A bucket of its own for one test; `None` (test skipped) without a
    /// server.
    pub(crate) fn new() -> Option<Bucket> {
        static N: AtomicU32 = AtomicU32::new(0);
        let port = server().ok()?;
        let name = format!(
            "test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let store: Arc<dyn ObjectStore> = Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_allow_http(true)
                .with_access_key_id("testing")
                .with_secret_access_key("testing")
                .with_region("us-east-1")
                .with_bucket_name(&name)
                .build()
                .unwrap(),
        );
        // Buckets are made by a plain PUT on the bucket's path.
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(
            &mut stream,
            format!(
                "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "cannot create bucket {name}: {answer}"
        );
        Some(Bucket { port, name, store })
    }

    pub(crate) fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.name)
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        runtime().block_on(async {
            match self.store.get(&Key::from(key)).await {
                Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get {key}: {e}"),
            }
        })
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|b| String::from_utf8(b).unwrap())
    }

    pub(crate) fn put(&self, key: &str, bytes: Vec<u8>) {
        runtime()
            .block_on(self.store.put(&Key::from(key), PutPayload::from(bytes)))
            .unwrap();
    }

    /// Every key below `prefix`, sorted.
    fn keys(&self, prefix: &str) -> Vec<String> {
        use futures_util::StreamExt;
        let mut keys: Vec<String> = runtime().block_on(async {
            let prefix = Key::from(prefix);
            let mut stream = self.store.list(Some(&prefix));
            let mut keys = Vec::new();
            while let Some(m) = stream.next().await {
                keys.push(m.unwrap().location.to_string());
            }
            keys
        });
        keys.sort();
        keys
    }

    /// Uploads the files of a local folder under `prefix`.
    pub(crate) fn upload_dir(&self, dir: &Path, prefix: &str) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                self.upload_dir(&path, &format!("{prefix}/{name}"));
            } else {
                self.put(&format!("{prefix}/{name}"), fs::read(&path).unwrap());
            }
        }
    }

    /// The run id LATEST under `out` names.
    pub(crate) fn latest(&self, out: &str) -> Option<String> {
        self.text(&format!("{out}/LATEST"))
            .map(|t| t.trim_end().to_string())
    }

    fn manifest(&self, out: &str, run_id: &str) -> Value {
        let text = self
            .text(&format!("{out}/{run_id}/_manifest.json"))
            .unwrap_or_else(|| panic!("no manifest of {run_id}"));
        serde_json::from_str(&text).unwrap()
    }

    /// Checks that `run_id` is whole: every part its manifest names is
    /// there and hashes as it says; returns the rows of its parts.
    pub(crate) fn whole_rows(&self, out: &str, run_id: &str) -> Vec<crate::util::Slot> {
        let manifest = self.manifest(out, run_id);
        let scratch = tempfile::tempdir().unwrap();
        let mut rows = Vec::new();
        for (i, part) in manifest["parts"].as_array().unwrap().iter().enumerate() {
            let file = part["file"].as_str().unwrap();
            let bytes = self
                .get(&format!("{out}/{run_id}/{file}"))
                .unwrap_or_else(|| panic!("{run_id}: part {file} missing"));
            let sha: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                part["sha256"].as_str(),
                Some(sha.as_str()),
                "{run_id}: {file}"
            );
            let local = scratch.path().join(format!("{i}.parquet"));
            fs::write(&local, &bytes).unwrap();
            rows.extend(read_part(&local));
        }
        rows
    }

    /// The binary with the server's environment.
    fn bin(&self) -> Command {
        let mut command = bin();
        command.envs(env(self.port));
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.bin().args(args).output().unwrap()
    }

    fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        expect_code(&out, 0, &format!("boughtby {args:?}"));
        out
    }

    /// `boughtby run --shard I/N` of 2026-11-20, which must succeed.
    fn run_shard(&self, job: &Path, i: u32, n: u32) -> Output {
        let shard = format!("{i}/{n}");
        let args = [
            "run",
            "--config",
            s(job),
            "--as-of",
            "2026-11-20",
            "--shard",
            &shard,
        ];
        self.run_ok(&args)
    }

    /// `boughtby run` of `night`, pausing at `points`.
    fn spawn(&self, job: &Path, night: &str, pauses: &Path, points: &str) -> Child {
        fs::create_dir_all(pauses).unwrap();
        self.bin()
            .args(["run", "--config", s(job), "--as-of", night])
            .env("BOUGHTBY_PAUSE_AT", points)
            .env("BOUGHTBY_PAUSE_DIR", pauses)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// A job reading the world of `dir/world` (see [`generate`]) from where
/// `inputs` says (`None`: the local files) and writing to `output`.
fn world_job(dir: &Path, inputs: Option<&str>, output: &str, run: &str) -> std::path::PathBuf {
    let mut text = String::from("[inputs]\n");
    for table in crate::util::TABLES {
        let path = match inputs {
            Some(prefix) => format!("{prefix}/{table}.parquet"),
            None => format!("world/{table}.parquet"),
        };
        text.push_str(&format!("{table} = {path:?}\n"));
    }
    text.push_str(&format!("\n[run]\noutput = {output:?}\n{run}\n"));
    static N: AtomicU32 = AtomicU32::new(0);
    let path = dir.join(format!("job-{}.toml", N.fetch_add(1, Ordering::SeqCst)));
    fs::write(&path, text).unwrap();
    path
}

/// A bucket, a folder with a small generated world, and a job reading it
/// there and writing to `s3://<bucket>/runs`; `None` without a server.
fn output_on_s3() -> Option<(Bucket, tempfile::TempDir, std::path::PathBuf)> {
    let bucket = Bucket::new()?;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 300, 7);
    let job = world_job(dir.path(), None, &bucket.url("runs"), "");
    Some((bucket, dir, job))
}

/// A bucket and a generated world of `users` in a folder and under
/// `in/`: a job on the local files writing to `out`, and one on the
/// objects writing to `s3://<bucket>/runs` with `run` in its `[run]`.
fn world_on_s3(
    users: u32,
    run: &str,
) -> Option<(
    Bucket,
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
)> {
    let bucket = Bucket::new()?;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), users, 7);
    let local_job = world_job(dir.path(), None, "out", "");
    bucket.upload_dir(&dir.path().join("world"), "in");
    let job = world_job(
        dir.path(),
        Some(&bucket.url("in")),
        &bucket.url("runs"),
        run,
    );
    Some((bucket, dir, local_job, job))
}

fn sorted(mut rows: Vec<crate::util::Slot>) -> Vec<crate::util::Slot> {
    rows.sort_by_key(|r| (r.user_id, r.slot));
    rows
}

// ---------------------------------------------------------------------------
// The server enforces conditional writes
// ---------------------------------------------------------------------------

/// If-None-Match on an existing key and If-Match with a stale e_tag are
/// refused by the server; a write from the current e_tag goes through.
#[test]
fn the_server_refuses_stale_conditional_writes() {
    let Some(bucket) = Bucket::new() else { return };
    let key = Key::from("k");
    let store = &bucket.store;
    runtime().block_on(async {
        let first = store
            .put_opts(
                &key,
                PutPayload::from_static(b"one"),
                PutMode::Create.into(),
            )
            .await
            .unwrap();
        let again = store
            .put_opts(
                &key,
                PutPayload::from_static(b"two"),
                PutMode::Create.into(),
            )
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "If-None-Match on an existing key: {again:?}"
        );
        let version = UpdateVersion {
            e_tag: first.e_tag.clone(),
            version: first.version.clone(),
        };
        let second = store
            .put_opts(
                &key,
                PutPayload::from_static(b"two"),
                PutMode::Update(version.clone()).into(),
            )
            .await
            .unwrap();
        assert_ne!(second.e_tag, first.e_tag);
        let stale = store
            .put_opts(
                &key,
                PutPayload::from_static(b"three"),
                PutMode::Update(version).into(),
            )
            .await;
        assert!(
            matches!(stale, Err(object_store::Error::Precondition { .. })),
            "If-Match with a stale e_tag: {stale:?}"
        );
    });
    assert_eq!(bucket.text("k").as_deref(), Some("two"));
}

// ---------------------------------------------------------------------------
// The nightly run
// ---------------------------------------------------------------------------

/// The whole night with inputs and output on S3: the rows equal a local
/// run's; the manifest names the inputs by URL; a rerun of the night
/// writes its parts under a new attempt's names, leaving the old ones to
/// the next prune; `slots` reads one user with ranged reads.
#[test]
fn a_night_on_s3_equals_the_local_night() {
    let Some((bucket, dir, local_job, job)) = world_on_s3(2500, "keep_runs = 1") else {
        return;
    };
    run_ok(&["run", "--config", s(&local_job), "--as-of", "2026-11-20"]);
    bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-20"]);
    let local_out = dir.path().join("out");
    let run_id = crate::util::latest(&local_out).unwrap();
    assert_eq!(bucket.latest("runs").as_deref(), Some(run_id.as_str()));
    let rows = bucket.whole_rows("runs", &run_id);
    assert!(!rows.is_empty());
    assert_eq!(
        sorted(rows.clone()),
        sorted(crate::util::read_run(&local_out.join(&run_id)))
    );
    let manifest = bucket.manifest("runs", &run_id);
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(
        inputs[0]["path"].as_str(),
        Some(bucket.url("in/follows.parquet").as_str())
    );
    assert_eq!(manifest["delta"]["base_run_id"], Value::Null);

    // `slots` for one user with slots: the local answer, fetched in ranges.
    let user = rows[rows.len() / 2].user_id.to_string();
    let want = run_ok(&["slots", "--output", s(&local_out), "--user", &user]);
    let got = bucket.run_ok(&["slots", "--output", &bucket.url("runs"), "--user", &user]);
    assert_eq!(stdout(&got), stdout(&want));
    let log = stderr(&got);
    let number = |key: &str| -> u64 {
        let at = log
            .find(&format!("{key}="))
            .unwrap_or_else(|| panic!("no {key} in {log}"));
        log[at + key.len() + 1..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (fetched, total) = (number("fetched_bytes"), number("part_bytes"));
    assert!(
        fetched > 0 && fetched < total,
        "fetched {fetched} of {total} bytes"
    );

    // A rerun of the night: new attempt names; the old parts stay.
    bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-20"]);
    let manifest = bucket.manifest("runs", &run_id);
    let part = manifest["parts"][0]["file"].as_str().unwrap().to_string();
    assert_eq!(part, "slots/part-00000-of-00001.a2.parquet");
    let keys = bucket.keys(&format!("runs/{run_id}/slots"));
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(sorted(bucket.whole_rows("runs", &run_id)), sorted(rows));

    // Reruns keep the attempt just replaced, for readers of its manifest.
    bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-20"]);
    let keys = bucket.keys(&format!("runs/{run_id}/slots"));
    assert_eq!(
        keys,
        vec![
            format!("runs/{run_id}/slots/part-00000-of-00001.a2.parquet"),
            format!("runs/{run_id}/slots/part-00000-of-00001.a3.parquet"),
        ]
    );

    // The next night prunes: no unnamed part is left.
    bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-21"]);
    let next = bucket.latest("runs").unwrap();
    assert!(next.starts_with("20261121T000000Z-"));
    assert_eq!(
        bucket.manifest("runs", &next)["delta"]["base_run_id"],
        Value::String(run_id.clone())
    );
    let left: Vec<String> = bucket
        .keys("runs")
        .into_iter()
        .filter(|k| k.contains("/slots/"))
        .collect();
    // keep_runs = 1 keeps the previous run for rollbacks; it keeps only
    // the parts its manifest names.
    assert_eq!(
        left,
        vec![
            format!("runs/{run_id}/slots/part-00000-of-00001.a3.parquet"),
            format!("runs/{next}/slots/part-00000-of-00001.parquet"),
        ]
    );
    assert!(bucket.keys("runs/.lock").is_empty(), "the lock is released");
}

/// Three shards staged on S3 from S3 inputs, then committed: the rows
/// equal the unsharded local run's; the shared staging is gone.
#[test]
fn a_sharded_run_commits_on_s3() {
    let Some((bucket, dir, local_job, job)) = world_on_s3(900, "") else {
        return;
    };
    // The follows as a folder of parts, with a marker file the loader skips.
    let follows = fs::read(dir.path().join("world/follows.parquet")).unwrap();
    bucket.put("in/follows_parts/a/part-0.parquet", follows);
    bucket.put("in/follows_parts/_SUCCESS", Vec::new());
    let text = fs::read_to_string(&job).unwrap().replace(
        &bucket.url("in/follows.parquet"),
        &bucket.url("in/follows_parts"),
    );
    fs::write(&job, text).unwrap();
    run_ok(&["run", "--config", s(&local_job), "--as-of", "2026-11-20"]);
    let run_id = crate::util::latest(&dir.path().join("out")).unwrap();
    for i in 0..3 {
        bucket.run_shard(&job, i, 3);
    }
    let staged = bucket.keys(&format!("runs/.staging-{run_id}"));
    assert_eq!(staged.len(), 6, "three parts and three markers: {staged:?}");
    let marker: Value = serde_json::from_str(&bucket.text(&staged[0]).unwrap()).unwrap();
    assert_eq!(
        marker["snapshot"][0]["path"].as_str(),
        Some(bucket.url("in/follows_parts/a/part-0.parquet").as_str()),
        "{marker}"
    );
    assert_eq!(
        marker["inputs"][0]["path"].as_str(),
        Some(bucket.url("in/follows_parts").as_str()),
        "{marker}"
    );
    assert_eq!(bucket.latest("runs"), None, "shards do not publish");
    bucket.run_ok(&["commit", "--config", s(&job), "--run-id", &run_id]);
    assert_eq!(bucket.latest("runs").as_deref(), Some(run_id.as_str()));
    let rows = bucket.whole_rows("runs", &run_id);
    assert_eq!(
        bucket.manifest("runs", &run_id)["parts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        sorted(rows),
        sorted(crate::util::read_run(&dir.path().join("out").join(&run_id)))
    );
    assert!(bucket.keys(&format!("runs/.staging-{run_id}")).is_empty());
}

// ---------------------------------------------------------------------------
// Publishing guarantees
// ---------------------------------------------------------------------------

/// A publisher killed by SIGKILL in the middle of uploading its run leaves
/// LATEST on the last run, whole; its lock expires, so the next night
/// publishes after `lock_expiry_seconds`; the dead upload is pruned.
#[test]
fn sigkill_mid_upload_leaves_latest_whole_and_the_lock_expires() {
    let Some(bucket) = Bucket::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 300, 7);
    let job = world_job(
        dir.path(),
        None,
        &bucket.url("runs"),
        "lock_expiry_seconds = 2\nlock_wait_seconds = 120",
    );
    bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-20"]);
    let first = bucket.latest("runs").unwrap();
    let pauses = dir.path().join("pauses");
    let mut dying = bucket.spawn(&job, "2026-11-21", &pauses, "uploaded");
    let flag = wait_pause(&mut dying, &pauses, "uploaded");
    // The part is up, the manifest not: kill it there.
    dying.kill().unwrap();
    dying.wait().unwrap();
    fs::remove_file(flag).unwrap();
    assert_eq!(bucket.latest("runs").as_deref(), Some(first.as_str()));
    bucket.whole_rows("runs", &first);
    let dead = format!("20261121T000000Z-{}", &first[17..]);
    assert_eq!(
        bucket.keys(&format!("runs/{dead}")).len(),
        1,
        "one part, no manifest"
    );
    let holder = bucket
        .text("runs/.lock")
        .expect("the dead publisher's lock is left");
    assert!(
        holder.contains(&format!("process {}", dying.id())),
        "{holder}"
    );

    // Within the expiry a publisher that will not wait names the holder.
    let impatient = world_job(
        dir.path(),
        None,
        &bucket.url("runs"),
        "lock_expiry_seconds = 600\nlock_wait_seconds = 0",
    );
    let refused = bucket.run(&["run", "--config", s(&impatient), "--as-of", "2026-11-22"]);
    expect_code(&refused, 2, "a publisher that will not wait");
    assert!(
        stderr(&refused).contains(&format!("process {}", dying.id())),
        "{}",
        stderr(&refused)
    );

    let next = bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-22"]);
    assert!(
        stderr(&next).contains("took over a lock"),
        "{}",
        stderr(&next)
    );
    let now = bucket.latest("runs").unwrap();
    assert!(now.starts_with("20261122T000000Z-"), "{now}");
    bucket.whole_rows("runs", &now);
    assert!(
        bucket.keys(&format!("runs/{dead}")).is_empty(),
        "the dead upload is pruned"
    );
}

/// Two publishers at once, in both orders: the second waits for the lock
/// of the first (paused with its run uploaded, LATEST not moved); LATEST
/// ends on the later night, whole, and the earlier night says it was not
/// published.
#[test]
fn two_publishers_at_once_end_on_the_later_night() {
    let Some((bucket, dir, job)) = output_on_s3() else {
        return;
    };
    let pauses = dir.path().join("pauses");
    for (first, second, later) in [
        ("2026-11-12", "2026-11-11", "20261112"),
        ("2026-11-13", "2026-11-14", "20261114"),
    ] {
        let mut a = bucket.spawn(&job, first, &pauses, "installed");
        let a_flag = wait_pause(&mut a, &pauses, "installed");
        let mut b = bucket.spawn(&job, second, &pauses, "lock-wait");
        let b_flag = wait_pause(&mut b, &pauses, "lock-wait");
        fs::remove_file(b_flag).unwrap();
        fs::remove_file(a_flag).unwrap();
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        expect_code(&a, 0, "the first");
        expect_code(&b, 0, "the second");
        let now = bucket.latest("runs").unwrap();
        assert!(
            now.starts_with(later),
            "{first} then {second}: LATEST {now}"
        );
        bucket.whole_rows("runs", &now);
        if second < first {
            assert!(
                stdout(&b).contains("written, not published"),
                "{}",
                stdout(&b)
            );
        }
    }
}

/// A LATEST moved behind a publisher's back (by anything not holding the
/// lock) makes its conditional write fail: exit 2, LATEST as moved.
#[test]
fn latest_moved_behind_the_lock_refuses_the_publish() {
    let Some((bucket, dir, job)) = output_on_s3() else {
        return;
    };
    bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-20"]);
    let first = bucket.latest("runs").unwrap();
    let pauses = dir.path().join("pauses");
    let mut a = bucket.spawn(&job, "2026-11-21", &pauses, "installed");
    let flag = wait_pause(&mut a, &pauses, "installed");
    // Another content (an e_tag is the content's MD5 on S3).
    let moved = format!("20261125T000000Z-{}", &first[17..]);
    bucket.put("runs/LATEST", format!("{moved}\n").into_bytes());
    fs::remove_file(flag).unwrap();
    let a = a.wait_with_output().unwrap();
    expect_code(&a, 2, "a publisher whose LATEST moved");
    assert!(
        stderr(&a).contains("conditional write was refused"),
        "{}",
        stderr(&a)
    );
    assert_eq!(bucket.latest("runs").as_deref(), Some(moved.as_str()));
}

/// Rollback and history on S3: two nights, a rollback to the first with
/// its delta from the second, and the three moves listed.
#[test]
fn rollback_and_history_on_s3() {
    let Some((bucket, _dir, job)) = output_on_s3() else {
        return;
    };
    bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-20"]);
    let first = bucket.latest("runs").unwrap();
    bucket.run_ok(&["run", "--config", s(&job), "--as-of", "2026-11-21"]);
    let second = bucket.latest("runs").unwrap();
    let out = bucket.url("runs");
    let missing = bucket.run(&[
        "rollback",
        "--output",
        &out,
        "--to",
        "20261101T000000Z-00000000",
    ]);
    expect_code(&missing, 1, "a rollback to a run that is not there");
    bucket.run_ok(&["rollback", "--output", &out, "--reason", "bad night"]);
    assert_eq!(bucket.latest("runs").as_deref(), Some(first.as_str()));
    let delta = bucket.keys(&format!("runs/{first}/delta-from-{second}"));
    assert_eq!(delta.len(), 1, "{delta:?}");
    let history = bucket.run_ok(&["history", "--output", &out, "--json"]);
    let moves: Vec<Value> = stdout(&history)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String)> = moves
        .iter()
        .map(|m| {
            (
                m["command"].as_str().unwrap().to_string(),
                m["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("run".to_string(), first.clone()),
            ("run".to_string(), second.clone()),
            ("rollback".to_string(), first.clone()),
        ]
    );
    assert_eq!(moves[2]["reason"].as_str(), Some("bad night"));
    let froms: Vec<&Value> = moves.iter().map(|m| &m["from"]).collect();
    assert_eq!(
        froms,
        vec![
            &Value::Null,
            &Value::String(first.clone()),
            &Value::String(second.clone())
        ]
    );
}

/// A damaged input object, and a missing one, are bad input (exit 1)
/// named by their URL, never by the local copy.
#[test]
fn bad_input_objects_are_named_by_url() {
    let Some(bucket) = Bucket::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 300, 7);
    bucket.upload_dir(&dir.path().join("world"), "in");
    bucket.put("in/purchases.parquet", b"not parquet".to_vec());
    let job = world_job(dir.path(), Some(&bucket.url("in")), "out", "");
    let damaged = bucket.run(&["run", "--config", s(&job), "--as-of", "2026-11-20"]);
    expect_code(&damaged, 1, "a damaged input object");
    let url = bucket.url("in/purchases.parquet");
    assert!(
        stderr(&damaged).contains(&format!("file {url}")),
        "{}",
        stderr(&damaged)
    );
    let missing = world_job(dir.path(), Some(&bucket.url("nowhere")), "out", "");
    let missing = bucket.run(&["run", "--config", s(&missing), "--as-of", "2026-11-20"]);
    expect_code(&missing, 1, "a missing input object");
    assert!(
        stderr(&missing).contains(&bucket.url("nowhere/")),
        "{}",
        stderr(&missing)
    );
    assert!(!dir.path().join("out").exists(), "nothing published");
}

/// The holder renews its lock: a waiter does not take over a lock older
/// than the expiry as long as its holder lives, however long it holds it;
/// and a holder whose lock was taken over (here: rewritten behind its
/// back) publishes nothing (exit 2, LATEST untouched).
#[test]
fn a_live_holder_keeps_its_lock_and_one_that_lost_it_stops() {
    let Some(bucket) = Bucket::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 300, 7);
    let run = "lock_expiry_seconds = 3\nlock_wait_seconds = 120";
    let job = world_job(dir.path(), None, &bucket.url("runs"), run);
    let pauses = dir.path().join("pauses");
    let mut a = bucket.spawn(&job, "2026-11-20", &pauses, "installed");
    let a_flag = wait_pause(&mut a, &pauses, "installed");
    let mut b = bucket.spawn(&job, "2026-11-21", &pauses, "lock-wait");
    let b_flag = wait_pause(&mut b, &pauses, "lock-wait");
    fs::remove_file(b_flag).unwrap();
    // Over two expiries: a lock not renewed would be taken over by now.
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        b.try_wait().unwrap().is_none(),
        "the waiter took a live lock"
    );
    let holder = bucket.text("runs/.lock").unwrap();
    assert!(holder.contains(&format!("process {}", a.id())), "{holder}");
    assert!(holder.contains("renewed"), "{holder}");
    fs::remove_file(a_flag).unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    expect_code(&a, 0, "the holder");
    expect_code(&b, 0, "the waiter");
    assert!(!stderr(&b).contains("took over"), "{}", stderr(&b));
    let latest = bucket.latest("runs").unwrap();
    assert!(latest.starts_with("20261121"), "{latest}");

    let mut c = bucket.spawn(&job, "2026-11-22", &pauses, "installed");
    let c_flag = wait_pause(&mut c, &pauses, "installed");
    bucket.put("runs/.lock", b"someone else".to_vec());
    // The holder's next renewal (every 0.75 s) finds it changed.
    std::thread::sleep(Duration::from_secs(3));
    fs::remove_file(c_flag).unwrap();
    let c = c.wait_with_output().unwrap();
    expect_code(&c, 2, "a holder that lost its lock");
    assert!(stderr(&c).contains("taken over"), "{}", stderr(&c));
    assert_eq!(bucket.latest("runs"), Some(latest));
    assert_eq!(bucket.text("runs/.lock").as_deref(), Some("someone else"));
}

/// Follows partitioned by shard on S3 (`generate --shards 3`, uploaded):
/// each shard fetches only its partition (and lists the others for its
/// snapshot); committed, the rows equal the unsharded run's from the same
/// folder.
#[test]
fn partitioned_follows_on_s3_are_fetched_a_share_per_shard() {
    let Some(bucket) = Bucket::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    run_ok(&[
        "generate",
        "--output",
        s(&world),
        "--seed",
        "5",
        "--users",
        "600",
        "--products",
        "60",
        "--shards",
        "3",
    ]);
    bucket.upload_dir(&world, "in");
    let job_to = |out: &str| {
        let job = world_job(dir.path(), Some(&bucket.url("in")), out, "");
        let text = fs::read_to_string(&job)
            .unwrap()
            .replace(&bucket.url("in/follows.parquet"), &bucket.url("in/follows"));
        fs::write(&job, text).unwrap();
        job
    };
    let whole = job_to(&bucket.url("whole"));
    bucket.run_ok(&["run", "--config", s(&whole), "--as-of", "2026-11-20"]);
    let run_id = bucket.latest("whole").unwrap();
    let job = job_to(&bucket.url("runs"));
    let mut snapshots = Vec::new();
    for i in 0..3u32 {
        let out = bucket.run_shard(&job, i, 3);
        // What it fetched of the follows: its own partition's objects.
        let partition = world.join(format!("follows/shard={i}"));
        let own: u64 = fs::read_dir(&partition)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        let log = stderr(&out);
        let line = log
            .lines()
            .find(|l| l.contains("fetching an input") && l.contains("table=\"follows\""))
            .unwrap_or_else(|| panic!("no follows fetch logged:\n{log}"));
        assert!(line.contains(&format!("follows/shard={i}")), "{line}");
        assert!(
            line.contains(&format!("bytes={own}")),
            "{line} (partition {own} bytes)"
        );
        let staged = bucket.keys(&format!("runs/.staging-{run_id}/_markers"));
        let marker: Value =
            serde_json::from_str(&bucket.text(&staged[i as usize]).unwrap()).unwrap();
        snapshots.push(marker["snapshot"].clone());
    }
    assert!(snapshots.iter().all(|s| *s == snapshots[0]), "one snapshot");
    let listed: Vec<&str> = snapshots[0]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["table"] == "follows")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed.len(),
        3,
        "every partition's part, listed: {listed:?}"
    );
    assert!(
        listed
            .iter()
            .all(|p| p.starts_with(&bucket.url("in/follows/shard="))),
        "{listed:?}"
    );
    bucket.run_ok(&["commit", "--config", s(&job), "--run-id", &run_id]);
    assert_eq!(
        sorted(bucket.whole_rows("runs", &run_id)),
        sorted(bucket.whole_rows("whole", &run_id))
    );
}
