"""The per-event fast paths equal their plain definitions, bit for bit.

The student's history features, its decayed positive counts and the drift monitor's item
popularity ranks are computed in vectorised or incremental form for speed (see the README's
"Benchmarks"); these tests pin each to the straightforward loop it replaced, so a change in
speed can never be a change in results.
"""

from __future__ import annotations

import numpy as np

from models.catalog import Catalog
from models.monitor import DriftMonitor
from models.registry import build_models
from models.trainer import Student
from tests.snapshot_support import trained_student


def test_history_features_equal_the_mean_of_each_history() -> None:
    student, _, _ = trained_student(events=1500, items=120, users=80)
    emb = student.catalog.embeddings
    dt = emb.shape[1]
    rng = np.random.default_rng(0)
    hists = np.full((50, student.cfg.history), -1, dtype=np.int64)
    for r in range(50):  # empty, partial and full histories, repeats allowed
        k = int(rng.integers(0, student.cfg.history + 1))
        hists[r, :k] = rng.integers(0, len(student.catalog), k)
    users = list(student.state)[:50]
    x = student._features([student.state[u] for u in users], hists)
    for r in range(50):
        h = [i for i in hists[r] if i >= 0]
        want = emb[h].mean(0) if h else np.zeros(dt, dtype=np.float32)
        assert np.array_equal(x[r, dt : 2 * dt], want)
        assert x[r, -1] == (1.0 if h else 0.0)
    # without explicit histories: each user's own
    own = student._features([student.state[u] for u in users])
    for r, u in enumerate(users):
        h = student.state[u].hist
        assert np.array_equal(own[r, dt : 2 * dt], emb[h].mean(0) if h else np.zeros(dt))


def test_decayed_counts_equal_the_event_by_event_update() -> None:
    cat = Catalog(8)
    a, b = Student(cat, threshold=None), Student(cat, threshold=None)
    for i in range(30):
        cat.add(f"i{i}", np.ones(8, dtype=np.float32))
        a.observe_item(i)
        b.observe_item(i)
    rng = np.random.default_rng(1)
    scales = a._scales
    for _ in range(40):  # batches that cross the rebase point (every 8 * 200 positives)
        items = rng.integers(0, 30, int(rng.integers(1, 300)))
        for s in (a, b):
            s.learned += len(items)
        a._heat(items)
        for j, index in enumerate(items):  # the loop it replaced
            clock = b.learned - len(items) + j + 1
            if clock - b.heat_base > 8 * scales[0]:
                b.heat *= 2.0 ** (-(clock - b.heat_base) / scales)
                b.heat_base = clock
            b.heat[index] += 2.0 ** ((clock - b.heat_base) / scales)
        assert a.heat_base == b.heat_base
        assert np.array_equal(a.heat, b.heat)


def test_popularity_ranks_equal_counting_the_catalog() -> None:
    cat = Catalog(4)
    monitor = DriftMonitor(build_models(["popularity"], cat, threshold=None), cat)
    counts = np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(2)
    for step in range(6000):
        if len(cat) == 0 or rng.random() < 0.05:
            cat.add(f"i{len(cat)}", rng.standard_normal(4).astype(np.float32))
        n = len(cat)
        index = int(min(n - 1, rng.zipf(1.3) - 1))
        counts = np.concatenate([counts, np.zeros(n - len(counts), dtype=np.int64)])
        want = np.count_nonzero(counts < counts[index]) / n
        counts[index] += 1
        assert monitor._popularity_rank(index) == want
        if step == 3000:  # as after loading a checkpoint
            monitor._rebuild_ranks()
