"""Consistent cuts of several ranks (streams.cut) regrouped into another number of ranks
(models.rescale): without Kafka or torch.distributed, two cores that learned their own users'
interactions stand for two ranks at a synchronisation point."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from core.records import Interaction, Item, Record, to_json
from core.settings import Settings
from exporters.metrics import WorkerMetrics
from models.distributed import owner
from models.student import Student
from models.teacher import HashingTeacher
from streams.cut import complete_cut, highest_point, latest_cut, restore_state, write_rank
from streams.transport import RecordBatch
from streams.worker import WorkerCore

T0 = 1_700_000_000_000
PARTITIONS = 4
SETTINGS = Settings.load(topic_prefix="r")
TOPICS = SETTINGS.topics


def _core(ranks: int = 1) -> WorkerCore:
    return WorkerCore(
        SETTINGS,
        role="student",
        teacher=HashingTeacher(32),
        metrics=WorkerMetrics.create(CollectorRegistry()),
        clock=lambda: 1000.0,
        ranks=ranks,
    )


def _batch(topic: str, partition: int, recs: list[Record], first: int) -> RecordBatch:
    rows = [
        SimpleNamespace(offset=first + i, timestamp=T0, key=None, value=to_json(r))
        for i, r in enumerate(recs)
    ]
    return RecordBatch(TP(topic, partition), rows)


USERS = [f"u{i}" for i in range(24)]
ITEMS = [Item(f"i{j}", f"title {j}", T0 + j) for j in range(12)]


def _clicks() -> list[Interaction]:
    rng = np.random.default_rng(0)
    return [
        Interaction(USERS[int(rng.integers(len(USERS)))], f"i{int(rng.integers(12))}", T0 + 100 + t)
        for t in range(400)
    ]


def _two_ranks() -> tuple[list[WorkerCore], dict[int, int]]:
    """Two cores, each with every item and its own users' interactions, partition by partition
    (as two ranks hold them); the count of interactions per partition."""
    cores = [_core(2), _core(2)]
    per_partition: dict[int, list[Interaction]] = {p: [] for p in range(PARTITIONS)}
    for c in _clicks():
        per_partition[(hash_p := _partition(c.user_id))].append(c)
        assert hash_p < PARTITIONS
    for rank, core in enumerate(cores):
        core.apply(_batch(TOPICS.items, 0, list(ITEMS), 0))
        core.release_at_point(float("inf"))
        for p, clicks in per_partition.items():
            if p % 2 == rank and clicks:
                core.apply(_batch(TOPICS.interactions, p, list(clicks), 0))
        core.flush_models()
    return cores, {p: len(v) for p, v in per_partition.items()}


def _partition(user: str) -> int:
    from models.distributed import partition_of

    return partition_of(user, PARTITIONS)


def _student(core: WorkerCore) -> Student:
    s = core.models["student"]
    assert isinstance(s, Student)
    return s


def _cut(directory: Path, cores: list[WorkerCore], point: int) -> None:
    for rank, core in enumerate(cores):
        write_rank(directory, point, rank, core.state_dict(), dict(core.offsets))
    complete_cut(directory, point, len(cores), PARTITIONS)


def _restore(directory: Path, rank: int, world: int) -> WorkerCore:
    core = _core(world)
    assert core.restore(directory, rank=rank, world=world, partitions=PARTITIONS)
    return core


def test_a_cut_of_two_ranks_restores_into_one_and_back_into_two_and_three(tmp_path: Path) -> None:
    cores, counts = _two_ranks()
    _cut(tmp_path, cores, point=7)
    assert latest_cut(tmp_path) is not None and core_users(cores[0]) & core_users(cores[1]) == set()

    one = _restore(tmp_path, 0, 1)
    assert one.restored_point == 7
    assert one.model_events == sum(c.model_events for c in cores) == sum(counts.values())
    # every user's state, from the rank that owned the user
    assert core_users(one) == core_users(cores[0]) | core_users(cores[1])
    for old in cores:
        for user in core_users(old):
            a, b = _student(old), _student(one)
            row_a, row_b = a.users.get(user), b.users.get(user)
            assert (row_a < 0) == (row_b < 0)
            if row_a >= 0:
                assert np.array_equal(a.users.weight[row_a].numpy(), b.users.weight[row_b].numpy())
            assert a.state[user].hist == b.state[user].hist
            assert old.evaluator.seen.get(user) == one.evaluator.seen.get(user)
    # offsets: every interaction partition from the rank that owned it, items from rank 0
    for p, n in counts.items():
        if n:
            assert one.offsets[(TOPICS.interactions, p)] == n
    assert one.offsets[(TOPICS.items, 0)] == len(ITEMS)
    # the running metric sums move to rank 0 only: their sum over ranks stays
    assert np.array_equal(
        one.evaluator.state_dict()["n"], sum(c.evaluator.state_dict()["n"] for c in cores)
    )

    # one process's checkpoint (newer than the cut) back into two ranks, and into three
    one.checkpoint(tmp_path)
    for world in (2, 3):
        ranks = [_restore(tmp_path, r, world) for r in range(world)]
        assert sum(c.model_events for c in ranks) == one.model_events
        assert set().union(*map(core_users, ranks)) == core_users(one)
        for r, c in enumerate(ranks):
            assert all(owner(u, PARTITIONS, world) == r for u in core_users(c))
            mine = {p for p in range(PARTITIONS) if p % world == r}
            parts = {p for (t, p) in c.offsets if t == TOPICS.interactions}
            assert parts <= mine
            assert len(_student(c).catalog) == len(ITEMS)  # the shared state everywhere


def core_users(core: WorkerCore) -> set[str]:
    s = _student(core)
    return set(s.state) | set(s.users.slots)


def test_an_incomplete_cut_does_not_count(tmp_path: Path) -> None:
    cores, _ = _two_ranks()
    _cut(tmp_path, cores, point=3)
    write_rank(tmp_path, 5, 0, cores[0].state_dict(), dict(cores[0].offsets))  # rank 1 died
    found = latest_cut(tmp_path)
    assert found is not None and found.point == 3
    assert highest_point(tmp_path) == 5  # the next cut is numbered above the torn one
    state = restore_state(
        tmp_path, rank=0, world=2, partitions=PARTITIONS, interactions=TOPICS.interactions
    )
    assert state is not None and state[2] == 3


def test_a_complete_cut_with_a_missing_rank_file_is_an_error(tmp_path: Path) -> None:
    cores, _ = _two_ranks()
    _cut(tmp_path, cores, point=4)
    (latest_cut(tmp_path).path / "rank-1.pt").unlink()  # type: ignore[union-attr]
    with pytest.raises(Exception, match=r"rank-1\.pt is missing"):
        restore_state(
            tmp_path, rank=0, world=1, partitions=PARTITIONS, interactions=TOPICS.interactions
        )


def test_items_join_every_rank_at_points_up_to_the_common_watermark() -> None:
    """Between points a rank releases interactions only, up to its first waiting item; at a
    point everything up to the ranks' common watermark goes, items included, so every catalog
    is the same, row for row."""
    items = [Item(f"i{j}", f"title {j}", T0 + 10 * j) for j in range(6)]
    a, b = _core(2), _core(2)
    for core in (a, b):
        core.apply(_batch(TOPICS.items, 0, items, 0))
    a.apply(_batch(TOPICS.interactions, 0, [Interaction("u1", "i0", T0 + 1)], 0))
    assert len(a.catalog) == 0 and a.model_events == 0  # i0 holds the click back
    a.release_at_point(T0 + 35)
    b.release_at_point(T0 + 35)
    assert list(a.catalog.ids) == list(b.catalog.ids) == ["i0", "i1", "i2", "i3"]
    assert a.model_events == 1
    # a late item (older than some that joined) joins both at the next point, in one place
    late = [Item("late", "late title", T0 + 5)]
    for core in (a, b):
        core.apply(_batch(TOPICS.items, 0, late, len(items)))
        core.release_at_point(float("inf"))
    assert list(a.catalog.ids) == list(b.catalog.ids)
    assert a.catalog.ids[4:] == ["late", "i4", "i5"]
