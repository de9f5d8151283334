"""The item catalog every model ranks: item ids in arrival order and their teacher embeddings.

An item exists from its item event on. Its position (``index``) never changes, so every model
keeps its per-item arrays aligned with the catalog and scores the whole catalog with one
matrix product. A repeated item event replaces the embedding in place.

>>> import numpy as np
>>> cat = Catalog(dim=2)
>>> cat.add("a", np.array([1.0, 0.0])), cat.add("b", np.array([0.0, 1.0])), cat.add("a", None)
(0, 1, 0)
>>> len(cat), cat.index("b"), cat.embeddings.shape
(2, 1, (2, 2))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["NO_TS", "Catalog"]

#: announce time of an item that was never announced (it exists from its first use on)
NO_TS = np.iinfo(np.int64).min

F32 = npt.NDArray[np.float32]


class Catalog:
    """Growable id -> row map with a float32 embedding matrix (capacity doubles)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.ids: list[str] = []
        self._index: dict[str, int] = {}
        self._emb: F32 = np.zeros((64, dim), dtype=np.float32)
        # event time of each item's announcement (ms); NO_TS for items known only from use
        self._ts = np.full(64, NO_TS, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def index(self, item_id: str) -> int:
        return self._index[item_id]

    def get(self, item_id: str) -> int | None:
        return self._index.get(item_id)

    @property
    def embeddings(self) -> F32:
        """A view of the rows in use (do not keep it across :meth:`add`)."""
        return self._emb[: len(self.ids)]

    @property
    def announced(self) -> npt.NDArray[np.int64]:
        """Each row's announce time in ms (``NO_TS`` when unknown): ranking at time ``t``
        considers only rows announced at or before ``t``, whatever order events arrived in."""
        return self._ts[: len(self.ids)]

    def add(self, item_id: str, embedding: npt.ArrayLike | None, ts: int | None = None) -> int:
        """Add an item (or update its embedding) and return its index.

        ``ts`` is the item event's time; a repeated item event keeps the first one."""
        idx = self._index.get(item_id)
        if idx is None:
            idx = len(self.ids)
            if idx >= self._emb.shape[0]:
                grown = np.zeros((self._emb.shape[0] * 2, self.dim), dtype=np.float32)
                grown[:idx] = self._emb[:idx]
                self._emb = grown
                grown_ts = np.full(self._emb.shape[0], NO_TS, dtype=np.int64)
                grown_ts[:idx] = self._ts[:idx]
                self._ts = grown_ts
            self.ids.append(item_id)
            self._index[item_id] = idx
        if embedding is not None:
            self._emb[idx] = np.asarray(embedding, dtype=np.float32)
        if ts is not None and self._ts[idx] == NO_TS:
            self._ts[idx] = ts
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "ids": list(self.ids),
            "embeddings": self.embeddings.copy(),
            "announced": self.announced.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__(int(state["dim"]))  # type: ignore[misc]
        announced = state.get("announced")
        for i, item_id in enumerate(state["ids"]):
            ts = None if announced is None or announced[i] == NO_TS else int(announced[i])
            self.add(item_id, state["embeddings"][i], ts)
