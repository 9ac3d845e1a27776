//! Everything written: the slots Parquet parts, the manifest, and the
//! atomic publishing of a run; and reading one user back as the timeline
//! service does.

pub mod delta;
pub mod guard;
pub mod history;
pub mod lock;
pub mod manifest;
pub mod parquet;
pub mod publish;
pub mod read;
pub mod remote;
pub mod remote_lock;
pub mod rollback;
pub mod schema;
pub mod staging;
