"""Benchmark: ``coldstream worker`` as one process against the same worker as several torchrun
ranks, on the same events, in one run: rate, synchronisation cost and prequential quality.

    python -m bench.bench_ranks DATASET [--ranks 2] [--partitions 4] [--sync-records 256]
        [--eval-every 1] [--json out.json]

On the embedded broker, ``DATASET`` (a generated directory or MovieLens) is loaded once into
topics of ``--partitions`` partitions. Then, each from an empty checkpoint directory:

- ``1 process (Faust)``: ``coldstream worker --role student`` (no torchrun);
- ``1 rank`` and ``N ranks``: ``python -m torch.distributed.run --standalone --nproc-per-node
  1`` (or ``N``) ``-m coldstream.cli worker --role student``: the same loop, one or N ranks.

Each is timed from its ``/metrics`` answering (the teacher loaded) until the interactions
applied, summed over ranks, reach the dataset's count. The rate is interactions over that
time; the ratios are the N ranks' rate over the one rank's and over the one process's.
Quality is the prequential Recall@20 per slice over all interactions, from the sums in the
last checkpoint (or cut), with every positive ranked (``--eval-every 1``). Also reported, from
the ranks' ``/metrics``: synchronisation points, seconds and bytes per point, by part, and the
teacher's seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import show
from bench.ranks_run import applied, checkpoint_recall, launch, scrape, stop, wait_for
from core.settings import Settings
from streams.broker import EmbeddedBroker, free_port
from streams.datasets import open_dataset
from streams.load import publish_dataset
from streams.topics import ensure_topics


def run_one(
    settings: Settings,
    ranks: int,
    total: int,
    root: Path,
    args: tuple[str, ...],
    torchrun: bool = True,
) -> dict[str, Any]:
    """One worker (``ranks`` torchrun ranks, or one process without torchrun) over the
    loaded topics."""
    port = free_port()
    ports = [port + r for r in range(ranks)]
    name = f"{ranks}-{'ranks' if torchrun else 'process'}"
    ckpt = root / f"ckpt-{name}"
    proc = launch(
        settings,
        ranks=ranks,
        checkpoint_dir=ckpt,
        snapshot_dir=root / f"snap-{name}",
        metrics_port=port,
        args=args,
        log=root / f"worker-{name}.log",
        torchrun=torchrun,
    )
    try:
        wait_for(lambda: applied(ports) >= 0, 300, "the worker's /metrics")
        seconds = wait_for(lambda: applied(ports) >= total, 3600, "every interaction applied")
        pages = [scrape(p) for p in ports]
    finally:
        stop(proc)
    out: dict[str, Any] = {"seconds": seconds, "rate": total / seconds}
    out["recall"] = checkpoint_recall(ckpt / "student")

    def total_of(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return sum(page.get(key, 0.0) for page in pages)

    out["teacher_s"] = total_of("coldstream_teacher_encode_seconds_sum")
    if torchrun:
        points = total_of("coldstream_syncs_total") / ranks
        out["points"] = points
        out["ms_per_point"] = 1e3 * total_of("coldstream_sync_seconds_sum") / ranks / points
        out["bytes_per_point"] = total_of("coldstream_sync_bytes_total") / ranks / points
        parts = ("agree", "catalog", "watermark", "release", "wait", "events", "dense", "rows")
        out["ms_by_part"] = {
            p: round(
                1e3 * total_of("coldstream_sync_part_seconds_total", part=p) / ranks / points, 2
            )
            for p in (*parts, "cooc", "freshness", "caches")
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--sync-records", type=int, default=128)
    ap.add_argument("--sync-s", type=float, default=None)
    ap.add_argument("--eval-every", type=int, default=1)
    ap.add_argument("--no-process", action="store_true", help="skip the one-process row")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.ranks < 2 or a.partitions < a.ranks:
        ap.error("--ranks must be >= 2 and --partitions >= --ranks")
    dataset = open_dataset(a.dataset)
    total = dataset.counts()["interaction"]
    args: tuple[str, ...] = (
        "--eval-every",
        str(a.eval_every),
        "--sync-records",
        str(a.sync_records),
    )
    if a.sync_s is not None:
        args += ("--sync-s", str(a.sync_s))
    results: dict[str, Any] = {"interactions": total, "partitions": a.partitions}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            broker=broker.bootstrap, topic_prefix="bench", partitions=a.partitions
        )
        ensure_topics(settings)
        t = time.perf_counter()
        publish_dataset(dataset, settings)
        results["load_s"] = time.perf_counter() - t
        plain = (
            None
            if a.no_process
            else run_one(settings, 1, total, Path(tmp), args[:2], torchrun=False)
        )
        one = run_one(settings, 1, total, Path(tmp), args)
        many = run_one(settings, a.ranks, total, Path(tmp), args)
    rows = (("1 process (Faust)", plain), ("1 rank", one), (f"{a.ranks} ranks", many))
    for name, res in rows:
        if res is None:
            continue
        for key, value in res.items():
            if key == "recall":
                for sl, r in value.items():
                    results[f"recall@20 {sl}: {name}"] = round(r, 4)
            else:
                results[f"{key}: {name}"] = value
    results[f"ratio: {a.ranks} ranks / 1 rank"] = round(many["rate"] / one["rate"], 2)
    if plain is not None:
        results[f"ratio: {a.ranks} ranks / 1 process"] = round(many["rate"] / plain["rate"], 2)
    show(results, a.json)


if __name__ == "__main__":
    main()
