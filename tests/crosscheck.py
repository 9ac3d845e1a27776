#!/usr/bin/env python3
"""Independent cross-check of boughtby's published slots against the contract.

This is a second, deliberately separate implementation of the `social_v1`
model and of the per-user selection described in the data and model
contract (docs/contract.md). It reads a job TOML and its input tables, computes
the slot rows the contract prescribes, and compares them with the rows that
`boughtby run` published.

Usage:

    python3 tests/crosscheck.py --config JOB.toml --output OUTDIR [--as-of T]

* ``--config``: the job file. ``[inputs]`` paths are relative to the folder
  of the TOML file; ``[model]`` and ``[selection]`` override the contract's
  defaults; ``[run] as_of`` is the reference instant (RFC 3339 or a plain
  date, cut to whole seconds).
* ``--output``: the folder boughtby published into; ``OUTDIR/LATEST`` names
  the run, whose rows are read from ``OUTDIR/<run_id>/slots/*.parquet``.
* ``--as-of``: overrides ``[run] as_of`` (pass the same value given to
  ``boughtby run --as-of``).

Inputs may be Parquet or CSV, one file or a folder of parts per table; the
optional tables (users, blocks, impressions) may be absent. The script
assumes valid inputs: it is a check of the model, not of input validation.

It prints the number of rows compared and every mismatch (the first 20 in
detail) and exits 0 when all rows are equal, 1 otherwise (2 on a usage or
input problem). Scores are compared exactly; the largest absolute score
difference between matched rows is reported as well.

Requires Python 3.11+ (tomllib) and pyarrow.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
import tomllib
from collections import defaultdict
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

DAY_US = 86_400_000_000  # one day in microseconds; no calendar effects

MODEL_DEFAULTS = {
    "name": "social_v1",
    "lookback_days": 30,
    "half_life_days": 7.0,
    "mutual_bonus": 0.5,
    "w_proof": 1.0,
    "w_buyers": 0.5,
    "w_popularity": -0.1,
    "w_price": 0.2,
    "fatigue_max_impressions": 3,
    "fatigue_days": 14,
    "sensitive_categories": [],
}
SELECTION_DEFAULTS = {
    "positions": [4, 14, 30],
    "min_buyers": 1,
    "min_score": 0.2,
    "max_per_merchant": 1,
    "max_per_category": 2,
    "max_buyers_shown": 3,
}

# Columns read per table: name -> kind. Kinds: "id" (integer), "bool",
# "ts" (timestamp, returned as epoch µs), "str", "int" (non-id integer).
SCHEMAS = {
    "follows": {"follower_id": "id", "followee_id": "id", "muted": "bool"},
    "purchases": {
        "buyer_id": "id",
        "product_id": "id",
        "purchased_at": "ts",
        "visibility": "str",
        "price_cents": "int",
        "refunded": "bool",
    },
    "products": {
        "product_id": "id",
        "merchant_id": "id",
        "price_cents": "int",
        "category": "str",
        "available": "bool",
    },
    "users": {
        "user_id": "id",
        "promotions_opt_out": "bool",
        "suspended": "bool",
        "hide_purchases": "bool",
    },
    "blocks": {"user_id": "id", "blocked_id": "id"},
    "impressions": {
        "user_id": "id",
        "product_id": "id",
        "shown_at": "ts",
        "clicked": "bool",
    },
}
OPTIONAL_TABLES = ("users", "blocks", "impressions")


# ---------------------------------------------------------------------------
# Time and rounding helpers
# ---------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_instant_us(text: str, whole_seconds: bool = False) -> int:
    """RFC 3339 (or, for as_of, a plain date = midnight UTC) -> epoch µs.

    Fractions finer than µs are rounded down; with ``whole_seconds`` the
    result is cut to whole seconds (as_of is)."""
    text = text.strip()
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if m:
        d = datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=timezone.utc)
        return _epoch_us(d)
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 instant: {text!r}")
    base = datetime(
        int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]),
        tzinfo=timezone.utc,
    )
    us = _epoch_us(base)
    frac = m[7]
    if frac and not whole_seconds:
        us += int((frac[1:] + "000000")[:6])  # truncate to µs (a floor)
    tz = m[8]
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        offset_min = int(tz[1:3]) * 60 + int(tz[4:6])
        us -= sign * offset_min * 60_000_000  # local time = UTC + offset
    return us


def _epoch_us(d: datetime) -> int:
    delta = d - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def as_of_from_toml(value) -> int:
    """[run] as_of may be a TOML string, or (leniently) a TOML date/datetime."""
    if isinstance(value, str):
        return parse_instant_us(value, whole_seconds=True)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return _epoch_us(value.replace(microsecond=0))
    if isinstance(value, date):
        return _epoch_us(datetime(value.year, value.month, value.day, tzinfo=timezone.utc))
    raise ValueError(f"as_of: unsupported value {value!r}")


def round9(x: float) -> float:
    """Rust's `(x * 1e9).round() / 1e9`: halves away from zero.

    Python's round() rounds halves to even, and `floor(|y| + 0.5)` can be off
    by one (the addition itself rounds), so the rounding of y = x * 1e9 is done
    exactly: |y| - floor(|y|) is computed without error."""
    y = x * 1e9  # the same single float multiply as in Rust
    if math.isnan(y) or math.isinf(y):
        return y / 1e9
    a = abs(y)
    whole = math.floor(a)
    if a - whole >= 0.5:  # exact: a and floor(a) are close floats
        whole += 1
    r = float(whole)
    return (-r if y < 0 or (y == 0 and math.copysign(1.0, y) < 0) else r) / 1e9


# ---------------------------------------------------------------------------
# Table reading (Parquet or CSV, a file or a folder of parts)
# ---------------------------------------------------------------------------


def table_parts(path: str) -> list[str]:
    """The data files of a table: the file itself, or every part under a
    folder (recursively, Hive-style sub-folders allowed), skipping names
    starting with `_` or `.`."""
    if os.path.isfile(path):
        return [path]
    parts = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        for name in sorted(files):
            if name.startswith(("_", ".")):
                continue
            if not name.endswith((".parquet", ".csv")):
                raise ValueError(f"{path}: unexpected file {name}")
            parts.append(os.path.join(root, name))
    if not parts:
        raise ValueError(f"{path}: no part files")
    return parts


def _arrow_column(table: pa.Table, name: str, kind: str) -> list:
    col = table.column(name)
    if kind == "ts":
        t = col.type
        if not pa.types.is_timestamp(t):
            raise ValueError(f"column {name}: expected a timestamp, got {t}")
        ints = col.cast(pa.int64()).to_pylist()
        scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}[t.unit]
        if scale is None:  # ns: round down to µs (floor, also for negatives)
            return [None if v is None else v // 1_000 for v in ints]
        return [None if v is None else v * scale for v in ints]
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.to_pylist()


def _csv_value(text: str, kind: str):
    if text == "":
        return None
    if kind in ("id", "int"):
        return int(text)
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"not a boolean: {text!r}")
        return text == "true"
    if kind == "ts":
        return parse_instant_us(text)
    return text


def read_table(path: str, schema: dict[str, str]) -> dict[str, list]:
    """Read the contract's columns of one table as Python lists; an absent
    optional column is all None (its default is applied by the caller)."""
    out: dict[str, list] = {name: [] for name in schema}
    for part in table_parts(path):
        if part.endswith(".parquet"):
            t = pq.read_table(part)
            n = t.num_rows
            for name, kind in schema.items():
                if name in t.column_names:
                    out[name].extend(_arrow_column(t, name, kind))
                else:
                    out[name].extend([None] * n)
        else:
            with open(part, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None) or []
                idx = {name: i for i, name in enumerate(header)}
                for row in reader:
                    for name, kind in schema.items():
                        i = idx.get(name)
                        out[name].append(None if i is None else _csv_value(row[i], kind))
    return out


def has_column(path: str, name: str) -> bool:
    """Whether the table's parts have column `name` (the first part says)."""
    part = table_parts(path)[0]
    if part.endswith(".parquet"):
        return name in pq.read_schema(part).names
    with open(part, newline="", encoding="utf-8") as fh:
        return name in (next(csv.reader(fh), None) or [])


