//! The nightly job: load, score, write a part, then commit it — verify
//! the parts, write the manifest, apply the guards, publish, prune — and
//! `validate`, which stops after loading. A sharded run does the first half
//! per shard and leaves the commit to `boughtby commit`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use tracing::{info, warn};

use crate::config::{Job, config_hash, settings_json};
use crate::error::{Error, Result};
use crate::load::{GraphScope, LoadReport};
use crate::output::delta::{self, BaseSeen, DeltaInfo};
use crate::output::guard;
use crate::output::history::{self, Move};
use crate::output::lock::{LockTimes, OutputLock};
use crate::output::manifest::{self, Counts, InputEntry, Manifest, Stage};
use crate::output::parquet::{PartWriter, sha256_file};
use crate::output::publish::{self, Latest};
use crate::output::staging::{self, PartMarker, SnapshotFile};
use crate::pipeline;
use crate::progress::Progress;
use crate::rows::SlotRows;
use crate::scoring::SocialV1;
use crate::shard::Shard;
use crate::storage::Remote;
use crate::time;
use crate::world;
use crate::world::Context;

/// What the command line adds to a job.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Publish even when a guard refuses or LATEST names a later as_of.
    pub force: bool,
    /// Score one shard only and leave its part in the shared staging folder.
    pub shard: Option<Shard>,
    /// Who publishes, for the history (default: the environment's user).
    pub by: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// One shard's part is staged, waiting for `boughtby commit`.
    Staged {
        run_id: String,
        shard: Shard,
        marker: Box<PartMarker>,
    },
    /// The run is complete in its folder; published unless LATEST names a
    /// later as_of and `--force` was not given.
    Complete(Box<Committed>),
}

/// A complete run.
#[derive(Debug, Clone)]
pub struct Committed {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub published: bool,
    /// The run LATEST named before, if any.
    pub previous: Option<String>,
    pub manifest: Manifest,
    /// Old runs removed after publishing.
    pub pruned: Vec<String>,
}

/// Runs the nightly job: the whole run, published; or with a shard, that
/// shard's part, staged for `commit`.
pub fn run(job: &Job, options: &RunOptions, progress: &Progress) -> Result<RunOutcome> {
    let run_id = job.run_id();
    match options.shard {
        Some(shard) => {
            if !job.as_of_explicit {
                return Err(Error::Usage(
                    "a sharded run needs an explicit as_of (from the command line or [run] as_of), \
                     so that shards started either side of midnight agree"
                        .into(),
                ));
            }
            let marker = match Remote::of(&job.output)? {
                None => {
                    let dir = staging::shared_dir(&job.output, &run_id);
                    write_shard(job, shard, &dir, progress, false)?.0
                }
                Some(remote) => {
                    // Written locally, then uploaded part first, marker last.
                    let dir = staging::private_dir(&job.output, &run_id);
                    let staged =
                        write_shard(job, shard, &dir, progress, false).and_then(|(marker, _)| {
                            let shared = remote.child(&format!(".staging-{run_id}"));
                            staging::upload_sealed(&dir, shard, &shared).map(|()| marker)
                        });
                    let _ = std::fs::remove_dir_all(&dir);
                    staged?
                }
            };
            Ok(RunOutcome::Staged {
                run_id,
                shard,
                marker: Box::new(marker),
            })
        }
        None => {
            let dir = staging::private_dir(&job.output, &run_id);
            let result = write_shard(job, Shard::WHOLE, &dir, progress, true).and_then(|staged| {
                let lock = OutputLock::acquire(&job.output, lock_times(job), "run")?;
                let how = Publish {
                    command: "run",
                    force: options.force,
                    by: options.by.as_deref(),
                };
                commit_staged(&lock, job, &dir, &run_id, how, staged.1)
            });
            if result.is_err() && dir.exists() {
                // Nothing of a failed run is kept: the next run starts clean.
                let _ = std::fs::remove_dir_all(&dir);
            }
            result.map(|c| RunOutcome::Complete(Box::new(c)))
        }
    }
}

