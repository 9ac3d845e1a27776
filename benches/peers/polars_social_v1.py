#!/usr/bin/env python3
"""The social_v1 nightly job as one Polars lazy query: the peer a data
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

usage: polars_social_v1.py --world DIR --as-of 2026-11-24T00:00:00Z --output FILE
"""

import argparse
import json
import os
import time
from datetime import datetime, timezone

import polars as pl

MODEL = dict(lookback_days=30, half_life_days=7.0, mutual_bonus=0.5, w_proof=1.0,
             w_buyers=0.5, w_popularity=-0.1, w_price=0.2,
             fatigue_max_impressions=3, fatigue_days=14)
SELECTION = dict(positions=[4, 14, 30], min_buyers=1, min_score=0.2,
                 max_per_merchant=1, max_per_category=2, max_buyers_shown=3)
DAY_US = 86_400_000_000


def round9(e: pl.Expr) -> pl.Expr:
    """The contract's rounding: 9 places, halves away from zero."""
    return e.round(9, mode="half_away_from_zero")


def query(world: str, as_of: int) -> pl.LazyFrame:
    m, s = MODEL, SELECTION
    start = as_of - m["lookback_days"] * DAY_US
    fatigue_start = as_of - m["fatigue_days"] * DAY_US
    scan = lambda t: pl.scan_parquet(os.path.join(world, f"{t}.parquet"))
    us = lambda c: pl.col(c).dt.epoch("us")

    flags = (scan("users").group_by("user_id")
             .agg(pl.col("promotions_opt_out").fill_null(False).any().alias("opted_out"),
                  pl.col("suspended").fill_null(False).any()))
    blk = scan("blocks")
    blocked = pl.concat([blk.select(a="user_id", b="blocked_id"),
                         blk.select(a="blocked_id", b="user_id")])
    products = scan("products").select(
        "product_id", "merchant_id", "category", list_price="price_cents",
        available=pl.col("available").fill_null(True))
    bought = (scan("purchases")
              .filter(~pl.col("refunded").fill_null(False), us("purchased_at") < as_of)
              .join(products, on="product_id")
              .select(u="buyer_id", p="product_id", t=us("purchased_at"),
                      visibility="visibility", available="available",
                      paid=pl.when(pl.col("price_cents").fill_null(0) > 0)
                      .then(pl.col("price_cents")).otherwise(pl.col("list_price"))))
    window = bought.filter(pl.col("t") >= start)
    support = (window.filter(pl.col("visibility") != "private", pl.col("available"))
               .group_by(f="u", p="p").agg(pl.col("t").max()))
    # Only follows of an account with a supporting purchase can carry social
    # proof: the follow pairs are semi-joined to those accounts while
    # scanning, never materialised whole.
    supporters = support.select("f").unique()
    follows = scan("follows")
    edges = (follows.filter(pl.col("follower_id") != pl.col("followee_id"))
             .join(supporters, left_on="followee_id", right_on="f", how="semi")
             .group_by(u="follower_id", f="followee_id")
             .agg(pl.col("muted").fill_null(False).any()))
    back = (follows.join(supporters, left_on="follower_id", right_on="f", how="semi")
            .select(u="followee_id", f="follower_id", back=pl.lit(True)).unique())
    popularity = window.group_by("p").agg(
        popularity=(pl.col("u").n_unique() + 1).cast(pl.Float64).log())
    price_median = window.group_by("u").agg(
        m=pl.col("paid").cast(pl.Float64).log().median())
    fatigued = (scan("impressions")
                .filter(us("shown_at") >= fatigue_start, us("shown_at") < as_of)
                .group_by(u="user_id", p="product_id")
                .agg(pl.len().alias("shows"), pl.col("clicked").fill_null(False).any())
                .filter(pl.col("shows") >= m["fatigue_max_impressions"], ~pl.col("clicked"))
                .select("u", "p"))
    excluded = pl.concat([bought.select("u", "p"), fatigued]).unique()

    not_flag = lambda c: ~pl.col(c).fill_null(False)
    proof_edges = (edges.filter(~pl.col("muted"))
                   .join(flags.select(u="user_id", fu_opt="opted_out", fu_susp="suspended"),
                         on="u", how="left")
                   .join(flags.select(f="user_id", ff_susp="suspended"), on="f", how="left")
                   .filter(not_flag("fu_opt"), not_flag("fu_susp"), not_flag("ff_susp"))
                   .join(blocked, left_on=["u", "f"], right_on=["a", "b"], how="anti")
                   .join(back, on=["u", "f"], how="left")
                   .select("u", "f", tie=pl.when(pl.col("back")).then(1.0 + m["mutual_bonus"])
                           .otherwise(1.0)))
    visits = (proof_edges.join(support, on="f")
              .join(excluded, on=["u", "p"], how="anti")
              .with_columns(w=pl.col("tie") * pl.lit(0.5).pow(
                  ((as_of - pl.col("t")).cast(pl.Float64) / float(DAY_US)) / m["half_life_days"])))
    candidates = (visits.sort("u", "p", "f")
                  .group_by("u", "p", maintain_order=True)
                  .agg(n=pl.len(),
                       # summed in ascending buyer id, one after another
                       proof=pl.col("w").cum_sum().last(),
                       buyers=pl.col("f").sort_by(round9(pl.col("w")), "f",
                                                  descending=[True, False])
                       .head(s["max_buyers_shown"])))
    scored = (candidates
              .join(products.select(p="product_id", merchant_id="merchant_id",
                                    category="category", list_price="list_price"), on="p")
              .join(popularity, on="p", how="left")
              .join(price_median, on="u", how="left")
              .with_columns(score=round9(
                  m["w_proof"] * pl.col("proof")
                  + m["w_buyers"] * (pl.col("n") + 1).cast(pl.Float64).log()
                  + m["w_popularity"] * pl.col("popularity").fill_null(0.0)
                  + m["w_price"] * (-(pl.col("list_price").cast(pl.Float64).log()
                                      - pl.col("m")).abs()).fill_null(0.0))))
    order = dict(by=["score", "p"], descending=[True, False])
    return (scored.filter(pl.col("n") >= s["min_buyers"], pl.col("score") >= s["min_score"])
            .sort("u", "score", "p", descending=[False, True, False])
            .filter(pl.int_range(pl.len()).over("u", "merchant_id") < s["max_per_merchant"])
            .filter(pl.col("category").is_null()
                    | (pl.int_range(pl.len()).over("u", "category") < s["max_per_category"]))
            .with_columns(slot=pl.int_range(1, pl.len() + 1).over("u"))
            .filter(pl.col("slot") <= len(s["positions"]))
            .select(user_id="u", slot=pl.col("slot").cast(pl.Int8),
                    position=pl.col("slot").replace_strict(
                        {i + 1: v for i, v in enumerate(s["positions"])}, return_dtype=pl.Int32),
                    product_id="p", merchant_id="merchant_id", score="score",
                    buyer_count=pl.col("n").cast(pl.Int32), top_buyer_ids="buyers")
            .sort("user_id", "slot"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", required=True)
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    as_of_dt = datetime.fromisoformat(args.as_of.replace("Z", "+00:00")).astimezone(timezone.utc)
    as_of = int(as_of_dt.timestamp()) * 1_000_000
    query(args.world, as_of).sink_parquet(args.output, compression="zstd")
    rows = pl.scan_parquet(args.output).select(pl.len()).collect().item()
    print(json.dumps({"engine": "polars", "version": pl.__version__, "rows": rows,
                      "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
