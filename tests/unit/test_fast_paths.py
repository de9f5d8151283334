"""The per-event fast paths equal their plain definitions, bit for bit.

The student's queries, its decayed interaction counts and the drift monitor's item
popularity ranks are computed in vectorised or incremental form for speed (see the README's
"Benchmarks"); these tests pin each to the straightforward loop it replaced, so a change in
speed can never be a change in results.
"""

from __future__ import annotations

import numpy as np

from models.catalog import Catalog
from models.freshness import Freshness
from models.monitor import DriftMonitor
from models.registry import build_models
from tests.snapshot_support import trained_student


def test_queries_equal_the_per_user_definition() -> None:
    student, _, _ = trained_student(events=1500, items=120, users=80)
    w, d = student._w, student.cfg.dim
    users = [*list(student.state)[:40], "never-seen"]
    got = student.queries(users)
    for r, u in enumerate(users):
        st = student.state.get(u)
        hist = st.hist[::-1] if st is not None else []  # most recent first
        q, x = np.zeros(d), np.zeros(student.cfg.teacher_rank)
        if hist:
            logits = w["pos"][: len(hist)]
            att = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            for k, item in enumerate(hist):
                q += att[k] * student._v[item]
                x += att[k] * w["sim"][0] * student.tp[item]
        else:
            q += w["u0"]
        row = student.users.get(u)
        if row >= 0:
            q += student.users.weight[row].numpy()
        if st is not None and st.profile is not None:
            q += w["profile.weight"] @ st.profile + w["profile.bias"]
            x += w["sim"][1] * (w["proj"] @ st.profile)
        new_user = [0.0 if hist else 1.0]  # weighs the rows' new-user column
        np.testing.assert_allclose(got[r], np.concatenate([q, x, new_user]), rtol=1e-5, atol=1e-6)
    assert got[-1, -1] == 1.0 and got[:-1, -1].sum() < len(users) - 1  # some have a history


def test_decayed_counts_equal_the_event_by_event_update() -> None:
    a, b = Freshness((200.0, 2000.0, 20000.0)), Freshness((200.0, 2000.0, 20000.0))
    for i in range(30):
        a.observe(i, 0)
        b.observe(i, 0)
    rng = np.random.default_rng(1)
    scales, clock = a.scales, 0
    for _ in range(40):  # batches that cross the rebase point (every 8 * 200 interactions)
        items = rng.integers(0, 30, int(rng.integers(1, 300)))
        clock += len(items)
        a.count(items, clock)
        for j, index in enumerate(items):  # the loop it replaced
            at = clock - len(items) + j + 1
            if at - b.base > 8 * scales[0]:
                b.heat *= 2.0 ** (-(at - b.base) / scales)
                b.base = at
            b.heat[index] += 2.0 ** ((at - b.base) / scales)
        assert a.base == b.base
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


def test_one_users_query_equals_the_batch_of_queries() -> None:
    student, _, _ = trained_student(events=1500, items=120, users=80)
    users = [*list(student.state)[:40], "never-seen"]
    batch = student.queries(users)
    for r, u in enumerate(users):
        np.testing.assert_allclose(student.query(u), batch[r], rtol=1e-5, atol=1e-6)
