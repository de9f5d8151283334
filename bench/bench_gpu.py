"""Benchmark: the Scorer on CUDA against the Scorer on the CPU, for answers and for latency.

Snapshots are built like ``bench.bench_serving`` (its ``tables()``: 10k, 100k and 1M items,
the ``exact`` rows at the student's default width, 64 + 32). For each, one ``Scorer`` on CUDA
and one on the CPU:

- read back: the provider the CUDA session really runs on and its ``use_tf32`` option;
- IO binding: which session methods one ``topk()`` calls (``io_binding`` and
  ``run_with_iobinding`` on CUDA, ``run`` on the CPU);
- parity: 64 known users and the cold row in one batch, and 3 rows one at a time, on both:
  top-20 lists equal in order, largest relative score difference, ``allclose(rtol=1e-4)``, and
  ``recommend()`` giving the same ids;
- latency: batches of 1 and 256 rows, p50/p99 of one ``topk()`` and users scored per second.

Hot swap: a client thread scores on one CUDA Scorer while a second snapshot is loaded on CUDA in
another thread and swapped in by one assignment (as ``coldstream serve`` does); no call may fail.

Run: ``python -m bench.bench_gpu`` (``--sizes 10000,100000`` to skip 1M, ``--runs``,
``--json FILE``). Where ONNX Runtime cannot start CUDA it says so and exits (status 0).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.bench_serving import USERS, WIDTH, bench_session, tables
from bench.common import show
from serving.scorer import CUDA, Scorer
from snapshotlib.store import SnapshotStore

WIDTHS = {"exact": WIDTH}
F32 = np.ndarray[Any, np.dtype[np.float32]]
I64 = np.ndarray[Any, np.dtype[np.int64]]


def tf32(scorer: Scorer) -> str | None:
    """The CUDA provider's ``use_tf32`` as the session reports it (None: not on CUDA)."""
    return scorer.session.get_provider_options().get(CUDA, {}).get("use_tf32")


def session_calls(scorer: Scorer, queries: F32) -> str:
    """The session methods one ``scorer.topk(queries)`` calls, counted on the instance."""
    calls: Counter[str] = Counter()
    names = ("run", "io_binding", "run_with_iobinding")
    sess = scorer.session

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return method(*args, **kwargs)

        return call

    for name in names:
        setattr(sess, name, counted(name, getattr(sess, name)))
    try:
        scorer.topk(queries)
    finally:
        for name in names:
            delattr(sess, name)  # back to the class's methods
    return ",".join(f"{name}={n}" for name, n in sorted(calls.items()))


def parity(gpu: tuple[F32, I64], cpu: tuple[F32, I64]) -> dict[str, Any]:
    (gs, gi), (cs, ci) = gpu, cpu
    return {
        "top20_equal_rows": f"{int((gi == ci).all(axis=1).sum())}/{len(gi)}",
        "max_rel_diff": float((np.abs(gs - cs) / np.maximum(np.abs(cs), 1e-6)).max()),
        "allclose_rtol1e-4": bool(np.allclose(gs, cs, rtol=1e-4, atol=1e-5)),
    }


def one_by_one(scorer: Scorer, queries: F32) -> tuple[F32, I64]:
    parts = [scorer.topk(queries[i : i + 1]) for i in range(len(queries))]
    return np.concatenate([s for s, _ in parts]), np.concatenate([i for _, i in parts])


def bench_snapshot(root: Path, n: int, width: int, args: argparse.Namespace) -> dict[str, Any]:
    store = SnapshotStore(root)
    store.write(tables(n, width), k_max=20, events_seen=0, newest_event_ts=None)
    snap = store.open()
    res: dict[str, Any] = {}
    t = time.perf_counter()
    gpu = Scorer(snap, provider="cuda", threads=0)
    res["cuda load_s"] = time.perf_counter() - t
    cpu = Scorer(snap, provider="cpu", threads=0)
    res["cuda provider"] = gpu.provider
    res["cuda use_tf32"] = tf32(gpu)
    res["cuda topk calls"] = session_calls(gpu, snap.tables.queries[:3])
    res["cpu topk calls"] = session_calls(cpu, snap.tables.queries[:3])
    rows = np.concatenate([np.random.default_rng(7).integers(0, USERS, 64), [USERS]])
    qs = snap.tables.queries[rows]
    for key, value in parity(gpu.topk(qs), cpu.topk(qs)).items():
        res[f"parity b65 {key}"] = value
    for key, value in parity(one_by_one(gpu, qs[:3]), one_by_one(cpu, qs[:3])).items():
        res[f"parity b1 {key}"] = value
    users: list[str | None] = [*(f"u{u}" for u in range(5)), None, "nobody"]
    res["recommend same ids"] = all(
        [i for i, _ in a.items] == [i for i, _ in b.items]
        for a, b in zip(gpu.recommend(users, 20), cpu.recommend(users, 20), strict=True)
    )
    for name, scorer in (("cuda", gpu), ("cpu", cpu)):
        for batch in (1, 256):
            measured = bench_session(
                scorer, batch, args.budget, runs=args.runs, warmup=10, least=10
            )
            for key, value in measured.items():
                res[f"{name} b{batch} {key}"] = value
    return res


