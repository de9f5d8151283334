"""Several processes learn one student: ``torch.distributed`` keeps their shared state equal.

Each rank learns the interactions of its own users (a Kafka interactions topic is keyed by
user, so rank ``r`` of ``N`` owns partition ``p`` when ``p % N == r``: :func:`owner`); every
rank sees every item and user event, in the same order, so the catalogs agree row for row.
At a synchronisation point every rank calls :meth:`StudentSync.sync` (a collective: all ranks,
the same number of times), and afterwards the shared state is the same on every rank:

- **dense towers**: each rank's change since the last point is summed, as one process would
  have applied every rank's steps one after the other (averaging them, as local SGD does,
  learned half as fast: README, "Several workers, one student"); Adam's moments stay local;
- **item id rows, biases and their Adagrad accumulators**: likewise summed (the ranks learned
  disjoint events, so every change applies). A row that started in between (its item's first
  interaction) was started by each rank that saw one, from the same content vector: it becomes
  the mean of those rows, not their sum;
- **counts** (interactions per item, the co-occurrence memory, the freshness counts, the
  clock of interactions learned): each rank's events since the last point are exchanged
  (``all_gather_object``) and every rank counts the others' (counts add, in any order); items
  born in between get their age on the common clock;
- **per-user state** (history window, user id row, replay, the pending micro-batch): stays
  with the rank that owns the user, and so does Adam's state.

Each rank's micro-batch is ``batch_size / N`` (:func:`rank_config`): a rank then steps, and
counts its items' freshness, as often in stream time as one process does. With the whole
micro-batch per rank, every rank's own items stayed stale twice as long, and brand-new items
lost 0.03 of Recall@20 (README). Between two points a rank ranks with its own copy, which
misses the other ranks' latest events (``bench/bench_distributed.py`` measures the cost).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
import torch.distributed as dist
from kafka.partitioner.default import murmur2

from models.baselines import grow

if TYPE_CHECKING:
    from models.student import Student, StudentConfig
    from models.teacher import TextEncoder

__all__ = ["SharedTeacher", "StudentSync", "SyncStats", "owner", "partition_of", "rank_config"]

#: the student's per-item arrays whose changes are summed at a synchronisation point
SUMMED = ("emb", "bias", "emb_acc", "bias_acc")


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed ``key`` (murmur2, as the
    Java client and kafka-python do): where ``coldstream load`` puts a user's events."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owner(user_id: str, partitions: int, world: int) -> int:
    """The rank that learns ``user_id``'s interactions: its partition modulo the ranks."""
    return partition_of(user_id, partitions) % world


