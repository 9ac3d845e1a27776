//! The command line: clap types stop here. Each command turns its
//! arguments into plain library calls and prints what a person needs.
//! The data scientists' commands (eval, tune, explain) live in `science`.

mod science;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Job, Overrides};
use crate::error::{Error, Result};
use crate::generate::{self, PRESETS, Preset, WorldSpec};
use crate::output::{history, rollback};
use crate::progress::Progress;
use crate::run::{self, Committed, RunOptions, RunOutcome};
use crate::shard::Shard;
use crate::storage;
use crate::time;

/// boughtby: promote, in each user's timeline, products that the accounts
/// they follow have bought.
///
/// Exit status: 0 done; 1 bad command line, config or input (nothing
/// published); 2 any other failure (nothing published); 3 refused by a
/// publishing guard.
#[derive(Debug, Parser)]
#[command(name = "boughtby", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(RunArgs),
    Commit(CommitArgs),
    Validate(ValidateArgs),
    Slots(SlotsArgs),
    Rollback(RollbackArgs),
    History(HistoryArgs),
    Generate(GenerateArgs),
    Eval(science::EvalArgs),
    Tune(science::TuneArgs),
    Explain(science::ExplainArgs),
    Fit(science::FitArgs),
}

/// The nightly job: read the inputs, score every user, write the slots and
/// publish the run (LATEST) atomically.
///
/// The run lands in `<output>/<run_id>/` with `run_id` =
/// `YYYYMMDDTHHMMSSZ-<8 hex of the settings hash>`, so a rerun of the same
/// night and config replaces the same run. Before publishing, the guards of
/// [guard] compare the run with the one in LATEST and refuse (exit 3) a
/// sharp drop. LATEST never moves to an earlier as_of without --force (such
/// a run is written, not published). With --shard I/N only the users of
/// shard I are scored and the part is staged for `boughtby commit`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file (TOML); its relative paths are relative to its folder.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The run's reference instant, RFC 3339 or a date (midnight UTC);
    /// overrides [run] as_of. Default: today 00:00 UTC.
    #[arg(long, value_name = "T", value_parser = parse_as_of)]
    pub as_of: Option<i64>,
    /// The output folder; overrides [run] output.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Publish even when a guard refuses or LATEST names a later as_of
    /// (recorded in the manifest).
    #[arg(long)]
    pub force: bool,
    /// Who publishes, for the history (default: $USER).
    #[arg(long, value_name = "USER")]
    pub by: Option<String>,
    /// Worker threads (default: one per core). The rows do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Score only shard I of N (users with mix(user_id) % N == I) and stage
    /// its part; needs an explicit as_of.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
}

fn parse_shard(text: &str) -> std::result::Result<Shard, String> {
    Shard::parse(text)
}

/// `--as-of`: RFC 3339 or a date, into the typed instant (epoch µs) the
/// library takes; a bad value is a command-line error naming the flag.
pub(crate) fn parse_as_of(text: &str) -> std::result::Result<i64, String> {
    time::parse_as_of(text)
}

/// The overrides of a command line: its `--as-of`, its `--output`, and
/// "today" read from the clock here, so the library never reads it.
pub(crate) fn overrides(as_of: Option<i64>, output: Option<PathBuf>) -> Overrides {
    Overrides {
        as_of,
        output,
        today: time::today_midnight_us(),
    }
}

/// Publish a sharded run: check that all N staged parts are there and whole
/// (naming any that is missing or damaged), write the manifest, apply the
/// guards, move the run into place and point LATEST at it.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The job file the shards ran with.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The run to commit, as the shards printed it.
    #[arg(long, value_name = "ID")]
    pub run_id: String,
    /// The output folder; overrides [run] output.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Publish even when a guard refuses or LATEST names a later as_of.
    #[arg(long)]
    pub force: bool,
    /// Who publishes, for the history (default: $USER).
    #[arg(long, value_name = "USER")]
    pub by: Option<String>,
}

/// Read and check every input of a job and print a summary of each table;
/// exit 1 on the first problem, naming table, file, column, row and value.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The job file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The reference instant to check the windows against.
    #[arg(long, value_name = "T", value_parser = parse_as_of)]
    pub as_of: Option<i64>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Print one user's slots from the run that LATEST names, reading only the
