"""Tests of the synthetic dataset generator (streams/synthetic.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from core.records import Interaction, Item, User
from streams._vocab import TOPICS
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.validation import parse
from tests.unit.synthetic_support import (
    SMALL,
    categories,
    gen,
    item_words,
)


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b = generate(SMALL), generate(SMALL)
    assert a == b
    pa, pb = write_jsonl(a, tmp_path / "a"), write_jsonl(b, tmp_path / "b")
    for name in ("items", "users", "interactions", "meta"):
        assert pa[name].read_bytes() == pb[name].read_bytes()
    other = generate(SyntheticConfig(users=300, items=200, events=4000, seed=4))
    assert other.interactions != a.interactions
    assert [i.title for i in other.items] != [i.title for i in a.items]


def test_counts_and_ids_match_config() -> None:
    ds = gen(SMALL)
    assert len(ds.items) == SMALL.items
    assert len(ds.interactions) == SMALL.events
    assert len(ds.users) == round(SMALL.users * SMALL.profile_fraction)
    assert [it.item_id for it in ds.items] == [f"i{n}" for n in range(SMALL.items)]
    user_ids = {f"u{n}" for n in range(SMALL.users)}
    assert {r.user_id for r in ds.interactions} <= user_ids
    assert {u.user_id for u in ds.users} <= user_ids
    counts = ds.meta["counts"]
    assert counts["interactions"] == SMALL.events
    assert counts["initial_items"] == round(SMALL.items * SMALL.initial_item_fraction)
    assert counts["new_users"] == round(SMALL.users * SMALL.new_user_fraction)
    assert ds.meta["config"]["seed"] == SMALL.seed
    assert ds.meta["topics"] == [t.name for t in TOPICS[: SMALL.topics]]


def test_time_order_and_spacing() -> None:
    ds = gen(SMALL)
    ts = np.array([r.ts for r in ds.interactions])
    assert ts[0] > SMALL.start_ts
    assert np.all(np.diff(ts) >= 2)
    mean_gap = (ts[-1] - SMALL.start_ts) / len(ts)
    assert 0.8 * SMALL.mean_gap_ms < mean_gap < 1.2 * SMALL.mean_gap_ms
    assert [it.ts for it in ds.items] == sorted(it.ts for it in ds.items)
    assert [u.ts for u in ds.users] == sorted(u.ts for u in ds.users)
    assert min(it.ts for it in ds.items) == SMALL.start_ts


def test_items_exist_before_their_interactions() -> None:
    ds = gen(SMALL)
    item_ts = {it.item_id: it.ts for it in ds.items}
    first: dict[str, int] = {}
    for r in ds.interactions:
        assert item_ts[r.item_id] <= r.ts, r
        first.setdefault(r.item_id, r.ts)
    arrived = [i for i, t in item_ts.items() if t > SMALL.start_ts]
    assert len(arrived) == SMALL.items - ds.meta["counts"]["initial_items"]
    for i in arrived:
        if i in first:
            assert item_ts[i] < first[i]


def test_cold_items_get_interactions_soon_after_arriving() -> None:
    ds = gen(SMALL)
    item_ts = {it.item_id: it.ts for it in ds.items}
    first: dict[str, int] = {}
    for r in ds.interactions:
        first.setdefault(r.item_id, r.ts)
    end = ds.interactions[-1].ts
    # items that arrived in the first 90% of the stream, i.e. had time to be seen
    cold = [
        i
        for i, t in item_ts.items()
        if SMALL.start_ts < t < SMALL.start_ts + 0.9 * (end - SMALL.start_ts)
    ]
    assert len(cold) > 50
    reached = [i for i in cold if i in first]
    assert len(reached) / len(cold) > 0.85
    delays = [first[i] - item_ts[i] for i in reached]
    # the freshness boost: half of them within 0.4% of the stream (about 16 events); the worst
    # items (quality is spread wide) can take longer
    span = end - SMALL.start_ts
    assert np.median(delays) < 0.004 * span
    assert np.percentile(delays, 90) < 0.1 * span


def test_long_tail_of_item_popularity() -> None:
    cfg = SyntheticConfig(users=1000, items=500, events=10_000, seed=1)
    ds = gen(cfg)
    counts = np.sort(np.bincount([int(r.item_id[1:]) for r in ds.interactions]))[::-1]
    assert counts[: cfg.items // 10].sum() / cfg.events > 0.4


def test_new_users_and_profiles() -> None:
    ds = gen(SMALL)
    n_new = ds.meta["counts"]["new_users"]
    new_ids = {f"u{n}" for n in range(SMALL.users - n_new, SMALL.users)}
    first: dict[str, int] = {}
    for r in ds.interactions:
        first.setdefault(r.user_id, r.ts)
    assert new_ids <= set(first)  # every new user interacts
    assert all(first[u] > SMALL.start_ts for u in new_ids)
    late = sorted(first[u] for u in new_ids)
    span = ds.interactions[-1].ts - SMALL.start_ts
    assert late[len(late) // 2] - SMALL.start_ts > 0.25 * span  # spread over the stream
    for u in ds.users:
        assert u.text and u.tags
        if u.user_id in first:
            assert u.ts <= first[u.user_id]
        if u.user_id in new_ids:
            assert u.ts > SMALL.start_ts
        else:
            assert u.ts == SMALL.start_ts


def test_profiles_predict_interactions() -> None:
    ds = gen(SMALL)
    cat = categories(ds)
    tags = {u.user_id: set(u.tags) for u in ds.users}
    hits = [cat[r.item_id] in tags[r.user_id] for r in ds.interactions if r.user_id in tags]
    mean_tags = np.mean([len(t) for t in tags.values()])
    assert np.mean(hits) > 3 * mean_tags / SMALL.topics


def test_implicit_feedback() -> None:
    ds = gen(SMALL)
    events = Counter(r.event for r in ds.interactions)
    assert set(events) == {"click", "purchase"}
    assert events["click"] > 3 * events["purchase"]
    assert {r.value for r in ds.interactions} == {1.0}
    assert ds.meta["counts"]["repeat_interactions"] < 0.1 * SMALL.events


def test_explicit_ratings() -> None:
    cfg = SyntheticConfig(users=300, items=200, events=4000, seed=3, feedback="explicit")
    ds = gen(cfg)
    values = np.array([r.value for r in ds.interactions])
    assert {r.event for r in ds.interactions} == {"rating"}
    assert values.min() >= 1.0 and values.max() <= 5.0
    assert np.all(values * 2 == np.round(values * 2))
    assert len(set(values.tolist())) >= 6
    assert 2.8 < values.mean() < 4.2
    pairs = [(r.user_id, r.item_id) for r in ds.interactions]
    assert len(set(pairs)) == len(pairs)  # nobody rates an item twice here
    # ratings are higher for items of the user's favourite topics (a small effect: as on
    # MovieLens, the item's quality and the user's bias weigh more)
    cat = categories(ds)
    tags = {u.user_id: set(u.tags) for u in ds.users}
    fav = [
        r.value for r in ds.interactions if r.user_id in tags and cat[r.item_id] in tags[r.user_id]
    ]
    other = [
        r.value
        for r in ds.interactions
        if r.user_id in tags and cat[r.item_id] not in tags[r.user_id]
    ]
    assert np.mean(fav) > np.mean(other) + 0.1


def test_default_stream_spans_months() -> None:
    # popularity with a half-life of days sees trends come and go, as on MovieLens 100K
    cfg = SyntheticConfig()
    assert 150 < cfg.events * cfg.mean_gap_ms / 86_400_000 < 300


def test_items_of_a_topic_read_alike() -> None:
    ds = generate(SyntheticConfig(users=50, items=400, events=50, seed=5))
    toks = [item_words(it) for it in ds.items]
    cat = [it.attributes["category"] for it in ds.items]
    same: list[float] = []
    diff: list[float] = []
    for a in range(len(toks)):
        for b in range(a + 1, min(a + 60, len(toks))):
            jac = len(toks[a] & toks[b]) / len(toks[a] | toks[b])
            (same if cat[a] == cat[b] else diff).append(jac)
    assert len(same) > 100
    assert np.mean(same) > 0.1
    assert np.mean(same) > 5 * np.mean(diff)
    assert all(len(it.title) > 5 and len(it.text) > 40 and len(it.tags) >= 3 for it in ds.items)


def test_write_jsonl_round_trip(tmp_path: Path) -> None:
    cfg = SyntheticConfig(users=80, items=60, events=600, seed=2, feedback="explicit", drift_at=0.3)
    ds = gen(cfg)
    paths = write_jsonl(ds, tmp_path / "out" / "nested")
    assert set(paths) == {"items", "users", "interactions", "meta"}
    expected: dict[str, list[Item] | list[User] | list[Interaction]] = {
        "items": ds.items,
        "users": ds.users,
        "interactions": ds.interactions,
    }
    kinds = {"items": "item", "users": "user", "interactions": "interaction"}
    for name, recs in expected.items():
        lines = paths[name].read_bytes().splitlines()
        parsed = [parse(kinds[name], line) for line in lines]
        assert parsed == recs
        ts = [r.ts for r in recs]
        assert ts == sorted(ts)
    meta = orjson.loads(paths["meta"].read_bytes())
    assert meta == ds.meta
    assert meta["drift_index"] == 180


def test_progress_reports_every_interaction() -> None:
    calls: list[int] = []
    generate(SyntheticConfig(users=100, items=50, events=25_000, seed=0), progress=calls.append)
    assert sum(calls) == 25_000
    assert len(calls) >= 2 and all(c > 0 for c in calls)


def test_small_edge_configs() -> None:
    one = generate(SyntheticConfig(users=1, items=1, events=1, topics=2))
    assert len(one.interactions) == 1 and one.interactions[0].item_id == "i0"
    assert one.meta["counts"]["new_users"] == 0
    full = generate(
        SyntheticConfig(users=5, items=3, events=200, seed=1, initial_item_fraction=1.0)
    )
    assert all(it.ts == full.meta["start_ts"] for it in full.items)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users must be >= 1"),
        ({"events": 0}, "events must be >= 1"),
        ({"topics": 1}, "topics must be between"),
        ({"topics": len(TOPICS) + 1}, "topics must be between"),
        ({"initial_item_fraction": 0.0}, "initial_item_fraction"),
        ({"new_user_fraction": 1.0}, "new_user_fraction"),
        ({"profile_fraction": 1.5}, "profile_fraction"),
        ({"feedback": "stars"}, "feedback must be"),
        ({"drift_at": 1.0}, "drift_at"),
        ({"mean_gap_ms": 0.5}, "mean_gap_ms"),
        ({"session_length": 0.5}, "session_length"),
        ({"session_affinity": 1.5}, "session_affinity"),
        ({"series_per_topic": 0}, "series_per_topic"),
        ({"series_taste": -1.0}, "series_taste"),
        ({"trend_strength": -0.1}, "trend_strength"),
        ({"users": 100, "new_user_fraction": 0.5, "events": 20}, "raise events"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**kwargs)  # type: ignore[arg-type]