/// Commits the staged shards of `run_id`: checks that every part is there
/// and whole, writes the manifest, applies the guards, publishes.
pub fn commit(job: &Job, run_id: &str, options: &RunOptions) -> Result<Committed> {
    let force = options.force;
    if !publish::is_run_id(run_id) {
        return Err(Error::Usage(format!(
            "run id {run_id:?} is not of the form YYYYMMDDTHHMMSSZ-xxxxxxxx"
        )));
    }
    let expected = job.run_id();
    if run_id.split_once('-').map(|(_, h)| h) != expected.split_once('-').map(|(_, h)| h) {
        return Err(Error::Usage(format!(
            "run {run_id} was not made with the settings of {} (they give ...-{})",
            job.path.display(),
            expected.split_once('-').map_or("", |(_, h)| h)
        )));
    }
    let lock = OutputLock::acquire(&job.output, lock_times(job), "commit")?;
    let remote = Remote::of(&job.output)?;
    // On object storage the shared staging is copied to a local folder.
    let copy = match &remote {
        None => None,
        Some(remote) => {
            let copy = tempfile::Builder::new()
                .prefix("boughtby-commit-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?;
            let shared = remote.child(&format!(".staging-{run_id}"));
            let found = shared.download_all(copy.path())?;
            Some((copy, shared, found))
        }
    };
    let dir = match &copy {
        None => staging::shared_dir(&job.output, run_id),
        Some((copy, _, _)) => copy.path().to_path_buf(),
    };
    let staged = match &copy {
        None => dir.is_dir(),
        Some((_, _, found)) => *found > 0,
    };
    let run_dir = job.output.join(run_id);
    let installed = match &remote {
        None => run_dir.join(manifest::FILE_NAME).is_file(),
        Some(remote) => remote.child(run_id).head(manifest::FILE_NAME)?.is_some(),
    };
    if !staged && installed {
        // A commit that died after moving the run into place: the run is
        // complete (its manifest is written last); check it and publish.
        let (local, _copy) = publish::local_run(&job.output, run_id)?;
        let manifest = Manifest::read(&run_dir)?;
        for part in &manifest.parts {
            let path = local.join(&part.file);
            if sha256_file(&path)? != part.sha256 {
                return Err(Error::Parts(format!("part {} is damaged", path.display())));
            }
        }
        let (previous, _) = read_latest(&lock, job, force)?;
        let how = Publish {
            command: "commit",
            force,
            by: options.by.as_deref(),
        };
        return publish_installed(&lock, job, run_id, run_dir, previous, manifest, how);
    }
    if !staged {
        return Err(Error::Parts(format!(
            "no staged parts of run {run_id} in {} (expected {})",
            job.output.display(),
            staging::shared_dir(&job.output, run_id).display()
        )));
    }
    let committed = commit_staged(
        &lock,
        job,
        &dir,
        run_id,
        Publish {
            command: "commit",
            force,
            by: options.by.as_deref(),
        },
        None,
    )?;
    if let Some((_, shared, _)) = &copy
        && committed.published
        && let Err(e) = shared.delete_all()
    {
        warn!(error = %e, "cannot remove the shared staging of a committed run");
    }
    Ok(committed)
}

/// The lock's wait and expiry of a job.
fn lock_times(job: &Job) -> LockTimes {
    LockTimes {
        wait: job.lock_wait,
        expiry: job.lock_expiry,
    }
}

/// How a run is being published: by which command and whom, forced or not.
#[derive(Debug, Clone, Copy)]
struct Publish<'a> {
    command: &'static str,
    force: bool,
    by: Option<&'a str>,
}

/// Reads LATEST under the lock: the run it names and that run's manifest.
/// A damaged LATEST stops publishing unless `force`, which publishes over
/// it without guards (and says so).
fn read_latest(
    lock: &OutputLock,
    job: &Job,
    force: bool,
) -> Result<(Option<String>, Option<Manifest>)> {
    match Latest::read(lock, &job.output)? {
        Latest::None => Ok((None, None)),
        Latest::Run { run_id, manifest } => {
            // A move whose record was lost is recorded before this one.
            if let Err(e) = history::recover(lock, &job.output, Some(&run_id)) {
                warn!(error = %e, "cannot record the move history is missing");
            }
            Ok((Some(run_id), Some(*manifest)))
        }
        Latest::Damaged { text, problem } if force => {
            warn!(latest = %text, %problem, "LATEST is damaged; forced, the run is published over it without the guards");
            Ok((None, None))
        }
        Latest::Damaged { text, problem } => {
            Err(Latest::damaged_error(&job.output, &text, &problem))
        }
    }
}

/// A delta written beside the part, against the run LATEST named then.
struct EarlyDelta {
    base: BaseSeen,
    info: DeltaInfo,
}

