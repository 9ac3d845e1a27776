//! The library's one error type and its `Result` alias.
//!
//! Errors fall in three families that map to the contract's exit codes:
//! what the user gave us is wrong (command line, config, input: exit 1),
//! something else failed (output, I/O, broken internal assumptions: exit 2),
//! and a publishing guard refused the run (exit 3).

use std::fmt;
use std::path::PathBuf;

/// A value of an input table that breaks the contract, located as precisely
/// as the input allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFault {
    /// The table's name in the contract (`follows`, `purchases`, ...).
    pub table: &'static str,
    /// The file (or folder) that holds the fault.
    pub file: PathBuf,
    /// The column, when the fault is in one.
    pub column: Option<String>,
    /// The 1-based data row within `file` (a CSV header is not counted).
    pub row: Option<u64>,
    /// The offending value as text, when there is one.
    pub value: Option<String>,
    /// What is wrong, in lowercase words.
    pub problem: String,
}

impl fmt::Display for InputFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A spooled copy of an object is named as the object.
        let file = crate::storage::spool::source_of(&self.file);
        write!(f, "table {}, file {}", self.table, file.display())?;
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(value) = &self.value {
            write!(f, " (value {value:?})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in boughtby.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// The job file cannot be read or breaks a config rule.
    #[error("config {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// An input table breaks the contract.
    #[error("bad input: {0}")]
    Input(Box<InputFault>),
    /// The parts of a run are missing, damaged or foreign.
    #[error("cannot commit: {0}")]
    Parts(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Parquet writer or reader failed on our own output.
    #[error("parquet {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Publishing cannot go on safely: the output is locked by another
    /// publisher, or LATEST does not name a complete run.
    #[error("cannot publish: {0}")]
    Publish(String),
    /// LATEST names no complete run; only a forced publish goes over it.
    #[error("cannot publish: {0}")]
    DamagedLatest(String),
    /// A published run's files are not what this version writes.
    #[error("damaged output: {0}")]
    DamagedOutput(String),
    /// An assumption of the code did not hold: a bug, not bad input.
    #[error("internal error: {0}")]
    Internal(String),
    /// A publishing guard refused the run.
    #[error("refused: {0}")]
    Refused(String),
}

impl Error {
    /// The process exit status the contract gives this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config { .. } | Error::Input(_) | Error::Parts(_) => 1,
            Error::Io { .. }
            | Error::Parquet { .. }
            | Error::Publish(_)
            | Error::DamagedLatest(_)
            | Error::DamagedOutput(_)
            | Error::Internal(_) => 2,
            Error::Refused(_) => 3,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a Parquet reader's or writer's error with the path it concerns.
    pub fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<InputFault> for Error {
    fn from(fault: InputFault) -> Self {
        Error::Input(Box::new(fault))
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