/// row groups that can hold the user, as the timeline service does. A user
/// without slots is a normal answer (no rows, exit 0).
#[derive(Debug, Args)]
pub struct SlotsArgs {
    /// The output folder that holds LATEST.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// The user id.
    #[arg(long, value_name = "ID")]
    pub user: i64,
    /// One JSON object per row instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Move LATEST back to a kept run: the explicit override of the as_of
/// order, for a bad night that slipped past the guards. Under the output's
/// lock; by default to the run LATEST named before the current one (from
/// the history); the target must be complete (manifest and every part's
/// checksum); guards do not apply. Writes the delta from the run left to
/// the run restored (`<run>/delta-from-<left>/`) and records the move in
/// `<out>/_history/`. Exit 1 for a missing, incomplete or pruned target.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The output folder that holds LATEST.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// The run to restore (default: the one LATEST named before).
    #[arg(long, value_name = "RUN_ID")]
    pub to: Option<String>,
    /// Why, for the history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Who, for the history (default: $USER).
    #[arg(long, value_name = "USER")]
    pub by: Option<String>,
    /// How long to wait for another publisher's lock.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    pub lock_wait_seconds: f64,
}

/// Every move of LATEST, oldest first: publishes, forced publishes,
/// rollbacks, and moves recovered after a lost record.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The output folder that holds LATEST.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// One JSON object per move instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Write a synthetic world on the contract (all six tables, Parquet) from a
/// seed: sparse snowflake ids, a heavy-tailed follow graph, a catalog,
/// purchases with a share copied from followees (--influence), flags,
/// blocks and impressions. The same arguments give the same files.
///
/// Presets: sample (3k accounts), tiny (10k), small (100k), medium (1M,
/// ~50M follows), large (3M, ~240M follows; needs ~10 GiB of memory).
/// `data/sample` is `--preset sample --seed 42`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The folder to write the tables into.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// A named size; the explicit options below override its numbers.
    #[arg(long, default_value = "sample")]
    pub preset: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Accounts in the world.
    #[arg(long)]
    pub users: Option<u32>,
    /// Mean follows per account.
    #[arg(long)]
    pub avg_follows: Option<f64>,
    /// Products in the catalog.
    #[arg(long)]
    pub products: Option<u32>,
    /// Share of accounts that buy.
    #[arg(long, default_value_t = 0.2)]
    pub buyer_frac: f64,
    /// Share of purchases that copy a followee's earlier purchase.
    #[arg(long, default_value_t = 0.3)]
    pub influence: f64,
    /// The world's "now": purchases fall in the 60 days before it.
    #[arg(long, value_name = "T", default_value = "2026-11-24", value_parser = parse_as_of)]
    pub as_of: i64,
    /// Write the follows partitioned by shard into N partitions
    /// (`follows/_shards`, `follows/shard=I/`, with `followed_back`), so
    /// that `run --shard I/N` reads only its own.
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// Worker threads (default: one per core). The files do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The most worker threads a command may ask for: far more than any
/// machine's cores, and few enough that starting them cannot stall a run.
const MAX_THREADS: usize = 1024;

fn set_threads(threads: Option<usize>) -> Result<()> {
    // Without --threads, rayon reads RAYON_NUM_THREADS itself: hold it to
    // the same bound.
    let from_env = || {
        std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > MAX_THREADS)
    };
    if let Some(n) = threads.or_else(from_env) {
        if !(1..=MAX_THREADS).contains(&n) {
            return Err(Error::Usage(format!(
                "--threads (or RAYON_NUM_THREADS) must be between 1 and {MAX_THREADS}, not {n}"
            )));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::Internal(format!("cannot start {n} threads: {e}")))?;
    }
    Ok(())
}

