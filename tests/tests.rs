//! Integration tests of boughtby, in one binary (see `autotests = false` in
//! Cargo.toml). Every test runs the real `boughtby` binary in its own
//! temporary folder and reads what it wrote back with the `parquet` crate.
//!
//! - `architecture`: the module graph: the core never imports the tools,
//!   `load/` only reads.
//! - `util`: running the binary, writing tables and jobs, reading slots back.
//! - `reference`: the contract's model written the plain way (nested loops
//!   over raw rows), the yardstick for the property tests.
//! - `world`: random small worlds (proptest strategies) and their files.
//! - `property`: the pipeline's rows equal the reference's on random worlds.
//! - `fixtures`: hand-made CSV worlds under `tests/fixtures/`, one per rule of
//!   the contract, with expected slots worked out by hand.
//! - `hardening`: shards and commit, SIGKILL, guards, bad rows, retention, invariants.
//! - `faults`: overlapping publishers (pause points, no timing), a damaged
//!   LATEST, pruning after publishing, skipping that fails closed, as_of and
//!   weight edges.
//! - `cli`: exit codes, messages, files written, publishing, determinism
//!   across thread counts.
//! - `objstore`: inputs and runs on object storage against moto's S3
//!   server: the night, shards and commit, `slots`, SIGKILL mid-upload, the
//!   lock's expiry, overlapping publishers, rollback and history.
//! - `jobs`: the command lines in `jobs/` parse; `jobs/nightly.toml` validates.
//! - `k8s`: the Kubernetes manifests parsed (the shard Job, its exit-code
//!   policy, the commit, credentials from a Secret), and the driver script
//!   run against a fake `kubectl`; the shipped night on moto's S3.
//! - `serving`: the nightly delta applied as a cache would, rollback, the
//!   history of LATEST's moves, the read library against a full read.
//! - `science`: eval, tune and explain (fixtures under `tests/science/`).
//! - `partitions`: follows partitioned by shard (`generate --shards`), a
//!   shard reading only its partition, wrong layouts refused, the
//!   `followed_back` column's rule through the pipeline, the export
//!   recipe run by DuckDB.
//! - `types`: every physical type of an input column read or refused (never
//!   a panic), repeated CSV headers, symlinks in a folder of parts.

mod architecture;
mod cli;
mod faults;
mod fixtures;
mod hardening;
mod jobs;
mod k8s;
mod objstore;
mod partitions;
mod property;
mod reference;
mod science;
mod serving;
mod types;
mod util;
mod world;
