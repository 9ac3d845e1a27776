#!/usr/bin/env python3
"""The social_v1 nightly job as one DuckDB SQL script: the peer a data
engineer would write instead of boughtby. Reads the six Parquet tables of a
world (as `boughtby generate` writes them) and writes the slots with the
contract's columns (user_id, slot, position, product_id, merchant_id, score,
buyer_count, top_buyer_ids) to one Parquet file, sorted by user_id, slot.

The model is the default social_v1 of the contract (jobs/sample.toml). Where
it differs from the contract: the greedy merchant/category caps are a
window-function approximation (keep a user's best max_per_merchant
candidates per merchant, then, among those, the best max_per_category per
category, then the first len(positions)). The greedy walk differs only when
a merchant's best candidate is skipped by the category cap: the walk then
may take that merchant's next candidate, the window version never does.

usage: duckdb_social_v1.py --world DIR --as-of 2026-11-24T00:00:00Z --output FILE [--threads N]
"""

import argparse
import json
import os
import time
from datetime import datetime, timezone

import duckdb

MODEL = dict(lookback_days=30, half_life_days=7.0, mutual_bonus=0.5, w_proof=1.0,
             w_buyers=0.5, w_popularity=-0.1, w_price=0.2,
             fatigue_max_impressions=3, fatigue_days=14)
SELECTION = dict(positions=[4, 14, 30], min_buyers=1, min_score=0.2,
                 max_per_merchant=1, max_per_category=2, max_buyers_shown=3)
DAY_US = 86_400_000_000

