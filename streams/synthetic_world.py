"""The world of the synthetic generator (:mod:`streams.synthetic`): items and users with
their tastes, series and trends (:func:`build_world`), their texts, and the draws the stream
is made of (two-level weighted draws, redraws of seen items, session schedules)."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from core.records import Interaction, Item, User
from streams._vocab import DESCRIPTION_TEMPLATES, PROFILE_TEMPLATES, TITLE_TEMPLATES, TOPICS

if TYPE_CHECKING:
    from streams.synthetic import SyntheticConfig

__all__ = [
    "ROW",
    "World",
    "build_world",
    "draw_among",
    "draw_rows",
    "item_text",
    "new_users",
    "one_blas_thread",
    "profile",
    "records",
    "redraw",
    "session_schedule",
]

_QUALITY_SIGMA = 2.0
_ACTIVITY_SIGMA = 1.0
ROW = 64  # item group size of the two-level draw
_DRIFT_SHARE = 0.8
_SLOTS = 8  # session slots (besides one per new user's first session)
_SERIES_HOME = 0.5  # share of items whose series is one of their main topic's
_SERIES_SPLIT = 0.5  # Dirichlet concentration of a user's taste among a topic's series
_TREND_SIGMA = 1.5  # spread of log trend heights
_TREND_TIME = 25.0  # typical trend peak: events / _TREND_TIME after arrival
_TREND_TIME_SIGMA = 0.5  # spread of log trend peak times
_RATING = (3.2, 0.4, 0.6, 0.45, 0.7)  # base, taste, quality, user bias sd, noise sd
_FloatArr = np.ndarray[Any, np.dtype[np.float64]]
_IntArr = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class World:
    """Everything about items and users the stream is drawn from (see :mod:`streams.synthetic`)."""

    g: Any
    main: Any
    theta: Any
    z: Any
    quality: Any
    n_init_it: Any
    it_arr: Any
    pref: Any
    pref_after: Any
    activity: Any
    n_new_us: Any
    us_arr: Any
    drift_idx: Any
    perm: Any
    n_ser: Any
    series: Any
    members: Any
    trend_a: Any
    trend_tau: Any
    spref: Any
    spref_after: Any


def build_world(c: SyntheticConfig, rl: np.random.Generator, rh: np.random.Generator) -> World:
    """Topics, items, users, tastes, drift, series and trends of ``c``, drawn from ``rl`` (the
    world) and ``rh`` (series and trends: their own stream, so a switch such as
    ``trend_strength=0`` or ``series_taste=0`` changes nothing else)."""
    T, n_it, n_us, n_ev = c.topics, c.items, c.users, c.events
    g = 1.0 / (1.0 + rl.permutation(T)) ** 1.3
    g /= g.sum()
    # items: topic mixtures, quality, arrival
    main = rl.choice(T, size=n_it, p=np.sqrt(g) / np.sqrt(g).sum())
    second = (main + rl.integers(1, T, size=n_it)) % T
    w_main = rl.beta(8.0, 2.0, size=n_it)
    theta = rl.dirichlet(np.full(T, 0.5), size=n_it) * (0.3 * (1 - w_main))[:, None]
    theta[np.arange(n_it), main] += w_main
    theta[np.arange(n_it), second] += 0.7 * (1 - w_main)
    z = rl.standard_normal(n_it)
    quality = np.exp(_QUALITY_SIGMA * z)
    n_init_it = max(1, round(n_it * c.initial_item_fraction))
    it_arr = np.zeros(n_it, dtype=np.int64)
    it_arr[n_init_it:] = np.sort(rl.integers(1, max(n_ev, 2), size=n_it - n_init_it))
    # users: tastes, activity, arrival
    pref = 0.15 * rl.dirichlet(np.ones(T), size=n_us)
    n_fav = np.minimum(rl.choice(4, size=n_us, p=[0.3, 0.35, 0.25, 0.1]) + 1, T)
    for u in range(n_us):
        fav = rl.choice(T, size=n_fav[u], replace=False, p=g)
        pref[u, fav] += 0.85 * rl.dirichlet(np.full(n_fav[u], 2.0))
    pref /= pref.max(axis=1, keepdims=True)
    activity = np.exp(_ACTIVITY_SIGMA * rl.standard_normal(n_us))
    n_new_us = new_users(c)
    us_arr = np.zeros(n_us, dtype=np.int64)
    if n_new_us:
        us_arr[n_us - n_new_us :] = np.sort(rl.choice(np.arange(1, n_ev), n_new_us, replace=False))
    drift_idx = None if c.drift_at is None else min(max(1, round(c.drift_at * n_ev)), n_ev)
    by_rank = np.argsort(-g, kind="stable")
    perm = np.empty(T, dtype=np.int64)
    perm[by_rank] = by_rank[::-1]  # k-th most popular topic -> k-th least popular
    pref_after = pref.copy()
    drifted = rl.random(n_us) < _DRIFT_SHARE
    pref_after[np.ix_(drifted, perm)] = pref[drifted]

    # hidden series (in no text), trends, the series taste: from their own stream, so a
    # switch (trend_strength=0, series_taste=0) changes nothing else
    k_s = c.series_per_topic
    n_ser = T * k_s
    home = np.where(rh.random(n_it) < _SERIES_HOME, main, rh.integers(T, size=n_it))
    series = home * k_s + rh.integers(k_s, size=n_it)
    order = np.argsort(series, kind="stable")
    edges = np.searchsorted(series[order], np.arange(n_ser + 1)).tolist()
    members = [order[a:b] for a, b in itertools.pairwise(edges)]  # ascending item indices
    trend_a = c.trend_strength * np.exp(
        _TREND_SIGMA * rh.standard_normal(n_it) - _TREND_SIGMA**2 / 2
    )
    trend_a[:n_init_it] = 0.0
    trend_tau = max(50.0, n_ev / _TREND_TIME) * np.exp(_TREND_TIME_SIGMA * rh.standard_normal(n_it))
    split = rh.dirichlet(np.full(k_s, _SERIES_SPLIT), size=(n_us, T))
    split /= split.max(axis=2, keepdims=True)
    spref = (pref[:, :, None] * split).reshape(n_us, n_ser)
    sperm = (perm[:, None] * k_s + np.arange(k_s)).reshape(-1)  # series t*k+r -> perm[t]*k+r
    spref_after = spref.copy()
    spref_after[np.ix_(drifted, sperm)] = spref[drifted]
    return World(
        g=g,
        main=main,
        theta=theta,
        z=z,
        quality=quality,
        n_init_it=n_init_it,
        it_arr=it_arr,
        pref=pref,
        pref_after=pref_after,
        activity=activity,
        n_new_us=n_new_us,
        us_arr=us_arr,
        drift_idx=drift_idx,
        perm=perm,
        n_ser=n_ser,
        series=series,
        members=members,
        trend_a=trend_a,
        trend_tau=trend_tau,
        spref=spref,
        spref_after=spref_after,
    )


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    # one BLAS thread: the small matmuls of generation thrash with more on busy cores
    return threadpool_limits(1, user_api="blas")


def new_users(c: SyntheticConfig) -> int:
    return min(round(c.users * c.new_user_fraction), c.users - 1)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def item_text(rt: np.random.Generator, theta: _FloatArr, main: int) -> tuple[str, str, list[str]]:
    cdf = np.cumsum(theta)

    def words(n: int) -> list[str]:
        out: list[str] = []
        draws = np.searchsorted(cdf, rt.random(4 * n) * cdf[-1], side="right")
        for t, r in zip(
            np.minimum(draws, len(theta) - 1).tolist(), rt.random(4 * n).tolist(), strict=True
        ):
            w = TOPICS[t].words[int(r * len(TOPICS[t].words))]
            if w not in out:
                out.append(w)
            if len(out) == n:
                break
        return out

    adj = TOPICS[main].adjectives
    own = TOPICS[main].words
    n1 = own[int(rt.integers(len(own)))]
    n2 = next((x for x in words(2) if x != n1), own[(own.index(n1) + 1) % len(own)])
    a = adj[int(rt.integers(len(adj)))]
    slots = {"A": a.capitalize(), "a": a, "N1": n1.capitalize(), "n1": n1, "n2": n2}
    title = TITLE_TEMPLATES[int(rt.integers(len(TITLE_TEMPLATES)))].format(**slots)
    sentences = []
    for k in rt.choice(len(DESCRIPTION_TEMPLATES), size=2, replace=False).tolist():
        d = words(4) * 4
        a = adj[int(rt.integers(len(adj)))]
        sentences.append(DESCRIPTION_TEMPLATES[k].format(a=a, w1=d[0], w2=d[1], w3=d[2], w4=d[3]))
        sentences[-1] = sentences[-1][0].upper() + sentences[-1][1:]
    text = " ".join(sentences) + f" Ideal for fans of {TOPICS[main].label}."
    tags = [TOPICS[main].name, *words(int(rt.integers(2, 5)))]
    return title, text, tags


def profile(rt: np.random.Generator, pref: _FloatArr) -> tuple[str, list[str]]:
    p = pref**2 / np.sum(pref**2)
    n, words = int(rt.integers(3, 5)), []
    for t in rt.choice(len(p), size=12, p=p).tolist():
        w = TOPICS[t].words[int(rt.integers(len(TOPICS[t].words)))]
        if w not in words:
            words.append(w)
        if len(words) == n:
            break
    template = PROFILE_TEMPLATES[int(rt.integers(len(PROFILE_TEMPLATES)))]
    tags = [
        TOPICS[t].label for t in np.argsort(-pref, kind="stable")[:3].tolist() if pref[t] >= 0.4
    ]
    return template.format(words=_join(words)), tags


def draw_rows(wts: np.ndarray[Any, Any], rs: np.random.Generator) -> _IntArr:
    """One index per row of ``wts`` (C x m, m a multiple of ROW), ∝ the row's weights.

    Two levels (sums of groups of ROW, then within the group) instead of a full cumsum.
    """
    c, m = wts.shape
    groups = wts.reshape(c, m // ROW, ROW)
    cg = np.cumsum(groups.sum(axis=2), axis=1)
    u = rs.random(c) * cg[:, -1]
    g = np.minimum(np.count_nonzero(cg < u[:, None], axis=1), m // ROW - 1)
    rows = np.arange(c)
    u -= np.where(g > 0, cg[rows, g - 1], 0.0)
    inner = np.cumsum(groups[rows, g], axis=1)
    j = np.minimum(np.count_nonzero(inner < u[:, None], axis=1), ROW - 1)
    return (g * ROW + j).astype(np.int64)


def redraw(row: np.ndarray[Any, Any], seen: set[int], i: int, rs: np.random.Generator) -> int:
    """Draw ∝ ``row`` among items not in ``seen``; ``i`` (a repeat) if all were seen."""
    cp = np.cumsum(row, dtype=np.float64)
    for j in np.searchsorted(cp, rs.random(8) * cp[-1], side="right").tolist():
        if j < len(row) and j not in seen:
            return int(j)
    p = row.astype(np.float64)
    p[list(seen)] = 0.0
    cp = np.cumsum(p)
    if cp[-1] <= 0:
        return i
    return min(int(np.searchsorted(cp, rs.random() * cp[-1], side="right")), len(row) - 1)


def session_schedule(
    n_ev: int,
    mean_len: float,
    cum_act: _FloatArr,
    us_arr: _IntArr,
    n_new: int,
    rng: np.random.Generator,
) -> tuple[_IntArr, _IntArr, int]:
    """The user of each event, the event before it in the same session (-1: the session's
    first), and how many sessions began; the module docstring says how."""
    n_us = len(us_arr)
    pick, end, draw = rng.random(n_ev).tolist(), rng.random(n_ev).tolist(), rng.random(n_ev)
    # who starts a session at event j: drawn ∝ activity among the users that arrived before j
    avail = np.searchsorted(us_arr, np.maximum(np.arange(n_ev), 1), side="left")
    starter = np.searchsorted(cum_act, draw * cum_act[avail - 1], side="right")
    starter = np.minimum(starter, avail - 1).tolist()
    arrives = {int(j): n_us - n_new + n for n, j in enumerate(us_arr[n_us - n_new :].tolist())}
    users = np.empty(n_ev, dtype=np.int64)
    prev = np.empty(n_ev, dtype=np.int64)
    # open slots: their user (-1: empty, the next event there starts a session) and last event;
    # slots past _SLOTS hold new users' first sessions and close when those end
    slot_user, slot_last = [-1] * _SLOTS, [-1] * _SLOTS
    stop, started = 1.0 / mean_len, 0
    for j in range(n_ev):
        new_user = arrives.get(j)
        if new_user is not None:
            k = len(slot_user)
            slot_user.append(new_user)
            slot_last.append(-1)
        else:
            k = int(pick[j] * len(slot_user))
            if slot_user[k] < 0:
                slot_user[k] = starter[j]
        started += slot_last[k] < 0
        users[j], prev[j] = slot_user[k], slot_last[k]
        slot_last[k] = j
        if end[j] < stop:  # the session ends with this event
            if k < _SLOTS:
                slot_user[k], slot_last[k] = -1, -1
            else:
                slot_user[k], slot_last[k] = slot_user[-1], slot_last[-1]
                del slot_user[-1], slot_last[-1]
    return users, prev, started


def draw_among(
    row: np.ndarray[Any, Any], cand: _IntArr, seen: set[int], rs: np.random.Generator
) -> int:
    """Draw ∝ ``row`` among the items ``cand`` that are not in ``seen``; -1 if none is left."""
    left = [i for i in cand.tolist() if i not in seen]
    if not left:
        return -1
    cp = np.cumsum(row[left], dtype=np.float64)
    return left[min(int(np.searchsorted(cp, rs.random() * cp[-1], side="right")), len(left) - 1)]


def records(
    c: SyntheticConfig,
    w: World,
    ev_user: _IntArr,
    ev_item: _IntArr,
    ts: _IntArr,
    rl: np.random.Generator,
    rt: np.random.Generator,
    rf: np.random.Generator,
) -> tuple[list[Interaction], list[Item], list[User]]:
    """The stream's records: each event's feedback (from ``rf``), the items with their texts
    and prices (``rt``, ``rl``) and the profiles of the users who have one (``rt``)."""
    n_ev, n_us, n_it = c.events, c.users, c.items
    drift_idx, pref, pref_after, theta, z = w.drift_idx, w.pref, w.pref_after, w.theta, w.z
    it_arr, us_arr, main = w.it_arr, w.us_arr, w.main
    after = np.zeros(n_ev, dtype=bool) if drift_idx is None else np.arange(n_ev) >= drift_idx
    p_ev = np.where(after[:, None], pref_after[ev_user], pref[ev_user])
    aff = np.einsum("ij,ij->i", p_ev, theta[ev_item])
    if c.feedback == "explicit":
        base, w_taste, w_quality, user_sd, noise_sd = _RATING
        bias = rf.normal(0.0, user_sd, size=n_us)[ev_user]
        noise = rf.normal(0.0, noise_sd, size=n_ev)
        raw = base + w_taste * aff + w_quality * z[ev_item] + bias + noise
        values = np.clip(np.round(raw * 2) / 2, 1.0, 5.0).tolist()
        kinds = ["rating"] * n_ev
    else:
        values = [1.0] * n_ev
        buy = rf.random(n_ev) < 0.03 + 0.12 * aff
        kinds = np.where(buy, "purchase", "click").tolist()

    uid = [f"u{n}" for n in range(n_us)]
    iid = [f"i{n}" for n in range(n_it)]
    interactions = [
        Interaction(uid[u], iid[i], t, v, k)
        for u, i, t, v, k in zip(
            ev_user.tolist(), ev_item.tolist(), ts[:n_ev].tolist(), values, kinds, strict=True
        )
    ]
    item_ts = np.where(it_arr == 0, c.start_ts, ts[it_arr] - 1).tolist()
    prices = np.round(np.exp(rl.normal(3.0, 0.7, size=n_it)), 2).tolist()
    items = []
    for n in range(n_it):
        title, text, tags = item_text(rt, theta[n], int(main[n]))
        attrs = {"category": TOPICS[int(main[n])].label, "price": prices[n]}
        items.append(Item(iid[n], title, int(item_ts[n]), text, tuple(tags), attrs))
    user_ts = np.where(us_arr == 0, c.start_ts, ts[us_arr] - 1).tolist()
    n_prof = round(n_us * c.profile_fraction)
    users_out = []
    for n in np.sort(rt.choice(n_us, size=n_prof, replace=False)).tolist():
        text, tags = profile(rt, pref[n])
        users_out.append(User(uid[n], int(user_ts[n]), text, tuple(tags)))
    return interactions, items, users_out
