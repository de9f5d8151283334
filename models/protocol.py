"""The one small protocol every recommender implements, and the helpers built on it.

A driver (the evaluator, a stream worker) owns a :class:`~models.catalog.Catalog` shared by
all models. For each event it calls, in stream order:

- ``observe_item(index)`` after adding an item to the catalog (its teacher embedding is there),
- ``observe_user(user_id, embedding)`` for a user profile event (embedding may be ``None``),
- ``learn_one(user_id, index, value, ts)`` for an interaction (``index`` is the item's row),

and ``score_all(user_id)`` to get one score per catalog row (higher is better). Models that
learn in micro-batches apply pending events in ``flush()``; ``score_all`` may use state that
is at most one micro-batch old. ``state_dict``/``load_state_dict`` round-trip everything
that changes while learning, so a restored model scores and learns exactly as the original.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Recommender", "is_positive", "rank"]


@runtime_checkable
class Recommender(Protocol):
    name: str

    def observe_item(self, index: int) -> None: ...

    def observe_user(self, user_id: str, embedding: npt.NDArray[np.float32] | None) -> None: ...

    def learn_one(self, user_id: str, index: int, value: float, ts: int) -> None: ...

    def flush(self) -> None: ...

    def score_all(self, user_id: str) -> npt.NDArray[np.floating[Any]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def is_positive(value: float, threshold: float | None) -> bool:
    """Implicit data (``threshold`` None): every event is positive; else ``value >= threshold``."""
    return threshold is None or value >= threshold


def rank(model: Recommender, user_id: str, k: int, exclude: Iterable[int] = ()) -> list[int]:
    """The top-``k`` catalog rows for a user, best first, without the ``exclude`` rows.

    Ties are broken by row order so the answer is deterministic.

    >>> from models.baselines import Popularity
    >>> from models.catalog import Catalog
    >>> cat = Catalog(dim=1)
    >>> pop = Popularity(cat)
    >>> for i in "abc":
    ...     pop.observe_item(cat.add(i, [1.0]))
    >>> for i in (2, 2, 1):
    ...     pop.learn_one("u", i, 1.0, 0)
    >>> rank(pop, "v", k=2), rank(pop, "v", k=2, exclude=[2])
    ([2, 1], [1, 0])
    """
    scores = np.asarray(model.score_all(user_id), dtype=np.float64).copy()
    ex = np.fromiter(exclude, dtype=np.int64)
    if ex.size:
        scores[ex] = -np.inf
    k = min(k, scores.size - ex.size)
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    order = np.lexsort((top, -scores[top]))
    return [int(i) for i in top[order]]
