//! Progress bars on stderr when it is a terminal, silent otherwise, and
//! the structured log (`tracing`) that schedulers collect.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether long work shows a bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Bars when stderr is a terminal.
    pub fn on_terminal() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// No bars.
    pub fn hidden() -> Progress {
        Progress { enabled: false }
    }

    /// A bar of `len` steps (hidden when bars are off).
    pub fn bar(&self, len: u64, message: &'static str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_message(message);
        let style = ProgressStyle::with_template(
            "{msg:>14} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta} left)",
        )
        .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar
    }
}

/// Starts the log on stderr. `BOUGHTBY_LOG` sets the level (`error`,
/// `warn`, `info` — the default — or `debug`); colours only on a terminal.
pub fn init_log() {
    let level = match std::env::var("BOUGHTBY_LOG").as_deref() {
        Ok("error") => tracing::Level::ERROR,
        Ok("warn") => tracing::Level::WARN,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
