"""One student learned by several ranks (:mod:`models.distributed`) against one rank: quality
and rate, measured in one run.

    python -m bench.bench_distributed DATASET [--ranks 2] [--partitions 4]
        [--sync-every 256] [--events N] [--whole-batch] [--json out.json]

The teacher encodes the texts once. Then the same stream is learned prequentially (rank, then
learn, as ``coldstream evaluate``) by one process, and by ``--ranks`` processes started with
``torch.multiprocessing`` on the gloo backend: each learns and ranks the interactions of the
users whose Kafka partition (murmur2 of the user id, of ``--partitions``) it owns, sees every
item and user event, and synchronises with the others every ``--sync-every`` records
(:class:`~models.distributed.StudentSync`). Each process runs one thread, as the worker does.
Reported: Recall@20 per slice of both (the ranks' sums added), the rate (interactions over the
slowest rank's time), their ratio, and the cost of a synchronisation point.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bench.common import first_events, show
from core.records import Interaction, Record
from core.threads import limit_threads
from models.catalog import Catalog
from models.distributed import StudentSync, owner, rank_config
from models.evaluation import SLICES, Prequential, run_prequential
from models.registry import build_models
from models.student import StudentConfig


def learn(
    records: list[Record],
    embeddings: dict[tuple[str, str], Any],
    dim: int,
    threshold: float | None,
    *,
    rank: int = 0,
    world: int = 1,
    partitions: int = 4,
    sync_every: int = 256,
    seed: int = 0,
    whole_batch: bool = False,
) -> dict[str, Any]:
    """One rank's pass over the stream; with ``world > 1`` inside an initialised process
    group. Returns its metric sums, evaluated counts, time and synchronisation cost."""
    catalog = Catalog(dim)
    cfg = StudentConfig() if world == 1 or whole_batch else rank_config(StudentConfig(), world)
    student = build_models(["student"], catalog, threshold=threshold, seed=seed, config=cfg)
    ev = Prequential(student, catalog, k=20, threshold=threshold)
    sync = StudentSync(student["student"]) if world > 1 else None  # type: ignore[arg-type]

    def point(done: int) -> None:
        if sync is not None and done % sync_every == 0:
            sync.sync()

    def owns(user: str) -> bool:
        return owner(user, partitions, world) == rank

    t = time.perf_counter()
    if sync is None:
        run_prequential(records, ev, embeddings)
    else:
        run_prequential(records, ev, embeddings, owns=owns, after=point)
    student["student"].flush()
    if sync is not None:
        sync.sync()
    seconds = time.perf_counter() - t
    sums, counts = ev.totals()
    out: dict[str, Any] = {"sums": sums, "counts": counts, "seconds": seconds, "learned": ev.events}
    if sync is not None:
        st = sync.stats
        out.update(syncs=st.syncs, sync_s=st.seconds, sync_bytes=st.bytes, parts=st.parts)
    return out


def _rank_main(
    rank: int, world: int, port: int, args: tuple[Any, ...], kw: dict[str, Any], out: Any
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        with limit_threads(1):
            res = learn(*args, rank=rank, world=world, **kw)
        out.put((rank, res))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def learn_ranks(world: int, *args: Any, **kw: Any) -> list[dict[str, Any]]:
    """:func:`learn` on ``world`` processes (gloo on this host); their results by rank."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    procs = [
        ctx.Process(target=_rank_main, args=(r, world, port, args, kw, out)) for r in range(world)
    ]
    for p in procs:
        p.start()
    results = dict(out.get() for _ in procs)
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a rank exited with {p.exitcode}")
    return [results[r] for r in range(world)]


def recall(results: list[dict[str, Any]]) -> dict[str, float]:
    sums = sum(r["sums"] for r in results)
    counts = sum(r["counts"] for r in results)
    return {s: float(sums[0, 0, i] / max(counts[i], 1)) for i, s in enumerate(SLICES)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--sync-every", type=int, default=256)
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--teacher", default=None)
    ap.add_argument(
        "--whole-batch",
        action="store_true",
        help="each rank with one process's micro-batch, not a --ranks-th of it (an ablation)",
    )
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.ranks < 2 or a.partitions < a.ranks or a.sync_every < 1:
        ap.error("--ranks must be >= 2, --partitions >= --ranks, --sync-every >= 1")
    from coldstream.commands.compare import embed

    records, threshold = first_events(a.dataset, a.events)
    embeddings, dim = embed(records, a.teacher)
    args = (records, embeddings, dim, threshold)
    kw = {"partitions": a.partitions, "sync_every": a.sync_every}
    many_kw = {**kw, "whole_batch": a.whole_batch}
    interactions = sum(isinstance(r, Interaction) for r in records)
    with limit_threads(1):
        one = [learn(*args, **kw)]
    many = learn_ranks(a.ranks, *args, **many_kw)
    r1, rn = recall(one), recall(many)
    t1, tn = one[0]["seconds"], max(r["seconds"] for r in many)
    syncs = many[0]["syncs"]
    out: dict[str, Any] = {"interactions": interactions}
    for s in SLICES:
        out[f"recall@20 {s}: 1 rank / {a.ranks} ranks"] = f"{r1[s]:.4f} / {rn[s]:.4f}"
    out["rate 1 rank (interactions/s)"] = interactions / t1
    out[f"rate {a.ranks} ranks (interactions/s)"] = interactions / tn
    out["ratio"] = t1 / tn
    out["interactions per rank"] = " / ".join(f"{r['learned']:,}" for r in many)
    out["synchronisation points"] = syncs
    out["ms per point (slowest rank's wait included)"] = (
        1e3 * max(r["sync_s"] for r in many) / max(syncs, 1)
    )
    parts = many[0]["parts"]
    out["ms per point, by part (mean of the ranks)"] = ", ".join(
        f"{p} {1e3 * np.mean([r['parts'][p] for r in many]) / max(syncs, 1):.1f}" for p in parts
    )
    out["bytes per point, per rank"] = float(
        np.mean([r["sync_bytes"] for r in many]) / max(syncs, 1)
    )
    show(out, a.json)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
