"""Benchmark: how soon the drift monitor sees an injected drift, and how often it cries wolf.

For each seed, two generated streams of the same size (``streams.synthetic``): one where 80% of
the users' tastes change at ``--drift-at``, one stationary. Each runs through the prequential
loop of ``coldstream evaluate`` (the worker runs the same loop), with the student and River,
watched by :class:`models.monitor.DriftMonitor` with its default settings. Per detector:

- ``detected``: drift streams on which it fired at or after the drift point;
- ``delay``: interactions from the drift point to its first detection there (median, max);
- ``false alarms``: its detections on the stationary streams, and before the drift point on
  the drift streams.

With ``--adapt``, the student alone on each drift stream, without and with
:class:`models.monitor.Adaptation` (what ``coldstream evaluate --adapt`` does): its Recall@20
over the 2,000 ranked events after the drift point, and from the drift point to the end.

Run: ``python -m bench.bench_drift --seeds 5,6,7,8,9,10 --adapt`` (``--json`` keeps the rows).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from core.records import Item, Record, User
from core.threads import limit_threads
from models.catalog import Catalog
from models.evaluation import EvalObserver, Prequential, run_prequential
from models.monitor import Adaptation, Detection, DriftMonitor
from models.registry import build_models
from models.teacher import load_teacher
from streams.datasets import open_dataset
from streams.synthetic import SyntheticConfig, generate, write_jsonl

AFTER = 2000  # ranked events after the drift point that the short-term recall looks at


@dataclass
class Stream:
    records: list[Record]
    embeddings: dict[tuple[str, str], Any]
    dim: int
    drift_index: int | None


@dataclass
class Run:
    log: list[Detection]
    hits: list[tuple[int, bool]]  # (interaction index, hit) of the student's ranked events
    detectors: list[str]  # every detector the monitor ran, as model/detector or data/feature


def _name(d: Detection) -> str:
    return f"{d.model or 'data'}/{d.detector}"


def make_stream(args: argparse.Namespace, seed: int, drift: bool) -> Stream:
    cfg = SyntheticConfig(
        users=args.users,
        items=args.items,
        events=args.events,
        seed=seed,
        drift_at=args.drift_at if drift else None,
    )
    data = generate(cfg)
    with tempfile.TemporaryDirectory() as tmp:  # read back as `coldstream evaluate` reads it
        write_jsonl(data, Path(tmp))
        records = list(open_dataset(Path(tmp)).records())
    teacher = load_teacher(None if args.teacher in ("", "default") else args.teacher)
    texts = [r for r in records if isinstance(r, Item | User)]
    return Stream(records, teacher.embed_records(texts), teacher.dim, data.meta["drift_index"])


def watch(stream: Stream, names: list[str], adapt: Adaptation | None = None) -> Run:
    catalog = Catalog(stream.dim)
    models = build_models(names, catalog, threshold=None, seed=0)
    ev = Prequential(models, catalog, k=20, window=1000)
    monitor = DriftMonitor(models, catalog, adapt=adapt)
    monitor.attach(ev)
    hits: list[tuple[int, bool]] = []

    class StudentHits(EvalObserver):
        def ranked(self, model: str, hit: bool, score: float) -> None:
            if model == "student":
                hits.append((monitor.events - 1, hit))

    ev.observers.append(StudentHits())
    run_prequential(stream.records, ev, stream.embeddings)
    detectors = [_name(Detection(m, d, 0, 0)) for m, d in monitor.detectors()]
    return Run(list(monitor.log), hits, detectors)


def detector_rows(runs: list[tuple[Run, Run, int]]) -> list[dict[str, Any]]:
    """One row per detector: (stationary run, drift run, drift index) per seed."""
    rows = []
    for n in sorted(runs[0][0].detectors):
        delays, stationary, before = [], 0, 0
        for st, dr, at in runs:
            stationary += sum(_name(d) == n for d in st.log)
            before += sum(_name(d) == n and d.events < at for d in dr.log)
            after = [d.events - at for d in dr.log if _name(d) == n and d.events >= at]
            if after:
                delays.append(after[0])
        rows.append(
            {
                "detector": n,
                "detected": f"{len(delays)}/{len(runs)}",
                "delay_median": statistics.median(delays) if delays else None,
                "delay_max": max(delays) if delays else None,
                "false_alarms_stationary": stationary,
                "false_alarms_before_drift": before,
            }
        )
    return rows


def recall(run: Run, start: int, count: int | None = None) -> float:
    hits = [h for i, h in run.hits if i >= start][:count]
    return float(np.mean(hits)) if hits else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="5,6,7,8,9,10", help="comma-separated dataset seeds")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=800)
    ap.add_argument("--drift-at", type=float, default=0.5)
    ap.add_argument("--teacher", default="hashing", help="'hashing' (fast) or 'default' (MiniLM)")
    ap.add_argument("--adapt", action="store_true", help="also measure the adaptation effect")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    runs, adapt_rows = [], []
    with limit_threads(1):
        for seed in seeds:
            drifted = make_stream(args, seed, drift=True)
            at = drifted.drift_index
            assert at is not None
            steady = watch(make_stream(args, seed, drift=False), ["student", "river"])
            runs.append((steady, watch(drifted, ["student", "river"]), at))
            if args.adapt:
                plain = watch(drifted, ["student"])
                boosted = watch(drifted, ["student"], adapt=Adaptation())
                adapt_rows.append(
                    {
                        "seed": seed,
                        "detections": sum(d.model == "student" for d in boosted.log),
                        "recall_after_2000_plain": recall(plain, at, AFTER),
                        "recall_after_2000_adapt": recall(boosted, at, AFTER),
                        "recall_after_plain": recall(plain, at),
                        "recall_after_adapt": recall(boosted, at),
                    }
                )
            print(f"seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = detector_rows(runs)
    print(
        f"\n{len(seeds)} seeds ({args.seeds}), {args.events:,} interactions, drift at "
        f"{args.drift_at}; delay in interactions after the drift point"
    )
    print(
        f"{'detector':34} {'detected':>8} {'delay med':>9} {'delay max':>9} "
        f"{'FA stat.':>8} {'FA pre':>6}"
    )
    for r in rows:
        med = "-" if r["delay_median"] is None else f"{r['delay_median']:.0f}"
        mx = "-" if r["delay_max"] is None else f"{r['delay_max']}"
        print(
            f"{r['detector']:34} {r['detected']:>8} {med:>9} {mx:>9} "
            f"{r['false_alarms_stationary']:>8} {r['false_alarms_before_drift']:>6}"
        )
    if adapt_rows:
        print(f"\nstudent Recall@20 after the drift point (first {AFTER:,} ranked / to the end)")
        for a in adapt_rows:
            print(
                f"seed {a['seed']}: plain {a['recall_after_2000_plain']:.3f} / "
                f"{a['recall_after_plain']:.3f}, --adapt {a['recall_after_2000_adapt']:.3f} / "
                f"{a['recall_after_adapt']:.3f} ({a['detections']} detections)"
            )
        for key in ("recall_after_2000", "recall_after"):
            plain = statistics.mean(a[f"{key}_plain"] for a in adapt_rows)
            boosted = statistics.mean(a[f"{key}_adapt"] for a in adapt_rows)
            print(f"mean {key}: plain {plain:.4f}, --adapt {boosted:.4f} ({boosted - plain:+.4f})")
    print(f"took {time.perf_counter() - t0:.0f} s")
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps({"detectors": rows, "adapt": adapt_rows}, option=orjson.OPT_INDENT_2)
        )


if __name__ == "__main__":
    main()
