"""A synthetic, time-ordered recommender dataset with real structure, for testing cold start.

The generative model (all randomness from ``seed``; the same config gives byte-identical files).
The defaults are calibrated on MovieLens 100K: there, and on the default stream, the online
item-to-item kNN ranks best (overall and on items with 1 or more interactions), popularity
with a 7-day half-life second, River MF third, teacher content similarity last overall but
best on brand-new items.

Topics. ``T = topics`` topics, the first T of :data:`streams._vocab.TOPICS` (outdoors, cooking,
jazz, astronomy, ...), each with ~30 real English words and six adjectives, no word shared
between topics. Demand differs: topic popularity ``g_t ∝ rank_t ** -1.3`` (a random ranking).

Items ``i0, i1, ...`` in order of arrival. Topic mixture ``theta_i``: a main topic (drawn
∝ ``sqrt(g)``) with weight ``w ~ Beta(8, 2)``, a second topic with 70% of ``1 - w``, and 30% of
``1 - w`` spread by a Dirichlet(0.5). Title, description and tags fill shared templates with
words whose topics are drawn from ``theta_i`` (the title's first noun from the main topic), so
items of the same main topic read alike; ``attributes`` are ``category`` (main topic label) and
``price``. A latent quality ``q_i = exp(2 z_i)``, ``z_i ~ N(0, 1)``, is in no text: the long
tail only collaborative signals reveal. ``max(1, round(items * initial_item_fraction))`` items
exist from the start (item event at ``start_ts``); the rest arrive at event indices drawn
uniformly over the stream, each item event 1 ms before the first interaction that may use it.

Series. ``S = T * series_per_topic`` hidden series (sub-genres, franchises) ``t * k + r``
(``k = series_per_topic``, ``r < k``) whose home is topic ``t``. Item ``i`` is in series
``s_i = h_i * k + r_i`` with ``r_i`` uniform and home ``h_i`` its main topic with probability
0.5, else a uniform topic. No text or attribute names the series, and about half of a series'
items are about other topics than its home: item-to-item co-occurrence sees it, the text
cannot. ``meta["item_series"][i]`` is ``s_i``.

Trends. An item that arrives at event index ``a_i`` (not the initial ones) has a trend height
``A_i = trend_strength * exp(1.5 x_i - 1.125)`` (mean ``trend_strength``, heavy-tailed: the
median is a third of it, one item in fifteen gets three times it) and a peak time
``tau_i = max(50, events / 25) * exp(0.5 y_i)`` events, ``x_i, y_i ~ N(0, 1)``.
``meta["item_trend"][i]`` is ``[A_i, a_i + tau_i]`` (rounded; ``None`` for initial items).

Users ``u0, u1, ...`` in order of arrival. 1-4 favourite topics (drawn ∝ ``g``) share 85% of
the taste by Dirichlet(2) weights, a Dirichlet(1) background over all topics the other 15%;
``pref_u`` is that vector over its maximum. A hidden series taste splits each topic's liking
among its series: ``spref_u[t * k + r] = pref_u[t] * d_utr / max_r d_utr`` with ``d_ut ~
Dirichlet(0.5)`` over the topic's k series (a fan of a topic likes one or two of its series
most). Activity ``a_u = exp(N(0, 1))``. The last ``round(users * new_user_fraction)`` users
(never all, fewer than ``events``) are new: each arrives at its own event index and that
event is theirs. A random ``round(users * profile_fraction)`` users get a user event (at
``start_ts``, or 1 ms before a new user's first interaction): text such as "Enjoys hiking,
telescope and stargazing." (words drawn from topics ∝ ``pref_u ** 2``), tags the labels of up
to three topics with ``pref_u >= 0.4``. Profiles say nothing of series.

Interactions. ``events`` of them; event ``j`` at ``ts_j = start_ts + gap_0 + ... + gap_j``,
``gap = max(2, round(Exponential(mean_gap_ms)))`` ms, so times strictly increase and an item or
user event fits strictly between two interactions. The default ``mean_gap_ms`` (3 minutes)
makes 100k events span about 7 months, as MovieLens 100K's do; the default ``start_ts``
(2020-01-01) keeps streams of up to about 1.2M events in the past (a Kafka broker may refuse
record timestamps in the future: ``coldstream load`` sends event times as record timestamps).

Sessions: users act in bursts. Eight session slots are open, plus one for the first session of
each new user while it lasts. At event ``j`` a new user who arrives there opens their slot and
acts; else a slot is drawn uniformly among the open ones, and if it is empty a session starts
there with a user drawn ∝ ``a_u`` among the users that arrived before ``j``. That slot's user
acts, and their session then ends with probability ``1 / session_length`` (lengths are
geometric with mean ``session_length``; an ended session empties its slot, and a new user's
slot closes). Sessions interleave: the events of one are about eight events apart, a user's
sessions usually thousands. ``session_length = 1``: no sessions, the user of each event is
drawn ∝ ``a_u`` among existing users on its own.

The item. At event ``j`` user ``u`` weighs each existing item

    w_ui = exp(3 pref_u · theta_i + series_taste * spref_u[s_i]) * q_i * f_i(j)

with ``f_i = 1`` for initial items, else (``d = j - a_i`` events since arrival)
``f_i = 1 + 30 exp(-d / tau) + A_i * (d / tau_i) * exp(1 - d / tau_i)``, ``tau = max(20,
events / 250)``: a freshness boost that only fades plus a trend that rises to ``1 + A_i`` at
``d = tau_i`` and fades. Weights are computed once per block of at most 256 events, and a
block starts at every arrival and at the drift point, so nothing is drawn before it exists. On
an event that continues a session, with probability ``session_affinity`` the item is drawn ∝
``w`` among the existing items of the previous item's series that the user has not seen (as
below if there are none). Otherwise it is drawn ∝ ``w`` among all existing items, and an item
the user has already seen is kept with probability 0.05 for implicit feedback (0 for
explicit), else redrawn among the items they have not seen (kept if they have seen them all).

Feedback. With affinity ``a = pref_u · theta_i`` in [0, 1] and ``z`` the item's quality score:
implicit: ``value`` 1.0, ``event`` "purchase" with probability ``0.03 + 0.12 a``, else
"click"; explicit: ``event`` "rating", ``value = clip(round_to_half(3.2 + 0.4 a + 0.6 z + b_u
+ N(0, 0.7)), 1, 5)`` with a user bias ``b_u ~ N(0, 0.45)``: as on MovieLens, who rates and
what is rated say more than the genre match.

Drift. With ``drift_at``, from event ``d = round(drift_at * events)`` on, 80% of users (drawn at
random) have tastes remapped: the fans of the k-th most popular topic now like the k-th least
popular one (``meta["drift_permutation"][t]`` is where topic t's weight goes), and their taste
for series ``t * k + r`` moves to series ``drift_permutation[t] * k + r``, so the topic mix of
the stream changes clearly. Profiles keep the old tastes. ``meta`` records ``drift_index``
(``d``) and ``drift_ts`` (``ts_d``).

Switches. ``session_length=1`` (no bursts) or ``session_affinity=0`` (bursts, no series
affinity inside them), ``series_taste=0`` (no hidden series taste) and ``trend_strength=0``
(no trends) each take one part out. ``meta["counts"]`` records ``sessions`` (sessions begun;
``events`` without sessions), ``session_continuations`` (events drawn within the previous
item's series) and ``trending_items`` (items whose trend at least doubles their weight,
``A_i >= 1``).

>>> ds = generate(SyntheticConfig(users=50, items=40, events=300, seed=1))
>>> len(ds.items), len(ds.interactions), ds.meta["topics"][:3]
(40, 300, ['outdoors', 'cooking', 'jazz'])
>>> all(a.ts < b.ts for a, b in zip(ds.interactions, ds.interactions[1:]))
True
>>> sorted({r.event for r in ds.interactions})
['click', 'purchase']
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from core.records import Interaction, Item, Record, User, to_json
from streams._vocab import TOPICS
from streams.synthetic_world import (
    ROW,
    build_world,
    draw_among,
    draw_rows,
    new_users,
    one_blas_thread,
    records,
    redraw,
    session_schedule,
)

__all__ = ["SyntheticConfig", "SyntheticDataset", "generate", "write_jsonl"]

_BETA = 3.0  # strength of topic taste in the choice model
_FRESH_BOOST = 30.0
_BLOCK = 256  # events per weight computation at most
_REPEAT_PROB = 0.05
_PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate; the module docstring says what each knob does to the data."""

    users: int = 2000
    items: int = 1000
    events: int = 100_000
    seed: int = 0
    topics: int = 16
    initial_item_fraction: float = 0.3
    new_user_fraction: float = 0.2
    profile_fraction: float = 0.7
    feedback: Literal["implicit", "explicit"] = "implicit"
    drift_at: float | None = None
    start_ts: int = 1_577_836_800_000  # 2020-01-01T00:00:00Z
    mean_gap_ms: float = 180_000.0
    session_length: float = 10.0
    session_affinity: float = 0.6
    series_per_topic: int = 4
    series_taste: float = 5.0
    trend_strength: float = 5.0

    def __post_init__(self) -> None:
        for name in ("users", "items", "events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 2 <= self.topics <= len(TOPICS):
            raise ValueError(f"topics must be between 2 and {len(TOPICS)}, got {self.topics}")
        if not 0.0 < self.initial_item_fraction <= 1.0:
            raise ValueError(
                "initial_item_fraction must be in (0, 1]: some items must exist "
                f"at the start, got {self.initial_item_fraction}"
            )
        if not 0.0 <= self.new_user_fraction < 1.0:
            raise ValueError(f"new_user_fraction must be in [0, 1), got {self.new_user_fraction}")
        if not 0.0 <= self.profile_fraction <= 1.0:
            raise ValueError(f"profile_fraction must be in [0, 1], got {self.profile_fraction}")
        if self.feedback not in ("implicit", "explicit"):
            raise ValueError(f"feedback must be 'implicit' or 'explicit', got {self.feedback!r}")
        if self.drift_at is not None and not 0.0 < self.drift_at < 1.0:
            raise ValueError(f"drift_at must be in (0, 1) or None, got {self.drift_at}")
        if self.start_ts < 0:
            raise ValueError(f"start_ts must be epoch milliseconds >= 0, got {self.start_ts}")
        if not self.mean_gap_ms >= 2.0:
            raise ValueError(
                f"mean_gap_ms must be >= 2 (ms between events), got {self.mean_gap_ms}"
            )
        if not self.session_length >= 1.0:
            raise ValueError(f"session_length must be >= 1 (events), got {self.session_length}")
        if not 0.0 <= self.session_affinity <= 1.0:
            raise ValueError(f"session_affinity must be in [0, 1], got {self.session_affinity}")
        if not self.series_taste >= 0.0:
            raise ValueError(f"series_taste must be >= 0, got {self.series_taste}")
        if self.series_per_topic < 1:
            raise ValueError(f"series_per_topic must be >= 1, got {self.series_per_topic}")
        if not self.trend_strength >= 0.0:
            raise ValueError(f"trend_strength must be >= 0, got {self.trend_strength}")
        if new_users(self) > self.events - 1:
            raise ValueError(
                f"{new_users(self)} new users need as many events after the first: "
                "raise events or lower new_user_fraction"
            )


@dataclass(frozen=True)
class SyntheticDataset:
    """Records in time order per kind, and ``meta``: config, topics, drift point, counts."""

    items: list[Item]
    users: list[User]
    interactions: list[Interaction]
    meta: dict[str, Any]


def generate(
    config: SyntheticConfig, progress: Callable[[int], None] | None = None
) -> SyntheticDataset:
    """Generate the dataset of ``config``; ``progress(n)`` hears of every ~10k interactions."""
    c = config
    seeds = np.random.SeedSequence(c.seed).spawn(6)
    rl, rt, rs, rf, rh, rn = (np.random.default_rng(x) for x in seeds)
    T, n_it, n_us, n_ev = c.topics, c.items, c.users, c.events

    w = build_world(c, rl, rh)
    g = w.g
    theta = w.theta
    quality = w.quality
    n_init_it = w.n_init_it
    it_arr = w.it_arr
    pref = w.pref
    pref_after = w.pref_after
    activity = w.activity
    n_new_us = w.n_new_us
    us_arr = w.us_arr
    drift_idx = w.drift_idx
    perm = w.perm
    n_ser = w.n_ser
    series = w.series
    members = w.members
    trend_a = w.trend_a
    trend_tau = w.trend_tau
    spref = w.spref
    spref_after = w.spref_after

    gaps = np.maximum(2, np.rint(rs.exponential(c.mean_gap_ms, size=n_ev + 1))).astype(np.int64)
    ts = c.start_ts + np.cumsum(gaps)

    # the stream, block by block; weights are exp(beta * pref.theta + log(q * f)) in one matmul,
    # plus the series taste gathered by each item's series
    tau = max(20.0, n_ev / 250)
    n_pad = -(-n_it // ROW) * ROW
    theta_aug = np.zeros((n_pad, T + 1), dtype=np.float32)
    theta_aug[:n_it, :T] = theta
    log_q = np.log(quality)
    pref_aug = np.ones((n_us, T + 1), dtype=np.float32)
    pref_aug[:, :T] = _BETA * pref
    sp_aug = np.zeros((n_us, n_ser + 1), dtype=np.float32)  # last column: padding items
    sp_aug[:, :n_ser] = c.series_taste * spref
    series_pad = np.full(n_pad, n_ser, dtype=np.int64)
    series_pad[:n_it] = series
    cum_act = np.cumsum(activity)
    bounds = [0, n_ev, *it_arr[it_arr < n_ev].tolist(), *us_arr[n_us - n_new_us :].tolist()]
    bounds += list(range(0, n_ev, _BLOCK)) + ([drift_idx] if drift_idx is not None else [])
    bounds = sorted(set(bounds))
    sessions = c.session_length > 1.0
    n_sessions = n_ev
    if sessions:
        sched, ev_prev, n_sessions = session_schedule(
            n_ev, c.session_length, cum_act, us_arr, n_new_us, rn
        )
        stay = rn.random(n_ev).tolist()
    ev_user = np.empty(n_ev, dtype=np.int64)
    ev_item = np.empty(n_ev, dtype=np.int64)
    in_series = 0
    seen: list[set[int]] = [set() for _ in range(n_us)]
    repeat_prob = _REPEAT_PROB if c.feedback == "implicit" else 0.0
    repeats, reported = 0, 0
    with one_blas_thread():
        for s, e in itertools.pairwise(bounds):
            if s == drift_idx:
                pref_aug[:, :T] = _BETA * pref_after
                sp_aug[:, :n_ser] = c.series_taste * spref_after
            n_i = int(np.searchsorted(it_arr, s, side="right"))
            n_u = int(np.searchsorted(us_arr, s, side="right"))
            if sessions:
                users = sched[s:e]
            else:
                users = np.searchsorted(
                    cum_act[:n_u], rs.random(e - s) * cum_act[n_u - 1], side="right"
                )
                users = np.minimum(users, n_u - 1)
                if n_u > n_us - n_new_us and us_arr[n_u - 1] == s:
                    users[0] = n_u - 1  # a new user arrives with this event
            m = -(-n_i // ROW) * ROW
            lw = theta_aug[:m, T]
            lw[:n_i] = log_q[:n_i]
            age = s - it_arr[n_init_it:n_i]
            boost = _FRESH_BOOST * np.exp(-age / tau)
            if c.trend_strength > 0:
                x = age / trend_tau[n_init_it:n_i]
                boost += trend_a[n_init_it:n_i] * x * np.exp(1.0 - x)
            lw[n_init_it:n_i] += np.log1p(boost)
            lw[n_i:] = -1e30  # padding: weight 0
            wts = pref_aug[users] @ theta_aug[:m].T
            if c.series_taste:
                wts += sp_aug[users][:, series_pad[:m]]
            np.exp(wts, out=wts)
            picks = np.minimum(draw_rows(wts, rs), n_i - 1).tolist()
            keep = rs.random(e - s).tolist()
            for k, u in enumerate(users.tolist()):
                i, su = picks[k], seen[u]
                if sessions and ev_prev[s + k] >= 0 and stay[s + k] < c.session_affinity:
                    mem = members[series[ev_item[ev_prev[s + k]]]]
                    j = draw_among(wts[k], mem[: np.searchsorted(mem, n_i)], su, rs)
                    if j >= 0:
                        in_series += 1
                        su.add(j)
                        ev_user[s + k], ev_item[s + k] = u, j
                        continue
                if i in su:
                    if keep[k] >= repeat_prob:
                        i = redraw(wts[k, :n_i], su, i, rs)
                    repeats += i in su
                su.add(i)
                ev_user[s + k], ev_item[s + k] = u, i
            if progress is not None and e - reported >= _PROGRESS_EVERY:
                progress(e - reported)
                reported = e
    if progress is not None and n_ev > reported:
        progress(n_ev - reported)

    interactions, items, users_out = records(c, w, ev_user, ev_item, ts, rl, rt, rf)

    meta: dict[str, Any] = {
        "generator": "coldstream.synthetic",
        "version": 2,
        "config": dataclasses.asdict(c),
        "topics": [t.name for t in TOPICS[:T]],
        "topic_labels": [t.label for t in TOPICS[:T]],
        "topic_popularity": np.round(g, 6).tolist(),
        "drift_index": drift_idx,
        "drift_ts": int(ts[drift_idx]) if drift_idx is not None and drift_idx < n_ev else None,
        "drift_permutation": perm.tolist() if drift_idx is not None else None,
        "start_ts": c.start_ts,
        "end_ts": int(ts[n_ev - 1]),
        "counts": {
            "items": n_it,
            "initial_items": n_init_it,
            "users": n_us,
            "new_users": n_new_us,
            "user_events": len(users_out),
            "interactions": n_ev,
            "repeat_interactions": repeats,
            "sessions": n_sessions,
            "session_continuations": in_series,
            "trending_items": int(np.count_nonzero(trend_a >= 1.0)),
            "active_users": int(np.unique(ev_user).size),
            "items_with_interactions": int(np.unique(ev_item).size),
        },
        "item_series": series.tolist(),
        "item_trend": [
            None
            if n < n_init_it
            else [round(float(trend_a[n]), 3), round(float(it_arr[n] + trend_tau[n]))]
            for n in range(n_it)
        ],
    }
    return SyntheticDataset(items=items, users=users_out, interactions=interactions, meta=meta)


def write_jsonl(dataset: SyntheticDataset, out_dir: Path) -> dict[str, Path]:
    """Write items/users/interactions.jsonl (each sorted by ts) and meta.json into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    groups: dict[str, Sequence[Record]] = {
        "items": dataset.items,
        "users": dataset.users,
        "interactions": dataset.interactions,
    }
    for name, recs in groups.items():
        path = out_dir / f"{name}.jsonl"
        ordered = sorted(recs, key=lambda r: r.ts)
        path.write_bytes(b"".join(to_json(r) + b"\n" for r in ordered))
        paths[name] = path
    meta_path = out_dir / "meta.json"
    meta_path.write_bytes(orjson.dumps(dataset.meta, option=orjson.OPT_INDENT_2) + b"\n")
    paths["meta"] = meta_path
    return paths
