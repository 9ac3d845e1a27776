#!/usr/bin/env python3
"""The report of benches/run.sh: runs `boughtby run` and the peers on one
world R times each (the peers' runs between boughtby's), and prints medians
of wall time and peak RSS, boughtby's per-stage medians (from its
manifests), throughput, the ratios (of the medians, and of each peer run
to the boughtby runs beside it) and how far the peers' slots agree with
boughtby's. Run it through benches/run.sh, which
prepares the world, the job file and the venv this needs (polars).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
DAY_US = 86_400_000_000
TIME = "/usr/bin/time"
COLUMNS = ["user_id", "slot", "position", "product_id", "merchant_id", "score",
           "buyer_count", "top_buyer_ids"]


def measure(cmd, env=None):
    """Runs cmd; returns (wall seconds, peak RSS in KiB, stdout). Peak RSS
    from /usr/bin/time -f %M when there is one, else from the child's own
    rusage (os.wait4)."""
    env = {**os.environ, **(env or {})}
    if os.access(TIME, os.X_OK):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
            start = time.perf_counter()
            p = subprocess.run([TIME, "-f", "%M", "-o", t.name, *cmd], env=env,
                               stdout=subprocess.PIPE, text=True)
            wall = time.perf_counter() - start
            lines = [line for line in open(t.name).read().split("\n") if line.strip()]
            rss = int(lines[-1])
            code = p.returncode
            out = p.stdout
    else:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        code, rss = p.returncode, usage.ru_maxrss
    if code != 0:
        sys.exit(f"failed (exit {code}): {' '.join(map(str, cmd))}")
    return wall, rss, out


# The largest follows table whose accumulations are counted.
MAX_COUNTED_FOLLOWS = 500_000_000


def accumulations(world: Path, as_of: int) -> int:
    """(follow edge, supporting purchase) pairs the accumulator visits,
    counted from the Parquet: for each scored user u and each non-muted
    follow u -> f, f not suspended, no block between them, the (f, p)
    supporting pairs (latest in the window, not refunded, not private,
    product available) whose p is neither owned by u nor fatigued for u."""
    scan = lambda t: pl.scan_parquet(world / f"{t}.parquet")
    us = lambda c: pl.col(c).dt.epoch("us")
    edges = (scan("follows").filter(pl.col("follower_id") != pl.col("followee_id"))
             .group_by(u="follower_id", f="followee_id").agg(pl.col("muted").fill_null(False).any())
             .filter(~pl.col("muted")))
    flags = scan("users").group_by("user_id").agg(
        pl.col("promotions_opt_out").fill_null(False).any(), pl.col("suspended").fill_null(False).any())
    off = flags.filter(pl.col("promotions_opt_out") | pl.col("suspended")).select(u="user_id")
    suspended = flags.filter(pl.col("suspended")).select(f="user_id")
    b = scan("blocks")
    blocked = pl.concat([b.select(u="user_id", f="blocked_id"), b.select(u="blocked_id", f="user_id")])
    products = scan("products").select("product_id", available=pl.col("available").fill_null(True))
    bought = (scan("purchases").filter(~pl.col("refunded").fill_null(False), us("purchased_at") < as_of)
              .join(products, on="product_id")
              .select(u="buyer_id", p="product_id", t=us("purchased_at"), vis="visibility",
                      available="available"))
    support = (bought.filter(pl.col("t") >= as_of - 30 * DAY_US, pl.col("vis") != "private",
                             pl.col("available"))
               .select(f="u", p="p").unique())
    fatigued = (scan("impressions")
                .filter(us("shown_at") >= as_of - 14 * DAY_US, us("shown_at") < as_of)
                .group_by(u="user_id", p="product_id")
                .agg(pl.len().alias("n"), pl.col("clicked").fill_null(False).any())
                .filter(pl.col("n") >= 3, ~pl.col("clicked")).select("u", "p"))
    excluded = pl.concat([bought.select("u", "p"), fatigued]).unique()
    visits = (edges.join(off, on="u", how="anti").join(suspended, on="f", how="anti")
              .join(blocked, on=["u", "f"], how="anti")
              .join(support, on="f").join(excluded, on=["u", "p"], how="anti"))
    return visits.select(pl.len()).collect().item()


def read_boughtby_slots(out: Path) -> pl.DataFrame:
    run_id = (out / "LATEST").read_text().strip()
    return pl.read_parquet(out / run_id / "slots" / "*.parquet").select(COLUMNS)


def agreement(ours: pl.DataFrame, theirs: pl.DataFrame) -> dict:
    """Rows identical in every column (score exactly), and how the others
    differ, matching rows on (user_id, slot)."""
    a = ours.with_columns(pl.col("slot").cast(pl.Int64)).rename(lambda c: c + "_a" if c not in ("user_id", "slot") else c)
    b = theirs.select(COLUMNS).with_columns(pl.col("slot").cast(pl.Int64)) \
        .rename(lambda c: c + "_b" if c not in ("user_id", "slot") else c)
    j = a.join(b, on=["user_id", "slot"], how="full", coalesce=True)
    both = j.filter(pl.col("product_id_a").is_not_null() & pl.col("product_id_b").is_not_null())
    same = pl.all_horizontal([pl.col(c + "_a") == pl.col(c + "_b")
                              for c in COLUMNS if c not in ("user_id", "slot")])
    identical = both.filter(same).height
    same_product = both.filter(pl.col("product_id_a") == pl.col("product_id_b"))
    diff_users = j.filter(~same.fill_null(False)).select("user_id").unique().height
    score_diff = same_product.filter(pl.col("score_a") != pl.col("score_b"))
    return {
        "rows_boughtby": ours.height,
        "rows_peer": theirs.height,
        "identical": identical,
        "same_product_other_fields_differ": same_product.height - same_product.filter(same).height,
        "score_differs": score_diff.height,
        "max_score_diff": float((score_diff["score_a"] - score_diff["score_b"]).abs().max() or 0.0),
        "other_product": both.height - same_product.height,
        "only_boughtby": j.filter(pl.col("product_id_b").is_null()).height,
        "only_peer": j.filter(pl.col("product_id_a").is_null()).height,
        "users_differing": diff_users,
        "users_boughtby": ours["user_id"].n_unique(),
    }


def fmt_mib(kib):
    return f"{kib / 1024:,.0f} MiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--world", required=True, type=Path)
    ap.add_argument("--preset", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--peers", default="duckdb polars")
    ap.add_argument("--peer-runs", type=int)
    args = ap.parse_args()
    world, runs = args.world, args.runs
    as_of = int(datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
                .astimezone(timezone.utc).timestamp()) * 1_000_000
    out = world / "out-boughtby"
    follows_rows = pl.scan_parquet(world / "follows.parquet").select(pl.len()).collect().item()
    purchase_rows = pl.scan_parquet(world / "purchases.parquet").select(pl.len()).collect().item()
    users = pl.scan_parquet(world / "users.parquet").select(pl.len()).collect().item()
    print(f"# {args.preset} (seed in folder name): {users:,} users, {follows_rows:,} follow rows, "
          f"{purchase_rows:,} purchase rows; {runs} runs each; {os.cpu_count()} cores", flush=True)

    results = {}
    peers = [p for p in args.peers.split() if p != "none"]
    peer_runs = args.peer_runs or runs
    # The peers' runs go between boughtby's, spread evenly and taking turns,
    # so that each is also compared with the boughtby runs just before and
    # after it: the machine's speed moves by the hour, and a ratio of
    # medians taken minutes apart moves with it.
    turns = [(peer, i) for i in range(peer_runs) for peer in peers]
    after = [[] for _ in range(runs)]
    for j, turn in enumerate(turns):
        k = (j + 1) * runs // (len(turns) + 1) - 1
        after[min(max(k, 0), max(runs - 2, 0))].append(turn)
    walls, rsss, stages = [], [], {}
    peer_walls = {p: [] for p in peers}
    peer_rsss = {p: [] for p in peers}
    peer_inner = {p: [] for p in peers}
    # Each peer run's neighbours: the boughtby runs just before and after.
    neighbours = {p: [] for p in peers}
    for i in range(runs):
        wall, rss, _ = measure([args.bin, "run", "--config", str(world / "job.toml"),
                                "--as-of", args.as_of, "--output", str(out), "--force"],
                               env={"BOUGHTBY_LOG": "warn"})
        run_id = (out / "LATEST").read_text().strip()
        manifest = json.loads((out / run_id / "_manifest.json").read_text())
        for s in manifest["stages"]:
            stages.setdefault(s["name"], []).append(s["seconds"])
        walls.append(wall)
        rsss.append(rss)
        print(f"  boughtby run {i + 1}: {wall:.3f} s, {fmt_mib(rss)}", flush=True)
        for peer, n in after[i]:
            script = HERE / "peers" / f"{peer}_social_v1.py"
            target = world / f"out-{peer}.parquet"
            wall, rss, stdout = measure([sys.executable, str(script), "--world", str(world),
                                         "--as-of", args.as_of, "--output", str(target)])
            peer_walls[peer].append(wall)
            peer_rsss[peer].append(rss)
            peer_inner[peer].append(json.loads(stdout.strip().splitlines()[-1])["seconds"])
            neighbours[peer].append((i, i + 1))
            print(f"  {peer} run {n + 1}: {wall:.3f} s, {fmt_mib(rss)}", flush=True)
    results["boughtby"] = {"wall": statistics.median(walls), "rss_kib": statistics.median(rsss),
                           "stages": {k: statistics.median(v) for k, v in stages.items()}}
    ours = read_boughtby_slots(out) if peers else None
    for peer in peers:
        target = world / f"out-{peer}.parquet"
        # The peer's wall over the mean of its neighbours' (the one before
        # alone when it ran last), run by run; then their median.
        same = []
        for wall, (before, after_run) in zip(peer_walls[peer], neighbours[peer]):
            near = walls[before:after_run + 1]
            same.append(wall / statistics.mean(near))
        results[peer] = {"wall": statistics.median(peer_walls[peer]),
                         "rss_kib": statistics.median(peer_rsss[peer]),
                         "in_script": statistics.median(peer_inner[peer]),
                         "same_minutes": statistics.median(same),
                         "agreement": agreement(ours, pl.read_parquet(target))}

    # The counting query holds the deduplicated follows: beyond large it
    # does not fit this machine's 24 GiB (twitter2010 is not counted).
    acc = accumulations(world, as_of) if follows_rows <= MAX_COUNTED_FOLLOWS else None
    b = results["boughtby"]
    print()
    print(f"## {args.preset}: medians of {runs} boughtby runs, {args.peer_runs or runs} of each peer")
    print()
    print("| engine | wall (s) | peak RSS | vs boughtby: time | the same minutes | vs boughtby: memory |")
    print("|---|---|---|---|---|---|")
    print(f"| boughtby | {b['wall']:.3f} | {fmt_mib(b['rss_kib'])} | 1 | 1 | 1 |")
    for peer in peers:
        r = results[peer]
        print(f"| {peer} | {r['wall']:.3f} (query {r['in_script']:.3f}) | {fmt_mib(r['rss_kib'])} "
              f"| {r['wall'] / b['wall']:.1f}x | {r['same_minutes']:.1f}x "
              f"| {r['rss_kib'] / b['rss_kib']:.1f}x |")
    if peers:
        print()
        print("(the same minutes: each peer run against the boughtby runs just before and "
              "after it, the median of those ratios)")
    print()
    print("boughtby stages (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in b["stages"].items()))
    score = b["stages"].get("score")
    if acc is None:
        print(f"throughput: {follows_rows / b['wall'] / 1e6:.1f}M follows/s (rows / median wall); "
              f"accumulations not counted (more than {MAX_COUNTED_FOLLOWS:,} follow rows)")
    else:
        print(f"throughput: {follows_rows / b['wall'] / 1e6:.1f}M follows/s (rows / median wall), "
              f"{acc:,} candidate accumulations -> {acc / b['wall'] / 1e6:.1f}M/s of wall"
              + (f", {acc / score / 1e6:.1f}M/s of the score stage" if score else ""))
    for peer in peers:
        a = results[peer]["agreement"]
        print(f"agreement {peer}: {a['identical']:,} of {a['rows_boughtby']:,} boughtby rows identical "
              f"(peer {a['rows_peer']:,} rows); differing: {a['score_differs']} score only "
              f"(max {a['max_score_diff']:.1e}), {a['same_product_other_fields_differ'] - a['score_differs']} "
              f"other field, {a['other_product']} other product, {a['only_boughtby']} only in boughtby, "
              f"{a['only_peer']} only in {peer}; {a['users_differing']} of {a['users_boughtby']:,} users differ")
    results.update(preset=args.preset, runs=runs, follows_rows=follows_rows,
                   purchase_rows=purchase_rows, users=users, accumulations=acc)
    (world / "bench.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
