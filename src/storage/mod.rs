//! Where inputs and runs live: a local (or shared POSIX) disk, or an object
//! store named by a URL (`s3://bucket/prefix`).
//!
//! A path anywhere in the job (an `[inputs]` table, `[run] output`, the
//! command line's `--output`) may be such a URL; it travels through the
//! code as a `PathBuf` holding the URL as given, and `Path::join` on it
//! gives the URL of an object below it. Code that touches storage asks
//! [`Remote::of`] whether a path is remote and, if so, goes through the
//! few calls here (get, conditional put, upload, download, list, delete,
//! ranged read); everything else stays on the local disk.
//!
//! `object_store` is async; it runs on one small current-thread tokio
//! runtime owned by this module, entered by `block_on` from whichever
//! thread calls. The pipeline itself stays synchronous. Credentials and
//! endpoint come from the environment as `object_store` documents them
//! (`AmazonS3Builder::from_env`: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP=true` for a plain-http endpoint, ...;
//! `GoogleCloudStorageBuilder::from_env`: `GOOGLE_SERVICE_ACCOUNT`, ...;
//! `MicrosoftAzureBuilder::from_env`: `AZURE_STORAGE_ACCOUNT_NAME`,
//! `AZURE_STORAGE_ACCOUNT_KEY`, ...). Conditional writes use what each
//! store offers (`If-Match` / `If-None-Match` on S3 and Azure, generation
//! preconditions on GCS).

pub mod spool;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::buffered::BufWriter;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// The URL schemes this build reads and writes: S3 (and S3-compatible
/// stores), Google Cloud Storage, Azure Blob Storage (the container as
/// the URL's host).
pub const SCHEMES: [&str; 3] = ["s3", "gs", "az"];

/// Whether `path` is written as a URL (`scheme://...`) rather than a path.
pub fn is_url(path: &Path) -> bool {
    let text = path.to_string_lossy();
    text.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
    })
}

/// Checks a URL given for an input or the output: a scheme this build
/// knows and a bucket; the message says what is wrong.
pub fn check_url(path: &Path) -> std::result::Result<(), String> {
    parse(&path.to_string_lossy()).map(|_| ())
}

/// `(scheme, bucket, key prefix)` of a URL.
fn parse(url: &str) -> std::result::Result<(String, String, String), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{url:?} is not a URL"));
    };
    if !SCHEMES.contains(&scheme) {
        return Err(format!(
            "{url:?}: object stores of scheme {scheme}:// are not built in (this build reads {})",
            SCHEMES.map(|s| format!("{s}://")).join(", ")
        ));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?} names no bucket"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") {
        return Err(format!("{url:?}: `.` and `..` have no meaning in a key"));
    }
    Ok((scheme.to_string(), bucket.to_string(), prefix.to_string()))
}

/// The runtime that drives every object-store call.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Internal(format!("cannot start the object-store runtime: {e}")))
}

/// Runs one object-store future to completion. A caller that is itself
/// inside a tokio runtime (a timeline service calling
/// [`crate::serving::Slots`] from async code) may not block its thread on
/// another runtime (tokio panics), so the future then runs on a scoped
/// thread of its own while the caller waits.
fn block_on<F>(future: F) -> Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let runtime = runtime()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(runtime.block_on(future));
    }
    std::thread::scope(|scope| scope.spawn(|| runtime.block_on(future)).join())
        .map_err(|_| Error::Internal("an object-store call panicked".to_string()))
}

/// One client per bucket for the whole process (it pools connections).
fn store(scheme: &str, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let name = format!("{scheme}://{bucket}");
    if let Some(store) = stores.get(&name) {
        return Ok(store.clone());
    }
    let built: Arc<dyn ObjectStore> = match scheme {
        "s3" => Arc::new(
            AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| Error::Usage(format!("cannot use {name}: {e}")))?,
        ),
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| Error::Usage(format!("cannot use {name}: {e}")))?,
        ),
        "az" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .build()
                .map_err(|e| Error::Usage(format!("cannot use {name}: {e}")))?,
        ),
        other => {
            return Err(Error::Usage(format!(
                "object stores of scheme {other}:// are not built in"
            )));
        }
    };
    stores.insert(name, built.clone());
    Ok(built)
}

/// An object's content and version.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub version: UpdateVersion,
    /// The store's last-modified time, epoch µs.
    pub modified: i64,
}

/// What a conditional write came to.
#[derive(Debug, Clone)]
pub enum Put {
    /// Written; the new version.
    Done(UpdateVersion),
    /// The store refused it: the object exists (create) or changed
    /// (update).
    Refused,
}

