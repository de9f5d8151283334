"""The teacher's encoding of item and user texts for the worker (:mod:`streams.worker`): at once
on the learning path, or in the teacher's own thread so a burst of new items does not stall
learning. Either way the encoded events reach the worker's event-time queue through its
``enqueue`` callback, in submission order."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from core.threads import torch_threads
from exporters.metrics import WorkerMetrics
from models.teacher import TextEncoder

__all__ = ["Encoding", "TeacherQueue"]

#: (kind, order, keys, vectors, since) -> None: hands encoded events to the worker's queue
Enqueue = Callable[[str, int, list[tuple[str, int]], Any, float], None]


@dataclass(frozen=True, slots=True)
class Encoding:
    """Texts the teacher's thread encodes: the events they belong to, waiting for ``job``."""

    job: Future[Any]  # -> their vectors
    kind: str
    order: int
    keys: list[tuple[str, int]]  # (id, event time)
    since: float  # when they arrived (clock)


class TeacherQueue:
    """Encodes texts with ``teacher``; with ``threads`` in its own thread (then :meth:`collect`
    picks the vectors up, in submission order, and :attr:`pending` lists what is under way)."""

    def __init__(
        self,
        teacher: TextEncoder,
        metrics: WorkerMetrics,
        teacher_threads: int,
        enqueue: Enqueue,
        clock: Callable[[], float],
        *,
        threads: bool,
    ) -> None:
        self.teacher, self.metrics, self.teacher_threads = teacher, metrics, teacher_threads
        self.enqueue, self.clock = enqueue, clock
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="coldstream-teacher") if threads else None
        )
        #: the batches the teacher's thread works on, oldest first
        self.pending: deque[Encoding] = deque()

    def submit(self, kind: str, order: int, keys: list[tuple[str, int]], texts: list[str]) -> None:
        """Encode ``texts`` and hand the events on: at once, or when the thread has them."""
        if self._pool is None:
            self.enqueue(kind, order, keys, self.encode(texts), self.clock())
        else:
            job = self._pool.submit(self.encode, texts, threads=False)
            self.pending.append(Encoding(job, kind, order, keys, self.clock()))

    def collect(self, wait: bool = False) -> None:
        """Hand on the events whose vectors the teacher's thread has finished (all: ``wait``).
        An encoding that failed raises here, on the learning path, as a synchronous one would."""
        while self.pending and (wait or self.pending[0].job.done()):
            e = self.pending.popleft()
            self.enqueue(e.kind, e.order, e.keys, e.job.result(), e.since)

    def encode(self, texts: list[str], threads: bool = True) -> Any:
        t = time.perf_counter()
        # torch's thread count is per process: the teacher's own thread leaves it be; on the
        # learning path it encodes on more threads than the student trains with
        limit: AbstractContextManager[None] = nullcontext()
        if threads:
            limit = torch_threads(self.teacher_threads)
        with limit:
            vectors = self.teacher.encode(texts)
        self.metrics.teacher_encode.observe(time.perf_counter() - t)
        return vectors

    def close(self) -> None:
        """Stop the teacher's thread (after the events it encodes are handed on)."""
        if self._pool is not None:
            self.collect(wait=True)
            self._pool.shutdown()
