#!/usr/bin/env bash
# Benchmarks boughtby's nightly run against two peers (DuckDB SQL, Polars
# lazy) on a generated world, side by side.
#
#   benches/run.sh [PRESET] [RUNS]        PRESET: sample|tiny|small|medium|large|twitter2010 (default tiny)
#                                         RUNS: runs of each engine (default 5; 3 for medium, 2 for large
#                                         and twitter2010)
#
# Environment:
#   BOUGHTBY_BENCH_CACHE  worlds, job files, outputs and the Python venv
#                         (default ~/.cache/boughtby-bench; never the repository)
#   BOUGHTBY_BENCH_SEED   the world's seed (default 42)
#   BOUGHTBY_BENCH_SHAPE  more `boughtby generate` options for another shape of
#                         world at the preset's size, e.g. "--avg-follows 60
#                         --buyer-frac 0.4" (its own folder, named after them)
#   BOUGHTBY_BENCH_PEERS  "duckdb polars" (default; "none" for twitter2010, which
#                         they cannot hold in 24 GiB), or a subset, or "none"
#   BOUGHTBY_BENCH_PEER_RUNS  runs of each peer (default RUNS)
#   PYTHON                the Python that makes the venv (default python3)
#
# The world is generated once into $CACHE/<preset>-seed<S>/ with a job file
# (job.toml) beside it; the peers run from a venv in $CACHE/venv (duckdb,
# polars, pyarrow, installed by pip when absent). Everything is reported by
# benches/bench.py, which runs the peers between boughtby's runs and gives,
# beside the ratio of the medians, each peer run's ratio to the boughtby
# runs just before and after it (the machine's speed moves by the hour). The
# twitter2010 world is about 12 GB of Parquet: the
# script checks the free disk first.
set -euo pipefail

preset=${1:-tiny}
peers="duckdb polars"
need_gb=1
case "$preset" in
  sample|tiny|small) default_runs=5 ;;
  medium) default_runs=3 ;;
  large) default_runs=2; need_gb=4 ;;
  twitter2010) default_runs=2; need_gb=14; peers=none ;;
  *) echo "unknown preset $preset (sample, tiny, small, medium, large, twitter2010)" >&2; exit 1 ;;
esac
runs=${2:-$default_runs}
seed=${BOUGHTBY_BENCH_SEED:-42}
cache=${BOUGHTBY_BENCH_CACHE:-$HOME/.cache/boughtby-bench}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$repo/target}/release/boughtby
shape=${BOUGHTBY_BENCH_SHAPE:-}
# The shape's options in the folder's name: "--avg-follows 60" -> "-avg-follows-60".
world=$cache/$preset-seed$seed$(printf '%s' "$shape" | tr -s ' ' | sed -e 's/--/-/g' -e 's/ //g; s/-\([a-z-]*\)\([0-9.]\)/-\1-\2/g')
as_of=2026-11-24T00:00:00Z

# Always asked, so the binary is the tree's (a no-op when it is).
(cd "$repo" && cargo build --release --quiet)

mkdir -p "$cache"
if [ ! -f "$world/follows.parquet" ]; then
  free_gb=$(df -Pk "$cache" | awk 'NR == 2 { print int($4 / 1048576) }')
  if [ "$free_gb" -lt "$need_gb" ]; then
    echo "the $preset world needs about $need_gb GB; $cache has $free_gb GB free" >&2
    exit 1
  fi
  echo "generating $preset (seed $seed) into $world" >&2
  rm -rf "$world.tmp"
  BOUGHTBY_LOG=warn "$bin" generate --preset "$preset" --seed "$seed" --as-of "$as_of" \
    $shape --output "$world.tmp" >&2
  mv "$world.tmp" "$world"
fi

# The job: the sample job's model and selection (the contract's defaults).
cat > "$world/job.toml" <<EOF
# Written by benches/run.sh: the default social_v1 job on this world.
[inputs]
follows = "follows.parquet"
purchases = "purchases.parquet"
products = "products.parquet"
users = "users.parquet"
blocks = "blocks.parquet"
impressions = "impressions.parquet"

[run]
as_of = "$as_of"
output = "out-boughtby"

[model]
name = "social_v1"
lookback_days = 30
half_life_days = 7.0
mutual_bonus = 0.5
w_proof = 1.0
w_buyers = 0.5
w_popularity = -0.1
w_price = 0.2
fatigue_max_impressions = 3
fatigue_days = 14

[selection]
positions = [4, 14, 30]
min_buyers = 1
min_score = 0.2
max_per_merchant = 1
max_per_category = 2
max_buyers_shown = 3
EOF

venv=$cache/venv
if ! "$venv/bin/python" -c 'import duckdb, polars, pyarrow' 2>/dev/null; then
  echo "installing duckdb, polars and pyarrow into $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb polars pyarrow >&2
fi

exec "$venv/bin/python" "$repo/benches/bench.py" --bin "$bin" --world "$world" \
  --preset "$preset" --runs "$runs" --as-of "$as_of" \
  --peers "${BOUGHTBY_BENCH_PEERS:-$peers}" --peer-runs "${BOUGHTBY_BENCH_PEER_RUNS:-$runs}"
