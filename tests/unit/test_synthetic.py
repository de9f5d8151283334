"""Tests of the synthetic dataset generator (streams/synthetic.py)."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import pytest

from core.records import Interaction, Item, User
from streams._vocab import DESCRIPTION_TEMPLATES, TITLE_TEMPLATES, TOPICS
from streams.synthetic import SyntheticConfig, SyntheticDataset, generate, write_jsonl
from streams.validation import parse

SMALL = SyntheticConfig(users=300, items=200, events=4000, seed=3)


@cache
def gen(config: SyntheticConfig) -> SyntheticDataset:
    return generate(config)


def categories(ds: SyntheticDataset) -> dict[str, str]:
    return {it.item_id: str(it.attributes["category"]) for it in ds.items}


TEMPLATE_WORDS = set(
    re.findall(
        r"[a-z]+",
        (" ".join(TITLE_TEMPLATES + DESCRIPTION_TEMPLATES) + " ideal for fans of the").lower(),
    )
)


def item_words(it: Item) -> set[str]:
    """The words of an item's title, text and tags, less those of the shared templates."""
    text = f"{it.title} {it.text} {' '.join(it.tags)}".lower()
    return set(re.findall(r"[a-z]+", text)) - TEMPLATE_WORDS


def tv_distance(a: Counter[str], b: Counter[str]) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b))


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


@pytest.mark.parametrize("seed", [0, 1])
def test_drift_changes_the_topic_mix(seed: int) -> None:
    def window_tv(ds: SyntheticDataset) -> float:
        cat = categories(ds)
        n = len(ds.interactions)
        d, w = n // 2, n // 5
        before = Counter(cat[r.item_id] for r in ds.interactions[d - w : d])
        after = Counter(cat[r.item_id] for r in ds.interactions[d : d + w])
        return tv_distance(before, after)

    # sessions and trends make the topic mix of a steady stream wander: a long enough stream
    cfg = SyntheticConfig(users=1000, items=800, events=20_000, seed=seed)
    steady, drifted = gen(cfg), gen(dataclasses.replace(cfg, drift_at=0.5))
    assert drifted.meta["drift_index"] == 10_000
    assert drifted.meta["drift_ts"] == drifted.interactions[10_000].ts
    assert steady.meta["drift_index"] is None and steady.meta["drift_ts"] is None
    tv_drift, tv_steady = window_tv(drifted), window_tv(steady)
    assert tv_drift > 0.15
    assert tv_steady < 0.13
    assert tv_drift > 1.5 * tv_steady


def user_pairs(ds: SyntheticDataset) -> tuple[list[tuple[int, int, int]], dict[str, list[int]]]:
    """Each user's consecutive interactions as (event gap, item, next item); items per user."""
    last: dict[str, tuple[int, int]] = {}
    pairs: list[tuple[int, int, int]] = []
    items: dict[str, list[int]] = {}
    for k, r in enumerate(ds.interactions):
        i = int(r.item_id[1:])
        if r.user_id in last:
            pairs.append((k - last[r.user_id][0], last[r.user_id][1], i))
        last[r.user_id] = (k, i)
        items.setdefault(r.user_id, []).append(i)
    return pairs, items


def series_agreement(ds: SyntheticDataset) -> tuple[float, float]:
    """How often a user's consecutive items share their hidden series, and how often two
    random items of the same user do."""
    series = ds.meta["item_series"]
    pairs, items = user_pairs(ds)
    consecutive = np.mean([series[a] == series[b] for _, a, b in pairs])
    rng = np.random.default_rng(0)
    rand = [
        series[its[p]] == series[its[q]]
        for its in items.values()
        if len(its) >= 2
        for p, q in rng.integers(len(its), size=(len(its), 2)).tolist()
        if p != q
    ]
    return float(consecutive), float(np.mean(rand))


