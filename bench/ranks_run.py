"""Running ``coldstream worker`` as one process or as several torchrun ranks, and reading what
they learned: shared by ``bench/bench_ranks.py`` and the integration tests of several ranks.

Everything here goes through the real command line (``python -m coldstream.cli worker``, under
``python -m torch.distributed.run`` for several ranks), a real broker and real ``/metrics``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from models.evaluation import SLICES
from streams.checkpoint import load_checkpoint
from streams.cut import newest

__all__ = [
    "applied",
    "checkpoint_recall",
    "launch",
    "scrape",
    "stop",
    "wait_for",
]


def launch(
    settings: Settings,
    *,
    ranks: int,
    checkpoint_dir: Path,
    snapshot_dir: Path,
    metrics_port: int,
    args: tuple[str, ...] = (),
    max_restarts: int = 0,
    log: Path | None = None,
    torchrun: bool = True,
) -> subprocess.Popen[bytes]:
    """``coldstream worker --role student`` as ``ranks`` torchrun ranks on this host (rank r's
    /metrics on ``metrics_port`` + r), or without torchrun (``torchrun=False``: one process,
    on Faust)."""
    env = {
        **os.environ,
        "COLDSTREAM_BROKER": settings.broker,
        "COLDSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "COLDSTREAM_CHECKPOINT_DIR": str(checkpoint_dir),
        "COLDSTREAM_SNAPSHOT_DIR": str(snapshot_dir),
        "COLDSTREAM_METRICS_PORT": str(metrics_port),
        "OMP_NUM_THREADS": "1",
    }
    worker = ["-m", "coldstream.cli", "worker", "--role", "student", *args]
    if not torchrun:
        cmd = [sys.executable, *worker]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(ranks),
            "--max-restarts",
            str(max_restarts),
            "--monitor-interval",
            "0.5",
            *worker,
        ]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def applied(ports: list[int]) -> float:
    """``coldstream_model_events`` summed over the ranks (-1 while one is not up)."""
    total = 0.0
    for port in ports:
        try:
            total += scrape(port)[("coldstream_model_events", ())]
        except (OSError, KeyError):
            return -1.0
    return total


def wait_for(what: Callable[[], bool], timeout: float, describe: str) -> float:
    """Poll ``what`` every 0.1 s; the seconds it took. Raises after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if what():
            return time.monotonic() - start
        time.sleep(0.1)
    raise TimeoutError(f"{describe}: not within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """SIGTERM (torchrun passes it to every rank: a last point, a last cut); the exit code."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def checkpoint_states(directory: Path) -> list[tuple[dict[str, Any], dict[tuple[str, int], int]]]:
    """Every rank's (state, offsets) of the newest checkpoint in ``directory``: a complete cut,
    or one process's checkpoint (:func:`streams.cut.newest`)."""
    cut = newest(directory)
    if cut is None:
        return []
    if isinstance(cut, Path):
        loaded = load_checkpoint(directory)
        return [] if loaded is None else [loaded]
    out = []
    for r in range(cut.world):
        loaded = load_checkpoint(cut.path, name=f"rank-{r}.pt")
        assert loaded is not None, f"rank-{r}.pt missing in {cut.path}"
        out.append(loaded)
    return out


def checkpoint_recall(directory: Path) -> dict[str, float]:
    """Prequential Recall@K of the student per slice over everything the ranks learned, from
    their running sums in the newest checkpoint (or cut)."""
    states = [s for s, _ in checkpoint_states(directory)]
    sums = sum(np.asarray(s["evaluator"]["sum"]) for s in states)
    counts = sum(np.asarray(s["evaluator"]["n"]) for s in states)
    return {sl: float(sums[0, 0, i] / max(counts[i], 1)) for i, sl in enumerate(SLICES)}
