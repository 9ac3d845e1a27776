//! Latency of one user's lookup through the read library
//! (`boughtby::serving::Slots::get`), as a histogram: criterion reports
//! means, a timeline service cares about tails.
//!
//! ```sh
//! BOUGHTBY_BENCH_OUTPUT=<out folder with LATEST> cargo bench --bench slots_latency
//! ```
//!
//! Optional: `BOUGHTBY_BENCH_LOOKUPS` (default 100,000 warm lookups). It
//! times opening the run (footers, page indexes, bloom filters), the first
//! lookup, then the warm lookups of users drawn (seeded) from the run's
//! own users, one in ten an id without slots. For a cold first lookup, drop
//! the page cache before (`sync; echo 3 > /proc/sys/vm/drop_caches`).

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use hdrhistogram::Histogram;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use boughtby::output::read::part_files;
use boughtby::random::Rng;
use boughtby::serving::Slots;

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let Some(out) = std::env::var_os("BOUGHTBY_BENCH_OUTPUT").map(PathBuf::from) else {
        eprintln!(
            "slots_latency: set BOUGHTBY_BENCH_OUTPUT to an output folder with LATEST; skipped"
        );
        return;
    };
    let lookups: usize = std::env::var("BOUGHTBY_BENCH_LOOKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    let started = Instant::now();
    let slots = Slots::open(&out).expect("open the run LATEST names");
    let open = started.elapsed();

    // The run's users, read once (only the user_id column).
    let mut users: Vec<i64> = Vec::new();
    for part in part_files(&out.join(slots.run_id())).expect("list the parts") {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&part).unwrap()).unwrap();
        let mask = ProjectionMask::roots(builder.parquet_schema(), [0]);
        for batch in builder.with_projection(mask).build().unwrap() {
            let batch = batch.unwrap();
            let ids = batch.column(0).as_primitive::<Int64Type>();
            users.extend(ids.values().iter().copied());
        }
    }
    users.dedup();
    let rows = users.len();
    let mut rng = Rng(7);
    let mut pick = || {
        if rng.below(10) == 0 {
            // An id without slots (most are; a hit now and then is fine).
            rng.below(u64::MAX >> 1) as i64
        } else {
            users[rng.below(users.len() as u64) as usize]
        }
    };

    let first_user = pick();
    let started = Instant::now();
    let first = slots.get(first_user).expect("first lookup");
    let cold = started.elapsed();

    // Wall time per lookup, and the thread's CPU time per lookup: on a
    // busy machine the wall tail is the scheduler's, the CPU tail the
    // lookup's own.
    let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
    let mut on_cpu = Histogram::<u64>::new(3).expect("a histogram");
    let mut found = 0usize;
    for _ in 0..lookups {
        let user = pick();
        let cpu = thread_cpu_ns();
        let started = Instant::now();
        let rows = slots.get(user).expect("lookup");
        let ns = started.elapsed().as_nanos() as u64;
        histogram.record(ns.max(1)).expect("record");
        on_cpu
            .record(thread_cpu_ns().saturating_sub(cpu).max(1))
            .expect("record");
        found += rows.len();
    }
    println!(
        "run {} ({} users with slots): open {:.1} ms, first lookup {:.0} µs ({} rows)",
        slots.run_id(),
        rows,
        open.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e6,
        first.len()
    );
    println!(
        "{lookups} warm lookups ({found} rows): {}, mean {:.0} µs",
        quantiles(&histogram),
        histogram.mean() / 1_000.0
    );
    println!("CPU time per lookup: {}", quantiles(&on_cpu));
}

/// p50 to max of a histogram of nanoseconds, in µs.
fn quantiles(h: &Histogram<u64>) -> String {
    let us = |ns: u64| ns as f64 / 1_000.0;
    format!(
        "p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.90)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
    )
}

/// This thread's CPU time so far, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}