def rows(table: dict[str, list]):
    """Iterate a column dict row by row as tuples (in schema order)."""
    return zip(*table.values())


def default(value, fallback):
    return fallback if value is None else value


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


def load_job(config_path: str, as_of_arg: str | None):
    with open(config_path, "rb") as fh:
        job = tomllib.load(fh)
    base = os.path.dirname(os.path.abspath(config_path))
    inputs = {
        name: os.path.join(base, rel) for name, rel in job.get("inputs", {}).items()
    }
    model = dict(MODEL_DEFAULTS, **job.get("model", {}))
    sel = dict(SELECTION_DEFAULTS, **job.get("selection", {}))
    if model["name"] != "social_v1":
        raise ValueError(f"model {model['name']!r}: only social_v1 is implemented")
    if as_of_arg is not None:
        as_of = parse_instant_us(as_of_arg, whole_seconds=True)
    elif "as_of" in job.get("run", {}):
        as_of = as_of_from_toml(job["run"]["as_of"])
    else:  # default: today 00:00 UTC
        today = datetime.now(timezone.utc).date()
        as_of = as_of_from_toml(today)
    return inputs, model, sel, as_of


# ---------------------------------------------------------------------------
# The model and the selection
# ---------------------------------------------------------------------------


def expected_slots(inputs: dict[str, str], model: dict, sel: dict, as_of: int):
    """All expected slot rows, as a dict (user_id, slot) -> row dict."""
    lookback_us = int(model["lookback_days"]) * DAY_US
    window_start = as_of - lookback_us
    fatigue_start = as_of - int(model["fatigue_days"]) * DAY_US
    half_life = float(model["half_life_days"])
    mutual_bonus = float(model["mutual_bonus"])
    w_proof = float(model["w_proof"])
    w_buyers = float(model["w_buyers"])
    w_pop = float(model["w_popularity"])
    w_price = float(model["w_price"])
    fatigue_max = int(model["fatigue_max_impressions"])
    positions = [int(p) for p in sel["positions"]]
    min_buyers = int(sel["min_buyers"])
    min_score = float(sel["min_score"])
    max_per_merchant = int(sel["max_per_merchant"])
    max_per_category = int(sel["max_per_category"])
    max_shown = int(sel["max_buyers_shown"])
    sensitive = set(model["sensitive_categories"])

    def read(name):
        path = inputs.get(name)
        if path is None:
            if name in OPTIONAL_TABLES:
                return None
            raise ValueError(f"[inputs] {name} is required")
        return read_table(path, SCHEMAS[name])

    # --- follows: one edge per (follower, followee), self-follows dropped,
    # muted if any of its rows is muted.
    edge_muted: dict[tuple[int, int], bool] = {}
    for fr, fe, muted in rows(read("follows")):
        if fr == fe:
            continue
        key = (fr, fe)
        edge_muted[key] = edge_muted.get(key, False) or bool(default(muted, False))
    # "f also follows u" for u -> f: with a followed_back column, true when
    # any of the (u, f) rows says true (a null is false) and the reverse
    # rows are not consulted; without it, the row (f, u) exists.
    if has_column(inputs["follows"], "followed_back"):
        back_schema = {"follower_id": "id", "followee_id": "id", "followed_back": "bool"}
        said_back: set[tuple[int, int]] = set()
        for fr, fe, back in rows(read_table(inputs["follows"], back_schema)):
            if back:
                said_back.add((fr, fe))

        def follows_back(u: int, f: int) -> bool:
            return (u, f) in said_back

    else:

        def follows_back(u: int, f: int) -> bool:
            return (f, u) in edge_muted
    followees: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    for (fr, fe), muted in edge_muted.items():
        followees[fr].append((fe, muted))

    # --- products (the catalog).
    catalog: dict[int, tuple[int, int, str | None, bool]] = {}
    for pid, mid, price, cat, avail in rows(read("products")):
        catalog[pid] = (mid, price, cat, bool(default(avail, True)))

    # --- users: flags only; a flag holds if any row of the user says so.
    opted_out: set[int] = set()
    suspended: set[int] = set()
    hides: set[int] = set()  # never vouch, never named; still in popularity
    users = read("users")
    if users is not None:
        for uid, opt, susp, hide in rows(users):
            if default(opt, False):
                opted_out.add(uid)
            if default(susp, False):
                suspended.add(uid)
            if default(hide, False):
                hides.add(uid)

    # --- blocks: a block either way, stored as both ordered pairs.
    blocked: set[tuple[int, int]] = set()
    blocks = read("blocks")
    if blocks is not None:
        for a, b in rows(blocks):
            blocked.add((a, b))
            blocked.add((b, a))

    # --- purchases (catalog products only; each row is its own event).
    supp_latest: dict[int, dict[int, int]] = defaultdict(dict)  # buyer -> p -> t
    window_buyers: dict[int, set[int]] = defaultdict(set)  # p -> buyers (G_p)
    paid_logs: dict[int, list[float]] = defaultdict(list)  # u -> ln(price paid)
    owned: set[tuple[int, int]] = set()  # (u, p) bought before as_of
    for buyer, pid, t, vis, price, refunded in rows(read("purchases")):
        prod = catalog.get(pid)
        if prod is None or default(refunded, False):
            continue
        if t < as_of:
            owned.add((buyer, pid))
        if not (window_start <= t < as_of):
            continue
        window_buyers[pid].add(buyer)
        paid = prod[1] if price is None or price == 0 else price
        paid_logs[buyer].append(math.log(float(paid)))
        if vis in ("public", "followers") and prod[3]:
            latest = supp_latest[buyer]
            if t > latest.get(pid, t - 1):
                latest[pid] = t

    # --- impressions in the fatigue window: counts and clicks per (u, p).
    shown: dict[tuple[int, int], int] = defaultdict(int)
    clicked: set[tuple[int, int]] = set()
    impressions = read("impressions")
    if impressions is not None:
        for uid, pid, t, click in rows(impressions):
            if fatigue_start <= t < as_of:
                shown[(uid, pid)] += 1
                if default(click, False):
                    clicked.add((uid, pid))

    def fatigued(u: int, p: int) -> bool:
        return shown.get((u, p), 0) >= fatigue_max and (u, p) not in clicked

    # --- m_u: median of ln(price paid) over u's window purchases.
    def median_log_price(u: int) -> float | None:
        vals = sorted(paid_logs.get(u, ()))
        if not vals:
            return None
        k = len(vals)
        if k % 2:
            return vals[k // 2]
        return (vals[k // 2 - 1] + vals[k // 2]) / 2.0

    expected: dict[tuple[int, int], dict] = {}
    for u in sorted(followees):  # users scored: followers with a non-self follow
        if u in opted_out or u in suspended:
            continue
        # Supporting buyers per product: p -> [(f, t_latest)].
        support: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for f, muted in followees[u]:
            if muted or f in suspended or f in hides or (u, f) in blocked:
                continue
            for p, t in supp_latest.get(f, {}).items():
                support[p].append((f, t))
        if not support:
            continue
        m_u = median_log_price(u)

        candidates = []  # (score, p, n, shown buyer ids)
        for p, buyers in support.items():
            if (u, p) in owned or fatigued(u, p) or catalog[p][2] in sensitive:
                continue
            buyers.sort()  # ascending buyer_id
            proof = 0.0
            weighted = []  # (rounded tie*recency, f)
            for f, t in buyers:
                age_days = float(as_of - t) / 86_400_000_000.0
                recency = 0.5 ** (age_days / half_life)
                tie = 1.0 + mutual_bonus if follows_back(u, f) else 1.0
                w = tie * recency
                proof += w
                weighted.append((round9(w), f))
            n = len(buyers)
            mid, price, cat, _ = catalog[p]
            popularity = math.log(1.0 + len(window_buyers[p]))
            price_fit = 0.0 if m_u is None else -abs(math.log(float(price)) - m_u)
            score = (
                w_proof * proof
                + w_buyers * math.log(1.0 + n)
                + w_pop * popularity
                + w_price * price_fit
            )
            score = round9(score)
            if n < min_buyers or not score >= min_score:
                continue
            weighted.sort(key=lambda x: (-x[0], x[1]))
            top = [f for _, f in weighted[:max_shown]]
            candidates.append((score, p, n, top))

        # Walk by score desc, product asc, honouring the caps.
        candidates.sort(key=lambda c: (-c[0], c[1]))
        per_merchant: dict[int, int] = defaultdict(int)
        per_category: dict[str, int] = defaultdict(int)
        slot = 0
        for score, p, n, top in candidates:
            if slot == len(positions):
                break
            mid, _, cat, _ = catalog[p]
            if per_merchant[mid] + 1 > max_per_merchant:
                continue
            if cat is not None and per_category[cat] + 1 > max_per_category:
                continue
            per_merchant[mid] += 1
            if cat is not None:
                per_category[cat] += 1
            slot += 1
            expected[(u, slot)] = {
                "user_id": u,
                "slot": slot,
                "position": positions[slot - 1],
                "product_id": p,
                "merchant_id": mid,
                "score": score,
                "buyer_count": n,
                "top_buyer_ids": top,
            }
    return expected


# ---------------------------------------------------------------------------
# Reading boughtby's output and comparing
# ---------------------------------------------------------------------------

COMPARED = (
    "position", "product_id", "merchant_id", "score", "buyer_count", "top_buyer_ids",
)


def published_slots(out_dir: str):
    with open(os.path.join(out_dir, "LATEST"), encoding="utf-8") as fh:
        run_id = fh.read().strip()
    slots_dir = os.path.join(out_dir, run_id, "slots")
    parts = sorted(f for f in os.listdir(slots_dir) if f.endswith(".parquet"))
    got: dict[tuple[int, int], dict] = {}
    extra_problems = []
    for part in parts:
        table = pq.read_table(os.path.join(slots_dir, part))
        prev = None
        for r in table.to_pylist():
            key = (r["user_id"], r["slot"])
            if prev is not None and key <= prev:
                extra_problems.append(f"{part}: rows not sorted by user_id, slot at {key}")
            prev = key
            if key in got:
                extra_problems.append(f"{part}: duplicate row for user {key[0]} slot {key[1]}")
            got[key] = r
    return run_id, got, extra_problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="the job TOML")
    ap.add_argument("--output", required=True, help="the folder boughtby published into")
    ap.add_argument("--as-of", help="overrides [run] as_of")
    args = ap.parse_args(argv)

    try:
        inputs, model, sel, as_of = load_job(args.config, args.as_of)
        expected = expected_slots(inputs, model, sel, as_of)
        run_id, got, problems = published_slots(args.output)
    except (OSError, ValueError, KeyError) as e:
        print(f"crosscheck: {e}", file=sys.stderr)
        return 2

    mismatches: list[str] = list(problems)
    max_diff = 0.0
    compared = 0
    for key in sorted(set(expected) | set(got)):
        e, g = expected.get(key), got.get(key)
        if g is None:
            mismatches.append(
                f"user {key[0]} slot {key[1]}: missing; expected product {e['product_id']} "
                f"score {e['score']!r} buyers {e['buyer_count']} top {e['top_buyer_ids']}"
            )
            continue
        if e is None:
            mismatches.append(
                f"user {key[0]} slot {key[1]}: unexpected row product {g['product_id']} "
                f"score {g['score']!r} buyers {g['buyer_count']} top {g['top_buyer_ids']}"
            )
            continue
        compared += 1
        if isinstance(g["score"], float):
            max_diff = max(max_diff, abs(g["score"] - e["score"]))
        diffs = [f"{c}: expected {e[c]!r} got {g[c]!r}" for c in COMPARED if e[c] != g[c]]
        # valid_from / valid_until are as_of and as_of + 1 day (epoch µs here).
        for col, want in (("valid_from", as_of), ("valid_until", as_of + DAY_US)):
            have = g.get(col)
            if have is not None and _epoch_us(have) != want:
                diffs.append(f"{col}: expected {want} µs got {_epoch_us(have)} µs")
        if diffs:
            detail = ", ".join(diffs)
            mismatches.append(f"user {key[0]} slot {key[1]} (product {e['product_id']}): {detail}")

    print(f"run {run_id}: {len(expected)} rows expected, {len(got)} published, "
          f"{compared} compared")
    print(f"max |score diff| over compared rows: {max_diff!r}")
    if not mismatches:
        print("OK: all rows equal")
        return 0
    print(f"{len(mismatches)} mismatches; the first {min(20, len(mismatches))}:")
    for m in mismatches[:20]:
        print("  " + m)
    return 1


if __name__ == "__main__":
    sys.exit(main())
