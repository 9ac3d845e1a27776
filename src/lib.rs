//! boughtby: the nightly job that picks, for every user of a follow
//! network, a few products that the accounts they follow have bought, and
//! writes them as promotion slots for the timeline service.
//!
//! ```text
//! job TOML ─► config ─► load ─► Context ─► per user, in parallel ─► output ─► publish
//!                       follows → compressed rows over dense u32 ids (petgraph's graph traits)
//!                       purchases, products, users, blocks, impressions → Polars → dense arrays
//!                       per user: candidates → filters → scorer → selector → slot rows
//! ```
//! Everything that can fail lives in [`load`] and [`output`]; the stages in
//! between are pure. The model and its every rule are in the project's
//! contract, `docs/contract.md`, summarised in the README.

pub mod candidates;
pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod explain;
pub mod filters;
pub mod fit;
pub mod generate;
pub mod graph;
pub mod ids;
pub mod load;
pub mod memory;
pub mod output;
pub mod pause;
pub mod pipeline;
pub mod progress;
pub mod random;
pub mod rows;
pub mod run;
pub mod scoring;
pub mod selection;
pub mod serving;
pub mod shard;
pub mod storage;
pub mod time;
pub mod tune;
pub mod world;

pub use error::{Error, Result};
