//! The `boughtby` binary: parse the command line, call the library, turn
//! the outcome into the contract's exit status. Nothing else.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use clap::Parser;

use boughtby::cli::{Cli, execute, hint};

fn main() -> ExitCode {
    boughtby::memory::tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are answers; anything else is a bad command line.
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match catch_unwind(AssertUnwindSafe(|| execute(cli))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("boughtby: error: {e}");
            if let Some(hint) = hint(&e) {
                eprintln!("boughtby: hint: {hint}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
        Err(_) => {
            eprintln!(
                "boughtby: error: internal failure (a panic, reported above); nothing was published"
            );
            ExitCode::from(2)
        }
    }
}
