"""The worker as one of several ranks (``torchrun ... coldstream.cli worker``): one student.

Under ``torchrun`` each process is one rank of a ``torch.distributed`` group (gloo: the student
learns on CPU). Membership is torchrun's, not Kafka's: a consumer group
would move partitions on its own schedule, and a partition must stay with the rank whose
checkpoint holds its users. So each rank assigns itself (kafka-python, no group):

- the interaction partitions ``p`` with ``p % WORLD_SIZE == RANK`` (the topic is keyed by user,
  so a user's events and state stay on one rank: :func:`models.distributed.owner`);
- every partition of the items and users topics, so every rank knows the whole catalog.

The loop hands interaction batches to its :class:`~streams.worker.WorkerCore` (:meth:`_feed`);
item and user records wait for the next *synchronisation point* (a collective), which a rank
reaches after ``sync_records`` records of its own or ``sync_s`` seconds. At a point the ranks:

1. agree (one ``all_reduce``) on how far every item and user partition has been read by all of
   them, and on whether to checkpoint, export a snapshot or stop;
2. hand those records over, in partition and offset order (each rank encodes a share of the
   texts, :class:`~models.distributed.SharedTeacher`): every catalog grows in the same order;
3. agree on a common watermark (the oldest of their own) and release every waiting event up to
   it, items included; between points a rank releases only interactions and users, up to its
   first waiting item. Items some rank waited ``park_s`` for in vain join everywhere;
4. make the student one model again (:class:`~models.distributed.StudentSync`);
5. checkpoint: every rank writes its state and offsets, and the cut counts once all did
   (:mod:`streams.cut`); snapshot: rank 0 exports (and announces), with every rank's users.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from core.settings import Settings
from exporters.metrics import RankMetrics
from exporters.snapshot import SnapshotExporter, UserPart, user_part
from models.distributed import StudentSync, owner
from models.student import Student
from streams.cut import complete_cut, highest_point, write_rank
from streams.transport import RecordBatch
from streams.worker import DeadLetter, WorkerCore

__all__ = ["RankedWorker"]

log = logging.getLogger(__name__)

TP = tuple[str, int]
#: record batches a rank holds read but not handed to its core, at most (beyond, it reads
#: only for the partition the watermark waits for)
QUEUED = 8


class RankedWorker:
    """One rank's loop around a :class:`WorkerCore` (module docstring). Create it after
    ``dist.init_process_group`` and after restoring the core's checkpoint."""

    def __init__(
        self,
        settings: Settings,
        core: WorkerCore,
        rank_metrics: RankMetrics,
        *,
        checkpoint_dir: Path,
        partitions: dict[str, int],
        checkpoint_s: float = 10.0,
        checkpoint_events: int = 100_000,
        snapshot: SnapshotExporter | None = None,
        sync_records: int = 128,
        sync_s: float = 0.5,
        max_poll_records: int = 5000,
        gauges_s: float = 1.0,
    ) -> None:
        self.settings, self.core, self.m = settings, core, rank_metrics
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        student = core.models.get("student")
        if not isinstance(student, Student):
            raise ValueError("several ranks learn one student: run them with --role student")
        self.student = student
        self.sync = StudentSync(student)
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_s, self.checkpoint_events = checkpoint_s, checkpoint_events
        self.snapshot_exporter = snapshot if self.rank == 0 else None
        self.sync_records, self.sync_s, self.gauges_s = sync_records, sync_s, gauges_s
        topics = settings.topics
        self.interactions = topics.interactions
        self.n_partitions = partitions[topics.interactions]
        self.mine = [
            TopicPartition(topics.interactions, p)
            for p in range(self.n_partitions)
            if p % self.world == self.rank
        ]
        #: item and user partitions, in the same order on every rank (step 1)
        self.shared = [
            TopicPartition(t, p) for t in (topics.items, topics.users) for p in range(partitions[t])
        ]
        self.buffer: dict[TopicPartition, list[Any]] = {tp: [] for tp in self.shared}
        #: interaction records read, not handed to the core yet (:meth:`_feed`)
        self.queue: dict[TopicPartition, deque[list[Any]]] = {tp: deque() for tp in self.mine}
        cfg = settings.kafka_python_config()
        # two consumers: one fetcher busy with a backlog of interactions must not keep the
        # items and users from being read (a point waits for them)
        self.consumer, self.catalog_consumer = (
            KafkaConsumer(
                **cfg,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=max_poll_records,
            )
            for _ in range(2)
        )
        for consumer, tps in ((self.consumer, self.mine), (self.catalog_consumer, self.shared)):
            consumer.assign(tps)
            for tp in tps:
                offset = core.offsets.get((tp.topic, tp.partition))
                if offset is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
        self.producer = KafkaProducer(**cfg)
        core.sources = self._lagging
        # points (and so cuts) are numbered above every cut directory there is, on every rank
        top = torch.tensor([max(core.restored_point, highest_point(checkpoint_dir))])
        dist.all_reduce(top, dist.ReduceOp.MAX)
        self.point = int(top)
        self.stop = threading.Event()
        self._since_point = self._since_checkpoint = 0
        now = time.monotonic()
        self._last_point = self._last_checkpoint = self._last_snapshot = self._last_gauges = now
        self._applied_at_checkpoint = core.model_events

    # -- reading --------------------------------------------------------------------------
    def _read_to(self, tp: TopicPartition) -> int:
        """Next offset to read of a shared partition: past what waits in the buffer."""
        buf = self.buffer[tp]
        if buf:
            return int(buf[-1].offset) + 1
        done = self.core.offsets.get((tp.topic, tp.partition))
        return done if done is not None else self._position(tp)

    def _position(self, tp: TopicPartition) -> int:
        try:
            return int(self.catalog_consumer.position(tp, timeout_ms=5000) or 0)
        except Exception:  # not known yet: nothing read
            return 0

    def _highwater(self, tp: TopicPartition) -> int | None:
        consumer = self.consumer if tp.topic == self.interactions else self.catalog_consumer
        return consumer.highwater(tp)

    def _lagging(self) -> set[TP]:
        """The partitions whose end the core has not reached (buffered records count as
        unread); one whose end is not known yet counts as behind."""
        out = set()
        for tp in self.mine + self.shared:
            key = (tp.topic, tp.partition)
            end = self._highwater(tp)
            done = self.core.offsets.get(key, 0)
            if end is None or done < end:
                out.add(key)
            if end is not None:
                self.core.lag[key] = max(0, end - done)
        return out

    def _dead(self, dead: list[DeadLetter]) -> None:
        """Publish dead letters; a refusal, now or at delivery, is counted and logged."""
        for d in dead:
            try:
                sent = self.producer.send(self.settings.topics.dlq, key=d.key, value=d.value)
            except Exception as exc:
                d.failed(self.core.metrics, self.settings.topics.dlq, exc, log)
            else:
                sent.add_errback(
                    lambda exc, d=d: d.failed(self.core.metrics, self.settings.topics.dlq, exc, log)
                )

    # -- the loop -------------------------------------------------------------------------
    def run(self, until: Callable[[RankedWorker], bool] | None = None) -> None:
        """Learn until SIGINT/SIGTERM (on any rank) or ``until``; the last point checkpoints
        and exports a snapshot."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop.set())
        while True:
            # interaction records read wait in a queue while the core holds enough of them
            # (waiting for items, or for the watermark); past QUEUED batches, reading stops
            # unless the partition the watermark waits for has none (memory stays bounded)
            for tp, records in self.catalog_consumer.poll(timeout_ms=5).items():
                self.buffer[tp].extend(records)
            if sum(map(len, self.queue.values())) < QUEUED or self._starved():
                for tp, records in self.consumer.poll(timeout_ms=20).items():
                    self.queue[tp].append(records)
            if not self._feed():
                return
            self.core.tick()
            now = time.monotonic()
            if now - self._last_gauges >= self.gauges_s:
                self.core.update_gauges()
                self._last_gauges = now
            if until is not None and until(self):
                self.stop.set()
            if (
                self.stop.is_set() or now - self._last_point >= self.sync_s
            ) and not self.at_point():
                return

    def _starved(self) -> bool:
        """Whether the partition that holds the watermark back has nothing queued."""
        lagging = [k for k in self._lagging() if k[0] == self.interactions]
        if not lagging:
            return False
        holder = min(lagging, key=self.core.frontier)
        return not self.queue[TopicPartition(*holder)]

    def _feed(self) -> bool:
        """Hand queued interaction records to the core, a point every ``sync_s`` or
        ``sync_records`` (also inside a large fetch); False once the ranks agreed to stop.

        The partition read least far in event time goes first (a merge). While the core holds
        ``2 * sync_records`` interactions waiting, only the partition that holds the watermark
        back may add more."""
        front = self.core.frontier
        while True:
            ready = [tp for tp in self.mine if self.queue[tp]]
            if not ready:
                return True
            tp = min(ready, key=lambda t: front((t.topic, t.partition)))
            if self.core.waiting_interactions >= 2 * self.sync_records and front(
                (tp.topic, tp.partition)
            ) > min(map(front, self._lagging())):
                return True  # (the watermark waits for another partition, or an item)
            records = self.queue[tp][0]
            chunk = records[: self.sync_records - self._since_point]
            if len(chunk) == len(records):
                self.queue[tp].popleft()
            else:
                self.queue[tp][0] = records[len(chunk) :]
            self._dead(self.core.apply(RecordBatch(tp, chunk, self.consumer.highwater(tp))))
            self._since_point += len(chunk)
            self._since_checkpoint += len(chunk)
            due = time.monotonic() - self._last_point >= self.sync_s
            if (due or self._since_point >= self.sync_records) and not self.at_point():
                return False

    def at_point(self) -> bool:
        """One synchronisation point (module docstring); False once the ranks agreed to stop."""
        t = time.perf_counter()
        core, now = self.core, time.monotonic()
        applied = core.model_events - self._applied_at_checkpoint
        wants = [
            self.stop.is_set(),
            self._since_checkpoint >= self.checkpoint_events
            or applied >= self.checkpoint_events
            or now - self._last_checkpoint >= self.checkpoint_s,
            self.snapshot_exporter is not None
            and now - self._last_snapshot >= self.settings.snapshot_interval_s,
            bool(core.stale_items),
        ]
        # 1. how far every rank read the shared partitions (min), and the flags (max)
        agree = torch.tensor(
            [float(self._read_to(tp)) for tp in self.shared] + [-float(w) for w in wants],
            dtype=torch.float64,
        )
        dist.all_reduce(agree, dist.ReduceOp.MIN)
        stop, ckpt, snap, stale = (bool(-v) for v in agree[len(self.shared) :].tolist())
        ckpt, snap = ckpt or stop, snap or stop
        lap = self._part("agree", t)
        # 2. the shared records up to there, in the same order everywhere
        for tp, upto in zip(self.shared, agree.tolist(), strict=False):
            buf = self.buffer[tp]
            cut = next((i for i, r in enumerate(buf) if r.offset >= upto), len(buf))
            if cut:
                self._dead(core.apply(RecordBatch(tp, buf[:cut], self._highwater(tp))))
                del buf[:cut]
        core.encoding.collect(wait=True)
        lap = self._part("catalog", lap)
        # 3. a common watermark; items some rank waited for in vain
        finite = max(min(core.watermark(), 1e300), -1e300)  # (no infinities in a collective)
        mark = torch.tensor([finite], dtype=torch.float64)
        dist.all_reduce(mark, dist.ReduceOp.MIN)
        lap = self._part("watermark", lap)
        core.release_at_point(float(mark))
        if stale:
            asked: list[list[str]] = [[] for _ in range(self.world)]
            dist.all_gather_object(asked, sorted(core.stale_items))
            core.adopt(sorted({k for ids in asked for k in ids}))
        self._part("release", lap)  # learning what the point released, not synchronising
        # 4. one model again
        if ckpt or snap:
            self.student.flush()  # nothing pending in a checkpoint or a snapshot
        before = dict(self.sync.stats.parts)
        sent = self.sync.stats.bytes
        remote = self.sync.sync()
        for index in remote:
            core.evaluator.item_count[index] += 1
        for part, s in self.sync.stats.parts.items():
            self.m.sync_parts.labels(part=part).inc(s - before.get(part, 0.0))
        self.m.sync_bytes.inc(self.sync.stats.bytes - sent + agree.numel() * 8)
        self.m.remote_events.inc(len(remote))
        self.point += 1
        if ckpt:
            self._checkpoint()
        if snap:
            self._snapshot()
        self.m.syncs.inc()
        self.m.sync.observe(time.perf_counter() - t)
        self._since_point, self._last_point = 0, time.monotonic()
        return not stop

    def _part(self, part: str, since: float) -> float:
        now = time.perf_counter()
        self.m.sync_parts.labels(part=part).inc(now - since)
        return now

    def _checkpoint(self) -> None:
        t = time.perf_counter()
        ok = torch.tensor([1.0])
        try:
            write_rank(
                self.checkpoint_dir,
                self.point,
                self.rank,
                self.core.state_dict(),
                dict(self.core.offsets),
            )
        except Exception:
            log.exception("could not write this rank's part of the cut at point %d", self.point)
            ok[0] = 0.0
        dist.all_reduce(ok, dist.ReduceOp.MIN)
        complete = bool(ok[0])
        if complete and self.rank == 0:
            complete_cut(self.checkpoint_dir, self.point, self.world, self.n_partitions)
        self.m.cuts.labels(outcome="complete" if complete else "incomplete").inc()
        self.core.metrics.checkpoint.observe(time.perf_counter() - t)
        self._since_checkpoint, self._last_checkpoint = 0, time.monotonic()
        self._applied_at_checkpoint = self.core.model_events

    def _snapshot(self) -> None:
        """Every rank's users and offsets to rank 0, which exports."""
        mine = user_part(
            self.student, lambda u: owner(u, self.n_partitions, self.world) == self.rank
        )
        offsets = {k: v for k, v in self.core.offsets.items() if k[0] == self.interactions}
        parts: list[tuple[UserPart, dict[TP, int]] | None] = [None] * self.world
        dist.gather_object((mine, offsets), parts if self.rank == 0 else None, dst=0)
        self._last_snapshot = time.monotonic()
        if self.snapshot_exporter is None:
            return
        every = dict(self.core.offsets)
        for part in parts:
            assert part is not None
            every.update(part[1])
        try:
            snap = self.snapshot_exporter.export(
                self.student, offsets=every, parts=[p[0] for p in parts if p is not None]
            )
            message = self.snapshot_exporter.announcement(snap)
            self.producer.send(self.settings.topics.snapshots, key=b"snapshot", value=message)
        except Exception:
            log.exception("snapshot export failed; the worker goes on")

    def close(self) -> None:
        for closing in (
            self.producer.flush,
            self.producer.close,
            self.consumer.close,
            self.catalog_consumer.close,
        ):
            try:
                closing()
            except Exception as exc:  # the broker may be gone: the checkpoint is written
                log.warning("closing the Kafka client: %s: %s", type(exc).__name__, exc)
        self.core.update_gauges()
        self.core.close()
