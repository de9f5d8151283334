"""Benchmark: top-20 latency and throughput of a snapshot, in the ONNX session and over HTTP.

Synthetic catalogs of 10k, 100k and 1M items are written as real snapshots (the exporter's own
graph: ``query @ items.T + bias``, the co-occurrence boosts, then ``TopK``), at the width the
student serves by default (``exact``: 64 id/content + 32 teacher-projection columns,
:attr:`StudentConfig.width`), every item with random co-occurrence neighbours and every user
with 20 recent items. ``cooc boosts``: one request's boosts computed from the memory (what
``serve`` does on a user's first request to a snapshot), at the worst case the memory allows.

``session``: one ONNX Runtime session, batches of 1 and 256 query rows, latency per run (p50,
p99) and users scored per second. ``http``: ``coldstream serve`` in its own process, a client
with one keep-alive connection sending ``GET /recommend?k=20`` one at a time (p50/p99 of the
round trip) and ``POST /recommend`` with 256 users (users/s).

Run: ``python -m bench.bench_serving`` (``--sizes 10000,100000`` to skip 1M, ``--json FILE``).
Prints which execution provider ran: on a machine with a working CUDA the session runs on it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

from bench.common import show
from coldstream.children import Child
from models.cooc import top_boost, window_scores
from models.student import StudentConfig
from serving.scorer import Scorer
from snapshotlib.store import SnapshotStore
from snapshotlib.tables import CoocTables, ServingTables

WIDTH = StudentConfig().width  # id/content + teacher projection + the new-user column
USERS = 2000


def cooc_tables(n: int, per_item: int, rng: np.random.Generator) -> CoocTables:
    """A co-occurrence memory in which every item has ``per_item`` random neighbours."""
    indptr = np.arange(n + 1, dtype=np.int64) * per_item
    rows = rng.integers(0, n, n * per_item, dtype=np.int32)
    counts = rng.integers(1, 20, n * per_item).astype(np.float32)
    return CoocTables(indptr, rows, counts, rng.integers(1, 1000, n).astype(np.float32))


def tables(n: int, width: int, seed: int = 0) -> ServingTables:
    """Random rows, every user with 20 recent items, every item with neighbours (100, or
    fewer for the largest catalogs so the memory stays at 20M pairs)."""
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((n, width), dtype=np.float32) / np.sqrt(width)
    queries = rng.standard_normal((USERS + 1, width), dtype=np.float32)
    per_item = max(1, min(100, 20_000_000 // n))
    cfg = StudentConfig()
    cooc = {
        "weight": cfg.cooc_weight,
        "alpha": cfg.cooc_alpha,
        "window": cfg.cooc_window,
        "top": cfg.cooc_top,
        "impute": cfg.cooc_impute,
        "pairs": n * per_item,
    }
    return ServingTables(
        item_ids=[f"i{i}" for i in range(n)],
        items=items,
        bias=rng.standard_normal(n, dtype=np.float32) * 0.1,
        user_ids=[f"u{u}" for u in range(USERS)],
        queries=queries,
        history=rng.integers(0, n, (USERS, 20), dtype=np.int32),
        dims={"items": n, "users": USERS, "width": width, "cooc": cooc},
        cooc=cooc_tables(n, per_item, rng),
    )


def bench_boosts(budget_s: float) -> dict[str, float]:
    """A request's co-occurrence boosts, uncached, at the worst the memory allows: 10 window
    items with ``2 * cooc_neighbours - 1`` neighbours each."""
    cfg = StudentConfig()
    rng = np.random.default_rng(3)
    c = cooc_tables(100_000, 2 * cfg.cooc_neighbours - 1, rng)
    n = c.n.astype(np.float64)
    lat: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < budget_s or len(lat) < 20:
        window = rng.integers(0, 100_000, cfg.cooc_window).tolist()
        t = time.perf_counter()
        idx, s = window_scores(window, c.neighbours, n, cfg.cooc_alpha)
        top_boost(idx, s, weight=cfg.cooc_weight, top=cfg.cooc_top)
        lat.append(time.perf_counter() - t)
    return {"p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3}


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def bench_session(
    scorer: Scorer,
    batch: int,
    budget_s: float,
    *,
    runs: int = 5000,
    warmup: int = 2,
    least: int = 20,
) -> dict[str, float]:
    """p50/p99 of one ``topk()`` of ``batch`` random users (rows drawn outside the timer) and
    users/s, after ``warmup`` untimed calls: samples until ``budget_s`` has passed (at least
    ``least``, at most ``runs``)."""
    rng = np.random.default_rng(1)
    q = scorer.tables.queries
    for _ in range(warmup):
        rows = rng.integers(0, USERS, batch).tolist()
        scorer.topk(q[rows], *scorer.boost_inputs(rows))
    lat: list[float] = []
    start = time.perf_counter()
    while len(lat) < runs and (time.perf_counter() - start < budget_s or len(lat) < least):
        rows = rng.integers(0, USERS, batch).tolist()
        t = time.perf_counter()
        scorer.topk(q[rows], *scorer.boost_inputs(rows))  # boosts: cached after a user's first
        lat.append(time.perf_counter() - t)
    return {
        "p50_ms": pct(lat, 50) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "users_per_s": batch * len(lat) / sum(lat),
        "runs": len(lat),
    }


def bench_http(snapshot_dir: Path, requests: int, budget_s: float) -> dict[str, float]:
    env = {
        **os.environ,
        "COLDSTREAM_SNAPSHOT_DIR": str(snapshot_dir),
        "COLDSTREAM_SERVE_POLL_S": "5",
    }
    serve = Child(
        "serve",
        ["serve", "--host", "127.0.0.1", "--port", "0", "--threads", "1", "--no-announcements"],
        env,
        snapshot_dir.parent / f"{snapshot_dir.name}-serve.log",
    )
    try:
        port = serve.port()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        deadline = time.monotonic() + 120
        while True:  # wait for the snapshot to be loaded
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not load the snapshot in 120 s")
            time.sleep(0.2)
        rng = np.random.default_rng(2)
        lat: list[float] = []
        start = time.perf_counter()
        while len(lat) < requests and time.perf_counter() - start < budget_s:
            t = time.perf_counter()
            conn.request("GET", f"/recommend?user_id=u{rng.integers(0, USERS)}&k=20")
            resp = conn.getresponse()
            body = resp.read()
            lat.append(time.perf_counter() - t)
            assert resp.status == 200, body
        lat = lat[10:]
        users = [f"u{u}" for u in range(256)]
        payload = orjson.dumps({"user_ids": users, "k": 20})
        runs: list[float] = []
        start = time.perf_counter()
        while len(runs) < 5 or (time.perf_counter() - start < budget_s / 2 and len(runs) < 200):
            t = time.perf_counter()
            conn.request("POST", "/recommend", body=payload)
            resp = conn.getresponse()
            resp.read()
            runs.append(time.perf_counter() - t)
        return {
            "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3,
            "requests_per_s": len(lat) / sum(lat),
            "batch256_users_per_s": 256 * len(runs) / sum(runs),
        }
    finally:
        serve.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--budget", type=float, default=4.0, help="seconds per measurement")
    ap.add_argument("--http-requests", type=int, default=3000)
    ap.add_argument("--http-sizes", default="100000")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    http_sizes = {int(s) for s in args.http_sizes.split(",") if s}
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "onnxruntime": ort.__version__,
        "providers_available": ",".join(ort.get_available_providers()),
    }
    widths = {"exact": WIDTH}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for label, width in widths.items():
                root = Path(tmp) / f"{label}-{n}"
                store = SnapshotStore(root)
                t = time.perf_counter()
                store.write(tables(n, width), k_max=20, events_seen=0, newest_event_ts=None)
                results[f"{label} {n:>7} export_s"] = time.perf_counter() - t
                t = time.perf_counter()
                scorer = Scorer(store.open(), provider="auto", threads=0)
                results[f"{label} {n:>7} load_s"] = time.perf_counter() - t
                results["provider_used"] = scorer.provider
                for batch in (1, 256):
                    r = bench_session(scorer, batch, args.budget)
                    for key, value in r.items():
                        results[f"{label} {n:>7} session b{batch} {key}"] = value
                del scorer
                if n in http_sizes:
                    for key, value in bench_http(root, args.http_requests, args.budget * 5).items():
                        results[f"{label} {n:>7} http {key}"] = value
                    print(f"done {label} {n}", file=sys.stderr)
                import shutil

                shutil.rmtree(root)
    for key, value in bench_boosts(args.budget).items():
        results[f"cooc boosts, uncached, worst case {key}"] = value
    show(results, args.json)


if __name__ == "__main__":
    main()