/// Loads, scores and writes one shard's part into `dir`, with its marker.
///
/// With `fed_delta` (a whole run into a local output), the run's delta is
/// written too, against the run LATEST names as the scoring starts: from
/// the rows as the part takes them, or, when LATEST names no run, copied
/// from the part a row group at a time. The commit keeps it when LATEST
/// still names the same, unchanged (see [`BaseSeen`]), and otherwise
/// writes its own. A delta beside the part that fails only costs that:
/// the commit writes its own.
fn write_shard(
    job: &Job,
    shard: Shard,
    dir: &Path,
    progress: &Progress,
    fed_delta: bool,
) -> Result<(PartMarker, Option<EarlyDelta>)> {
    let run_id = job.run_id();
    let mut stages = Vec::new();
    let started = Instant::now();
    let built = world::build(job, shard, GraphScope::Scoring);
    crate::storage::spool::release();
    let (ctx, report) = built?;
    stages.push(stage("load", started));
    info!(
        stage = "load",
        seconds = stages[0].seconds,
        users = ctx.users.len(),
        edges_kept = ctx.graph.edge_count(),
        products = ctx.catalog.len(),
        follows_bytes_read = report
            .inputs
            .iter()
            .find(|i| i.table == "follows")
            .map_or(0, |i| i.bytes_read),
        "loaded the inputs"
    );

    for (reason, rows) in &report.skipped {
        warn!(reason = %reason, rows, "skipped bad rows (on_bad_rows = \"skip\")");
    }

    // Scoring and writing overlap: the writer takes each window's rows on
    // its own thread while the next window is scored. "write" is what is
    // left to write once the last user is scored.
    let started = Instant::now();
    staging::prepare(dir)?;
    let temporary = staging::temporary_part(dir, shard);
    let name = format!("slots/{}", shard.part_name());
    let bar = progress.bar(ctx.scored_users.len() as u64, "scoring users");
    // The delta is taken beside the part against what LATEST names as the
    // scoring starts: compared with that run's rows as the part takes its
    // own, or, when LATEST names no run, copied from the part a row group
    // at a time (every row an upsert).
    let seen = match fed_delta && !crate::storage::is_url(&job.output) {
        true => BaseSeen::now(&job.output),
        false => None,
    };
    let target = delta::Target {
        dir,
        as_of: job.as_of,
        run_id: &run_id,
        users: None,
    };
    // Set once every user is scored: the rows still queued for the writer
    // then have their columns encoded on the idle pool.
    let scored = AtomicBool::new(false);
    let (counts, part, early) = thread::scope(|scope| {
        let (target, temporary) = (&target, &temporary);
        let (mut feed, mut copies, delta) = match seen.as_ref().map(|s| s.run(&job.output)) {
            Some(Some((base, path))) => {
                let (feed, fed) = delta::feed();
                let delta = scope
                    .spawn(move || delta::write_fed(Some((base, &path)), target, "delta", fed));
                (Some(feed), None, Some(delta))
            }
            Some(None) => {
                let (copies, copied) = delta::copies();
                let delta =
                    scope.spawn(move || delta::write_copied(temporary, target, "delta", copied));
                (None, Some(copies), Some(delta))
            }
            None => (None, None, None),
        };
        let (send, receive) = mpsc::sync_channel::<SlotRows>(1024);
        let (users, run_id) = (ctx.scored_users.len() as u64, &run_id);
        let scored = &scored;
        let writer = scope.spawn(move || {
            let mut part = PartWriter::create(temporary, users, job.as_of, run_id)?;
            if copies.is_some() {
                part = part.keeping_groups();
            }
            let mut on_the_pool = false;
            for (i, rows) in receive.into_iter().enumerate() {
                if !on_the_pool && scored.load(Ordering::Acquire) {
                    part.encode_on_the_pool();
                    on_the_pool = true;
                }
                part.write(&rows)?;
                if i == 0 {
                    crate::pause::point("writing");
                }
                let written = part.take_written()?;
                if let Some(c) = &copies
                    && !c.groups(written)
                {
                    copies = None;
                }
                if let Some(f) = &mut feed
                    && !f.rows(rows)
                {
                    feed = None;
                }
            }
            if let Some(feed) = feed {
                feed.finish();
            }
            if let Some(copies) = copies {
                part.end_group()?;
                if copies.groups(part.take_written()?) {
                    copies.finish(part.users());
                }
            }
            Ok::<_, Error>(part)
        });
        let counts = pipeline::score_into(
            &ctx,
            &job.model,
            &job.selection,
            &|n| bar.inc(n),
            &mut |rows| {
                send.send(rows)
                    .map_err(|_| Error::Internal("the part writer stopped".into()))
            },
        );
        scored.store(true, Ordering::Release);
        drop(send);
        bar.finish_and_clear();
        stages.push(stage("score", started));
        let scored = Instant::now();
        let written = writer
            .join()
            .map_err(|_| Error::Internal("the part writer panicked".into()))?;
        // The writer's own error says more than a closed channel.
        let part = written?;
        tracing::debug!(
            seconds = scored.elapsed().as_secs_f64(),
            "the part's writer caught up with the scorers"
        );
        let early = delta.and_then(|d| match d.join() {
            Ok(Ok(info)) => Some(info),
            Ok(Err(e)) => {
                warn!(error = %e, "the delta written with the part failed; the commit writes it");
                None
            }
            Err(_) => None,
        });
        tracing::debug!(
            seconds = scored.elapsed().as_secs_f64(),
            "the delta taken with the part caught up"
        );
        Ok::<_, Error>((counts?, part, early))
    })?;
    let early = seen
        .zip(early)
        .map(|(base, info)| EarlyDelta { base, info });
    let removed: Vec<String> = counts
        .filters
        .counts()
        .iter()
        .map(|f| format!("{}={}/{}", f.name, f.removed, f.removed + f.kept))
        .collect();
    info!(
        stage = "score",
        seconds = stages[1].seconds,
        users_scored = counts.users_scored,
        users_with_slots = counts.users_with_slots,
        slots = counts.slots,
        removed = %removed.join(","),
        "scored the users"
    );
    let started = Instant::now();
    let part = part.finish(&name)?;
    stages.push(stage("write", started));
    info!(stage = "write", seconds = stages[2].seconds, rows = part.rows, part = %name, "wrote the part");
    let marker = PartMarker {
        run_id,
        as_of: job.as_of,
        config_hash: config_hash(&job.model, &job.selection),
        shard: shard.index,
        shards: shard.count,
        part,
        users_scored: counts.users_scored,
        users_with_slots: counts.users_with_slots,
        filters: counts.filters.counts(),
        ignored: report.ignored.clone(),
        skipped: report.skipped.clone(),
        inputs: input_entries(&report),
        rows_by_shard: report
            .inputs
            .iter()
            .filter(|i| i.shard_rows)
            .map(|i| i.table.to_string())
            .collect(),
        snapshot: report
            .inputs
            .iter()
            .flat_map(|i| {
                i.snapshot.iter().map(|(path, bytes)| SnapshotFile {
                    table: i.table.to_string(),
                    path: path.display().to_string(),
                    bytes: *bytes,
                })
            })
            .collect(),
        stages,
    };
    staging::seal(dir, shard, &temporary, &marker)?;
    crate::pause::point("staged");
    Ok((marker, early))
}

