#!/usr/bin/env python3
"""Independent check of `boughtby eval`: recompute every figure in Python.

The model at the cut comes from the project's second implementation of the
contract (`tests/crosscheck.py`, pure Python over the raw rows, run with
as_of moved to the cut T = as_of - D days); the truth, the baselines and
every metric are computed here from the definitions of the issue, with
plain loops. The script then runs `boughtby eval --json` on the same job
and compares each figure (to 1e-9).

Usage:

    python3 tests/science/evalcheck.py --config JOB.toml --holdout-days D \
        [--as-of T] [--boughtby PATH]

`--boughtby` defaults to target/release/boughtby, then target/debug/boughtby
(relative to the repository), then `boughtby` on the PATH. Exit status 0
when every figure agrees, 1 otherwise. Requires Python 3.11+ and pyarrow.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

import crosscheck as cc  # noqa: E402  (the independent model)

METRICS = (
    "slots", "users_with_slots", "hits", "precision", "hit_rate", "recall",
    "ndcg", "user_coverage", "catalog_coverage", "merchant_gini",
)


def ratio(a: float, b: float) -> float:
    return 0.0 if b == 0 else a / b


def figures(slates, truth, users_scored, positions, catalog):
    """The metrics of `slates` ({user: [product, ...]} in slot order)."""
    slots = users = hits = users_hit = truth_pairs = 0
    ndcg = 0.0
    shown = set()
    per_merchant = {mid: 0 for (mid, _, _, avail) in catalog.values() if avail}
    for u in sorted(slates):
        products = slates[u]
        if not products:
            continue
        users += 1
        slots += len(products)
        mine = truth.get(u, set())
        truth_pairs += len(mine)
        dcg = 0.0
        h = 0
        for k, p in enumerate(products, start=1):
            shown.add(p)
            per_merchant[catalog[p][0]] += 1
            if p in mine:
                h += 1
                dcg += 1.0 / math.log2(k + 1)
        hits += h
        users_hit += 1 if h else 0
        ideal = sum(1.0 / math.log2(k + 1) for k in range(1, min(positions, len(mine)) + 1))
        ndcg += ratio(dcg, ideal)
    x = sorted(per_merchant.values())
    n, total = len(x), sum(x)
    gini = ratio(sum((2 * i - n - 1) * xi for i, xi in enumerate(x, start=1)), n * total)
    available = sum(1 for c in catalog.values() if c[3])
    return {
        "slots": slots,
        "users_with_slots": users,
        "hits": hits,
        "precision": ratio(hits, slots),
        "hit_rate": ratio(users_hit, users),
        "recall": ratio(hits, truth_pairs),
        "ndcg": ratio(ndcg, users),
        "user_coverage": ratio(users, users_scored),
        "catalog_coverage": ratio(len(shown), available),
        "merchant_gini": gini,
    }


def slates_of(inputs, model, sel, cut):
    slates = defaultdict(list)
    for (u, slot), row in sorted(cc.expected_slots(inputs, model, sel, cut).items()):
        slates[u].append(row["product_id"])
    return dict(slates)


def plain_eval(inputs, model, sel, as_of, days):
    cut = as_of - days * cc.DAY_US
    catalog = {}
    for pid, mid, price, cat, avail in cc.rows(cc.read_table(inputs["products"], cc.SCHEMAS["products"])):
        catalog[pid] = (mid, price, cat, bool(cc.default(avail, True)))
    purchases = list(cc.rows(cc.read_table(inputs["purchases"], cc.SCHEMAS["purchases"])))
    follows = list(cc.rows(cc.read_table(inputs["follows"], cc.SCHEMAS["follows"])))
    flagged = set()
    if "users" in inputs:
        for uid, opt, susp in cc.rows(cc.read_table(inputs["users"], cc.SCHEMAS["users"])):
            if cc.default(opt, False) or cc.default(susp, False):
                flagged.add(uid)
    scored = {a for a, b, _ in follows if a != b} - flagged

    # Truth: non-refunded purchases in [cut, as_of), any visibility, of
    # catalog products (the contract ignores the others).
    truth = defaultdict(set)
    for buyer, pid, t, vis, price, refunded in purchases:
        if not cc.default(refunded, False) and cut <= t < as_of and pid in catalog:
            truth[buyer].add(pid)

    positions = len(sel["positions"])
    model_slates = slates_of(inputs, model, sel, cut)

    # popular: G_p in the lookback window before the cut, ties by id.
    start = cut - int(model["lookback_days"]) * cc.DAY_US
    buyers = defaultdict(set)
    owned = defaultdict(set)
    for buyer, pid, t, vis, price, refunded in purchases:
        if cc.default(refunded, False) or pid not in catalog:
            continue
        if start <= t < cut:
            buyers[pid].add(buyer)
        if t < cut:
            owned[buyer].add(pid)
    order = sorted((p for p, c in catalog.items() if c[3]), key=lambda p: (-len(buyers[p]), p))
    popular = {}
    for u in model_slates:
        chosen, per_m, per_c = [], defaultdict(int), defaultdict(int)
        for p in order:
            if len(chosen) == positions:
                break
            mid, _, cat, _ = catalog[p]
            if p in owned[u] or per_m[mid] >= int(sel["max_per_merchant"]):
                continue
            if cat is not None and per_c[cat] >= int(sel["max_per_category"]):
                continue
            chosen.append(p)
            per_m[mid] += 1
            if cat is not None:
                per_c[cat] += 1
        popular[u] = chosen

    count_model = dict(model, w_proof=0.0, w_popularity=0.0, w_price=0.0)
    if float(model["w_buyers"]) <= 0.0:
        count_model["w_buyers"] = 0.5
    count_slates = slates_of(inputs, count_model, sel, cut)
    return {
        "social_v1": figures(model_slates, truth, len(scored), positions, catalog),
        "popular": figures(popular, truth, len(scored), positions, catalog),
        "social_count": figures(count_slates, truth, len(scored), positions, catalog),
    }


def find_binary(given: str | None) -> str:
    if given:
        return given
    for kind in ("release", "debug"):
        path = os.path.join(REPO, "target", kind, "boughtby")
        if os.path.exists(path):
            return path
    return shutil.which("boughtby") or "boughtby"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--holdout-days", type=int, required=True)
    ap.add_argument("--as-of")
    ap.add_argument("--boughtby")
    args = ap.parse_args(argv)

    inputs, model, sel, as_of = cc.load_job(args.config, args.as_of)
    want = plain_eval(inputs, model, sel, as_of, args.holdout_days)
    cmd = [find_binary(args.boughtby), "eval", "--config", args.config,
           "--holdout-days", str(args.holdout_days), "--json"]
    if args.as_of:
        cmd += ["--as-of", args.as_of]
    got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    problems = 0
    print(f"{'name':<14} {'metric':<18} {'boughtby':>22} {'python':>22}")
    for result in got["results"]:
        name = result["name"]
        for metric in METRICS:
            a, b = result[metric], want[name][metric]
            ok = abs(a - b) <= 1e-9 * max(1.0, abs(b))
            problems += 0 if ok else 1
            print(f"{name:<14} {metric:<18} {a!r:>22} {b!r:>22}{'' if ok else '  MISMATCH'}")
    print("all figures agree" if problems == 0 else f"{problems} figures differ")
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
