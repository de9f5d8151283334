"""Models compared side by side: the comparison's models split into groups, each group run
through its own prequential loop in its own process, on one core each.

Every model learns and is ranked independently of the others (they share only the catalog,
which every group builds the same way from the same events), and every group runs with one
torch and one BLAS thread, so the merged report equals the one a single loop gives: only the
wall-clock time changes. Eight models on MovieLens 100K (README, "The learning core") take about
half as long on two cores.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.evaluation import EvalResult

__all__ = ["Group", "merge", "run_groups", "split"]

#: relative learning cost of each model, for balancing the groups
_COST = {"student_no_content": 2.0, "river": 1.5, "item_knn": 1.0}
_STUDENT_COST = 4.0
_LIGHT = 0.2

_progress: Any = None  # a shared counter in each child process (see _start)


@dataclass(frozen=True)
class Group:
    """One child's share of the comparison and what its loop needs to know."""

    names: list[str]
    dim: int
    threshold: float | None
    seed: int
    init: Path | None
    k: int
    every: int
    window: int


def split(names: Sequence[str], jobs: int) -> list[list[str]]:
    """``names`` in at most ``jobs`` groups of about equal cost (heaviest first, each to the
    lightest group), every group keeping the order of ``names``.

    >>> split(["student", "student_no_distill", "river", "popularity"], 2)
    [['student', 'river'], ['student_no_distill', 'popularity']]
    """
    jobs = max(1, min(jobs, len(names)))
    cost = {n: _COST.get(n, _STUDENT_COST if n.startswith("student") else _LIGHT) for n in names}
    loads = [0.0] * jobs
    member: dict[str, int] = {}
    for name in sorted(names, key=lambda n: -cost[n]):
        g = int(np.argmin(loads))
        member[name] = g
        loads[g] += cost[name]
    groups = [[n for n in names if member[n] == g] for g in range(jobs)]
    return [g for g in groups if g]


def _start(counter: Any) -> None:
    global _progress
    _progress = counter


def _run(group: Group, events: list[Any], embeddings: dict[tuple[str, str], Any]) -> EvalResult:
    """One group's prequential loop (in a child process)."""
    from core.threads import limit_threads
    from models.catalog import Catalog
    from models.evaluation import Prequential, run_prequential
    from models.registry import build_models

    def advance(n: int) -> None:
        with _progress.get_lock():
            _progress.value += n

    catalog = Catalog(group.dim)
    models = build_models(
        group.names, catalog, threshold=group.threshold, seed=group.seed, init=group.init
    )
    ev = Prequential(
        models,
        catalog,
        k=group.k,
        threshold=group.threshold,
        every=group.every,
        window=group.window,
    )
    with limit_threads(1):
        return run_prequential(events, ev, embeddings, progress=advance)


def run_groups(
    groups: list[Group],
    events: list[Any],
    embeddings: dict[tuple[str, str], Any],
    progress: Callable[[int], None],
) -> list[EvalResult]:
    """Run each group in a process of its own (``spawn``: the parent has torch threads running);
    ``progress`` hears of the events done, averaged over the groups."""
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    reported = 0
    with ProcessPoolExecutor(
        len(groups), mp_context=ctx, initializer=_start, initargs=(counter,)
    ) as pool:
        futures = [pool.submit(_run, g, events, embeddings) for g in groups]
        while not all(f.done() for f in futures):
            time.sleep(0.2)
            done = counter.value // len(groups)
            if done > reported:
                progress(done - reported)
                reported = done
        results = [f.result() for f in futures]
    progress(max(0, len(events) - reported))
    return results


def merge(results: list[EvalResult], names: Sequence[str]) -> EvalResult:
    """One report from the groups' results, models in the order of ``names``."""
    metrics = {k: v for r in results for k, v in r.metrics.items()}
    timeline = {k: v for r in results for k, v in r.timeline.items()}
    first = results[0]
    return EvalResult(
        k=first.k,
        events=first.events,
        evaluated=first.evaluated,
        metrics={n: metrics[n] for n in names},
        timeline={n: timeline[n] for n in names},
        unannounced=first.unannounced,
        skipped_repeats=first.skipped_repeats,
        seconds=max(r.seconds for r in results),
    )