/// Turns a staging folder holding every part into the published run.
fn commit_staged(
    lock: &OutputLock,
    job: &Job,
    dir: &Path,
    run_id: &str,
    how: Publish<'_>,
    early: Option<EarlyDelta>,
) -> Result<Committed> {
    let force = how.force;
    let started = Instant::now();
    let config_hash = config_hash(&job.model, &job.selection);
    let markers = staging::verify(dir, run_id, &config_hash)?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "parts verified");
    let mut manifest = manifest_of(job, run_id, &markers, force)?;
    let (previous, before) = read_latest(lock, job, force)?;
    // Guards protect what LATEST will name; a run that will not be
    // published (an earlier as_of) is only written, so they do not apply.
    let publishes = previous
        .as_deref()
        .is_none_or(|latest| publish::may_follow(latest, run_id));
    if let (Some(latest), Some(before), true) = (&previous, &before, publishes || force) {
        let reasons = guard::check(&job.guard, before, &manifest);
        if !reasons.is_empty() && !force {
            return Err(Error::Refused(format!(
                "run {run_id} not published, against {latest}: {} (a forced publish overrides the guards)",
                reasons.join("; ")
            )));
        }
        for reason in &reasons {
            warn!(run_id, %reason, "guard overridden: forced");
        }
    }
    if publishes || force {
        // The delta against what LATEST names now, for caches to follow.
        let as_of = markers.first().map_or(job.as_of, |m| m.as_of);
        let base = match previous.as_deref() {
            Some(p) => Some((p, publish::local_run(&job.output, p)?)),
            None => None,
        };
        // A delta written with the part is the run's when LATEST still
        // names, unchanged, the run it was taken against.
        let written = early.filter(|e| {
            e.base.run_id == previous && BaseSeen::now(&job.output).as_ref() == Some(&e.base)
        });
        manifest.delta = Some(match written {
            Some(e) => e.info,
            None => {
                let target = delta::Target {
                    dir,
                    as_of,
                    run_id,
                    users: Some(markers.iter().map(|m| m.users_with_slots).sum()),
                };
                let base = base.as_ref().map(|(id, (dir, _))| (*id, dir.as_path()));
                delta::write(base, &target, "delta")?
            }
        });
    } else {
        // Not published: no delta, and none of one written with the part.
        let folder = dir.join("delta");
        if folder.exists() {
            std::fs::remove_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        }
    }
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "delta written");
    manifest.stages.push(stage("commit", started));
    let remote = Remote::of(&job.output)?;
    if let Some(remote) = &remote {
        // No rename on object storage: a rerun writes under new names.
        crate::output::remote::name_attempt(lock, remote, run_id, dir, &mut manifest)?;
    }
    manifest.write(dir)?;
    let run_dir = publish::install(lock, &job.output, dir, run_id)?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "run installed");
    if remote.is_none() {
        // After the move, so a commit that dies in between can still be redone.
        staging::tidy(&run_dir)?;
    }
    crate::pause::point("installed");
    publish_installed(lock, job, run_id, run_dir, previous, manifest, how)
}

