"""How fresh each catalog item is, on the clock of interactions learned: its age, and its
recent interactions decayed at several half-lives (trends rise and fade).

The decayed counts are kept scaled by ``2 ** ((clock - base) / s)`` per half-life ``s`` and
rebased before they overflow, so counting an interaction is one add (no decay of the whole
catalog per event). Features (:meth:`Freshness.features`) are ``exp(-age / s)`` and
``log1p(decayed count)`` for each ``s``.

>>> f = Freshness((10.0, 100.0))
>>> f.observe(0, clock=0)
>>> f.observe(1, clock=2)
>>> f.count(np.array([1, 1, 0]), clock=3)   # interactions 1, 2 and 3: items 1, 1, 0
>>> [[round(float(x), 2) for x in row] for row in f.features(np.array([0, 1]), clock=3)]
[[0.74, 0.97, 0.69, 0.69], [0.9, 0.99, 1.03, 1.09]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from models.baselines import grow

__all__ = ["Freshness"]


class Freshness:
    def __init__(self, scales: tuple[float, ...]) -> None:
        self.scales = np.asarray(scales, dtype=np.float64)
        self.born = np.zeros(0, dtype=np.float64)
        self.known = np.zeros(0, dtype=bool)
        self.heat = np.zeros((0, len(scales)), dtype=np.float64)
        self.base = 0

    @property
    def width(self) -> int:
        return 2 * len(self.scales)

    def observe(self, index: int, clock: int) -> None:
        """An item event: a new item is born at ``clock`` (a repeated one keeps its age)."""
        n = index + 1
        self.born, self.known = grow(self.born, n), grow(self.known, n)
        self.heat = grow(self.heat, n)
        if not self.known[index]:
            self.born[index], self.known[index] = clock, True

    def count(self, items: npt.NDArray[np.int64], clock: int) -> None:
        """Count ``items``, the latest ``len(items)`` interactions learned (in order), the last
        of them at ``clock``: each adds ``2 ** ((its clock - base) / s)``."""
        clocks = np.arange(clock - len(items) + 1, clock + 1, dtype=np.int64)
        limit = 8 * self.scales[0]
        j = 0
        while j < len(items):
            if clocks[j] - self.base > limit:  # rebase at this clock
                self.heat *= 2.0 ** (-(clocks[j] - self.base) / self.scales)
                self.base = int(clocks[j])
            end = int(np.searchsorted(clocks, self.base + limit, side="right"))
            gain = 2.0 ** ((clocks[j:end, None] - self.base) / self.scales)
            np.add.at(self.heat, items[j:end], gain)  # in order, repeats included
            j = end

    def features(self, rows: Any, clock: int) -> npt.NDArray[np.float32]:
        """``[exp(-age / s) for s] + [log1p(decayed count) for s]`` of ``rows`` at ``clock``."""
        age = np.maximum(clock - self.born[rows], 0.0)[:, None] / self.scales
        heat = self.heat[rows] * 2.0 ** (-(clock - self.base) / self.scales)
        return np.concatenate([np.exp(-age), np.log1p(heat)], axis=1).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {
            "born": self.born.copy(),
            "known": self.known.copy(),
            "heat": self.heat.copy(),
            "base": self.base,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.born, self.known = state["born"].copy(), state["known"].copy()
        self.heat, self.base = state["heat"].copy(), int(state["base"])
