"""The Faust app of ``coldstream worker``: one agent over the three input topics.

The agent receives :class:`~streams.transport.RecordBatch` events (see
:mod:`streams.transport` for why batches) and hands each to :class:`~streams.worker.WorkerCore`.
One agent over all three topics keeps every state change in one coroutine, so items, users and
interactions never race. Dead letters go to the ``.dlq`` topic through Faust's producer.

Offsets: input topics are declared ``acks=False`` and Faust commits nothing on its own. The
worker checkpoints every ``checkpoint_s`` seconds or ``checkpoint_events`` records; after each
checkpoint it commits the checkpoint's offsets to the consumer group (so lag tools see
progress), and on every assignment it seeks each partition to the checkpoint's offset. Records
below those offsets are skipped by the core in any case, so a crash between checkpoint and
commit re-reads but never re-applies.

The role names the consumer group (``<group_id>-<role>``): the River baseline runs in its own
group and process and can fall behind without slowing the student.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from core.settings import Settings
from streams.health import BrokerHealth
from streams.transport import BatchApp, BatchConsumer, RecordBatch, credentials, end_offset
from streams.worker import DeadLetter, WorkerCore

__all__ = ["WorkerApp", "run_worker"]

log = logging.getLogger(__name__)

#: seconds a broker round trip may take on the way out (commit, announcement, Faust's stop):
#: SIGTERM must end the process within 10 s even when the broker is gone
SHUTDOWN_STEP_S = 2.5
#: seconds a snapshot announcement may wait for delivery while running
ANNOUNCE_S = 10.0


class WorkerApp:
    """The Faust app plus the checkpoint/commit policy around a :class:`WorkerCore`."""

    def __init__(
        self,
        settings: Settings,
        core: WorkerCore,
        *,
        checkpoint_dir: Path,
        checkpoint_s: float = 10.0,
        checkpoint_events: int = 100_000,
        gauges_s: float = 1.0,
        on_checkpoint: Callable[[WorkerCore], None] | None = None,
        on_snapshot: Callable[[WorkerCore], bytes | None] | None = None,
        snapshot_s: float = 30.0,
        snapshot_events: int = 1_000_000,
        max_poll_records: int = 5000,
    ) -> None:
        self.settings, self.core = settings, core
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_s, self.checkpoint_events, self.gauges_s = (
            checkpoint_s,
            checkpoint_events,
            gauges_s,
        )
        self.on_checkpoint = on_checkpoint
        self.on_snapshot, self.snapshot_s, self.snapshot_events = (
            on_snapshot,
            snapshot_s,
            snapshot_events,
        )
        self._since_checkpoint = self._since_snapshot = 0
        self._applied_at_checkpoint = core.model_events
        self._start: dict[tuple[str, int], int] = {}  # partition -> offset reading started at
        self._held: set[tuple[str, int]] = set()  # the last answer of _lagging
        self._last_checkpoint = self._last_snapshot = time.monotonic()
        self._released_at_snapshot = 0
        self._last_gauges = 0.0
        self.batches = 0
        topics = settings.topics
        self.app = BatchApp(
            f"{settings.group_id}-{core.role}",
            broker=[f"kafka://{h}" for h in settings.broker.split(",")],
            broker_credentials=credentials(settings),
            value_serializer="raw",
            key_serializer="raw",
            topic_disable_leader=True,
            web_enabled=False,
            store="memory://",
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
            broker_max_poll_records=max_poll_records,
            consumer_auto_offset_reset="earliest",
            stream_buffer_maxsize=64,  # in batches, not messages
        )
        self.source = self.app.topic(
            topics.interactions,
            topics.items,
            topics.users,
            value_type=bytes,
            key_type=bytes,
            acks=False,
        )
        self.dlq = self.app.topic(topics.dlq, value_type=bytes, key_type=bytes)
        self.snapshots = self.app.topic(topics.snapshots, value_type=bytes, key_type=bytes)
        self.app.agent(self.source, name="coldstream.learn")(self._learn)
        self.app.timer(interval=0.5, name="coldstream.tick")(self._tick)
        self.app.on_partitions_assigned.connect(self._on_assigned)
        core.sources = self._lagging
        self.health = BrokerHealth(core.metrics, settings.broker)
        self._commit: asyncio.Future[bool] | None = None  # the offset commit in flight

    async def _learn(self, stream: faust.StreamT[RecordBatch]) -> None:
        async for batch in stream:
            self.health.fetched()
            dead = self.core.apply(batch)
            for d in dead:
                await self._dead_letter(d)
            self.batches += 1
            self._since_checkpoint += len(batch)
            self._since_snapshot += len(batch)
            now = time.monotonic()
            if now - self._last_gauges >= self.gauges_s:
                self.core.update_gauges()
                self._last_gauges = now
            await self._maybe_checkpoint(now)
            if self.on_snapshot is not None and (
                self._since_snapshot >= self.snapshot_events
                or now - self._last_snapshot >= self.snapshot_s
            ):
                await self.snapshot()

    async def _dead_letter(self, d: DeadLetter) -> None:
        """Publish one dead letter; a refusal, now or at delivery, is counted and logged."""
        try:
            sent = await self.dlq.send(key=d.key, value=d.value)
        except Exception as exc:
            self._dead_letter_failed(d, exc)
            return
        if isinstance(sent, asyncio.Future):
            sent.add_done_callback(lambda f: self._dead_letter_done(d, f))

    def _dead_letter_done(self, d: DeadLetter, f: asyncio.Future[Any]) -> None:
        if f.cancelled():
            self._dead_letter_failed(d, asyncio.CancelledError("cancelled before delivery"))
        elif f.exception() is not None:
            self._dead_letter_failed(d, f.exception())

    def _dead_letter_failed(self, d: DeadLetter, exc: BaseException | None) -> None:
        d.failed(self.core.metrics, self.dlq.get_topic_name(), exc, log)

    async def snapshot(self, announce_s: float = ANNOUNCE_S) -> None:
        """Ask the snapshot exporter (``on_snapshot``) for a new snapshot of the core and
        announce it on the ``.snapshots`` topic, waiting at most ``announce_s`` for the broker.
        A failed export is logged, never fatal; a failed announcement costs nothing but time
        (serving also polls ``LATEST``)."""
        if self.on_snapshot is None:
            return
        self._since_snapshot = 0
        self._last_snapshot = time.monotonic()
        # events can reach the models after their batch (the watermark, the teacher's thread)
        self._released_at_snapshot = self.core.released
        self.core.flush_models()
        try:
            message = self.on_snapshot(self.core)
        except Exception:
            log.exception("snapshot export failed; the worker goes on")
            return
        if message is not None:
            if self.health.connected is False:  # nothing to wait for
                announce_s = min(announce_s, 0.01)
            with contextlib.suppress(Exception):  # serving also polls LATEST
                await asyncio.wait_for(self._announce(message), announce_s)

    async def _announce(self, message: bytes) -> None:
        # wait for delivery: a send still buffered when the app stops is lost
        delivered = await self.snapshots.send(key=b"snapshot", value=message)
        await asyncio.shield(delivered)

    def _lagging(self) -> set[tuple[str, int]]:
        """Assigned input partitions whose end (high-water mark) the core has not applied yet.

        Measured against the core's applied offsets, not Faust's delivery position, which runs
        ahead while batches wait in the stream buffer; before the core has applied anything
        from a partition, against where reading started. An empty partition (high-water 0) has
        no backlog; one whose high-water is not known yet (not fetched) counts as behind."""
        consumer = self.app.consumer
        assert isinstance(consumer, BatchConsumer)
        assignment = consumer.assignment()
        if not assignment:
            # between a revocation and the next assignment (a rebalance, e.g. after a missed
            # heartbeat on a busy machine) nothing is known: hold what was held before, or
            # everything waiting would be released ahead of partitions not read yet
            return self._held
        out = set()
        for tp in assignment:
            key = (tp.topic, tp.partition)
            highwater = end_offset(consumer, tp)
            applied = self.core.offsets.get(key, self._start.get(key, 0))
            if highwater is None or applied < highwater:
                out.add(key)
        self._held = out
        return out

    async def _maybe_checkpoint(self, now: float) -> None:
        # by records read or events applied (with the watermark, applying can trail reading)
        applied = self.core.model_events - self._applied_at_checkpoint
        if (
            self._since_checkpoint >= self.checkpoint_events
            or applied >= self.checkpoint_events
            or now - self._last_checkpoint >= self.checkpoint_s
        ):
            await self.checkpoint()

    async def _past_the_end(self) -> None:
        """Partitions whose applied offset is past the end the last fetch reported. Kafka
        answers such a fetch with OFFSET_OUT_OF_RANGE and the consumer resets itself (the core
        then sees the partition's start, :meth:`WorkerCore.apply`); the embedded broker answers
        with nothing, so the worker finds it from the high-water mark and seeks to the start
        itself. Either way it is logged and counted (``coldstream_offset_resets_total``)."""
        consumer = self.app.consumer
        if not isinstance(consumer, BatchConsumer):
            return
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            highwater = end_offset(consumer, tp)
            applied = self.core.offsets.get(key)
            if highwater is not None and applied is not None and applied > highwater:
                self.core.reset_partition(key, 0, highwater)
                self._start[key] = 0
                await consumer.seek(tp, 0)

    def _watch_broker(self) -> None:
        """Consumer lag from the latest fetch's high-water marks (so it stays true while
        nothing is applied), and the broker's health (:class:`streams.health.BrokerHealth`)."""
        consumer = self.app.consumer
        if not isinstance(consumer, BatchConsumer):
            return
        waiting = False
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            highwater = end_offset(consumer, tp)
            if highwater is None:
                continue
            behind = max(0, highwater - self.core.offsets.get(key, self._start.get(key, 0)))
            self.core.lag[key] = behind
            waiting = waiting or behind > 0
        self.health.update(consumer.connected(), waiting)

    async def _tick(self) -> None:
        # same event loop as the agent, between two batches: no lock needed
        await self._past_the_end()
        self._watch_broker()
        self.core.tick()
        await self._maybe_checkpoint(time.monotonic())
        if (
            self.on_snapshot is not None
            and (self._since_snapshot or self.core.released != self._released_at_snapshot)
            and time.monotonic() - self._last_snapshot >= self.snapshot_s
        ):
            await self.snapshot()  # a quiet stream still gets its last events served
        if time.monotonic() - self._last_gauges >= self.gauges_s:
            self.core.update_gauges()
            self._last_gauges = time.monotonic()

    async def checkpoint(self, commit_s: float | None = None) -> None:
        """Checkpoint the core, then commit its offsets to the consumer group.

        The commit only informs lag tools (the checkpoint is what the worker restores), so it
        runs in the background and never holds learning or the timer up while the broker is
        slow or gone; a commit still pending when the next checkpoint comes is skipped. With
        ``commit_s`` (at shutdown) it is awaited for at most that many seconds."""
        self.core.checkpoint(self.checkpoint_dir)
        self._since_checkpoint = 0
        self._applied_at_checkpoint = self.core.model_events
        self._last_checkpoint = time.monotonic()
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.core)
        consumer = self.app.consumer
        assert isinstance(consumer, BatchConsumer)
        offsets = self._committable(consumer)
        if not offsets:
            return
        if commit_s is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.commit_offsets(offsets), commit_s)
        elif self._commit is None or self._commit.done():
            self._commit = asyncio.ensure_future(consumer.commit_offsets(offsets))
            self._commit.add_done_callback(_ignore_result)

    def _committable(self, consumer: BatchConsumer) -> dict[TP, int]:
        """The applied offsets of the partitions this member holds now (a commit of others is
        refused), never one past a partition's end as last fetched."""
        assigned = consumer.assignment()
        out = {}
        for (t, p), o in self.core.offsets.items():
            tp = TP(t, p)
            if tp in assigned and ((end := end_offset(consumer, tp)) is None or o <= end):
                out[tp] = o
        return out

    async def _on_assigned(self, app: Any, /, *args: Any, signal: Any = None, **kw: Any) -> None:
        assigned: set[TP] = args[0] if args else set()
        consumer = self.app.consumer
        assert isinstance(consumer, BatchConsumer)
        for tp in assigned:
            key = (tp.topic, tp.partition)
            offset = self.core.offsets.get(key)
            if offset is not None:
                await consumer.seek(tp, offset)
            # where reading starts: the checkpoint, else the committed offset (else earliest)
            self._start[key] = offset if offset is not None else consumer.delivery_position(tp) or 0