/// Points LATEST at an installed run (unless it would move LATEST back in
/// time without `--force`) and prunes old runs. Once LATEST has moved,
/// nothing fails the run: pruning only warns.
fn publish_installed(
    lock: &OutputLock,
    job: &Job,
    run_id: &str,
    run_dir: PathBuf,
    previous: Option<String>,
    manifest: Manifest,
    how: Publish<'_>,
) -> Result<Committed> {
    let force = how.force;
    let published = force
        || previous
            .as_deref()
            .is_none_or(|latest| publish::may_follow(latest, run_id));
    let mut pruned = Vec::new();
    if published {
        publish::publish_latest(lock, &job.output, run_id)?;
        let mut entry = Move::now(previous.as_deref(), run_id, how.command, how.by);
        entry.forced = force;
        if let Err(e) = history::record(lock, &job.output, &entry) {
            warn!(error = %e, "LATEST moved, but its history entry could not be written");
        }
        crate::pause::point("published");
        pruned = publish::prune(lock, &job.output, job.keep_runs, previous.as_deref());
        info!(run_id, pruned = pruned.len(), "published");
    } else {
        warn!(run_id, "written, not published: LATEST names a later as_of");
    }
    Ok(Committed {
        run_id: run_id.to_string(),
        run_dir,
        published,
        previous,
        manifest,
        pruned,
    })
}

/// The manifest of a run from its parts' markers (checked to agree).
fn manifest_of(job: &Job, run_id: &str, markers: &[PartMarker], force: bool) -> Result<Manifest> {
    let first = markers
        .first()
        .ok_or_else(|| Error::Internal("a verified run has at least one part".into()))?;
    let mut ignored: BTreeMap<String, u64> = BTreeMap::new();
    // Each filter's counts, summed over the shards, in pipeline order.
    let mut filters = first.filters.clone();
    for m in &markers[1..] {
        for (sum, f) in filters.iter_mut().zip(&m.filters) {
            sum.kept += f.kept;
            sum.removed += f.removed;
        }
    }
    for m in markers {
        for (reason, rows) in &m.ignored {
            *ignored.entry(reason.clone()).or_insert(0) += rows;
        }
    }
    // Tables read by shares: their rows and skips summed, and judged.
    let inputs = whole_inputs(markers);
    let skipped = whole_skipped(markers);
    for input in inputs
        .iter()
        .filter(|i| first.rows_by_shard.contains(&i.table))
    {
        crate::load::judge_shared_skips(
            &input.table,
            &input.path,
            input.rows,
            &skipped,
            job.bad_rows,
        )?;
    }
    // Each stage as long as its slowest shard took.
    let mut stages: Vec<Stage> = Vec::new();
    for m in markers {
        for s in &m.stages {
            match stages.iter_mut().find(|t| t.name == s.name) {
                Some(t) => t.seconds = t.seconds.max(s.seconds),
                None => stages.push(s.clone()),
            }
        }
    }
    Ok(Manifest {
        schema_version: 1,
        run_id: run_id.to_string(),
        as_of: time::format_rfc3339(first.as_of),
        model: SocialV1::NAME.to_string(),
        config_hash: config_hash(&job.model, &job.selection),
        config: settings_json(&job.model, &job.selection),
        inputs,
        counts: Counts {
            users_scored: markers.iter().map(|m| m.users_scored).sum(),
            users_with_slots: markers.iter().map(|m| m.users_with_slots).sum(),
            slots: markers.iter().map(|m| m.part.rows).sum(),
            ignored,
            skipped,
            filters,
        },
        parts: markers.iter().map(|m| m.part.clone()).collect(),
        stages,
        forced: force,
        delta: None,
    })
}

