"""Request batching of ``coldstream serve``: concurrent ``/recommend`` requests wait in one
queue, and a single scoring thread takes every request waiting (up to ``serve_max_batch``
users) into one ONNX Runtime run, on one snapshot version for the whole batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from serving.exceptions import BadRequest
from serving.metrics import InferenceMetrics
from serving.scorer import Recommendation, Scorer

__all__ = ["Batcher"]


@dataclass
class _Job:
    user_ids: list[str | None]
    k: int
    future: asyncio.Future[tuple[int, list[Recommendation]]]


class Batcher:
    """Batches recommendation requests onto the scorer ``current()`` returns at each batch."""

    def __init__(
        self, current: Callable[[], Scorer | None], metrics: InferenceMetrics, max_batch: int
    ) -> None:
        self._current, self.metrics, self.max_batch = current, metrics, max_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="coldstream-score")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="coldstream-batch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=False)

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            users = len(jobs[0].user_ids)
            while users < self.max_batch and not self._queue.empty():
                job = self._queue.get_nowait()
                jobs.append(job)
                users += len(job.user_ids)
            scorer = self._current()  # one version for the whole batch
            if scorer is None:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(BadRequest("no snapshot loaded yet", 503))
                continue
            try:
                results = await loop.run_in_executor(self._pool, self._run, scorer, jobs)
            except Exception as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self.metrics.batch_size.observe(users)
            for job, res in zip(jobs, results, strict=True):
                if not job.future.done():
                    job.future.set_result((scorer.version, res))

    @staticmethod
    def _run(scorer: Scorer, jobs: list[_Job]) -> list[list[Recommendation]]:
        # one ONNX run for every user of every job; k_max covers every job's k
        users = [u for job in jobs for u in job.user_ids]
        k = max(job.k for job in jobs)
        recs = scorer.recommend(users, k)
        out, at = [], 0
        for job in jobs:
            part = recs[at : at + len(job.user_ids)]
            at += len(job.user_ids)
            out.append([Recommendation(r.user_id, r.known, r.items[: job.k]) for r in part])
        return out

    async def recommend(self, user_ids: list[str | None], k: int) -> tuple[int, list[Any]]:
        """The top ``k`` of each user, scored in a batch with whatever else is waiting; returns
        the snapshot version and one recommendation per user."""
        assert self._queue is not None
        if self._current() is None:
            raise BadRequest("no snapshot loaded yet: start a worker that exports one", 503)
        future: asyncio.Future[tuple[int, list[Recommendation]]] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put(_Job(user_ids, k, future))
        return await future
