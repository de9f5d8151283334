"""Id tables: frequency filter, expiry, bounded memory, sparse Adagrad, state round trip."""

from __future__ import annotations

import copy

import torch

from models.idtable import IdTable


def test_frequency_filter_admits_at_min_count() -> None:
    t = IdTable(dim=4, min_count=3)
    assert [t.lookup("a", ts=i) for i in range(4)] == [-1, -1, 0, 0]
    assert len(t) == 1 and int(t.count[0]) == 2


def test_expiry_frees_rows_for_reuse() -> None:
    t = IdTable(dim=2, ttl=10)
    t.lookup("old", ts=0)
    t.lookup("new", ts=15)
    assert t.expire(now=15) == 1 and t.get("old") == -1 and t.get("new") == 1
    assert t.lookup("next", ts=16) == 0  # the freed row is reused
    assert float(t.weight[0].abs().sum()) == 0.0


def test_memory_stays_bounded_with_many_distinct_ids() -> None:
    t = IdTable(dim=8, max_rows=500, ttl=1_000)
    for i in range(20_000):
        t.lookup(f"user{i}", ts=i)
        if i % 1_000 == 0:
            t.expire(now=i)
    assert len(t) <= 500 and t.weight.shape[0] <= 500
    assert len(t.pending) == 0 and t.get("user19999") >= 0 and t.get("user0") == -1


def test_pending_counts_are_bounded_without_ttl() -> None:
    t = IdTable(dim=2, min_count=2, max_rows=100)
    for i in range(5_000):
        t.lookup(f"once{i}", ts=i)
    assert len(t.pending) <= 100 and len(t) == 0
    assert t.lookup("once4999", ts=9) == 0  # a recent id still counts its first sighting


def test_full_table_evicts_least_recently_seen() -> None:
    t = IdTable(dim=2, max_rows=2)
    t.lookup("a", ts=1)
    t.lookup("b", ts=2)
    t.lookup("a", ts=3)
    t.lookup("c", ts=4)
    assert t.get("b") == -1 and t.get("a") >= 0 and t.get("c") >= 0


def test_sparse_adagrad_moves_only_given_rows() -> None:
    t = IdTable(dim=2)
    for key in ("a", "b"):
        t.lookup(key, ts=0)
    t.adagrad_(torch.tensor([1]), torch.tensor([[1.0, -2.0]]), lr=0.1)
    assert t.weight[0].tolist() == [0.0, 0.0]
    assert torch.allclose(t.weight[1], torch.tensor([-0.1, 0.1]))


def test_state_round_trip() -> None:
    t = IdTable(dim=3, min_count=2, ttl=50, init_std=0.1, seed=3)
    for i in range(30):
        t.lookup(f"k{i % 7}", ts=i)
    twin = IdTable(dim=3)
    twin.load_state_dict(copy.deepcopy(t.state_dict()))
    for tab in (t, twin):
        tab.lookup("fresh", ts=40, admit=True)
    assert t.slots == twin.slots and torch.equal(t.weight, twin.weight)
