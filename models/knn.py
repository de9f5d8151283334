"""The online item-to-item co-occurrence kNN: the baseline a practitioner tries first.

Each user keeps a window of their ``window`` most recent items. An interaction ``(u, i)`` adds
one co-occurrence between ``i`` and every item in ``u``'s window (both directions), then ``i``
joins the window. With ``positives_only`` only positive interactions count; by default every
interaction does (a rating of any value says the user consumed the item, and on real data
that was the better setting: ``bench/tune_baselines.py``). A user's score of item ``i`` is the
normalised co-occurrence summed over their window:

    score(u, i) = sum_{j in window(u)} C[i, j] / (n_i ** alpha * n_j ** (1 - alpha))

``n`` counts each item's interactions (``alpha = 0.5`` is the cosine). ``tiebreak`` adds that
many times an item's share of positives, so items the window says nothing about (a new user,
an item nobody paired yet) are ordered by popularity rather than tied at zero.

The counts live in a :class:`~models.cooc.Cooccurrence` (sparse), the memory the student's
co-occurrence term reads too.

>>> from models.catalog import Catalog
>>> cat = Catalog(dim=1)
>>> knn = ItemKNN(cat, window=5, tiebreak=0.0)
>>> for i in "abc":
...     knn.observe_item(cat.add(i, [1.0]))
>>> for u, i in (("u1", 0), ("u1", 1), ("u2", 0), ("u2", 1), ("u3", 0), ("u3", 2)):
...     knn.learn_one(u, i, 1.0, 0)
>>> s = knn.score_all("u4")
>>> knn.learn_one("u4", 0, 1.0, 0)
>>> [round(float(x), 3) for x in knn.score_all("u4")]   # a (4 uses) met b (2) twice, c (1) once
[0.0, 0.707, 0.5]
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from models.catalog import Catalog
from models.cooc import Cooccurrence, window_scores
from models.protocol import is_positive

__all__ = ["ItemKNN"]

F64 = npt.NDArray[np.float64]


class ItemKNN:
    name = "item_knn"

    def __init__(
        self,
        catalog: Catalog,
        *,
        threshold: float | None = None,
        window: int = 10,
        alpha: float = 0.5,
        tiebreak: float = 1e-3,
        positives_only: bool = False,
        seed: int = 0,
    ) -> None:
        if window < 1 or not 0.0 <= alpha <= 1.0 or tiebreak < 0:
            raise ValueError("ItemKNN needs window >= 1, 0 <= alpha <= 1 and tiebreak >= 0")
        self.catalog, self.threshold = catalog, threshold
        self.window, self.alpha, self.tiebreak = window, alpha, tiebreak
        self.positives_only = positives_only
        self.recent: dict[str, deque[int]] = {}
        self.cooc = Cooccurrence(alpha)

    def observe_item(self, index: int) -> None:
        self.cooc.observe_item(index)

    def observe_user(self, user_id: str, embedding: npt.NDArray[np.float32] | None) -> None:
        return None

    def learn_one(self, user_id: str, index: int, value: float, ts: int) -> None:
        if self.positives_only and not is_positive(value, self.threshold):
            return
        win = self.recent.get(user_id)
        if win is None:
            win = self.recent[user_id] = deque(maxlen=self.window)
        self.cooc.add(index, win)
        win.append(index)

    def flush(self) -> None:
        return None

    def score_all(self, user_id: str) -> F64:
        n = len(self.catalog)
        counts = self.cooc.n[:n]
        scores = np.zeros(n)
        win = self.recent.get(user_id)
        if win:
            idx, s = window_scores(win, self.cooc.neighbours, self.cooc.n, self.alpha)
            scores[idx] = s
        if self.tiebreak and self.cooc.total:
            scores += self.tiebreak * counts / self.cooc.total
        return scores

    def state_dict(self) -> dict[str, Any]:
        return {"recent": {u: list(w) for u, w in self.recent.items()}, **self.cooc.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = {u: deque(w, maxlen=self.window) for u, w in state["recent"].items()}
        self.cooc.load_state_dict(state)
