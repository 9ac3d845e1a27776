//! The nightly job: load, score, write, publish — and `validate`, which
//! stops after loading.

use std::path::PathBuf;
use std::time::Instant;

use crate::config::{Job, config_hash, settings_json};
use crate::context::Context;
use crate::error::Result;
use crate::load::{self, LoadReport};
use crate::output::manifest::{Counts, InputEntry, Manifest, Stage};
use crate::output::parquet::{part_name, write_part};
use crate::output::publish;
use crate::pipeline;
use crate::scoring::SocialV1;
use crate::time;

/// What the command line adds to a job.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Publish even when LATEST names a later as_of.
    pub force: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub run_dir: PathBuf,
    /// False when LATEST names a later as_of and `--force` was not given.
    pub published: bool,
    /// The run LATEST named before, if any.
    pub previous: Option<String>,
    pub manifest: Manifest,
}

/// Runs the nightly job; `log` receives one line per stage.
pub fn run(job: &Job, options: &RunOptions, log: &mut dyn FnMut(&str)) -> Result<RunOutcome> {
    let mut stages = Vec::new();
    let started = Instant::now();
    let (ctx, report) = load::load(job)?;
    stages.push(stage("load", started));
    log(&format!(
        "loaded {} users, {} follows, {} products in {:.2} s",
        ctx.users.len(),
        ctx.graph.edge_count(),
        ctx.catalog.len(),
        stages[0].seconds
    ));

    let started = Instant::now();
    let scoring = pipeline::score_all(&ctx, &job.model, &job.selection);
    stages.push(stage("score", started));
    log(&format!(
        "scored {} users: {} slots for {} users in {:.2} s",
        scoring.users_scored, scoring.slots, scoring.users_with_slots, stages[1].seconds
    ));

    let started = Instant::now();
    let run_id = job.run_id();
    let staging = publish::staging_dir(&job.output, &run_id)?;
    let name = format!("slots/{}", part_name(0, 1));
    let part = write_part(
        &staging.join(&name),
        &name,
        &scoring.chunks,
        job.as_of,
        &run_id,
    )?;
    stages.push(stage("write", started));
    let manifest = Manifest {
        schema_version: 1,
        run_id: run_id.clone(),
        as_of: time::format_rfc3339(job.as_of),
        model: SocialV1::NAME.to_string(),
        config_hash: config_hash(&job.model, &job.selection),
        config: settings_json(&job.model, &job.selection),
        inputs: input_entries(&report),
        counts: Counts {
            users_scored: scoring.users_scored,
            users_with_slots: scoring.users_with_slots,
            slots: scoring.slots,
            ignored: report.ignored.clone(),
            skipped: Default::default(),
        },
        parts: vec![part],
        stages,
        forced: options.force,
    };
    manifest.write(&staging)?;
    let run_dir = publish::install(&job.output, &staging, &run_id)?;

    let previous = publish::latest(&job.output)?;
    let published = options.force
        || previous
            .as_deref()
            .is_none_or(|latest| publish::may_follow(latest, &run_id));
    if published {
        publish::publish_latest(&job.output, &run_id)?;
    }
    Ok(RunOutcome {
        run_id,
        run_dir,
        published,
        previous,
        manifest,
    })
}

fn stage(name: &str, started: Instant) -> Stage {
    Stage {
        name: name.to_string(),
        seconds: started.elapsed().as_secs_f64(),
    }
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
    let (ctx, report) = load::load(job)?;
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
    for table in ["users", "blocks", "impressions"] {
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
        ctx.catalog.categories
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
