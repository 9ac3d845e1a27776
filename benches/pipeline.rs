//! Criterion benches of the nightly job's stages on a seeded synthetic
//! world: load (read, check, build the context), graph (the follows alone:
//! streamed, deduplicated, the scoring edges kept, the CSR built),
//! accumulate (every user's candidates, one thread), score (accumulate,
//! features, filters and selection for all users, in parallel), and write
//! (one Parquet part). The world is generated once, outside the timed loops.
//! Accumulate reports (followee, supporting purchase) pairs walked per
//! second on one thread, score users per second, write rows per second.
//!
//! `cargo bench --bench pipeline`; `BOUGHTBY_BENCH_USERS` sets the world's
//! size (default 20000 accounts).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use boughtby::candidates::Accumulator;
use boughtby::config::{Job, Overrides};
use boughtby::filters::HIDDEN_BUYERS;
use boughtby::generate::{WorldSpec, write_world};
use boughtby::load::{GraphScope, catalog, follows, purchases};
use boughtby::output::parquet::write_part;
use boughtby::progress::Progress;
use boughtby::scoring::SocialV1;
use boughtby::shard::Shard;
use boughtby::time::parse_as_of;
use boughtby::{pipeline, world};

fn job(dir: &Path) -> Job {
    let text = "[inputs]\nfollows = 'follows.parquet'\npurchases = 'purchases.parquet'\n\
                products = 'products.parquet'\nusers = 'users.parquet'\nblocks = 'blocks.parquet'\n\
                impressions = 'impressions.parquet'\n[run]\nas_of = '2026-11-24'\n";
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    Job::load(&path, &Overrides::default()).unwrap()
}

fn stages(c: &mut Criterion) {
    let users = std::env::var("BOUGHTBY_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let spec = WorldSpec {
        seed: 7,
        users,
        avg_follows: 30.0,
        products: users / 5,
        buyer_frac: 0.2,
        influence: 0.3,
        as_of: parse_as_of("2026-11-24").unwrap(),
    };
    write_world(&spec, dir.path(), &Progress::on_terminal()).unwrap();
    let job = job(dir.path());

    let mut group = c.benchmark_group(format!("stages_{users}_users"));
    group.sample_size(10);
    group.bench_function("load", |b| {
        b.iter(|| black_box(world::build(&job, Shard::WHOLE, GraphScope::Scoring).unwrap()))
    });
    let (rows, _) = purchases::read(&job.inputs.purchases, job.bad_rows).unwrap();
    let catalog =
        world::catalog::build(catalog::read(&job.inputs.products, job.bad_rows).unwrap().0)
            .unwrap();
    let supporters = world::purchases::supporters(&rows, &catalog, job.as_of, &job.model);
    group.bench_function("graph", |b| {
        b.iter(|| {
            black_box(
                follows::load(
                    &job.inputs.follows,
                    job.bad_rows,
                    job.read_rows,
                    Shard::WHOLE,
                    Some(&supporters),
                )
                .unwrap(),
            )
        })
    });
    let (ctx, _) = world::build(&job, Shard::WHOLE, GraphScope::Scoring).unwrap();
    let model = SocialV1::new(&job.model);
    // Accumulate's throughput is the (followee, supporting purchase) pairs
    // one pass walks; score's, the users; write's, the rows.
    let walked = {
        let mut accumulator = Accumulator::new(&ctx.catalog, &job.model.sensitive_categories);
        for &u in &ctx.scored_users {
            accumulator.collect(&ctx, &model, u, |_| {});
        }
        // What the last supporter filter kept is what the walk visits.
        accumulator.tally.counts()[HIDDEN_BUYERS].kept
    };
    group.throughput(Throughput::Elements(walked));
    group.bench_function("accumulate", |b| {
        let mut accumulator = Accumulator::new(&ctx.catalog, &job.model.sensitive_categories);
        b.iter(|| {
            let mut candidates = 0u64;
            // As the pipeline does: the next users' reads asked for while
            // this one is collected.
            let users = &ctx.scored_users;
            for (i, &u) in users.iter().enumerate() {
                accumulator.prepare(&ctx, users, i);
                accumulator.collect(&ctx, &model, u, |_| candidates += 1);
            }
            black_box(candidates)
        })
    });
    group.throughput(Throughput::Elements(ctx.scored_users.len() as u64));
    group.bench_function("score", |b| {
        b.iter(|| black_box(pipeline::score_all(&ctx, &job.model, &job.selection).unwrap()))
    });
    let scoring = pipeline::score_all(&ctx, &job.model, &job.selection).unwrap();
    let part = dir.path().join("part.parquet");
    group.throughput(Throughput::Elements(
        scoring.chunks.iter().map(|c| c.len() as u64).sum(),
    ));
    group.bench_function("write", |b| {
        b.iter(|| write_part(&part, "part.parquet", &scoring.chunks, job.as_of, "bench").unwrap())
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