/// One object listed.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The key relative to the folder listed.
    pub name: String,
    pub size: u64,
}

/// A folder in an object store: a bucket and a key prefix.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Remote {
    /// The remote folder `path` names, or `None` for a local path.
    pub fn of(path: &Path) -> Result<Option<Remote>> {
        if !is_url(path) {
            return Ok(None);
        }
        let url = path.to_string_lossy().trim_end_matches('/').to_string();
        let (scheme, bucket, prefix) = parse(&url).map_err(Error::Usage)?;
        Ok(Some(Remote {
            store: store(&scheme, &bucket)?,
            prefix,
            url,
        }))
    }

    /// The URL of this folder.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of `name` below this folder.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    /// The folder `name` below this one.
    pub fn child(&self, name: &str) -> Remote {
        Remote {
            store: self.store.clone(),
            prefix: self.key_text(name),
            url: self.url_of(name),
        }
    }

    fn key_text(&self, name: &str) -> String {
        match (self.prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{name}", self.prefix),
        }
    }

    fn key(&self, name: &str) -> Key {
        Key::from(self.key_text(name))
    }

    fn error(&self, name: &str, e: object_store::Error) -> Error {
        Error::io(self.url_of(name), std::io::Error::other(e))
    }

    /// `name`'s content and version; `None` when it does not exist.
    pub fn get(&self, name: &str) -> Result<Option<Fetched>> {
        let key = self.key(name);
        let got = block_on(async {
            let result = self.store.get(&key).await?;
            let meta = result.meta.clone();
            let bytes = result.bytes().await?;
            Ok::<_, object_store::Error>((bytes, meta))
        })?;
        match got {
            Ok((bytes, meta)) => Ok(Some(Fetched {
                bytes,
                version: UpdateVersion {
                    e_tag: meta.e_tag,
                    version: meta.version,
                },
                modified: meta.last_modified.timestamp_micros(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// `name`'s content as text; `None` when it does not exist.
    pub fn get_text(&self, name: &str) -> Result<Option<String>> {
        match self.get(name)? {
            None => Ok(None),
            Some(f) => String::from_utf8(f.bytes.to_vec()).map(Some).map_err(|_| {
                Error::DamagedOutput(format!("{} is not UTF-8 text", self.url_of(name)))
            }),
        }
    }

    /// Writes `bytes` to `name` in one request, as `mode` allows.
    pub fn put(&self, name: &str, bytes: Vec<u8>, mode: PutMode) -> Result<Put> {
        let key = self.key(name);
        let options = PutOptions::from(mode);
        let result = block_on(self.store.put_opts(&key, PutPayload::from(bytes), options))?;
        match result {
            Ok(r) => Ok(Put::Done(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            })),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(Put::Refused),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// Writes `bytes` to `name`, replacing what is there.
    pub fn put_over(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        match self.put(name, bytes, PutMode::Overwrite)? {
            Put::Done(_) => Ok(()),
            Put::Refused => Err(Error::Internal(format!(
                "the store refused an unconditional write of {}",
                self.url_of(name)
            ))),
        }
    }

    /// Uploads the local file `from` to `name`, whole or not at all: one
    /// request for a small file, a multipart upload completed at the end
    /// (and aborted on failure) for a large one. No reader ever sees part
    /// of it.
    pub fn upload(&self, from: &Path, name: &str) -> Result<()> {
        let key = self.key(name);
        let mut file = File::open(from).map_err(|e| Error::io(from, e))?;
        let mut writer = BufWriter::new(self.store.clone(), key);
        let mut buf = vec![0u8; 8 << 20];
        let written = loop {
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) => break Err(Error::io(from, e)),
            };
            if n == 0 {
                break block_on(writer.shutdown())?.map_err(|e| Error::io(self.url_of(name), e));
            }
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            if let Err(e) = block_on(writer.put(chunk))? {
                break Err(self.error(name, e));
            }
        };
        if written.is_err() {
            let _ = block_on(writer.abort());
        }
        crate::pause::point("uploaded");
        written
    }

    /// Downloads `name` into the local file `to`; its size in bytes.
    pub fn download(&self, name: &str, to: &Path) -> Result<u64> {
        let key = self.key(name);
        let mut file = File::create(to).map_err(|e| Error::io(to, e))?;
        let fetched = block_on(async {
            let mut stream = self.store.get(&key).await?.into_stream();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if let Err(e) = file.write_all(&chunk) {
                    return Ok(Err(e));
                }
            }
            Ok::<_, object_store::Error>(Ok(size))
        })?;
        match fetched {
            Ok(Ok(size)) => Ok(size),
            Ok(Err(e)) => Err(Error::io(to, e)),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// Every object below this folder (all levels), names relative to it,
    /// sorted.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let prefix = Key::from(self.prefix.as_str());
        let listed = block_on(async {
            let mut stream = self.store.list(Some(&prefix));
            let mut all = Vec::new();
            while let Some(meta) = stream.next().await {
                all.push(meta?);
            }
            Ok::<_, object_store::Error>(all)
        })?
        .map_err(|e| self.error("", e))?;
        let strip = |key: &str| -> String {
            match self.prefix.is_empty() {
                true => key.to_string(),
                false => key
                    .strip_prefix(&self.prefix)
                    .map(|k| k.trim_start_matches('/'))
                    .unwrap_or(key)
                    .to_string(),
            }
        };
        let mut out: Vec<Listed> = listed
            .into_iter()
            .map(|m| Listed {
                name: strip(m.location.as_ref()),
                size: m.size,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The names of the immediate sub-folders of this folder.
    pub fn folders(&self) -> Result<Vec<String>> {
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|(name, folder)| folder.then_some(name))
            .collect())
    }

    /// The names directly below this folder, each with whether it is a
    /// folder (a common prefix) or an object.
    pub fn entries(&self) -> Result<Vec<(String, bool)>> {
        let prefix = Key::from(self.prefix.as_str());
        let listed = block_on(self.store.list_with_delimiter(Some(&prefix)))?
            .map_err(|e| self.error("", e))?;
        let folders = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(|n| (n.to_string(), true)));
        let objects = listed
            .objects
            .iter()
            .filter_map(|m| m.location.filename().map(|n| (n.to_string(), false)));
        let mut names: Vec<(String, bool)> = folders.chain(objects).collect();
        names.sort();
        Ok(names)
    }

    /// `name`'s size and version; `None` when it does not exist.
    pub fn head(&self, name: &str) -> Result<Option<(u64, UpdateVersion, i64)>> {
        let key = self.key(name);
        match block_on(self.store.head(&key))? {
            Ok(m) => Ok(Some((
                m.size,
                UpdateVersion {
                    e_tag: m.e_tag,
                    version: m.version,
                },
                m.last_modified.timestamp_micros(),
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// Removes `name` (gone already is fine).
    pub fn delete(&self, name: &str) -> Result<()> {
        let key = self.key(name);
        match block_on(self.store.delete(&key))? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// The bytes `range` of `name`.
    pub fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes> {
        let key = self.key(name);
        block_on(self.store.get_range(&key, range))?.map_err(|e| self.error(name, e))
    }

    /// Downloads every object below this folder into `to`, keeping the
    /// relative names; how many.
    pub fn download_all(&self, to: &Path) -> Result<usize> {
        let objects = self.list()?;
        for object in &objects {
            let local = to.join(&object.name);
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            self.download(&object.name, &local)?;
        }
        Ok(objects.len())
    }

    /// Removes every object below this folder; what it could not remove
    /// it reports and leaves.
    pub fn delete_all(&self) -> Result<()> {
        for object in self.list()? {
            self.delete(&object.name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller already inside a tokio runtime (an async service) gets its
    /// answer instead of tokio's panic at a nested `block_on`.
    #[test]
    fn object_store_calls_run_from_inside_a_callers_runtime() {
        assert_eq!(block_on(async { 1 }).unwrap(), 1);
        let callers = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = callers.block_on(async { block_on(async { 2 }) });
        assert_eq!(got.unwrap(), 2);
    }

    #[test]
    fn urls_are_told_from_paths_and_checked() {
        assert!(is_url(Path::new("s3://bucket/runs")));
        assert!(is_url(Path::new("gs://bucket")));
        assert!(!is_url(Path::new("/data/s3:/x")));
        assert!(!is_url(Path::new("out")));
        assert_eq!(
            parse("s3://bucket/a/b/").unwrap(),
            ("s3".into(), "bucket".into(), "a/b".into())
        );
        assert!(parse("s3:///a").unwrap_err().contains("no bucket"));
        assert!(parse("ftp://h/a").unwrap_err().contains("not built in"));
        assert_eq!(parse("az://container").unwrap().1, "container");
        assert!(parse("s3://b/a/../c").is_err());
    }
}