fn stage(name: &str, started: Instant) -> Stage {
    Stage {
        name: name.to_string(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The inputs of a run: as every shard saw them, but a table each shard
/// read only its share of (partitioned follows) has the rows of all.
fn whole_inputs(markers: &[PartMarker]) -> Vec<InputEntry> {
    let mut inputs = markers
        .first()
        .map(|m| m.inputs.clone())
        .unwrap_or_default();
    for input in &mut inputs {
        if markers
            .iter()
            .any(|m| m.rows_by_shard.contains(&input.table))
        {
            input.rows = markers
                .iter()
                .flat_map(|m| m.inputs.iter().filter(|i| i.table == input.table))
                .map(|i| i.rows)
                .sum();
        }
    }
    inputs
}

/// The bad rows skipped: every shard counts those of the tables it reads
/// whole; those of a table read by shares are summed.
fn whole_skipped(markers: &[PartMarker]) -> BTreeMap<String, u64> {
    let mut skipped = markers
        .first()
        .map(|m| m.skipped.clone())
        .unwrap_or_default();
    let Some(first) = markers.first() else {
        return skipped;
    };
    for table in &first.rows_by_shard {
        let prefix = format!("{table}: ");
        skipped.retain(|reason, _| !reason.starts_with(&prefix));
        for m in markers {
            for (reason, rows) in m.skipped.iter().filter(|r| r.0.starts_with(&prefix)) {
                *skipped.entry(reason.clone()).or_insert(0) += rows;
            }
        }
    }
    skipped
}

fn input_entries(report: &LoadReport) -> Vec<InputEntry> {
    report
        .inputs
        .iter()
        .map(|i| InputEntry {
            table: i.table.to_string(),
            path: i.path.display().to_string(),
            bytes: i.bytes,
            rows: i.rows,
        })
        .collect()
}

/// Reads and checks every input; returns a readable summary.
pub fn validate(job: &Job) -> Result<String> {
    let built = world::build(job, Shard::WHOLE, GraphScope::Full);
    crate::storage::spool::release();
    let (ctx, report) = built?;
    Ok(summary(job, &ctx, &report))
}

fn summary(job: &Job, ctx: &Context, report: &LoadReport) -> String {
    let mut text = format!(
        "job {} (as_of {})\n",
        job.path.display(),
        time::format_rfc3339(job.as_of)
    );
    text.push_str(&format!(
        "{:<12} {:>6} {:>12} {:>14}  path\n",
        "table", "files", "rows", "bytes"
    ));
    for i in &report.inputs {
        text.push_str(&format!(
            "{:<12} {:>6} {:>12} {:>14}  {}\n",
            i.table,
            i.files,
            i.rows,
            i.bytes,
            i.path.display()
        ));
    }
    for &table in &crate::load::TABLES[3..] {
        if !report.inputs.iter().any(|i| i.table == table) {
            text.push_str(&format!("{table:<12} (not given)\n"));
        }
    }
    let available = ctx.catalog.available.iter().filter(|&&a| a).count();
    text.push_str(&format!(
        "follow graph: {} accounts, {} distinct follows; {} users to score\n",
        ctx.users.len(),
        ctx.graph.edge_count(),
        ctx.scored_users.len()
    ));
    text.push_str(&format!(
        "catalog: {} products ({} available), {} merchants, {} categories\n",
        ctx.catalog.len(),
        available,
        ctx.catalog.merchants,
        ctx.catalog.category_names.len()
    ));
    text.push_str(&format!(
        "purchases in the window: {} supporting (buyer, product) pairs\n",
        ctx.purchases.support.len()
    ));
    let ignored: Vec<String> = report
        .ignored
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    text.push_str(&format!("ignored rows: {}\n", ignored.join(", ")));
    text
}