def rank_config(cfg: StudentConfig, world: int) -> StudentConfig:
    """The configuration of one of ``world`` ranks: its micro-batch a ``world``-th of one
    process's (module docstring)."""
    return replace(cfg, batch_size=max(1, cfg.batch_size // world))


class SharedTeacher:
    """The teacher of one of several ranks: each encodes a ``world``-th of the texts and
    ``all_gather`` assembles them, so the ranks share the teacher's work instead of each doing
    all of it. :meth:`encode` is a collective: every rank calls it with the same texts in the
    same order (the worker encodes only at synchronisation points, :mod:`streams.ranks`)."""

    def __init__(self, teacher: TextEncoder, group: dist.ProcessGroup | None = None) -> None:
        self.teacher, self.group = teacher, group
        self.name, self.dim = teacher.name, teacher.dim
        self.world, self.rank = dist.get_world_size(group), dist.get_rank(group)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        share = list(texts[self.rank :: self.world])
        mine = self.teacher.encode(share) if share else np.zeros((0, self.dim), np.float32)
        parts: list[npt.NDArray[np.float32] | None] = [None] * self.world
        dist.all_gather_object(parts, np.asarray(mine, np.float32), group=self.group)
        out = np.empty((len(texts), self.dim), np.float32)
        for r, part in enumerate(parts):
            assert part is not None
            out[r :: self.world] = part
        return out


@dataclass
class SyncStats:
    """What the synchronisation points cost so far (this rank's view)."""

    syncs: int = 0
    seconds: float = 0.0  # in the collectives, waiting for the slowest rank included
    bytes: int = 0  # sent by this rank (tensors; the exchanged events as pickled)
    remote_events: int = 0  # other ranks' interactions counted here
    #: seconds per part of a point: "wait" (the first collective: for the slowest rank),
    #: "events", "dense", "rows", "cooc", "freshness", "caches"
    parts: dict[str, float] = field(default_factory=dict)

    def add(self, part: str, since: float) -> float:
        now = time.perf_counter()
        self.parts[part] = self.parts.get(part, 0.0) + now - since
        return now


class StudentSync:
    """Keeps one :class:`~models.student.Student` per rank the same model (module docstring).

    Create it on every rank after ``dist.init_process_group`` with a student built the same
    way (same seed) on each; call :meth:`sync` at the same points on every rank."""

    def __init__(self, student: Student, group: dist.ProcessGroup | None = None) -> None:
        self.s, self.group = student, group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.stats = SyncStats()
        student.journal = []
        self._mark()
        with torch.no_grad():  # rank 0's starting weights everywhere (seeds may differ)
            for p in student.towers.parameters():
                dist.broadcast(p.data, 0, group=group)
        student.sync_weights()
        self._dense = torch.nn.utils.parameters_to_vector(student.towers.parameters()).detach()

    def _mark(self) -> None:
        """Keep what the next point's changes are measured from."""
        s, n_cat = self.s, len(self.s.catalog)
        self._base_learned, self._base_cat = s.learned, n_cat
        self._base = {name: getattr(s, name)[:n_cat].copy() for name in (*SUMMED, "n")}
        self._heat, self._heat_base = s.fresh.heat[:n_cat].copy(), s.fresh.base

    def sync(self) -> list[int]:
        """One synchronisation point (collective); returns the other ranks' interactions'
        item rows, in the order they were counted."""
        s, t = self.s, time.perf_counter()
        lap = t
        n_cat = len(s.catalog)
        sizes = torch.tensor([n_cat, -n_cat], dtype=torch.int64)
        dist.all_reduce(sizes, dist.ReduceOp.MAX, group=self.group)
        if int(sizes[0]) != n_cat or int(-sizes[1]) != n_cat:
            raise RuntimeError(
                f"rank {self.rank} has {n_cat} catalog items at a synchronisation point and "
                f"another rank has {int(sizes[0])} or {int(-sizes[1])}: every rank must see every "
                "item event before the same point"
            )
        lap = self.stats.add("wait", lap)
        # 1. the events each rank learned since the last point
        journal, s.journal = s.journal or [], []
        gathered: list[list[tuple[int, list[int]]]] = [[] for _ in range(self.world)]
        dist.all_gather_object(gathered, journal, group=self.group)
        self.stats.bytes += sum(1 + len(w) for _, w in journal) * 8
        lap = self.stats.add("events", lap)
        # 2. dense towers: each rank's change since the last point, summed
        flat = torch.nn.utils.parameters_to_vector(s.towers.parameters()).detach()
        moved = flat - self._dense
        dist.all_reduce(moved, group=self.group)
        flat = self._dense + moved
        torch.nn.utils.vector_to_parameters(flat, s.towers.parameters())
        self._dense = flat.clone()
        self.stats.bytes += flat.numel() * 4
        lap = self.stats.add("dense", lap)
        # 3. item arrays: the changes summed; rows started since the last point averaged
        if n_cat:  # (no items yet: nothing to add)
            self._rows(n_cat)
        lap = self.stats.add("rows", lap)
        # 4. counts of the other ranks' events: the co-occurrence memory
        remote = [ev for r, evs in enumerate(gathered) if r != self.rank for ev in evs]
        if s.cfg.cooc_weight:
            for index, window in remote:
                s.cooc.add(index, window)
        lap = self.stats.add("cooc", lap)
        # 5. freshness on the common clock, the same on every rank: items born since the last
        # point were stamped with this rank's clock, which ran on its own events only (their
        # time since the point is stretched onto the common clock, then averaged over ranks);
        # the counts are those of the last point plus every rank's events, rank by rank
        learned = self._base_learned + sum(len(evs) for evs in gathered)
        local = max(s.learned - self._base_learned, 1)
        fresh, b0 = s.fresh, self._base_learned
        new = slice(min(self._base_cat, n_cat), n_cat)
        born = torch.from_numpy(b0 + (fresh.born[new] - b0) * ((learned - b0) / local))
        dist.all_reduce(born, group=self.group)
        fresh.born[new] = born.numpy() / self.world
        fresh.heat[:n_cat] = grow(self._heat, n_cat)[:n_cat]
        fresh.base = self._heat_base
        everyone = [index for evs in gathered for index, _ in evs]
        s.learned = learned
        if everyone:
            fresh.count(np.asarray(everyone, dtype=np.int64), learned)
        items = [index for index, _ in remote]
        now = torch.tensor([s.now], dtype=torch.int64)
        dist.all_reduce(now, dist.ReduceOp.MAX, group=self.group)
        s.now = int(now)
        lap = self.stats.add("freshness", lap)
        # 6. the serving caches from the agreed weights and rows
        s.sync_weights()
        self._mark()
        lap = self.stats.add("caches", lap)
        self.stats.syncs += 1
        self.stats.remote_events += len(remote)
        self.stats.seconds += time.perf_counter() - t
        return items

    def _rows(self, n_cat: int) -> None:
        """Item rows, biases, Adagrad accumulators and counts (step 3 of :meth:`sync`)."""
        s = self.s
        base = {k: grow(v, n_cat)[:n_cat] for k, v in self._base.items()}
        for index in range(min(self._base_cat, n_cat), n_cat):  # added since, pretrained
            pre = s.pretrained.get(s.catalog.ids[index])  # (every rank loaded the same row)
            if pre is not None:
                base["emb"][index], base["bias"][index], base["n"][index] = pre
        unstarted = base["n"] == 0  # no interaction anywhere at the last point
        started = unstarted & (s.n[:n_cat] > 0)
        parts = [
            np.asarray(getattr(s, k)[:n_cat] - base[k], np.float32).reshape(n_cat, -1)
            for k in (*SUMMED, "n")
        ]
        widths = [p.shape[1] for p in parts]
        buf = torch.from_numpy(np.concatenate([*parts, started[:, None].astype(np.float32)], 1))
        dist.all_reduce(buf, group=self.group)
        self.stats.bytes += buf.numel() * 4
        total = buf.numpy()
        starters = np.maximum(total[:, -1], 1.0)
        col = 0
        for k, w in zip((*SUMMED, "n"), widths, strict=True):
            change = total[:, col : col + w].reshape(getattr(s, k)[:n_cat].shape)
            col += w
            if k in ("emb", "bias"):  # rows started in between: each starter's row, averaged
                shape = (n_cat,) + (1,) * (change.ndim - 1)
                change = np.where(
                    unstarted.reshape(shape), change / starters.reshape(shape), change
                )
            getattr(s, k)[:n_cat] = base[k] + change