def test_series_are_hidden_from_the_text() -> None:
    ds = generate(SyntheticConfig(users=50, items=400, events=50, seed=5))
    k = ds.meta["config"]["series_per_topic"]
    series = ds.meta["item_series"]
    assert len(series) == len(ds.items) and set(series) <= set(range(16 * k))
    labels = [t.label for t in TOPICS[:16]]
    # about half of a series' items are about its home topic, the rest about any topic
    home = np.mean(
        [
            labels[s // k] == it.attributes["category"]
            for s, it in zip(series, ds.items, strict=True)
        ]
    )
    assert 0.4 < home < 0.7
    # among items of one category, those of one series read no more alike than the others
    toks = [item_words(it) for it in ds.items]
    cat = [it.attributes["category"] for it in ds.items]
    same: list[float] = []
    other: list[float] = []
    for a in range(len(toks)):
        for b in range(a + 1, len(toks)):
            if cat[a] == cat[b]:
                jac = len(toks[a] & toks[b]) / len(toks[a] | toks[b])
                (same if series[a] == series[b] else other).append(jac)
    assert len(same) > 200
    assert abs(np.mean(same) - np.mean(other)) < 0.02


def test_sessions_are_bursts_within_a_series() -> None:
    ds = gen(SMALL)
    counts = ds.meta["counts"]
    # geometric lengths, mean session_length
    assert 0.7 < SMALL.events / counts["sessions"] / SMALL.session_length < 1.3
    assert counts["session_continuations"] > 0.3 * SMALL.events
    pairs, _ = user_pairs(ds)
    # a user's next event mostly comes soon (the same session), sessions interleave
    gaps = np.array([g for g, _, _ in pairs])
    assert np.mean(gaps <= 40) > 0.8
    assert np.mean(gaps == 1) < 0.5
    # consecutive items of a user share the hidden series far more often than any two
    consecutive, rand = series_agreement(ds)
    assert consecutive > rand + 0.25, (consecutive, rand)


def test_sessions_switch_off() -> None:
    no_affinity = gen(dataclasses.replace(SMALL, session_affinity=0.0))
    consecutive, rand = series_agreement(no_affinity)
    assert consecutive < rand + 0.05, (consecutive, rand)
    assert no_affinity.meta["counts"]["session_continuations"] == 0
    no_sessions = gen(dataclasses.replace(SMALL, session_length=1.0))
    assert no_sessions.meta["counts"]["sessions"] == SMALL.events
    assert no_sessions.meta["counts"]["session_continuations"] == 0
    pairs, _ = user_pairs(no_sessions)
    assert np.mean([g <= 40 for g, _, _ in pairs]) < 0.5
    consecutive, rand = series_agreement(no_sessions)
    assert consecutive < rand + 0.05, (consecutive, rand)


def test_users_have_a_hidden_taste_for_series() -> None:
    # without sessions, a user's items share a series because they like it; switch it off
    plain = dataclasses.replace(SMALL, session_length=1.0)
    _, liked = series_agreement(gen(plain))
    _, indifferent = series_agreement(gen(dataclasses.replace(plain, series_taste=0.0)))
    assert liked > 1.8 * indifferent, (liked, indifferent)


TREND_WINDOWS = ((0.05, 0.3), (0.8, 1.4), (4.0, 8.0))  # in peak times after arrival


def trend_rates(
    ds: SyntheticDataset, chosen: list[tuple[int, int, int]]
) -> npt.NDArray[np.float64]:
    """Interactions per event with the ``chosen`` items (index, arrival event, peak event),
    summed over them, in each of TREND_WINDOWS."""
    events: dict[int, list[int]] = {}
    for k, r in enumerate(ds.interactions):
        events.setdefault(int(r.item_id[1:]), []).append(k)
    out = np.zeros(len(TREND_WINDOWS))
    for i, arrival, peak in chosen:
        ages = np.array(events.get(i, []), dtype=np.float64) - arrival
        tau = peak - arrival
        for w, (lo, hi) in enumerate(TREND_WINDOWS):
            out[w] += np.count_nonzero((ages >= lo * tau) & (ages < hi * tau)) / ((hi - lo) * tau)
    return out


def test_trending_items_rise_then_fade() -> None:
    cfg = SyntheticConfig(users=1000, items=800, events=20_000, seed=0)  # as the drift test's
    ds = gen(cfg)
    trend = ds.meta["item_trend"]
    n_init = ds.meta["counts"]["initial_items"]
    assert all(t is None for t in trend[:n_init]) and all(t for t in trend[n_init:])
    heights = np.array([t[0] for t in trend[n_init:]])
    # most items barely trend, a few trend strongly
    assert np.median(heights) < 0.5 * cfg.trend_strength < 5 * cfg.trend_strength < heights.max()
    assert ds.meta["counts"]["trending_items"] == np.count_nonzero(heights >= 1.0)
    # the same stream without trends: the same items, users and sessions
    flat = gen(dataclasses.replace(cfg, trend_strength=0.0))
    assert flat.items == ds.items and flat.meta["item_series"] == ds.meta["item_series"]
    assert flat.meta["counts"]["trending_items"] == 0
    ts = np.array([r.ts for r in ds.interactions])
    chosen = []
    for n, t in enumerate(trend[n_init:], start=n_init):
        arrival = int(np.searchsorted(ts, ds.items[n].ts))
        if t[0] >= cfg.trend_strength and arrival + 8 * (t[1] - arrival) <= cfg.events:
            chosen.append((n, arrival, t[1]))
    assert len(chosen) >= 40
    # the trend's share of an item's popularity: none just after arrival (the freshness boost
    # is the same in both streams), a lot at the peak, little long after
    ratio = trend_rates(ds, chosen) / trend_rates(flat, chosen)
    early, peak, late = ratio.tolist()
    assert peak > 1.8, ratio
    assert peak > early + 0.6 and peak > late + 0.6, ratio
    assert 0.7 < early < 1.4 and 0.7 < late < 1.4, ratio


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