/// What to do about `e` on the command line, when a flag is the way out.
pub fn hint(e: &Error) -> Option<&'static str> {
    match e {
        Error::Refused(_) => Some("pass --force to publish anyway"),
        Error::DamagedLatest(_) => Some("pass --force to publish over it (no guards)"),
        _ => None,
    }
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> Result<()> {
    crate::progress::init_log();
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::Commit(args) => {
            let overrides = overrides(None, args.output);
            let job = Job::load(&args.config, &overrides)?;
            let committed = run::commit(
                &job,
                &args.run_id,
                &RunOptions {
                    force: args.force,
                    shard: None,
                    by: args.by,
                },
            )?;
            report_committed(&committed);
            Ok(())
        }
        Command::Validate(args) => {
            set_threads(args.threads)?;
            let overrides = overrides(args.as_of, None);
            let job = Job::load(&args.config, &overrides)?;
            say(&format!(
                "{}ok: every input is valid\n",
                run::validate(&job)?
            ))
        }
        Command::Slots(args) => slots_command(args),
        Command::Rollback(args) => {
            if !(0.0..=604_800.0).contains(&args.lock_wait_seconds) {
                return Err(Error::Usage(format!(
                    "--lock-wait-seconds must be between 0 and 604800, not {}",
                    args.lock_wait_seconds
                )));
            }
            let request = rollback::Request {
                to: args.to,
                reason: args.reason,
                by: args.by,
            };
            let wait = std::time::Duration::from_secs_f64(args.lock_wait_seconds);
            let times = crate::output::lock::LockTimes::waiting(wait);
            let done = rollback::rollback(&args.output, &request, times)?;
            let mut text = format!(
                "rolled back {}: LATEST now names {} (was {})\n",
                args.output.display(),
                done.to,
                done.from.as_deref().unwrap_or("nothing")
            );
            if let Some(d) = &done.delta {
                text.push_str(&format!(
                    "delta for caches: {} ({} users upserted, {} deleted)\n",
                    d.file, d.upserted_users, d.deleted_users
                ));
            }
            // LATEST has moved: a closed stdout must not make it a failure.
            let _ = say(&text);
            Ok(())
        }
        Command::History(args) => {
            let moves = history::read(&args.output)?;
            let mut text = String::new();
            for m in &moves {
                if args.json {
                    let line = serde_json::to_string(m)
                        .map_err(|e| Error::Internal(format!("history does not serialise: {e}")))?;
                    text.push_str(&line);
                    text.push('\n');
                } else {
                    text.push_str(&format!(
                        "{}  {:<9} {} -> {}{}  by {}@{}{}\n",
                        m.time,
                        m.command,
                        m.from.as_deref().unwrap_or("-"),
                        m.to,
                        if m.forced { " (forced)" } else { "" },
                        m.user,
                        m.host,
                        m.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ));
                }
            }
            say(&text)
        }
        Command::Eval(args) => science::eval_command(args),
        Command::Tune(args) => science::tune_command(args),
        Command::Explain(args) => science::explain_command(args),
        Command::Fit(args) => science::fit_command(args),
        Command::Generate(args) => {
            set_threads(args.threads)?;
            let as_of = args.as_of;
            let preset = Preset::find(&args.preset).ok_or_else(|| {
                let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                Error::Usage(format!(
                    "--preset {:?} is unknown (known: {})",
                    args.preset,
                    names.join(", ")
                ))
            })?;
            for (name, x) in [
                ("--buyer-frac", args.buyer_frac),
                ("--influence", args.influence),
            ] {
                if !(0.0..=1.0).contains(&x) {
                    return Err(Error::Usage(format!(
                        "{name} must be between 0 and 1, not {x}"
                    )));
                }
            }
            let spec = WorldSpec {
                seed: args.seed,
                users: args.users.unwrap_or(preset.users),
                avg_follows: args.avg_follows.unwrap_or(preset.avg_follows),
                products: args.products.unwrap_or(preset.products),
                buyer_frac: args.buyer_frac,
                influence: args.influence,
                as_of,
            };
            if args.shards == Some(0) {
                return Err(Error::Usage("--shards must be at least 1".into()));
            }
            let counts = generate::write_world_with(
                &spec,
                &args.output,
                args.shards,
                &Progress::on_terminal(),
            )?;
            let lines: Vec<String> = counts
                .iter()
                .map(|(table, rows)| format!("{table:<12} {rows:>9} rows\n"))
                .collect();
            say(&lines.concat())
        }
    }
}

