//! A follows table partitioned by shard (`docs/contract.md` §1): a folder
//! holding `_shards` (the decimal N and a newline) and one Hive folder per
//! shard, `shard=0` .. `shard=N-1`, each holding exactly the rows whose
//! follower is in that shard, every row carrying `followed_back`.
//!
//! A run of shard I of N reads only `shard=I`; the other partitions are
//! listed (names and sizes, for the input snapshot), never opened. An
//! unsharded run reads them all.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::load::tables::{fault, list_parts};
use crate::shard::Shard;
use crate::storage::Remote;

/// The file that marks a partitioned folder and holds its shard count.
pub const SHARDS_FILE: &str = "_shards";

/// A partitioned follows folder, its layout checked.
#[derive(Debug, Clone)]
pub struct Partitioned {
    pub root: PathBuf,
    pub count: u32,
}

impl Partitioned {
    /// The layout of `path` when it is a partitioned folder (it holds
    /// `_shards`), checked: the count, and exactly the folders `shard=0`
    /// .. `shard=N-1` besides names starting with `_` or `.`.
    pub fn detect(table: &'static str, path: &Path) -> Result<Option<Partitioned>> {
        let marker = path.join(SHARDS_FILE);
        // The folder's names (with whether each is a folder), on a disk or
        // on object storage.
        let (text, names) = match Remote::of(path)? {
            Some(remote) => match remote.get_text(SHARDS_FILE)? {
                None => return Ok(None),
                Some(text) => (text, remote.entries()?),
            },
            None => {
                if !path.is_dir() || !marker.exists() {
                    return Ok(None);
                }
                let text = fs::read_to_string(&marker)
                    .map_err(|e| fault(table, &marker, format!("cannot read: {e}")))?;
                let mut names = Vec::new();
                let entries = fs::read_dir(path)
                    .map_err(|e| fault(table, path, format!("cannot list: {e}")))?;
                for entry in entries {
                    let entry =
                        entry.map_err(|e| fault(table, path, format!("cannot list: {e}")))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    names.push((name, entry.path().is_dir()));
                }
                (text, names)
            }
        };
        let count = text
            .strip_suffix('\n')
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .filter(|n| n.len() == 1 || !n.starts_with('0'))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                fault(
                    table,
                    &marker,
                    format!(
                        "holds {text:?}, not a shard count (a positive decimal number and a newline)"
                    ),
                )
            })?;
        let mut seen = vec![false; count as usize];
        for (name, is_dir) in names {
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let index = name
                .strip_prefix("shard=")
                .filter(|i| i.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|i| i.parse::<u32>().ok().filter(|n| n.to_string() == i));
            let entry_path = path.join(&name);
            let slot = index.and_then(|i| seen.get_mut(i as usize));
            match slot {
                Some(slot) if is_dir => *slot = true,
                _ => {
                    return Err(fault(
                        table,
                        &entry_path,
                        format!(
                            "extra partition {name:?} in a folder partitioned into {count} shards \
                             ({SHARDS_FILE} says {count}: only the folders shard=0 .. shard={} \
                             and names starting with _ or . belong here)",
                            count - 1
                        ),
                    ));
                }
            }
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(fault(
                table,
                &path.join(format!("shard={missing}")),
                format!(
                    "partition shard={missing} is missing ({SHARDS_FILE} says {count} shards; \
                     a shard without followers has a folder with one zero-row part)"
                ),
            ));
        }
        Ok(Some(Partitioned {
            root: path.to_path_buf(),
            count,
        }))
    }

    /// Partition `index`'s folder.
    pub fn dir(&self, index: u32) -> PathBuf {
        self.root.join(format!("shard={index}"))
    }

    /// The partitions a run of `shard` reads: its own, or all of them for
    /// the whole run; an error when the run's shard count is another.
    pub fn to_read(&self, table: &'static str, shard: Shard) -> Result<Vec<u32>> {
        if shard.count == 1 {
            return Ok((0..self.count).collect());
        }
        if shard.count != self.count {
            return Err(fault(
                table,
                &self.root.join(SHARDS_FILE),
                format!(
                    "the folder is partitioned into {} shards, but this run is shard {shard} \
                     (run it as --shard I/{}, or export the follows into {} partitions)",
                    self.count, self.count, shard.count
                ),
            ));
        }
        Ok(vec![shard.index])
    }

    /// Every part file of every partition with its size, listed (not
    /// read), in path order: the input snapshot.
    pub fn listing(&self, table: &'static str) -> Result<Vec<(PathBuf, u64)>> {
        let mut files = Vec::new();
        for i in 0..self.count {
            // On object storage: listed, not downloaded (the parts the
            // loader would read: no name below starting with `_` or `.`).
            if let Some(objects) = crate::storage::spool::list(&self.dir(i))? {
                let dir = self.dir(i).to_string_lossy().into_owned();
                files.extend(objects.into_iter().filter(|(url, _)| {
                    let url = url.to_string_lossy();
                    let below = url.strip_prefix(&dir).unwrap_or(&url);
                    !below
                        .split('/')
                        .any(|n| n.starts_with('_') || n.starts_with('.'))
                }));
                continue;
            }
            let (parts, _) = list_parts(table, &self.dir(i))?;
            for part in parts {
                let bytes = fs::metadata(&part)
                    .map_err(|e| fault(table, &part, format!("cannot read: {e}")))?
                    .len();
                files.push((part, bytes));
            }
        }
        Ok(files)
    }
}
