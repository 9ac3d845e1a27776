#!/usr/bin/env python3
"""Runs an export recipe of docs/operations.md and holds its output to
`boughtby generate --shards N`.

The recipe is taken from the document itself: for DuckDB the SQL between
its `-- boughtby follows export (DuckDB)` and `-- end of the boughtby
follows export` lines and the zero-row part it writes for an empty
partition; for Spark (`--engine spark`, local, with pyspark) the Spark SQL
block, then the partitioned write the document describes. It runs on a
plain follows table, and its folder is compared with the generator's
partitioned follows of the same world: the same `_shards`, the same
partition folders, and in each partition the same rows (follower_id,
followee_id, muted, followed_back), as multisets. The recipe's mix is also
checked against the contract's test vectors.

Usage:

    python3 tests/export_recipe.py --doc docs/operations.md [--engine spark] \
        --follows PLAIN.parquet --expected GENERATED_FOLDER --shards N --out DIR

Exits 0 when equal, 1 on a difference (printed), 3 when the engine's
Python package is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

import pyarrow.parquet as pq

BEGIN = "-- boughtby follows export (DuckDB)"
END = "-- end of the boughtby follows export"
EMPTY = "COPY (SELECT * EXCLUDE (shard) FROM follows_by_shard LIMIT 0)"
VECTORS = {1: 6238072747940578789, 42: 12058926934050108962}
SPARK = "Spark SQL ("


def recipe(doc: str) -> tuple[str, str]:
    """The recipe's SQL and its statement for an empty partition."""
    text = open(doc, encoding="utf-8").read()
    start = text.index(BEGIN)
    end = text.index(END, start)
    at = text.index(EMPTY, end)
    empty = text[at : text.index(";", at) + 1]
    return text[start:end], empty


def spark_recipe(doc: str) -> str:
    """The Spark SQL block of the document."""
    text = open(doc, encoding="utf-8").read()
    start = text.index("```sql", text.index(SPARK)) + len("```sql")
    return text[start : text.index("```", start)]


def run_duckdb(doc: str, follows: str, shards: int, problems: list) -> bool:
    """The DuckDB recipe into ./follows_by_shard; False without duckdb."""
    try:
        import duckdb
    except ImportError:
        return False
    sql, empty = recipe(doc)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW follows AS SELECT * FROM read_parquet('{follows}')")
    con.execute(f"SET VARIABLE shards = {shards}")
    con.execute(sql)
    for i in range(shards):
        folder = os.path.join("follows_by_shard", f"shard={i}")
        if not os.path.isdir(folder):
            os.makedirs(folder)
            con.execute(empty.replace("shard=I", f"shard={i}"))
    for x, want in VECTORS.items():
        got = con.execute(f"SELECT boughtby_mix({x})").fetchone()[0]
        if got != want:
            problems.append(f"mix({x}) = {got}, the contract says {want}")
    return True


def run_spark(doc: str, follows: str, shards: int, problems: list) -> bool:
    """The Spark SQL recipe, then the partitioned write, into
    ./follows_by_shard; False without pyspark."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return False
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.read.parquet(follows).createOrReplaceTempView("follows")
    sql = spark_recipe(doc).replace("${N}", str(shards))
    for statement in (s.strip() for s in sql.split(";")):
        if statement:
            spark.sql(statement)
    table = spark.table("follows_by_shard")
    (
        table.repartition("shard")
        .sortWithinPartitions("follower_id", "followee_id")
        .write.partitionBy("shard")
        .parquet("follows_by_shard")
    )
    for i in range(shards):
        folder = os.path.join("follows_by_shard", f"shard={i}")
        if not os.path.isdir(folder):
            table.limit(0).drop("shard").write.parquet(folder)
    # The mix alone, on the two test vectors.
    vectors = [(x, 0, False) for x in VECTORS]
    schema = "follower_id BIGINT, followee_id BIGINT, muted BOOLEAN"
    spark.createDataFrame(vectors, schema).createOrReplaceTempView("follows")
    spark.sql(sql.split(";")[1])
    for row in spark.sql("SELECT follower_id, m FROM follows_mixed").collect():
        got = row.m % 2**64
        if got != VECTORS[row.follower_id]:
            want = VECTORS[row.follower_id]
            problems.append(f"mix({row.follower_id}) = {got}, the contract says {want}")
    spark.stop()
    return True


def partitions(folder: str) -> dict[str, Counter]:
    """Each `shard=I` folder's rows, as a multiset."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith(("_", ".")):
            continue
        rows: Counter = Counter()
        sub = os.path.join(folder, name)
        for part in sorted(os.listdir(sub)):
            if part.startswith(("_", ".")):
                continue
            table = pq.read_table(os.path.join(sub, part))
            cols = [
                table.column(c).to_pylist()
                for c in ("follower_id", "followee_id", "muted", "followed_back")
            ]
            rows.update(zip(*cols))
        out[name] = rows
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc", required=True)
    ap.add_argument("--follows", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--shards", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    args = ap.parse_args()
    doc = os.path.abspath(args.doc)
    follows = os.path.abspath(args.follows)
    expected = os.path.abspath(args.expected)
    os.makedirs(args.out, exist_ok=True)
    os.chdir(args.out)
    problems: list[str] = []
    engine = run_duckdb if args.engine == "duckdb" else run_spark
    if not engine(doc, follows, args.shards, problems):
        package = "duckdb" if args.engine == "duckdb" else "pyspark"
        print(f"{package} is not installed (python3 -m pip install {package})", file=sys.stderr)
        return 3
    with open(os.path.join("follows_by_shard", "_shards"), "w") as fh:
        fh.write(f"{args.shards}\n")
    with open(os.path.join(expected, "_shards")) as fh:
        if fh.read() != f"{args.shards}\n":
            problems.append("the generator's _shards differs")
    got = partitions("follows_by_shard")
    want = partitions(expected)
    if sorted(got) != sorted(want):
        problems.append(f"partition folders {sorted(got)} against {sorted(want)}")
    for name in sorted(want):
        g, w = got.get(name, Counter()), want[name]
        if g != w:
            problems.append(
                f"{name}: {sum(g.values())} rows against {sum(w.values())}; "
                f"only in the recipe's: {list((g - w).items())[:3]}, "
                f"only in the generator's: {list((w - g).items())[:3]}"
            )
    rows = sum(sum(c.values()) for c in want.values())
    empties = sum(1 for c in want.values() if not c)
    backs = sum(n for c in want.values() for r, n in c.items() if r[3])
    print(
        f"{args.shards} partitions ({empties} empty), {rows} rows, "
        f"{backs} followed back: {'differ' if problems else 'equal'}"
    )
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