def _ignore_result(f: asyncio.Future[Any]) -> None:
    """A background commit's failure is not an error (the next checkpoint commits again)."""
    if not f.cancelled():
        f.exception()


async def run_worker(
    worker: WorkerApp,
    *,
    stop: asyncio.Event | None = None,
    until: Callable[[WorkerApp], bool] | None = None,
    on_stopping: Callable[[], None] | None = None,
) -> bool:
    """Run until SIGINT/SIGTERM, ``stop`` or ``until(worker)``; checkpoint and export a last
    snapshot before leaving.

    The way out is bounded in every state: the checkpoint and the snapshot are local files and
    always written; each broker round trip (the offset commit, the snapshot announcement,
    Faust's stop) gets :data:`SHUTDOWN_STEP_S` seconds, so a worker whose broker is gone still
    leaves within 10 s. Returns False when Faust did not stop in time or the broker is
    unreachable: the Kafka client's thread and tasks may still be retrying, and the caller
    should end the process (:func:`os._exit`) rather than wait for them. ``on_stopping`` is
    called as soon as a stop is asked for (the command starts its exit deadline there)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await worker.app.start()
    stopped = False
    try:
        while not stop.is_set():
            if until is not None and until(worker):
                break
            if worker.app.crashed:  # a crashed agent: stop, keep the last checkpoint
                raise RuntimeError(f"worker crashed: {worker.app.crash_reason!r}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
        if stop.is_set():
            log.info("stopping: writing a checkpoint and a last snapshot")
            if on_stopping is not None:
                on_stopping()
        worker.core.flush()
        # no broker to talk to: do not wait for one
        step = SHUTDOWN_STEP_S if worker.health.connected is not False else 0.01
        await worker.checkpoint(commit_s=step)
        await worker.snapshot(announce_s=step)  # serving gets the final state too
        worker.core.update_gauges()
    finally:
        try:
            await asyncio.wait_for(worker.app.stop(), SHUTDOWN_STEP_S)
            stopped = True
        except TimeoutError:
            log.warning(
                "the Kafka client did not stop within %.1f s (is the broker reachable?); "
                "leaving without it, the checkpoint is written",
                SHUTDOWN_STEP_S,
            )
        worker.core.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    # without a broker, the Kafka client's tasks and thread keep retrying even after a stop
    return stopped and worker.health.connected is not False
