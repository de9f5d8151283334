"""The co-occurrence memory and term: scores against a plain reference, the served copy (CSR)
scoring the same floats, the top boosts, and the cold items' imputed boost."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from models.cooc import Cooccurrence, combine, top_boost, window_scores


def _stream(seed: int = 0, items: int = 30, events: int = 800) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    return [(f"u{rng.integers(12)}", int(rng.zipf(1.6) % items)) for _ in range(events)]


@pytest.mark.parametrize("alpha", [0.5, 0.75])
def test_window_scores_equal_a_dense_reference(alpha: float) -> None:
    items, window = 30, 10
    memory = Cooccurrence(alpha)
    for i in range(items):
        memory.observe_item(i)
    dense = np.zeros((items, items))
    n = np.zeros(items)
    recent: dict[str, deque[int]] = {}
    for user, item in _stream():
        win = recent.setdefault(user, deque(maxlen=window))
        memory.add(item, win)
        for j in win:
            if j != item:
                dense[item, j] += 1
                dense[j, item] += 1
        n[item] += 1
        win.append(item)
    np.testing.assert_array_equal(memory.n[:items], n)
    for user, win in recent.items():
        idx, s = window_scores(win, memory.neighbours, memory.n, alpha)
        want = np.zeros(items)
        for j in set(win):
            want += dense[j] / n[j] ** (1 - alpha)
        want /= np.maximum(n, 1) ** alpha
        got = np.zeros(items)
        got[idx] = s
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=user)
        assert set(idx.tolist()) == set(np.flatnonzero(want).tolist())


def test_the_served_copy_scores_the_same_floats() -> None:
    from snapshotlib.tables import CoocTables

    memory = Cooccurrence(0.75)
    for i in range(30):
        memory.observe_item(i)
    recent: dict[str, deque[int]] = {}
    for user, item in _stream(seed=1):
        win = recent.setdefault(user, deque(maxlen=10))
        memory.add(item, win)
        win.append(item)
    indptr, rows, counts = memory.csr(30)
    served = CoocTables(indptr, rows, counts, memory.n[:30].astype(np.float32))
    n64 = served.n.astype(np.float64)
    for win in recent.values():
        a = window_scores(win, memory.neighbours, memory.n, 0.75)
        b = window_scores(win, served.neighbours, n64, 0.75)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # the state round trip keeps every pair
    twin = Cooccurrence(0.75)
    twin.load_state_dict(memory.state_dict())
    np.testing.assert_array_equal(twin.csr(30)[1], rows)


def test_top_boost_keeps_the_best_in_order() -> None:
    idx = np.array([3, 1, 7, 5], dtype=np.int64)
    s = np.array([0.5, 2.0, 0.5, 1.0])
    rows, boost = top_boost(idx, s, weight=4.0, top=3)
    assert rows.tolist() == [1, 5, 3]  # ties (3 and 7 at 0.5) by row
    np.testing.assert_allclose(boost, 4.0 * np.log1p([2.0, 1.0, 0.5]), rtol=1e-6)


def test_cold_items_get_the_mean_boost_of_the_leading_warm_items() -> None:
    dense = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0], dtype=np.float32)
    cold = np.array([False, False, False, False, True, True])
    idx = np.array([1, 3], dtype=np.int64)
    boost = np.array([2.0, 8.0], dtype=np.float32)
    out = combine(dense, idx, boost, cold, impute=2)
    # leaders by dense score among warm items: 0 (boost 0) and 1 (boost 2): mean 1
    np.testing.assert_allclose(out, [5.0, 6.0, 3.0, 10.0, 2.0, 1.0])
    # fewer warm items than ``impute``: the missing leaders count as boost 0
    out = combine(dense, idx, boost, cold, impute=8)
    np.testing.assert_allclose(out[4:], [1.0 + 10.0 / 8, 0.0 + 10.0 / 8])
    # no boosts at all (a user without a window): the dense scores, untouched
    np.testing.assert_array_equal(combine(dense, idx[:0], boost[:0], cold, 2), dense)


def test_a_capped_memory_keeps_each_items_most_frequent_neighbours() -> None:
    memory = Cooccurrence(0.5, neighbours=3)
    for i in range(10):
        memory.observe_item(i)
    memory.add(0, [1, 1, 1, 2, 2])  # 0 meets 1 three times, 2 twice
    memory.add(0, [3, 4])  # a fourth and fifth neighbour: still under 2 x 3
    assert memory.neighbours(0)[0].tolist() == [1, 2, 3, 4]
    memory.add(0, [5, 6])  # six neighbours: pruned to the three most frequent, in their order
    nb, cnt = memory.neighbours(0)
    assert nb.tolist() == [1, 2, 3] and cnt.tolist() == [3.0, 2.0, 1.0]
    memory.add(0, [4])  # a pruned pair that occurs again starts over
    assert memory.neighbours(0)[0].tolist() == [1, 2, 3, 4]
    assert memory.neighbours(0)[1].tolist() == [3.0, 2.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="neighbours"):
        Cooccurrence(0.5, neighbours=0)