fn run_command(args: RunArgs) -> Result<()> {
    set_threads(args.threads)?;
    let overrides = overrides(args.as_of, args.output);
    let job = Job::load(&args.config, &overrides)?;
    let options = RunOptions {
        force: args.force,
        shard: args.shard,
        by: args.by,
    };
    match run::run(&job, &options, &Progress::on_terminal())? {
        RunOutcome::Staged {
            run_id,
            shard,
            marker,
        } => {
            // The part is staged: a closed stdout must not turn that into a failure.
            let _ = say(&format!(
                "staged shard {shard} of run {run_id}: {} slots for {} of {} users scored; \
                 commit with `boughtby commit --config {} --run-id {run_id}` once all {} shards are staged\n",
                marker.part.rows,
                marker.users_with_slots,
                marker.users_scored,
                args.config.display(),
                shard.count
            ));
        }
        RunOutcome::Complete(committed) => report_committed(&committed),
    }
    Ok(())
}

/// Says what a commit did. The run is complete (and maybe published) by
/// now: a closed stdout must not turn that into a failure, so a write
/// error is ignored.
fn report_committed(c: &Committed) {
    let counts = &c.manifest.counts;
    let status = if c.published {
        "published"
    } else {
        "written, not published"
    };
    let mut text = format!(
        "{status} run {}: {} slots for {} of {} users scored, in {}\n",
        c.run_id,
        counts.slots,
        counts.users_with_slots,
        counts.users_scored,
        c.run_dir.display()
    );
    if !c.published {
        text.push_str(&format!(
            "LATEST still names {} (a later as_of); pass --force to publish this run\n",
            c.previous.as_deref().unwrap_or("?")
        ));
    }
    if !c.pruned.is_empty() {
        text.push_str(&format!("pruned old runs: {}\n", c.pruned.join(", ")));
    }
    let _ = say(&text);
}

/// Writes `text` to stdout: a closed or failing stdout is an error, never
/// a panic.
pub(crate) fn say(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("stdout", e))
}

fn slots_command(args: SlotsArgs) -> Result<()> {
    let slots = crate::serving::Slots::open(&args.output)?;
    let lookup = slots.lookup(args.user)?;
    if storage::is_url(&args.output) {
        // What the ranged reads fetched, opening included.
        tracing::info!(
            fetched_bytes = slots.bytes_fetched(),
            part_bytes = slots.bytes_total(),
            "read from object storage"
        );
    }
    let mut out = std::io::stdout().lock();
    let write_err = |e| Error::io("stdout", e);
    if args.json {
        for r in &lookup.rows {
            let (from, until) = lookup.valid.unwrap_or_default();
            let value = serde_json::json!({
                "user_id": r.user_id, "slot": r.slot, "position": r.position,
                "product_id": r.product_id, "merchant_id": r.merchant_id, "score": r.score,
                "buyer_count": r.buyer_count, "top_buyer_ids": r.top_buyer_ids,
                "valid_from": time::format_rfc3339(from), "valid_until": time::format_rfc3339(until),
                "run_id": lookup.run_id,
            });
            writeln!(out, "{value}").map_err(write_err)?;
        }
    } else {
        writeln!(
            out,
            "user {} in run {}: {} slots (read {} of {} row groups)",
            args.user,
            lookup.run_id,
            lookup.rows.len(),
            lookup.row_groups_read,
            lookup.row_groups_total
        )
        .map_err(write_err)?;
        if !lookup.rows.is_empty() {
            writeln!(
                out,
                "{:>4} {:>8} {:>20} {:>20} {:>12} {:>6}  top_buyer_ids",
                "slot", "position", "product_id", "merchant_id", "score", "buyers"
            )
            .map_err(write_err)?;
        }
        for r in &lookup.rows {
            let buyers: Vec<String> = r.top_buyer_ids.iter().map(i64::to_string).collect();
            writeln!(
                out,
                "{:>4} {:>8} {:>20} {:>20} {:>12.9} {:>6}  {}",
                r.slot,
                r.position,
                r.product_id,
                r.merchant_id,
                r.score,
                r.buyer_count,
                buyers.join(",")
            )
            .map_err(write_err)?;
        }
    }
    Ok(())
}
