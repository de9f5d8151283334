"""The worker's learning loop, without Faust: record batches in, model updates and metrics out.

:class:`WorkerCore` receives :class:`~streams.transport.RecordBatch` es from the three input
topics (the Faust agent in :mod:`streams.app` only hands them over), and for each batch:

1. skips records below the partition's applied offset (they are in the checkpoint already);
2. validates every record (:func:`streams.validation.parse`); an invalid one becomes a
   dead-letter message and is counted, never raised;
3. items: the teacher encodes the batch's texts at once, and the items join the catalog in
   event-time order (below; at once on a live stream); users' profile texts likewise. With
   ``encode_async`` (``coldstream worker``) the teacher encodes in its own thread, so a burst
   of new items does not stall learning: the items join when their vectors are ready (an
   interaction with one of them waits for it, however long the encoding takes); other events
   newer than an item being encoded wait for it up to ``encode_hold_s`` (1 s), so the order
   stays exact unless an encoding takes longer (a burst);
4. interactions run through the same :class:`models.evaluation.Prequential` loop that
   ``coldstream evaluate`` uses (rank first, then learn), so live metrics and offline
   evaluation agree; a :class:`models.monitor.DriftMonitor` watches that loop for concept and
   data drift (and, with ``adapt``, boosts the student on a detection).

The three topics are consumed independently, so one can run ahead of another. The models must
still see events in event-time order (an item that exists too early would be a negative
before it exists, and its age would be wrong). The core holds every event in one heap and
applies it once the *watermark* has passed it: the oldest newest-event-time among the input
partitions that still have a backlog, as ``sources`` reports them (the Faust app measures them
against the fetch high-water marks; by default nothing has a backlog, so events are applied as
they arrive). An interaction whose item has not arrived waits for it, and after ``park_s``
seconds is applied unranked as an unannounced item, like ``evaluate`` does.

The state (catalog, models, evaluator, parked events, counters) and the applied offsets are
saved together by :meth:`WorkerCore.checkpoint`; restoring them and skipping below the
offsets makes every valid event count exactly once across crashes.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from logging import Logger
from pathlib import Path
from typing import Any

import numpy as np

from core.records import Invalid, Item, User, dead_letter
from core.settings import Settings
from exporters.metrics import WorkerMetrics
from models.catalog import Catalog
from models.distributed import rank_config
from models.evaluation import SLICES, Prequential
from models.monitor import Adaptation, Detection, DriftConfig, DriftMonitor
from models.registry import ROLES, build_models
from models.student import StudentConfig
from models.teacher import TextEncoder, text_of
from streams.checkpoint import save_checkpoint
from streams.cut import restore_state
from streams.encoding import TeacherQueue
from streams.ordering import EventOrder, _Parked, _Waiting  # (older checkpoints name them here)
from streams.transport import RecordBatch
from streams.validation import parse

__all__ = ["DeadLetter", "WorkerCore"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    reason: str

    def failed(
        self, metrics: WorkerMetrics, topic: str, exc: BaseException | None, logger: Logger
    ) -> None:
        """The producer refused this dead letter, at send or at delivery: count and log it."""
        metrics.dead_letters_failed.inc()
        logger.error(
            "could not publish a %d-byte dead letter (%s) to %s: %s: %s; it began %s",
            len(self.value),
            self.reason,
            topic,
            type(exc).__name__,
            exc,
            self.value[:200].decode("utf-8", "replace"),
        )


class WorkerCore(EventOrder):
    def __init__(
        self,
        settings: Settings,
        *,
        role: str,
        teacher: TextEncoder,
        metrics: WorkerMetrics,
        k: int = 20,
        threshold: float | None = None,
        eval_every: int = 1,
        window: int = 2000,
        park_s: float = 2.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        adapt: Adaptation | None = None,
        drift_config: DriftConfig | None = None,
        init: Path | None = None,
        encode_async: bool = False,
        encode_hold_s: float = 1.0,
        ranks: int = 1,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: use {', '.join(ROLES)}")
        self.settings, self.role, self.teacher, self.metrics = settings, role, teacher, metrics
        self.k, self.window, self.park_s, self.clock = k, window, park_s, clock
        topics = settings.topics
        self.kinds = {
            topics.interactions: "interaction",
            topics.items: "item",
            topics.users: "user",
        }
        for topic in self.kinds:  # a zero from the start, so an alert on increase() can fire
            metrics.offset_resets.labels(topic=topic)
        self.fields, self.limits = settings.fields, settings.limits
        self.catalog = Catalog(teacher.dim)
        # ``init``: the students start from a pretrained checkpoint (coldstream pretrain); a
        # worker checkpoint restored later replaces everything, ``init`` included
        # idle users are forgotten after ``user_ttl_hours`` of event time (bounded memory)
        ttl_ms = int(settings.user_ttl_hours * 3_600_000)
        self.models = build_models(
            list(ROLES[role]),
            self.catalog,
            threshold=threshold,
            seed=seed,
            init=init,
            # one of several ranks: a ranks-th of the micro-batch (models.distributed)
            config=rank_config(StudentConfig(user_ttl_ms=ttl_ms), ranks),
        )
        self.evaluator = Prequential(
            self.models,
            self.catalog,
            k=k,
            threshold=threshold,
            every=eval_every,
            window=window,
            user_ttl_ms=ttl_ms,
        )
        self.drift = DriftMonitor(self.models, self.catalog, config=drift_config, adapt=adapt)
        self.drift.attach(self.evaluator)
        self.drift.listeners.append(self._on_drift)
        metrics.start_drift(self.drift.detectors(), self.drift.psi)
        self.lag: dict[tuple[str, int], int] = {}  # records behind the partition's end
        self.offsets: dict[tuple[str, int], int] = {}  # next offset to apply per partition
        self.parked: dict[str, list[_Parked]] = {}
        self.stale_items: set[str] = set()
        self.hold_items = ranks > 1
        self._heap: list[tuple[int, int, int, _Waiting]] = []  # by event time, order, arrival
        #: the input partitions that still have a backlog (the Faust app sets this); events are
        #: applied up to the watermark they define (:meth:`watermark`)
        self.sources: Callable[[], set[tuple[str, int]]] = set
        self._frontier: dict[tuple[str, int], int] = {}  # newest event time seen per partition
        self._seq = 0
        self.model_events = 0
        #: events (items, profiles, interactions) handed to the models so far in this process:
        #: the app snapshots when it moves, also between batches
        self.released = 0
        self._rolling: list[tuple[np.ndarray, np.ndarray]] = []
        # ``encode_async``: the teacher encodes in its own thread, off the learning path
        self.encoding = TeacherQueue(
            teacher, metrics, settings.teacher_threads, self._enqueue, clock, threads=encode_async
        )
        #: how long events newer than an item being encoded wait for it (then they go on, and
        #: the item joins when ready; its own interactions always wait for it)
        self.encode_hold_s = encode_hold_s
        self.restored_point = 0  # the synchronisation point of the cut restored (streams.cut)

    # -- the loop ---------------------------------------------------------------------------
    def reset_partition(self, tp: tuple[str, int], offset: int, highwater: int) -> None:
        """``tp`` ends at ``highwater``, before the offset applied so far: its records are new
        ones (the broker restarted empty, the topic was recreated, or retention deleted them
        before they were read). Apply it again from ``offset``, loudly."""
        old = self.offsets.get(tp, 0)
        log.warning(
            "%s[%d] ends at offset %d but %d were applied: the partition was emptied or "
            "recreated; reading it again from offset %d (auto_offset_reset=earliest)",
            tp[0],
            tp[1],
            highwater,
            old,
            offset,
        )
        self.metrics.offset_resets.labels(topic=tp[0]).inc()
        self.offsets[tp] = offset
        self.lag[tp] = max(0, highwater - offset)

    def apply(self, batch: RecordBatch) -> list[DeadLetter]:
        """Apply one batch; returns the dead letters to publish (the caller sends them)."""
        kind = self.kinds.get(batch.topic)
        if kind is None:
            raise ValueError(f"batch from unexpected topic {batch.topic!r}")
        tp = (batch.topic, batch.partition)
        start = self.offsets.get(tp, 0)
        if batch.highwater is not None and batch.highwater < start:
            # the partition ends before what was applied: it was emptied or recreated, and the
            # consumer's reset policy (earliest) delivers it from its start; apply that
            self.reset_partition(tp, batch.first_offset, batch.highwater)
            start = batch.first_offset
        records = (
            [r for r in batch.records if r.offset >= start]
            if batch.first_offset < start
            else batch.records
        )
        if not records:
            return []
        self.encoding.collect()
        t = time.perf_counter()
        dead: list[DeadLetter] = []
        valid: list[Any] = []
        for r in records:
            rec = parse(
                kind, r.value, fields=self.fields, limits=self.limits, default_ts=r.timestamp
            )
            if isinstance(rec, Invalid):
                msg = dead_letter(
                    rec, topic=batch.topic, partition=batch.partition, offset=r.offset, raw=r.value
                )
                dead.append(DeadLetter(r.key, msg, rec.code))
            else:
                valid.append(rec)
        if valid:
            newest = max(r.ts for r in valid)
            self._frontier[tp] = max(self._frontier.get(tp, newest), newest)
        if kind == "interaction":
            now = self.clock()
            for rec in valid:
                self._wait(_Waiting(rec.ts, 2, self._next(), now, "interaction", "", rec))
        elif kind == "item":
            self._items(valid)
        else:
            self._users(valid)
        self.offsets[tp] = int(records[-1].offset) + 1
        if batch.highwater is not None:
            self.lag[tp] = max(0, batch.highwater - self.offsets[tp])
        self._timed(self._release(self.watermark()), t)
        self._release_stale()
        m = self.metrics
        if valid:
            m.events.labels(topic=batch.topic, outcome="applied").inc(len(valid))
        if dead:
            m.events.labels(topic=batch.topic, outcome="invalid").inc(len(dead))
            for d in dead:
                m.dead_letters.labels(reason=d.reason).inc()
        return dead

    def _items(self, items: Sequence[Item]) -> None:
        if not items:
            return
        latest = {it.item_id: it for it in items}  # a repeated id in one batch: newest wins
        keys = [(it.item_id, it.ts) for it in latest.values()]
        self.encoding.submit("item", 0, keys, [text_of(it) for it in latest.values()])

    def _users(self, users: Sequence[User]) -> None:
        texts = {u.user_id: text_of(u) for u in users}  # a repeated id in one batch: newest wins
        with_text = {uid: text for uid, text in texts.items() if text}
        if not with_text:
            return
        ts = {u.user_id: u.ts for u in users}
        self.encoding.submit(
            "user", 1, [(uid, ts[uid]) for uid in with_text], list(with_text.values())
        )

    def _on_drift(self, d: Detection) -> None:
        m = self.metrics
        if d.model is None:
            m.data_drift.labels(feature=d.detector).inc()
        else:
            m.drift.labels(model=d.model, detector=d.detector).inc()
            m.drift_last.labels(model=d.model, detector=d.detector).set(d.ts / 1000.0)

    @property
    def drift_log(self) -> Sequence[Detection]:
        return self.drift.log

    # -- metrics ------------------------------------------------------------------------------
    def update_gauges(self) -> None:
        """Set ``coldstream_recall_at_k{model,slice}`` from the last ``window`` evaluated events,
        the consumer lag per input topic and the data drift measures."""
        for feature, psi in self.drift.psi.items():
            self.metrics.psi.labels(feature=feature).set(psi.value)
        self.metrics.embedding_shift.set(self.drift.shift.value)
        by_topic: dict[str, int] = {}
        for (topic, _), behind in self.lag.items():
            by_topic[topic] = by_topic.get(topic, 0) + behind
        for topic, behind in by_topic.items():
            self.metrics.lag.labels(topic=topic).set(behind)
        sums, counts = self.evaluator.totals()
        self._rolling.append((sums.copy(), counts.copy()))
        # keep the oldest snapshot that still covers about one window
        while len(self._rolling) > 2 and counts[0] - self._rolling[1][1][0] >= self.window:
            self._rolling.pop(0)
        old_sums, old_counts = self._rolling[0]
        d_counts = counts - old_counts
        d_recall = sums[0] - old_sums[0]  # (model, slice)
        for j, name in enumerate(self.models):
            for s, slice_name in enumerate(SLICES):
                if d_counts[s] > 0:
                    self.metrics.recall.labels(model=name, slice=slice_name).set(
                        d_recall[j, s] / d_counts[s]
                    )
                self.metrics.evaluated.labels(model=name, slice=slice_name).set(float(d_counts[s]))

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "teacher": self.teacher.name,
            "catalog": self.catalog.state_dict(),
            "evaluator": self.evaluator.state_dict(),
            "parked": [(p.rec, p.since) for v in self.parked.values() for p in v],
            "waiting": list(self.waiting),
            "seq": self._seq,
            "model_events": self.model_events,
            "drift": self.drift.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["role"] != self.role:
            raise ValueError(
                f"checkpoint is of role {state['role']!r}, this worker is {self.role!r}"
            )
        self.catalog.load_state_dict(state["catalog"])
        self.evaluator.load_state_dict(state["evaluator"])
        self.parked = {}
        for rec, since in state["parked"]:
            self.parked.setdefault(rec.item_id, []).append(_Parked(rec, since))
        self._heap = [(w.ts, w.order, w.seq, w) for w in state["waiting"]]
        heapq.heapify(self._heap)
        self.waiting_interactions = sum(w.kind == "interaction" for w in state["waiting"])
        self._seq = int(state["seq"])
        self.model_events = int(state["model_events"])
        self.metrics.model_events.set(self.model_events)
        if "drift" in state:  # older checkpoints start the drift monitor afresh
            self.drift.load_state_dict(state["drift"])
        for d in self.drift.log:  # the latest detection times survive a restart
            if d.model is not None:
                self.metrics.drift_last.labels(model=d.model, detector=d.detector).set(d.ts / 1e3)

    def close(self) -> None:
        """Stop the teacher's thread (after the events it encodes are queued)."""
        self.encoding.close()

    def flush_models(self) -> None:
        """Apply every model's pending micro-batch (before a snapshot and at shutdown).

        Checkpoints do not flush: each model's ``state_dict`` carries its pending events, so
        taking a checkpoint does not change what the models learn (live equals ``evaluate``)."""
        for model in self.models.values():
            model.flush()

    def checkpoint(self, directory: Path) -> Path:
        t = time.perf_counter()
        self.encoding.collect(wait=True)  # the events being encoded join the checkpointed state
        path = save_checkpoint(directory, self.state_dict(), dict(self.offsets))
        self.metrics.checkpoint.observe(time.perf_counter() - t)
        return path

    def restore(
        self, directory: Path, *, rank: int = 0, world: int = 1, partitions: int = 1
    ) -> bool:
        """Load the newest checkpoint in ``directory`` if there is one (one process's, or a cut
        of several ranks regrouped for rank ``rank`` of ``world``: :mod:`streams.cut`); True
        if one was loaded. ``partitions``: of the interactions topic."""
        loaded = restore_state(
            directory,
            rank=rank,
            world=world,
            partitions=partitions,
            interactions=self.settings.topics.interactions,
        )
        if loaded is None:
            return False
        state, offsets, self.restored_point = loaded
        self.load_state_dict(state)
        self.offsets = offsets
        return True