def hot_swap(root: Path, n: int, width: int) -> dict[str, Any]:
    store = SnapshotStore(root)
    store.write(tables(n, width, seed=0), k_max=20, events_seen=0, newest_event_ts=None)
    current = Scorer(store.open(), provider="cuda")
    store.write(tables(n, width, seed=1), k_max=20, events_seen=1, newest_event_ts=None)
    stop = threading.Event()
    seen: Counter[int] = Counter()
    errors: list[str] = []

    def client() -> None:
        rng = np.random.default_rng(3)
        while not stop.is_set():
            scorer = current  # one read per call, as a request handler would
            try:
                scorer.topk(scorer.tables.queries[rng.integers(0, USERS, 32)])
                seen[scorer.version] += 1
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")

    loaded: dict[str, Any] = {}

    def loader() -> None:
        t = time.perf_counter()
        loaded["scorer"] = Scorer(store.open(), provider="cuda")
        loaded["load_s"] = time.perf_counter() - t

    th = threading.Thread(target=client)
    th.start()
    time.sleep(0.5)
    lt = threading.Thread(target=loader)
    lt.start()
    lt.join()
    current = new = loaded["scorer"]
    time.sleep(0.5)
    stop.set()
    th.join()
    qs = new.tables.queries[:33]
    check = parity(new.topk(qs), Scorer(store.open(), provider="cpu").topk(qs))
    return {
        "v2 provider": new.provider,
        "v2 use_tf32": tf32(new),
        "v2 load_s": loaded["load_s"],
        "runs per version": ",".join(f"v{v}={c}" for v, c in sorted(seen.items())),
        "errors": len(errors),
        "first error": errors[0] if errors else "",
        **{f"v2 vs cpu {key}": value for key, value in check.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--runs", type=int, default=300, help="latency samples per measurement")
    ap.add_argument("--budget", type=float, default=6.0, help="at most seconds per measurement")
    ap.add_argument("--swap-size", type=int, default=100_000, help="0: no hot-swap check")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "onnxruntime": ort.__version__,
        "providers_available": ",".join(ort.get_available_providers()),
    }
    if hasattr(ort, "preload_dlls"):  # the CUDA/cuDNN libraries of the PyPI wheels
        try:
            ort.preload_dlls()
            results["preload_dlls"] = "called"
        except Exception as e:
            results["preload_dlls"] = f"{type(e).__name__}: {e}"
    with tempfile.TemporaryDirectory() as tmp:
        store = SnapshotStore(Path(tmp) / "probe")
        store.write(tables(1000, WIDTHS["exact"]), k_max=20, events_seen=0, newest_event_ts=None)
        results["provider_used"] = Scorer(store.open(), provider="auto").provider
        if results["provider_used"] != CUDA:
            show(results, args.json)
            print(
                f"CUDA is not available: onnxruntime {ort.__version__} runs on "
                f"{results['provider_used']} here (no GPU, or not the CUDA/cuDNN libraries it "
                "was built for); nothing measured."
            )
            return
        for n in (int(s) for s in args.sizes.split(",")):
            for label, width in WIDTHS.items():
                res = bench_snapshot(Path(tmp) / f"{label}-{n}", n, width, args)
                results.update({f"{label} {n:>7} {key}": value for key, value in res.items()})
                shutil.rmtree(Path(tmp) / f"{label}-{n}")  # 1M exact is 1.8 GB
                print(f"done {label} {n}", file=sys.stderr)
        if args.swap_size:
            res = hot_swap(Path(tmp) / "swap", args.swap_size, WIDTHS["exact"])
            results.update({f"hot_swap {args.swap_size} {k}": v for k, v in res.items()})
    show(results, args.json)


if __name__ == "__main__":
    main()
