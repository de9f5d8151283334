"""A reservoir of past positives the trainer mixes into every micro-batch (against forgetting).

Each entry keeps what the user looked like at that moment (their history), so a replayed
event does not see its own item in the user's history.

>>> r = ReplayBuffer(size=2, history=3, seed=0)
>>> for i in range(5):
...     r.add("u", i, [i - 1] if i else [])
>>> len(r), sorted(r.sample(2)[1].tolist()) != []
(2, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    def __init__(self, size: int, history: int, seed: int = 0) -> None:
        self.size = size
        self.users: list[str] = []
        self.items = np.zeros(size, dtype=np.int64)
        self.hist = np.full((size, history), -1, dtype=np.int64)
        self.seen = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.users)

    def add(self, user: str, item: int, hist: Sequence[int]) -> None:
        self.seen += 1
        if len(self.users) < self.size:
            slot = len(self.users)
            self.users.append(user)
        else:
            slot = int(self._rng.integers(0, self.seen))
            if slot >= self.size:
                return
            self.users[slot] = user
        self.items[slot] = item
        self.hist[slot] = -1
        if len(hist):
            self.hist[slot, : len(hist)] = hist

    def sample(self, n: int) -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        n = min(n, len(self.users))
        idx = (
            self._rng.choice(len(self.users), size=n, replace=False)
            if n
            else np.zeros(0, dtype=np.int64)
        )
        return [self.users[i] for i in idx], self.items[idx], self.hist[idx]

    def state_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "users": list(self.users),
            "items": self.items.copy(),
            "hist": self.hist.copy(),
            "seen": self.seen,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.users, self.seen = state["size"], list(state["users"]), state["seen"]
        self.items, self.hist = state["items"].copy(), state["hist"].copy()
        self._rng.bit_generator.state = state["rng"]