SQL = """
CREATE TEMP TABLE flags AS
    SELECT user_id, bool_or(coalesce(promotions_opt_out, false)) AS opted_out,
           bool_or(coalesce(suspended, false)) AS suspended
    FROM read_parquet('{w}/users.parquet') GROUP BY ALL;

CREATE TEMP TABLE blocked AS               -- a block either way
    SELECT user_id AS a, blocked_id AS b FROM read_parquet('{w}/blocks.parquet')
    UNION SELECT blocked_id, user_id FROM read_parquet('{w}/blocks.parquet');

CREATE TEMP TABLE products AS
    SELECT product_id, merchant_id, price_cents AS list_price, category,
           coalesce(available, true) AS available
    FROM read_parquet('{w}/products.parquet');

-- non-refunded purchases of catalog products before as_of
CREATE TEMP TABLE bought AS
    SELECT p.buyer_id, p.product_id, epoch_us(p.purchased_at) AS t, p.visibility,
           coalesce(nullif(p.price_cents, 0), c.list_price) AS paid, c.available
    FROM read_parquet('{w}/purchases.parquet') p JOIN products c USING (product_id)
    WHERE NOT coalesce(p.refunded, false) AND epoch_us(p.purchased_at) < {as_of};

CREATE TEMP TABLE support AS               -- latest supporting purchase per (buyer, product)
    SELECT buyer_id AS f, product_id AS p, max(t) AS t
    FROM bought
    WHERE t >= {start} AND visibility <> 'private' AND available
    GROUP BY ALL;

-- Only follows of an account with a supporting purchase can carry social
-- proof: the 64-bit follow pairs are semi-joined to those accounts while
-- scanning, never materialised whole.
CREATE TEMP TABLE supporters AS SELECT DISTINCT f FROM support;

CREATE TEMP TABLE edges AS                 -- one edge per pair, muted if any row is
    SELECT follower_id AS u, followee_id AS f, bool_or(coalesce(muted, false)) AS muted
    FROM read_parquet('{w}/follows.parquet')
    SEMI JOIN supporters s ON s.f = followee_id
    WHERE follower_id <> followee_id
    GROUP BY ALL;

CREATE TEMP TABLE back AS                  -- supporter f follows u (muted or not)
    SELECT DISTINCT follower_id AS f, followee_id AS u
    FROM read_parquet('{w}/follows.parquet')
    SEMI JOIN supporters s ON s.f = follower_id;

CREATE TEMP TABLE popularity AS
    SELECT product_id AS p, ln(1 + count(DISTINCT buyer_id)) AS popularity
    FROM bought WHERE t >= {start} GROUP BY ALL;

CREATE TEMP TABLE price_median AS
    SELECT buyer_id AS u, median(ln(paid::DOUBLE)) AS m
    FROM bought WHERE t >= {start} GROUP BY ALL;

CREATE TEMP TABLE excluded AS              -- owned, or fatigued
    SELECT DISTINCT buyer_id AS u, product_id AS p FROM bought
    UNION
    SELECT user_id, product_id FROM read_parquet('{w}/impressions.parquet')
    WHERE epoch_us(shown_at) >= {fatigue_start} AND epoch_us(shown_at) < {as_of}
    GROUP BY ALL
    HAVING count(*) >= {fatigue_max} AND NOT bool_or(coalesce(clicked, false));

-- social proof: edges whose follower is scored and whose followee may support
CREATE TEMP TABLE proof_edges AS
    SELECT e.u, e.f, CASE WHEN back.u IS NULL THEN 1.0 ELSE 1.0 + {mutual} END AS tie
    FROM edges e
    LEFT JOIN flags fu ON fu.user_id = e.u
    LEFT JOIN flags ff ON ff.user_id = e.f
    LEFT JOIN back ON back.f = e.f AND back.u = e.u
    ANTI JOIN blocked x ON x.a = e.u AND x.b = e.f
    WHERE NOT e.muted
      AND NOT coalesce(fu.opted_out, false) AND NOT coalesce(fu.suspended, false)
      AND NOT coalesce(ff.suspended, false);

CREATE TEMP TABLE visits AS
    SELECT e.u, s.p, e.f,
           e.tie * pow(0.5, ((({as_of} - s.t)::DOUBLE / {day_us}) / {half_life})) AS w
    FROM proof_edges e JOIN support s ON s.f = e.f
    ANTI JOIN excluded x ON x.u = e.u AND x.p = s.p;

CREATE TEMP TABLE candidates AS
    SELECT v.u, v.p, count(*) AS n,
           sum(v.w ORDER BY v.f) AS proof,
           list(v.f ORDER BY round(v.w, 9) DESC, v.f ASC) AS buyers
    FROM visits v GROUP BY v.u, v.p;

CREATE TEMP TABLE scored AS
    SELECT c.u, c.p, c.n, c.buyers, pr.merchant_id, pr.category,
           round({w_proof} * c.proof + {w_buyers} * ln(1 + c.n)
                 + {w_pop} * coalesce(pop.popularity, 0)
                 + {w_price} * coalesce(-abs(ln(pr.list_price::DOUBLE) - m.m), 0), 9) AS score
    FROM candidates c
    JOIN products pr ON pr.product_id = c.p
    LEFT JOIN popularity pop ON pop.p = c.p
    LEFT JOIN price_median m ON m.u = c.u;

COPY (
    WITH kept AS (
        SELECT * FROM scored WHERE n >= {min_buyers} AND score >= {min_score}
    ), by_merchant AS (
        SELECT *, row_number() OVER (PARTITION BY u, merchant_id ORDER BY score DESC, p) AS rm
        FROM kept
    ), by_category AS (
        SELECT *, CASE WHEN category IS NULL THEN 1 ELSE
                  row_number() OVER (PARTITION BY u, category ORDER BY score DESC, p) END AS rc
        FROM by_merchant WHERE rm <= {max_merchant}
    ), ranked AS (
        SELECT *, row_number() OVER (PARTITION BY u ORDER BY score DESC, p) AS slot
        FROM by_category WHERE rc <= {max_category}
    )
    SELECT u AS user_id, slot::TINYINT AS slot,
           ({positions})[slot]::INTEGER AS position,
           p AS product_id, merchant_id, score, n::INTEGER AS buyer_count,
           buyers[1:{shown}] AS top_buyer_ids
    FROM ranked WHERE slot <= {npos}
    ORDER BY user_id, slot
) TO '{out}' (FORMAT parquet, COMPRESSION zstd);
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", required=True)
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    t0 = time.perf_counter()
    as_of_dt = datetime.fromisoformat(args.as_of.replace("Z", "+00:00")).astimezone(timezone.utc)
    as_of = int(as_of_dt.timestamp()) * 1_000_000
    m, s = MODEL, SELECTION
    sql = SQL.format(
        w=os.path.abspath(args.world), out=os.path.abspath(args.output),
        as_of=as_of, start=as_of - m["lookback_days"] * DAY_US,
        fatigue_start=as_of - m["fatigue_days"] * DAY_US,
        fatigue_max=m["fatigue_max_impressions"], mutual=m["mutual_bonus"],
        day_us=f"{DAY_US}.0", half_life=m["half_life_days"],
        w_proof=m["w_proof"], w_buyers=m["w_buyers"], w_pop=m["w_popularity"],
        w_price=m["w_price"], min_buyers=s["min_buyers"], min_score=s["min_score"],
        max_merchant=s["max_per_merchant"], max_category=s["max_per_category"],
        positions=str(s["positions"]), npos=len(s["positions"]),
        shown=s["max_buyers_shown"],
    )
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET preserve_insertion_order = false")
    con.execute(sql)
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{os.path.abspath(args.output)}')").fetchone()[0]
    print(json.dumps({"engine": "duckdb", "version": duckdb.__version__, "rows": rows,
                      "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
