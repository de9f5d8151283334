"""Prequential evaluation (test, then train), exactly as docs/design.md describes.

For each positive interaction (``value >= threshold``; every event when ``threshold`` is
None, i.e. implicit data) every model ranks the full catalog of items that exist at that
moment minus the items this user already interacted with, before any model learns from the
event. Ties count against the target (a constant model ranks it last), so no model gains
from ties. Reported: Recall@K, NDCG@K and MRR (full-rank reciprocal), overall (``all``), by
the item's interaction count so far (``0``, ``1-5``, ``6-20``, ``>20``) and for users with no
earlier interaction (``new_user``); the same metrics over time in windows of evaluated
events; and each model's learning throughput (interactions per second of ``learn_one`` and
``flush`` time).

Events that cannot be ranked are not evaluated but still learned: a repeat of an item the
user already has (it is excluded from the catalog), and an interaction with an item that has
no item event yet (it does not exist; it is added with a zero embedding, ``unannounced``).

>>> from models.baselines import Popularity
>>> cat = Catalog(dim=2)
>>> ev = Prequential({"popularity": Popularity(cat)}, cat, k=1)
>>> for i in ("a", "b"):
...     ev.item(cat.add(i, [1.0, 0.0]))
>>> ev.interaction("u1", cat.index("a"), 1.0, 0)   # a tie with b: counted as a miss
>>> ev.interaction("u2", cat.index("a"), 1.0, 1)   # a is now more popular: a hit
>>> r = ev.result()
>>> r.metrics["popularity"]["recall"]["all"], r.evaluated["new_user"]
(0.5, 2)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.records import Interaction, Item, Record, User
from models.catalog import Catalog
from models.protocol import Recommender, is_positive

__all__ = ["SLICES", "EvalObserver", "EvalResult", "Prequential", "count_slice", "run_prequential"]

SLICES = ("all", "0", "1-5", "6-20", ">20", "new_user")
_METRICS = ("recall", "ndcg", "mrr")
#: events between two sweeps for idle users (with a ttl): a sweep costs one pass over users
_EXPIRE_EVERY = 4096


def count_slice(n: int) -> str:
    """The slice of an item that had ``n`` interactions before this one."""
    if n == 0:
        return "0"
    if n <= 5:
        return "1-5"
    if n <= 20:
        return "6-20"
    return ">20"


@dataclass
class EvalResult:
    k: int
    events: int
    evaluated: dict[str, int]
    metrics: dict[
        str, dict[str, Any]
    ]  # model -> recall/ndcg/mrr -> slice -> value; learn_events_per_s
    timeline: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    unannounced: int = 0
    skipped_repeats: int = 0
    seconds: float = 0.0

    def report(self) -> dict[str, Any]:
        """The ``report.json`` object of docs/design.md."""
        return {
            "k": self.k,
            "events": self.events,
            "evaluated": dict(self.evaluated),
            "models": self.metrics,
        }


class EvalObserver:
    """Something that watches a :class:`Prequential` loop (``Prequential.observers``); every
    method is a no-op here, so an observer overrides only what it needs."""

    def item(self, index: int) -> None:
        """An item event (new or updated), after the models saw it."""

    def before(self, user_id: str, index: int, value: float, ts: int) -> None:
        """An interaction, before any model ranked or learned it."""

    def ranked(self, model: str, hit: bool, score: float) -> None:
        """``model`` ranked the target: in its top K or not, and the target's raw score."""

    def after(self) -> None:
        """After every model learned the interaction."""


