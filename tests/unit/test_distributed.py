"""Several ranks, one student (models.distributed): two real gloo processes on this host."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from models.catalog import Catalog
from models.checks import TINY, tiny_stream
from models.distributed import StudentSync, owner, partition_of, rank_config
from models.student import Student

STREAM = tiny_stream(events=600)
PARTITIONS = 4


def _rank(rank: int, world: int, store: str, out: Any) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        cat = Catalog(STREAM.emb.shape[1])
        s = Student(cat, config=rank_config(TINY, world), seed=rank)  # seeds differ on purpose
        for i, vec in enumerate(STREAM.emb):
            s.observe_item(cat.add(f"i{i}", vec))
        sync = StudentSync(s)
        # an item pretrained elsewhere (coldstream pretrain) joins between two points
        s.pretrained["pre"] = (np.full(TINY.dim, 0.5, np.float32), 0.25, 3.0)
        for j, (user, item) in enumerate(STREAM.events):
            if owner(user, PARTITIONS, world) == rank:
                s.learn_one(user, item, 1.0, j)
            if j == 120:
                s.observe_item(cat.add("pre", STREAM.emb[0]))
            if (j + 1) % 50 == 0:
                sync.sync()
        s.flush()
        sync.sync()
        out.put(
            (
                rank,
                {
                    "towers": {k: v.numpy().copy() for k, v in s.towers.state_dict().items()},
                    "emb": s.emb.copy(),
                    "bias": s.bias.copy(),
                    "n": s.n.copy(),
                    "cooc_n": s.cooc.n.copy(),
                    "learned": s.learned,
                    "served": s.serving_rows()[0],
                    "users": sorted(s.state),
                    "syncs": sync.stats.syncs,
                    "remote": sync.stats.remote_events,
                },
            )
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_ranks_end_with_one_model_and_every_event_counted_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.SimpleQueue()
    store = str(tmp_path / "store")
    procs = [ctx.Process(target=_rank, args=(r, 2, store, out)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(out.get() for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    a, b = got[0], got[1]
    # every user's events were learned by one rank only, and both ranks learned some
    users = {u for u, _ in STREAM.events}
    owned = {r: {u for u in users if owner(u, PARTITIONS, 2) == r} for r in (0, 1)}
    assert owned[0] and owned[1]
    assert set(a["users"]) == owned[0] and set(b["users"]) == owned[1]
    assert a["remote"] + b["remote"] == len(STREAM.events)
    # one model: the shared state is equal on both ranks
    for key, value in a["towers"].items():
        np.testing.assert_allclose(value, b["towers"][key], rtol=1e-6, atol=1e-7, err_msg=key)
    for key in ("emb", "bias", "n", "cooc_n", "served"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6, err_msg=key)
    # every event counted exactly once: per item, and on the clock
    expected = np.bincount([i for _, i in STREAM.events], minlength=len(STREAM.emb))
    np.testing.assert_array_equal(a["n"][: len(expected)], expected)
    np.testing.assert_array_equal(a["cooc_n"][: len(expected)], expected)
    # the pretrained item's count is its pretrained count once, not once per rank
    assert a["n"][len(expected)] == 3.0
    assert a["learned"] == b["learned"] == len(STREAM.events)
    assert a["syncs"] == b["syncs"] == len(STREAM.events) // 50 + 1
    # the rows learned: not the starting vectors
    assert np.abs(a["emb"][: len(expected)][expected > 0]).sum() > 0


def test_partitions_follow_kafkas_default_partitioner() -> None:
    """A rank owns the partitions Kafka's default partitioner (the Java client's, and
    kafka-python's in ``coldstream load``) writes a user's events to."""
    # murmur2 of these keys as Kafka's own tests give it (signed 32 bits)
    java = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536}
    for key, h in java.items():
        for n in (1, 4, 6, 7):
            assert partition_of(key, n) == (h & 0x7FFFFFFF) % n
    keys = [f"u{k}" for k in range(200)]
    parts = [partition_of(k, 4) for k in keys]
    assert set(parts) == {0, 1, 2, 3}
    assert [owner(k, 4, 2) for k in keys] == [p % 2 for p in parts]
