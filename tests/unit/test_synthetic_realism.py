"""The generator's realism (streams/synthetic.py): drift, hidden series, sessions of related
items, users' taste for series, trends that rise and fade."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import numpy.typing as npt
import pytest

from streams._vocab import TOPICS
from streams.synthetic import SyntheticConfig, SyntheticDataset, generate
from tests.unit.synthetic_support import (
    SMALL,
    categories,
    gen,
    item_words,
    tv_distance,
)


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
