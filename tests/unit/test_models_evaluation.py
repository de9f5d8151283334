"""The prequential protocol on hand-built streams whose metric values are known exactly."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from core.records import Interaction, Item
from models.baselines import Popularity
from models.catalog import Catalog
from models.evaluation import Prequential, count_slice, run_prequential
from tests.unit.models_support import one_thread  # noqa: F401 (autouse fixture)


class Scripted:
    """Scores item ``i`` as ``-i`` (earlier items first) or a constant; logs every call."""

    name = "scripted"

    def __init__(self, catalog: Catalog, constant: bool = False) -> None:
        self.catalog, self.constant = catalog, constant
        self.log: list[tuple[Any, ...]] = []

    def observe_item(self, index: int) -> None:
        self.log.append(("item", index))

    def observe_user(self, user_id: str, embedding: Any) -> None:
        self.log.append(("user", user_id))

    def learn_one(self, user_id: str, index: int, value: float, ts: int) -> None:
        self.log.append(("learn", user_id, index))

    def flush(self) -> None:
        pass

    def score_all(self, user_id: str) -> np.ndarray:
        n = len(self.catalog)
        self.log.append(("score", user_id, n))
        return np.zeros(n) if self.constant else -np.arange(n, dtype=float)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _setup(
    n_items: int, k: int = 1, constant: bool = False, **kw: Any
) -> tuple[Prequential, Scripted, Catalog]:
    cat = Catalog(dim=2)
    model = Scripted(cat, constant)
    ev = Prequential({"m": model}, cat, k=k, **kw)
    for i in range(n_items):
        ev.item(cat.add(f"i{i}", [1.0, 0.0]))
    return ev, model, cat


def test_scores_before_learning_and_only_existing_items() -> None:
    ev, model, cat = _setup(2)
    ev.interaction("u", 1, 1.0, 0)
    ev.item(cat.add("late", [0.0, 1.0]))
    ev.interaction("v", 2, 1.0, 1)
    calls = [c for c in model.log if c[0] in ("score", "learn")]
    assert calls == [("score", "u", 2), ("learn", "u", 1), ("score", "v", 3), ("learn", "v", 2)]


def test_seen_items_are_excluded_and_metrics_exact() -> None:
    ev, _, _ = _setup(4, k=2)
    ev.interaction("u", 0, 1.0, 0)  # rank 0: hit, ndcg 1, rr 1
    ev.interaction("u", 2, 1.0, 1)  # item 0 seen -> only item 1 above: rank 1
    ev.interaction("u", 3, 1.0, 2)  # 0 and 2 seen -> item 1 above: rank 1
    r = ev.result().metrics["m"]
    assert r["recall"]["all"] == pytest.approx(1.0)
    assert r["ndcg"]["all"] == pytest.approx((1 + 2 / math.log2(3)) / 3)
    assert r["mrr"]["all"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert r["recall"]["new_user"] == pytest.approx(1.0)  # only the first event is a new user


def test_ties_count_against_the_target() -> None:
    ev, _, _ = _setup(5, k=4, constant=True)
    ev.interaction("u", 2, 1.0, 0)  # 5 items all tied: ranked last (rank 4)
    ev.interaction("u", 3, 1.0, 1)  # 4 left, tied: rank 3 -> inside k=4
    r = ev.result().metrics["m"]
    assert r["mrr"]["all"] == pytest.approx((1 / 5 + 1 / 4) / 2)
    assert r["recall"]["all"] == pytest.approx(0.5)


def test_slices_by_item_count_and_new_users() -> None:
    ev, _, _ = _setup(1, k=1)
    for u in range(23):
        ev.interaction(f"u{u}", 0, 1.0, u)
    ev.interaction("u0", 0, 1.0, 99)  # a repeat: the item is already seen by u0
    r = ev.result()
    assert r.evaluated == {"all": 23, "0": 1, "1-5": 5, "6-20": 15, ">20": 2, "new_user": 23}
    assert r.skipped_repeats == 1 and r.events == 24
    assert [count_slice(n) for n in (0, 1, 5, 6, 20, 21)] == [
        "0",
        "1-5",
        "1-5",
        "6-20",
        "6-20",
        ">20",
    ]


def test_threshold_every_and_windows() -> None:
    ev, model, _ = _setup(6, k=1, threshold=4.0, every=2, window=1)
    values = [5.0, 2.0, 4.0, 4.5, 4.0]  # positives: events 0, 2, 3, 4 -> evaluate 2nd and 4th
    for j, v in enumerate(values):
        ev.interaction("u", j, v, j)
    r = ev.result()
    assert r.evaluated["all"] == 2
    assert sum(1 for c in model.log if c[0] == "learn") == 5  # every event is learned
    scored = [c for c in model.log if c[0] == "score"]
    assert len(scored) == 2
    # the 2.0 rating is no positive but marks item 1 as seen: item 2 then ranks first (k=1)
    assert r.metrics["m"]["recall"]["all"] == pytest.approx(1.0)
    assert [p["recall"] for p in r.timeline["m"]] == [1.0, 1.0]


def test_run_prequential_unannounced_items_and_popularity() -> None:
    cat = Catalog(dim=2)
    ev = Prequential({"popularity": Popularity(cat)}, cat, k=1)
    recs = [
        Item("a", "A", 0),
        Item("b", "B", 0),
        Interaction("u1", "b", 1),
        Interaction("u2", "b", 2),  # 1st: tie (miss); 2nd: hit
        Interaction("u3", "ghost", 3),  # never announced: not evaluated, then added
        Interaction("u4", "ghost", 4),  # b (2) beats ghost (1): miss
    ]
    r = run_prequential(recs, ev, {("item", "a"): np.ones(2, np.float32)})
    assert r.unannounced == 1 and len(cat) == 3
    assert r.evaluated["all"] == 3
    assert r.metrics["popularity"]["recall"]["all"] == pytest.approx(1 / 3)
    assert r.report().keys() == {"k", "events", "evaluated", "models"}


def test_run_prequential_leaves_other_ranks_users_to_them_but_counts_their_items() -> None:
    cat = Catalog(dim=2)
    pop = Popularity(cat)
    ev = Prequential({"popularity": pop}, cat, k=1)
    recs = [
        Item("a", "A", 0),
        Item("b", "B", 0),
        Interaction("other", "b", 1),  # another rank's user: neither learned nor evaluated
        Interaction("mine", "b", 2),  # b has one interaction (slice 1-5); a tie with a: miss
    ]
    points: list[int] = []
    r = run_prequential(recs, ev, {}, owns=lambda u: u == "mine", after=points.append)
    assert points == [1, 2, 3, 4]
    assert r.events == 1 and r.evaluated["all"] == 1 and r.evaluated["1-5"] == 1
    assert ev.item_count == [0, 2]
    assert r.metrics["popularity"]["recall"]["all"] == 0.0  # popularity never learned "other"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Prequential({}, Catalog(2), k=0)


def test_state_round_trip_and_totals() -> None:
    from tests.unit.models_support import fresh_models, tiny_stream

    stream = tiny_stream(events=300)
    evs = []
    for _ in range(2):
        cat, models = fresh_models(stream, ("popularity", "river", "student"))
        ev = Prequential(models, cat, k=5, window=50)
        ev.item_count.extend([0] * len(cat))
        evs.append(ev)
    a, b = evs
    for j, (u, i) in enumerate(stream.events[:150]):
        a.interaction(u, i, 1.0, j)
    b.load_state_dict(a.state_dict())
    for j, (u, i) in enumerate(stream.events[150:], start=150):
        a.interaction(u, i, 1.0, j)
        b.interaction(u, i, 1.0, j)
    (sa, na), (sb, nb) = a.totals(), b.totals()
    np.testing.assert_allclose(sa, sb)
    assert (na == nb).all() and na[0] > 0 and sa.shape == (3, 3, 6)


def test_idle_users_are_forgotten_and_count_as_new_again() -> None:
    from models import evaluation

    ev, _, _ = _setup(3, user_ttl_ms=100)
    with pytest.raises(ValueError, match="positive"):
        _setup(1, user_ttl_ms=0)
    ev.interaction("a", 0, 1.0, ts=0)
    ev.interaction("b", 1, 1.0, ts=50)
    assert ev.expire_users(cutoff=200 - 100) == 2  # both idle for more than 100 ms at ts=200
    assert ev.seen == {} and ev.seen_set == {}
    ev.interaction("a", 0, 1.0, ts=200)  # item 0 is not a seen item any more: ranked, new user
    assert ev.result().evaluated["new_user"] == 3
    # the sweep runs by itself every _EXPIRE_EVERY events, and survives a checkpoint
    ev2, _, _ = _setup(3, user_ttl_ms=100)
    ev2.load_state_dict(ev.state_dict())
    assert ev2._last == {"a": 200}
    for j in range(evaluation._EXPIRE_EVERY - ev2.events):
        ev2.interaction(f"u{j}", 1, 1.0, ts=1000 + j)
    assert "a" not in ev2.seen and len(ev2.seen) < evaluation._EXPIRE_EVERY


def test_without_a_ttl_every_user_is_kept() -> None:
    ev, _, _ = _setup(2)
    ev.interaction("a", 0, 1.0, ts=0)
    ev.interaction("b", 1, 1.0, ts=10**12)
    assert set(ev.seen) == {"a", "b"} and ev._last == {}