class Prequential:
    """Feeds events to every model and scores each positive before the models learn it."""

    def __init__(
        self,
        models: dict[str, Recommender],
        catalog: Catalog,
        *,
        k: int = 20,
        threshold: float | None = None,
        every: int = 1,
        window: int = 1000,
        user_ttl_ms: int | None = None,
    ) -> None:
        if k < 1 or every < 1 or window < 1:
            raise ValueError("k, every and window must be at least 1")
        if user_ttl_ms is not None and user_ttl_ms <= 0:
            raise ValueError(f"user_ttl_ms must be positive, not {user_ttl_ms}")
        self.models, self.catalog = models, catalog
        #: forget a user's seen items after this long idle in event time (None: never); a
        #: user who comes back counts as new again
        self.user_ttl_ms = user_ttl_ms
        self._last: dict[str, int] = {}  # user -> latest event time (only with a ttl)
        self._now = 0
        self.k, self.threshold, self.every, self.window = k, threshold, every, window
        m, s = len(models), len(SLICES)
        self._sum = np.zeros((len(_METRICS), m, s))
        self._n = np.zeros(s, dtype=np.int64)
        self._win = np.zeros((2, m))
        self._win_n = 0
        self._learn_s = np.zeros(m)
        self.timeline: dict[str, list[dict[str, float]]] = {name: [] for name in models}
        self.item_count: list[int] = []
        self.seen: dict[str, list[int]] = {}
        self.seen_set: dict[str, set[int]] = {}
        self.events = self.positives = self.unannounced = self.skipped_repeats = 0
        #: told about every item, interaction and ranked event (drift detectors)
        self.observers: list[EvalObserver] = []
        self._t0 = time.perf_counter()

    def item(self, index: int) -> None:
        while len(self.item_count) <= index:
            self.item_count.append(0)
        for model in self.models.values():
            model.observe_item(index)
        for obs in self.observers:
            obs.item(index)

    def user(self, user_id: str, embedding: npt.NDArray[np.float32] | None) -> None:
        for model in self.models.values():
            model.observe_user(user_id, embedding)

    def interaction(
        self, user_id: str, index: int, value: float, ts: int, *, rank: bool = True
    ) -> None:
        """Evaluate (when positive, and ``rank``), then let every model learn the event."""
        self.events += 1
        for obs in self.observers:
            obs.before(user_id, index, value, ts)
        seen = self.seen_set.get(user_id)
        if is_positive(value, self.threshold):
            self.positives += 1
            if seen is not None and index in seen:
                self.skipped_repeats += 1
            elif rank and self.positives % self.every == 0:
                self._evaluate(user_id, index, seen is None, ts)
        for j, model in enumerate(self.models.values()):
            t = time.perf_counter()
            model.learn_one(user_id, index, value, ts)
            self._learn_s[j] += time.perf_counter() - t
        self.item_count[index] += 1
        if seen is None:
            self.seen_set[user_id] = {index}
            self.seen[user_id] = [index]
        elif index not in seen:
            seen.add(index)
            self.seen[user_id].append(index)
        if self.user_ttl_ms is not None:
            self._last[user_id] = ts
            self._now = max(self._now, ts)
            if self.events % _EXPIRE_EVERY == 0:
                self.expire_users(self._now - self.user_ttl_ms)
        for obs in self.observers:
            obs.after()

    def expire_users(self, cutoff: int) -> int:
        """Forget the seen items of users whose latest event is older than ``cutoff``."""
        idle = [u for u, t in self._last.items() if t < cutoff]
        for u in idle:
            del self._last[u]
            self.seen.pop(u, None)
            self.seen_set.pop(u, None)
        return len(idle)

    def _evaluate(self, user_id: str, target: int, new_user: bool, ts: int) -> None:
        names = list(self.models)
        slices = [0, SLICES.index(count_slice(self.item_count[target]))]
        if new_user:
            slices.append(SLICES.index("new_user"))
        self._n[slices] += 1
        seen = np.asarray(self.seen.get(user_id, ()), dtype=np.int64)
        future = self.catalog.announced > ts  # announced after this event: does not exist yet
        excluded = np.unique(np.concatenate([seen, np.flatnonzero(future)]))
        n = len(self.catalog)
        for j, model in enumerate(self.models.values()):
            scores = np.asarray(model.score_all(user_id))  # compared as given: no copy
            if scores.shape[0] != n:
                raise RuntimeError(f"model {model.name!r} scored {scores.shape[0]} items, not {n}")
            st = scores[target]
            raw = float(st)
            if future[target] or not np.isfinite(st):
                rank = n
            else:  # pessimistic ties: every other item scoring the same is ranked above it
                ahead = np.count_nonzero(scores >= st) - np.count_nonzero(scores[excluded] >= st)
                rank = int(ahead) - 1
            hit = rank < self.k
            ndcg = 1.0 / np.log2(rank + 2.0) if hit else 0.0
            self._sum[0, j, slices] += hit
            self._sum[1, j, slices] += ndcg
            self._sum[2, j, slices] += 1.0 / (rank + 1.0)
            self._win[0, j] += hit
            self._win[1, j] += ndcg
            for obs in self.observers:
                obs.ranked(names[j], hit, raw)
        self._win_n += 1
        if self._win_n == self.window:
            self._close_window()

    def _close_window(self) -> None:
        if self._win_n == 0:
            return
        for j, name in enumerate(self.models):
            self.timeline[name].append(
                {
                    "events": float(self.events),
                    "evaluated": float(self._n[0]),
                    "recall": float(self._win[0, j] / self._win_n),
                    "ndcg": float(self._win[1, j] / self._win_n),
                }
            )
        self._win[:] = 0.0
        self._win_n = 0

    def totals(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Copies of the running sums ``(metric: recall/ndcg/mrr, model, slice)`` and the
        evaluated counts per slice, for rolling metrics (difference of two snapshots)."""
        return self._sum.copy(), self._n.copy()

    def state_dict(self) -> dict[str, Any]:
        """Everything, models included, so a restored evaluator goes on exactly."""
        return {
            "models": {name: m.state_dict() for name, m in self.models.items()},
            "sum": self._sum.copy(),
            "n": self._n.copy(),
            "win": self._win.copy(),
            "win_n": self._win_n,
            "learn_s": self._learn_s.copy(),
            "timeline": {k: list(v) for k, v in self.timeline.items()},
            "item_count": list(self.item_count),
            "seen": {u: list(v) for u, v in self.seen.items()},
            "last": dict(self._last),
            "now": self._now,
            "counters": (self.events, self.positives, self.unannounced, self.skipped_repeats),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["models"]) != set(self.models):
            raise ValueError(
                f"state holds models {sorted(state['models'])}, not {sorted(self.models)}"
            )
        for name, m in self.models.items():
            m.load_state_dict(state["models"][name])
        self._sum, self._n, self._win = state["sum"].copy(), state["n"].copy(), state["win"].copy()
        self._win_n, self._learn_s = state["win_n"], state["learn_s"].copy()
        self.timeline = {k: list(v) for k, v in state["timeline"].items()}
        self.item_count = list(state["item_count"])
        self.seen = {u: list(v) for u, v in state["seen"].items()}
        self.seen_set = {u: set(v) for u, v in self.seen.items()}
        self._last, self._now = dict(state.get("last", {})), int(state.get("now", 0))
        self.events, self.positives, self.unannounced, self.skipped_repeats = state["counters"]

    def result(self) -> EvalResult:
        for j, model in enumerate(self.models.values()):
            t = time.perf_counter()
            model.flush()
            self._learn_s[j] += time.perf_counter() - t
        self._close_window()
        metrics: dict[str, dict[str, Any]] = {}
        n = np.maximum(self._n, 1)
        for j, name in enumerate(self.models):
            entry: dict[str, Any] = {
                metric: {s: float(self._sum[mi, j, si] / n[si]) for si, s in enumerate(SLICES)}
                for mi, metric in enumerate(_METRICS)
            }
            entry["learn_events_per_s"] = float(self.events / max(self._learn_s[j], 1e-9))
            metrics[name] = entry
        return EvalResult(
            k=self.k,
            events=self.events,
            evaluated={s: int(self._n[i]) for i, s in enumerate(SLICES)},
            metrics=metrics,
            timeline=self.timeline,
            unannounced=self.unannounced,
            skipped_repeats=self.skipped_repeats,
            seconds=time.perf_counter() - self._t0,
        )


def run_prequential(
    records: Iterable[Record],
    evaluator: Prequential,
    embeddings: dict[tuple[str, str], npt.NDArray[np.float32]],
    progress: Callable[[int], None] | None = None,
    *,
    owns: Callable[[str], bool] | None = None,
    after: Callable[[int], object] | None = None,
) -> EvalResult:
    """Replay ``records`` (event-time order) through ``evaluator``; ``embeddings`` come from
    :meth:`models.teacher.SentenceTeacher.embed_records` (``(kind, id) -> vector``).

    With ``owns`` (one of several ranks, :mod:`models.distributed`), the interactions of users
    it returns False for are another rank's: they only count towards the items' slices.
    ``after(n)`` is called once ``n`` records have gone through."""
    cat = evaluator.catalog
    done = 0
    for rec in records:
        if isinstance(rec, Interaction):
            idx = cat.get(rec.item_id)
            exists = idx is not None
            if idx is None:
                evaluator.unannounced += 1
                idx = cat.add(rec.item_id, None)
                evaluator.item(idx)
            if owns is None or owns(rec.user_id):
                evaluator.interaction(rec.user_id, idx, rec.value, rec.ts, rank=exists)
            else:
                evaluator.item_count[idx] += 1
        elif isinstance(rec, Item):
            evaluator.item(cat.add(rec.item_id, embeddings.get(("item", rec.item_id)), rec.ts))
        elif isinstance(rec, User):
            evaluator.user(rec.user_id, embeddings.get(("user", rec.user_id)))
        done += 1
        if after is not None:
            after(done)
        if progress is not None and done % 1000 == 0:
            progress(1000)
    if progress is not None:
        progress(done % 1000)
    return evaluator.result()
