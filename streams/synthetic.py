"""A synthetic, time-ordered recommender dataset with real structure, for testing cold start.

The generative model (all randomness from ``seed``; the same config gives byte-identical files):

Topics. ``T = topics`` topics, the first T of :data:`streams._vocab.TOPICS` (outdoors, cooking,
jazz, astronomy, ...), each with ~30 real English words and six adjectives, no word shared
between topics. Demand differs: topic popularity ``g_t ∝ rank_t ** -1.3`` (a random ranking).

Items ``i0, i1, ...`` in order of arrival. Topic mixture ``theta_i``: a main topic (drawn
∝ ``sqrt(g)``) with weight ``w ~ Beta(8, 2)``, a second topic with 70% of ``1 - w``, and 30% of
``1 - w`` spread by a Dirichlet(0.5). Title, description and tags fill shared templates with
words whose topics are drawn from ``theta_i`` (the title's first noun from the main topic), so
items of the same main topic read alike; ``attributes`` are ``category`` (main topic label) and
``price``. A latent quality ``q_i = exp(1.5 z_i)``, ``z_i ~ N(0, 1)``, is in no text: the long
tail only collaborative signals reveal. ``max(1, round(items * initial_item_fraction))`` items
exist from the start (item event at ``start_ts``); the rest arrive at event indices drawn
uniformly over the stream, each item event 1 ms before the first interaction that may use it.

Users ``u0, u1, ...`` in order of arrival. 1-4 favourite topics (drawn ∝ ``g``) share 85% of
the taste by Dirichlet(2) weights, a Dirichlet(1) background over all topics the other 15%;
``pref_u`` is that vector over its maximum. Activity ``a_u = exp(N(0, 1))``. The last
``round(users * new_user_fraction)`` users (never all, fewer than ``events``) are new: each
arrives at its own event index and that event is theirs. A random ``round(users *
profile_fraction)`` users get a user event (at ``start_ts``, or 1 ms before a new user's first
interaction): text such as "Enjoys hiking, telescope and stargazing." (words drawn from topics
∝ ``pref_u ** 2``), tags the labels of up to three topics with ``pref_u >= 0.4``.

Interactions. ``events`` of them; event ``j`` at ``ts_j = start_ts + gap_0 + ... + gap_j``,
``gap = max(2, round(Exponential(mean_gap_ms)))`` ms, so times strictly increase and an item or
user event fits strictly between two interactions. At event ``j`` (unless a new user arrives
there) a user is drawn ∝ ``a_u`` among users that exist, then an item among existing items
∝ ``exp(6 * pref_u · theta_i) * q_i * f_i``; an item that arrived at index ``s`` has freshness
``f_i = 1 + 30 * exp(-(j - s) / tau)``, ``tau = max(20, events / 250)`` events (``f_i = 1`` for
initial items). Weights are computed once per block of at most 256 events, and a block starts at
every arrival and at the drift point, so nothing is drawn before it exists. An item the user has
already seen is kept with probability 0.05 for implicit feedback (0 for explicit), else redrawn
among the items they have not seen (kept if they have seen them all).

Feedback. With affinity ``a = pref_u · theta_i`` in [0, 1] and ``z`` the item's quality score:
implicit: ``value`` 1.0, ``event`` "purchase" with probability ``0.03 + 0.12 a``, else
"click"; explicit: ``event`` "rating", ``value = clip(round_to_half(2 + 2.3 a + 0.35 z +
N(0, 0.6)), 1, 5)``.

Drift. With ``drift_at``, from event ``d = round(drift_at * events)`` on, 80% of users (drawn at
random) have tastes remapped: the fans of the k-th most popular topic now like the k-th least
popular one (``meta["drift_permutation"][t]`` is where topic t's weight goes), so the topic mix
of the stream changes clearly. Profiles keep the old tastes. ``meta`` records ``drift_index``
(``d``) and ``drift_ts`` (``ts_d``).

>>> ds = generate(SyntheticConfig(users=50, items=40, events=300, seed=1))
>>> len(ds.items), len(ds.interactions), ds.meta["topics"][:3]
(40, 300, ['outdoors', 'cooking', 'jazz'])
>>> all(a.ts < b.ts for a, b in zip(ds.interactions, ds.interactions[1:]))
True
>>> sorted({r.event for r in ds.interactions})
['click', 'purchase']
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from threadpoolctl import threadpool_limits

from streams._vocab import DESCRIPTION_TEMPLATES, PROFILE_TEMPLATES, TITLE_TEMPLATES, TOPICS
from streams.records import Interaction, Item, Record, User, to_json

__all__ = ["SyntheticConfig", "SyntheticDataset", "generate", "write_jsonl"]

_BETA = 6.0  # strength of taste in the choice model
_QUALITY_SIGMA = 1.5
_ACTIVITY_SIGMA = 1.0
_FRESH_BOOST = 30.0
_BLOCK = 256  # events per weight computation at most
_ROW = 64  # item group size of the two-level draw
_REPEAT_PROB = 0.05
_DRIFT_SHARE = 0.8
_PROGRESS_EVERY = 10_000
_FloatArr = np.ndarray[Any, np.dtype[np.float64]]
_IntArr = np.ndarray[Any, np.dtype[np.int64]]


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
    start_ts: int = 1_704_067_200_000
    mean_gap_ms: float = 1000.0

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
        if _new_users(self) > self.events - 1:
            raise ValueError(
                f"{_new_users(self)} new users need as many events after the first: "
                "raise events or lower new_user_fraction"
            )


@dataclass(frozen=True)
class SyntheticDataset:
    """Records in time order per kind, and ``meta``: config, topics, drift point, counts."""

    items: list[Item]
    users: list[User]
    interactions: list[Interaction]
    meta: dict[str, Any]


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    # one BLAS thread: the small matmuls of generation thrash with more on busy cores
    return threadpool_limits(1, user_api="blas")


def _new_users(c: SyntheticConfig) -> int:
    return min(round(c.users * c.new_user_fraction), c.users - 1)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _item_text(rt: np.random.Generator, theta: _FloatArr, main: int) -> tuple[str, str, list[str]]:
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


def _profile(rt: np.random.Generator, pref: _FloatArr) -> tuple[str, list[str]]:
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


def _draw_rows(wts: np.ndarray[Any, Any], rs: np.random.Generator) -> _IntArr:
    """One index per row of ``wts`` (C x m, m a multiple of _ROW), ∝ the row's weights.

    Two levels (sums of groups of _ROW, then within the group) instead of a full cumsum.
    """
    c, m = wts.shape
    groups = wts.reshape(c, m // _ROW, _ROW)
    cg = np.cumsum(groups.sum(axis=2), axis=1)
    u = rs.random(c) * cg[:, -1]
    g = np.minimum(np.count_nonzero(cg < u[:, None], axis=1), m // _ROW - 1)
    rows = np.arange(c)
    u -= np.where(g > 0, cg[rows, g - 1], 0.0)
    inner = np.cumsum(groups[rows, g], axis=1)
    j = np.minimum(np.count_nonzero(inner < u[:, None], axis=1), _ROW - 1)
    return (g * _ROW + j).astype(np.int64)


def _redraw(row: np.ndarray[Any, Any], seen: set[int], i: int, rs: np.random.Generator) -> int:
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


def generate(
    config: SyntheticConfig, progress: Callable[[int], None] | None = None
) -> SyntheticDataset:
    """Generate the dataset of ``config``; ``progress(n)`` hears of every ~10k interactions."""
    c = config
    s_latent, s_text, s_stream, s_feedback = np.random.SeedSequence(c.seed).spawn(4)
    rl, rt = np.random.default_rng(s_latent), np.random.default_rng(s_text)
    rs, rf = np.random.default_rng(s_stream), np.random.default_rng(s_feedback)
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
    n_new_us = _new_users(c)
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

    gaps = np.maximum(2, np.rint(rs.exponential(c.mean_gap_ms, size=n_ev + 1))).astype(np.int64)
    ts = c.start_ts + np.cumsum(gaps)

    # the stream, block by block; weights are exp(beta * pref.theta + log(q * f)) in one matmul
    tau = max(20.0, n_ev / 250)
    n_pad = -(-n_it // _ROW) * _ROW
    theta_aug = np.zeros((n_pad, T + 1), dtype=np.float32)
    theta_aug[:n_it, :T] = theta
    log_q = np.log(quality)
    pref_aug = np.ones((n_us, T + 1), dtype=np.float32)
    pref_aug[:, :T] = _BETA * pref
    cum_act = np.cumsum(activity)
    bounds = [0, n_ev, *it_arr[it_arr < n_ev].tolist(), *us_arr[n_us - n_new_us :].tolist()]
    bounds += list(range(0, n_ev, _BLOCK)) + ([drift_idx] if drift_idx is not None else [])
    bounds = sorted(set(bounds))
    ev_user = np.empty(n_ev, dtype=np.int64)
    ev_item = np.empty(n_ev, dtype=np.int64)
    seen: list[set[int]] = [set() for _ in range(n_us)]
    repeat_prob = _REPEAT_PROB if c.feedback == "implicit" else 0.0
    repeats, reported = 0, 0
    with _one_blas_thread():
        for s, e in itertools.pairwise(bounds):
            if s == drift_idx:
                pref_aug[:, :T] = _BETA * pref_after
            n_i = int(np.searchsorted(it_arr, s, side="right"))
            n_u = int(np.searchsorted(us_arr, s, side="right"))
            users = np.searchsorted(
                cum_act[:n_u], rs.random(e - s) * cum_act[n_u - 1], side="right"
            )
            users = np.minimum(users, n_u - 1)
            if n_u > n_us - n_new_us and us_arr[n_u - 1] == s:
                users[0] = n_u - 1  # a new user arrives with this event
            m = -(-n_i // _ROW) * _ROW
            lw = theta_aug[:m, T]
            lw[:n_i] = log_q[:n_i]
            lw[n_init_it:n_i] += np.log1p(_FRESH_BOOST * np.exp((it_arr[n_init_it:n_i] - s) / tau))
            lw[n_i:] = -1e30  # padding: weight 0
            wts = pref_aug[users] @ theta_aug[:m].T
            np.exp(wts, out=wts)
            picks = np.minimum(_draw_rows(wts, rs), n_i - 1).tolist()
            keep = rs.random(e - s).tolist()
            for k, u in enumerate(users.tolist()):
                i, su = picks[k], seen[u]
                if i in su:
                    if keep[k] >= repeat_prob:
                        i = _redraw(wts[k, :n_i], su, i, rs)
                    repeats += i in su
                su.add(i)
                ev_user[s + k], ev_item[s + k] = u, i
            if progress is not None and e - reported >= _PROGRESS_EVERY:
                progress(e - reported)
                reported = e
    if progress is not None and n_ev > reported:
        progress(n_ev - reported)

    # feedback
    after = np.zeros(n_ev, dtype=bool) if drift_idx is None else np.arange(n_ev) >= drift_idx
    p_ev = np.where(after[:, None], pref_after[ev_user], pref[ev_user])
    aff = np.einsum("ij,ij->i", p_ev, theta[ev_item])
    if c.feedback == "explicit":
        raw = 2.0 + 2.3 * aff + 0.35 * z[ev_item] + rf.normal(0.0, 0.6, size=n_ev)
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
        title, text, tags = _item_text(rt, theta[n], int(main[n]))
        attrs = {"category": TOPICS[int(main[n])].label, "price": prices[n]}
        items.append(Item(iid[n], title, int(item_ts[n]), text, tuple(tags), attrs))
    user_ts = np.where(us_arr == 0, c.start_ts, ts[us_arr] - 1).tolist()
    n_prof = round(n_us * c.profile_fraction)
    users_out = []
    for n in np.sort(rt.choice(n_us, size=n_prof, replace=False)).tolist():
        text, tags = _profile(rt, pref[n])
        users_out.append(User(uid[n], int(user_ts[n]), text, tuple(tags)))

    meta: dict[str, Any] = {
        "generator": "coldstream.synthetic",
        "version": 1,
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
            "active_users": int(np.unique(ev_user).size),
            "items_with_interactions": int(np.unique(ev_item).size),
        },
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
