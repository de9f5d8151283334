"""Item-to-item co-occurrence: the memory behind ``item_knn`` and the student's co-occurrence term.

An interaction ``(u, i)`` adds one co-occurrence between ``i`` and every item of ``u``'s window
(their latest items, in both directions; an item seen twice in the window counts twice), and
one to ``n_i``. A window ``W`` scores item ``i`` as

    s(W, i) = sum_{j in set(W)} C[i, j] / (n_i ** alpha * n_j ** (1 - alpha))

(``alpha = 0.5``: the cosine; a larger ``alpha`` favours rarely seen items).

Storage is sparse: each item keeps growable arrays of its neighbours and counts, in the order
the pairs first occurred, plus a dict from neighbour to slot. With ``neighbours`` set, an item
whose list reaches twice that many keeps its ``neighbours`` most frequent ones (the usual top-N
neighbours of item-kNN), so memory, snapshots and a request's work stay bounded on a long
stream over a large catalog. :func:`window_scores` sums a
window's neighbour lists in one fixed order (distinct window items ascending, each list in its
own order), so the student (from this memory) and ``coldstream serve`` (from a snapshot's copy
of it, :meth:`Cooccurrence.csr`) compute the same floats.

>>> c = Cooccurrence(alpha=0.5)
>>> for i in range(3):
...     c.observe_item(i)
>>> c.add(0, []); c.add(1, [0]); c.add(2, [0, 1])
>>> idx, s = window_scores([0], c.neighbours, c.n, 0.5)
>>> idx.tolist(), [round(float(x), 3) for x in s]
([1, 2], [1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from models.baselines import grow

__all__ = ["BUCKETS", "Cooccurrence", "bucket", "combine", "top_boost", "weigh", "window_scores"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Neighbours = Callable[[int], tuple[I64, F64]]


#: log2 buckets of an item's interaction count (0, 1, 2-3, 4-7, ..., >= 1024)
BUCKETS = 12


def bucket(n: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
    """The count bucket of interaction counts ``n`` (of the student's teacher gate and boost
    weights): ``floor(log2(n + 1))``, capped.

    >>> bucket(np.array([0.0, 1.0, 2.0, 3.0, 7.0, 1e6])).tolist()
    [0, 1, 1, 2, 3, 11]
    """
    return np.minimum(np.floor(np.log2(np.asarray(n, dtype=np.float64) + 1.0)), BUCKETS - 1).astype(
        np.int64
    )


def weigh(idx: I64, boost: F32, n: F64 | F32, weights: F32) -> F32:
    """Boosts times the weight of each boosted item's count bucket (``weights`` float32, one
    per bucket): the student's learned hand-over between the term and its dense score, which
    ``coldstream serve`` applies from the snapshot as the student does."""
    return (boost * weights[bucket(n[idx])]).astype(np.float32)


class Cooccurrence:
    """Sparse co-occurrence counts ``C`` and interaction counts ``n`` of catalog rows."""

    def __init__(self, alpha: float = 0.5, *, neighbours: int | None = None) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"co-occurrence alpha must be in [0, 1], not {alpha}")
        if neighbours is not None and neighbours < 1:
            raise ValueError(f"co-occurrence neighbours must be >= 1 (or None), not {neighbours}")
        self.alpha, self.cap = alpha, neighbours
        self.n: F64 = np.zeros(0)
        self.total = 0.0
        # per item: neighbour rows, their counts, how many slots are used, neighbour -> slot
        self._nb: list[I64] = []
        self._cnt: list[F64] = []
        self._len: list[int] = []
        self._slot: list[dict[int, int]] = []

    def observe_item(self, index: int) -> None:
        self.n = grow(self.n, index + 1)
        while len(self._nb) <= index:
            self._nb.append(np.zeros(4, dtype=np.int64))
            self._cnt.append(np.zeros(4))
            self._len.append(0)
            self._slot.append({})

    def _pair(self, a: int, b: int) -> None:
        slots = self._slot[a]
        s = slots.get(b)
        if s is None:
            s = slots[b] = self._len[a]
            self._len[a] = s + 1
            if s >= self._nb[a].shape[0]:
                self._nb[a] = grow(self._nb[a], s + 1)
                self._cnt[a] = grow(self._cnt[a], s + 1)
            self._nb[a][s] = b
            self._cnt[a][s] = 1.0
            if self.cap is not None and s + 1 >= 2 * self.cap:
                self._prune(a)
            return
        self._cnt[a][s] += 1.0

    def _prune(self, a: int) -> None:
        """Keep item ``a``'s ``cap`` most frequent neighbours (ties: the earlier pair), in
        their order; a pruned pair that occurs again starts over at 1."""
        k = self._len[a]
        keep = np.sort(np.argsort(-self._cnt[a][:k], kind="stable")[: self.cap])
        self._nb[a] = self._nb[a][keep]
        self._cnt[a] = self._cnt[a][keep]
        self._len[a] = len(keep)
        self._slot[a] = {int(b): s for s, b in enumerate(self._nb[a])}

    def add(self, index: int, window: Iterable[int]) -> None:
        """One interaction with ``index`` by a user whose window (before it) is ``window``."""
        for j in window:
            if j != index:
                self._pair(index, j)
                self._pair(j, index)
        self.n[index] += 1.0
        self.total += 1.0

    def neighbours(self, j: int) -> tuple[I64, F64]:
        """Item ``j``'s neighbour rows and co-occurrence counts (views, in first-pair order)."""
        k = self._len[j]
        return self._nb[j][:k], self._cnt[j][:k]

    def csr(self, rows: int) -> tuple[I64, npt.NDArray[np.int32], F32]:
        """The first ``rows`` items' neighbour lists as CSR (indptr, neighbour rows, counts);
        counts are whole numbers, exact in float32 up to 2**24."""
        lens = np.asarray(self._len[:rows], dtype=np.int64)
        indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        if not rows or not indptr[-1]:
            return indptr, np.zeros(0, np.int32), np.zeros(0, np.float32)
        nb = np.concatenate([self._nb[j][: self._len[j]] for j in range(rows)])
        cnt = np.concatenate([self._cnt[j][: self._len[j]] for j in range(rows)])
        return indptr, nb.astype(np.int32), cnt.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {
            "n": self.n.copy(),
            "total": self.total,
            "nb": [a[:k].copy() for a, k in zip(self._nb, self._len, strict=True)],
            "cnt": [a[:k].copy() for a, k in zip(self._cnt, self._len, strict=True)],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n, self.total = state["n"].copy(), float(state["total"])
        self._nb = [np.asarray(a, dtype=np.int64).copy() for a in state["nb"]]
        self._cnt = [np.asarray(a, dtype=np.float64).copy() for a in state["cnt"]]
        self._len = [len(a) for a in self._nb]
        self._slot = [{int(b): s for s, b in enumerate(a)} for a in self._nb]


def window_scores(
    window: Iterable[int], neighbours: Neighbours, n: F64, alpha: float
) -> tuple[I64, F64]:
    """The items a window co-occurred with (ascending) and their scores ``s(W, i)``."""
    idx_parts: list[I64] = []
    val_parts: list[F64] = []
    for j in sorted(set(window)):
        nb, cnt = neighbours(j)
        if len(nb):
            idx_parts.append(nb)
            val_parts.append(cnt / n[j] ** (1.0 - alpha))
    if not idx_parts:
        return np.zeros(0, np.int64), np.zeros(0)
    idx, inv = np.unique(np.concatenate(idx_parts), return_inverse=True)
    s = np.bincount(inv, weights=np.concatenate(val_parts), minlength=len(idx))
    return idx.astype(np.int64), s / n[idx] ** alpha


def top_boost(idx: I64, s: F64, *, weight: float, top: int) -> tuple[I64, F32]:
    """The ``top`` highest-scoring items and their additive boosts ``weight * log(1 + s)``,
    best first (ties by row)."""
    if len(idx) > top:
        keep = np.argpartition(-s, top - 1)[:top]
        idx, s = idx[keep], s[keep]
    order = np.lexsort((idx, -s))
    return idx[order], (weight * np.log1p(s[order])).astype(np.float32)


def combine(dense: F32, idx: I64, boost: F32, cold: npt.NDArray[np.bool_], impute: int) -> F32:
    """Final scores: ``dense`` plus each boosted item's boost, and for every cold item (no
    interaction yet, so no co-occurrence can speak for it) the boost of the ``impute`` best
    warm items by ``dense`` score, summed and divided by ``impute`` (a cold item is treated as
    a typical leading candidate, neither lifted above nor pushed below them by the term).
    The snapshot's ONNX graph computes the same (``snapshotlib.graph``)."""
    out = dense.astype(np.float32, copy=True)
    if not len(idx):
        return out
    extra = np.zeros_like(out)
    extra[idx] = boost
    out += extra
    warm = np.flatnonzero(~cold)
    if impute and warm.size:
        k = min(impute, warm.size)
        top = warm[np.argpartition(-dense[warm], k - 1)[:k]]
        out[cold] += np.float32(extra[top].sum(dtype=np.float32) / np.float32(impute))
    return out
