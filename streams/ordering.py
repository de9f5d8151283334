"""The event-time order of the worker (:class:`EventOrder`, a part of
:class:`~streams.worker.WorkerCore`): every event waits in one heap until the watermark has
passed its time, then goes to the models in event-time order; an interaction whose item has
not arrived is parked until the item comes, or applied unranked after ``park_s`` seconds.
See :mod:`streams.worker` for why."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.records import Interaction
from exporters.metrics import WorkerMetrics
from models.catalog import Catalog
from models.evaluation import Prequential
from streams.encoding import TeacherQueue

__all__ = ["PROGRESS_EVERY", "EventOrder"]

#: a release of many events moves ``coldstream_model_events`` every this many interactions
PROGRESS_EVERY = 500


@dataclass
class _Parked:
    rec: Interaction
    since: float


@dataclass
class _Waiting:
    """An event waiting for the watermark to pass its time (an interaction, or an item or
    user event with its teacher vector). The heap holds ``(ts, order, seq, waiting)`` tuples,
    so ordering is a C tuple comparison (``seq`` is unique): a dataclass ``__lt__`` cost
    several microseconds per event."""

    ts: int
    order: int  # items before users at equal times, as in datasets
    seq: int
    since: float = field(compare=False)
    kind: str = field(compare=False)
    key: str = field(compare=False)
    vector: Any = field(compare=False)


class EventOrder:
    """The heap, the parked interactions and the watermark of a :class:`WorkerCore`."""

    _heap: list[tuple[int, int, int, _Waiting]]  # by event time, order, arrival
    _seq: int
    parked: dict[str, list[_Parked]]
    #: the input partitions that still have a backlog (the Faust app sets this); events are
    #: applied up to the watermark they define (:meth:`watermark`)
    sources: Callable[[], set[tuple[str, int]]]
    _frontier: dict[tuple[str, int], int]  # newest event time seen per partition
    encoding: TeacherQueue
    encode_hold_s: float
    clock: Callable[[], float]
    catalog: Catalog
    evaluator: Prequential
    metrics: WorkerMetrics
    released: int
    model_events: int
    park_s: float
    #: one of several ranks (:mod:`streams.ranks`): item events join the catalog only at
    #: synchronisation points (:meth:`release_at_point`), and items that never came are added
    #: there too (:meth:`adopt`), so every rank's catalog grows in the same order
    hold_items: bool = False
    #: (with ``hold_items``) ids of items whose interactions waited ``park_s`` in vain
    stale_items: set[str]
    #: interactions in the heap (the ranked loop stops handing more over past a bound)
    waiting_interactions: int = 0

    def _enqueue(
        self, kind: str, order: int, keys: list[tuple[str, int]], vectors: Any, now: float
    ) -> None:
        for (key, ts), vec in zip(keys, vectors, strict=True):
            self._wait(_Waiting(ts, order, self._next(), now, kind, key, vec))

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _wait(self, w: _Waiting) -> None:
        heapq.heappush(self._heap, (w.ts, w.order, w.seq, w))
        self.waiting_interactions += w.kind == "interaction"

    @property
    def waiting(self) -> list[_Waiting]:
        """The events not applied yet, in the order they will be."""
        return [e[3] for e in sorted(self._heap)]

    def frontier(self, tp: tuple[str, int]) -> float:
        """The newest event time read from partition ``tp`` (-inf: nothing yet)."""
        return self._frontier.get(tp, -math.inf)

    def watermark(self) -> float:
        """Event time up to which every input partition has been read: the oldest newest-time
        among partitions that still have a backlog (+inf when none has; -inf while one with a
        backlog has delivered nothing yet). Everything up to it can be applied in order."""
        lagging = self.sources()
        mark = min((self._frontier.get(tp, -math.inf) for tp in lagging), default=math.inf)
        if self.encoding.pending:  # nothing passes an item or profile being encoded, a while
            since = self.clock() - self.encode_hold_s
            held = [ts for e in self.encoding.pending if e.since > since for _, ts in e.keys]
            if held:
                mark = min(mark, min(held) - 1)
        return mark

    def _release(self, until_ts: float | None) -> int:
        """Hand the models everything waiting up to ``until_ts`` (None: all), in event-time
        order. A released item's parked interactions rejoin the heap at their own times, so
        they interleave with the other waiting events instead of following their item."""
        heap, ev = self._heap, self.evaluator
        now = self.clock()
        n = counted = 0
        while heap and (until_ts is None or heap[0][0] <= until_ts):
            if self.hold_items and heap[0][3].kind == "item":
                break  # it waits for the next synchronisation point
            w = heapq.heappop(heap)[3]
            if w.kind == "interaction":
                self.waiting_interactions -= 1
                n += self._apply(w.vector, now, force=False)
            elif w.kind == "item":
                ev.item(self.catalog.add(w.key, w.vector, w.ts))
                self.metrics.item_to_rankable.observe(max(0.0, self.clock() - w.ts / 1000.0))
                for p in self.parked.pop(w.key, ()):
                    self._wait(
                        _Waiting(p.rec.ts, 2, self._next(), p.since, "interaction", w.key, p.rec)
                    )
            else:
                ev.user(w.key, w.vector)
            self.released += 1
            if n - counted >= PROGRESS_EVERY:  # a long release shows its progress meanwhile
                self._count(n - counted)
                counted = n
        self._count(n - counted)
        return n

    def _timed(self, n: int, since: float) -> None:
        if n:
            self.metrics.train_batch.observe(time.perf_counter() - since)
            self.metrics.train_batch_size.observe(n)

    def _apply_forced(self, recs: list[Interaction]) -> None:
        """Apply, in time order and unranked where the item is unknown, what waited too long."""
        t, now = time.perf_counter(), self.clock()
        n = sum(self._apply(rec, now, force=True) for rec in sorted(recs, key=lambda r: r.ts))
        self.released += n
        self._count(n)
        self._timed(n, t)

    def _apply(self, rec: Interaction, now: float, force: bool) -> int:
        """Rank-then-learn one interaction; park it (0) if its item is unknown, unless forced."""
        cat, ev = self.catalog, self.evaluator
        idx = cat.get(rec.item_id)
        ranked = idx is not None
        if idx is None:
            if not force:
                self.parked.setdefault(rec.item_id, []).append(_Parked(rec, now))
                return 0
            ev.unannounced += 1
            idx = cat.add(rec.item_id, None)
            ev.item(idx)
        ev.interaction(rec.user_id, idx, rec.value, rec.ts, rank=ranked)
        self.metrics.event_to_model.observe(max(0.0, now - rec.ts / 1000.0))
        return 1

    def _count(self, n: int) -> None:
        if n:
            self.model_events += n
            self.metrics.model_events.set(self.model_events)

    def _release_stale(self) -> None:
        """Interactions parked ``park_s`` for an item that never came are applied unranked."""
        if not self.parked:
            return
        limit = self.clock() - self.park_s
        encoding = {key for e in self.encoding.pending if e.kind == "item" for key, _ in e.keys}
        stale = [k for k, v in self.parked.items() if v[0].since <= limit and k not in encoding]
        if stale and self.hold_items:
            self.stale_items.update(stale)
        elif stale:
            self._apply_forced([p.rec for k in stale for p in self.parked.pop(k)])

    def tick(self) -> None:
        """Called periodically, also when no batch arrives: moves on what the watermark passed
        (a partition may have caught up) and what waited ``park_s``."""
        self.encoding.collect()
        t = time.perf_counter()  # before the release: it is what takes the time
        self._timed(self._release(self.watermark()), t)
        self._release_stale()

    def release_at_point(self, until_ts: float) -> int:
        """At a synchronisation point: everything up to ``until_ts`` (the ranks' common
        watermark), item events included."""
        t = time.perf_counter()
        hold, self.hold_items = self.hold_items, False
        try:
            n = self._release(until_ts)
        finally:
            self.hold_items = hold
        self._timed(n, t)
        return n

    def adopt(self, item_ids: list[str]) -> None:
        """At a synchronisation point: the items that some rank waited for in vain (the same
        list on every rank) join the catalog unannounced, and this rank's interactions parked
        for them are applied unranked, as :meth:`_release_stale` does for one process."""
        t, n, ev = time.perf_counter(), 0, self.evaluator
        for key in item_ids:
            parked = sorted(self.parked.pop(key, ()), key=lambda p: p.rec.ts)
            idx = self.catalog.get(key)
            if idx is None:
                idx = self.catalog.add(key, None)
                ev.item(idx)
                ev.unannounced += bool(parked)  # counted by the ranks that waited for it
            for p in parked:
                ev.interaction(p.rec.user_id, idx, p.rec.value, p.rec.ts, rank=False)
                n += 1
        self.stale_items.difference_update(item_ids)
        self.released += n
        self._count(n)
        self._timed(n, t)

    def flush(self) -> None:
        """Apply everything that waits, now (at shutdown, or when the input is idle)."""
        self.encoding.collect(wait=True)
        self._release(None)
        if self.parked:
            recs = [p.rec for v in self.parked.values() for p in v]
            self.parked.clear()
            self._apply_forced(recs)
