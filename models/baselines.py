"""Baselines behind the :class:`~models.protocol.Recommender` protocol.

- :class:`RiverMF`: River's ``reco.BiasedMF`` learning through its own ``learn_one``. For
  ranking, its parameters are mirrored into numpy arrays (each ``learn_one`` touches one item
  row, which is copied right after), so scoring the full catalog is one matrix product.
  Implicit data: each positive is learned as ``y=1`` plus ``negatives`` uniformly sampled
  catalog items as ``y=0`` (BiasedMF is a regression model and needs both). Explicit data:
  every rating is learned as it is.
- :class:`Popularity`: positive counts with exponential recency decay on an event clock.
- :class:`ContentSimilarity`: cosine of the teacher embeddings with the user's profile, the
  mean teacher embedding of their positives (or their profile text before any positive).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import numpy.typing as npt
from river import optim, reco

from models.catalog import Catalog
from models.protocol import is_positive

__all__ = ["ContentSimilarity", "Popularity", "RiverMF", "grow"]

F64 = npt.NDArray[np.float64]
#: one day in milliseconds (event times are epoch ms)
DAY_MS = 86_400_000


def grow(arr: npt.NDArray[Any], n: int) -> npt.NDArray[Any]:
    """``arr`` with at least ``n`` rows (capacity doubles; new rows are zero)."""
    if arr.shape[0] >= n:
        return arr
    out = np.zeros((max(n, 2 * arr.shape[0], 64), *arr.shape[1:]), dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


class RiverMF:
    name = "river"

    def __init__(
        self,
        catalog: Catalog,
        *,
        threshold: float | None = None,
        n_factors: int = 10,
        lr: float = 0.05,
        l2: float = 0.0,
        negatives: int = 1,
        seed: int = 0,
    ) -> None:
        self.catalog = catalog
        self.threshold = threshold
        self.negatives = negatives
        self.model = reco.BiasedMF(
            n_factors=n_factors,
            bias_optimizer=optim.SGD(lr / 2),
            latent_optimizer=optim.SGD(lr),
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
            l2_bias=l2,
            l2_latent=l2,
            seed=seed,
        )
        self._rng = np.random.default_rng(seed)
        self._bias: F64 = np.zeros(0)
        self._lat: F64 = np.zeros((0, n_factors))

    def observe_item(self, index: int) -> None:
        self._bias = grow(self._bias, index + 1)
        self._lat = grow(self._lat, index + 1)
        self._copy(index)

    def _copy(self, index: int) -> None:
        item = self.catalog.ids[index]
        self._bias[index] = self.model.i_biases[item]
        self._lat[index] = self.model.i_latents[item]  # River initialises it here, as rank would

    def observe_user(self, user_id: str, embedding: npt.NDArray[np.float32] | None) -> None:
        return None

    def learn_one(self, user_id: str, index: int, value: float, ts: int) -> None:
        item = self.catalog.ids[index]
        if self.threshold is not None:  # explicit ratings: learn every rating as it is
            self.model.learn_one(user_id, item, value)
            self._copy(index)
            return
        self.model.learn_one(user_id, item, 1.0)
        self._copy(index)
        n = len(self.catalog)
        for neg in self._rng.integers(0, n, size=self.negatives):
            if int(neg) != index:
                self.model.learn_one(user_id, self.catalog.ids[int(neg)], 0.0)
                self._copy(int(neg))

    def flush(self) -> None:
        return None

    def score_all(self, user_id: str) -> F64:
        n = len(self.catalog)
        m = self.model
        u = m.u_latents.get(user_id)
        base = m.global_mean.get() + m.u_biases.get(user_id, 0.0)
        s = self._bias[:n] + base
        return s + self._lat[:n] @ u if u is not None else s

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": pickle.dumps(self.model),
            "rng": self._rng.bit_generator.state,
            "bias": self._bias.copy(),
            "lat": self._lat.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model = pickle.loads(state["model"])
        self._rng.bit_generator.state = state["rng"]
        self._bias, self._lat = state["bias"].copy(), state["lat"].copy()


class Popularity:
    """Positive counts with exponential time decay: each positive weighs
    ``2 ** -((now - ts) / half_life_ms)`` (event time); ``half_life_ms=None`` counts plainly."""

    name = "popularity"

    def __init__(
        self,
        catalog: Catalog,
        *,
        threshold: float | None = None,
        half_life_ms: float | None = DAY_MS * 7,
        seed: int = 0,
    ) -> None:
        if half_life_ms is not None and half_life_ms <= 0:
            raise ValueError(f"half_life_ms must be > 0 or None, got {half_life_ms}")
        self.catalog = catalog
        self.threshold = threshold
        self.half_life = half_life_ms
        # counts are kept scaled by 2 ** ((ts - base) / half_life), rebased before they overflow
        self._pop: F64 = np.zeros(0)
        self._base: int | None = None

    def observe_item(self, index: int) -> None:
        self._pop = grow(self._pop, index + 1)

    def observe_user(self, user_id: str, embedding: npt.NDArray[np.float32] | None) -> None:
        return None

    def learn_one(self, user_id: str, index: int, value: float, ts: int) -> None:
        if not is_positive(value, self.threshold):
            return
        h = self.half_life
        if h is None:
            self._pop[index] += 1.0
            return
        if self._base is None:
            self._base = ts
        elif ts - self._base > 40 * h:  # rebase before the weights overflow
            self._pop *= 2.0 ** (-(ts - self._base) / h)
            self._base = ts
        self._pop[index] += 2.0 ** ((ts - self._base) / h)

    def flush(self) -> None:
        return None

    def score_all(self, user_id: str) -> F64:
        return self._pop[: len(self.catalog)].copy()

    def state_dict(self) -> dict[str, Any]:
        return {"base": self._base, "pop": self._pop.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._base, self._pop = state["base"], state["pop"].copy()


class ContentSimilarity:
    name = "content"

    def __init__(self, catalog: Catalog, *, threshold: float | None = None, seed: int = 0) -> None:
        self.catalog = catalog
        self.threshold = threshold
        self._sum: dict[str, npt.NDArray[np.float32]] = {}
        self._profile: dict[str, npt.NDArray[np.float32]] = {}

    def observe_item(self, index: int) -> None:
        return None

    def observe_user(self, user_id: str, embedding: npt.NDArray[np.float32] | None) -> None:
        if embedding is not None:
            self._profile[user_id] = np.asarray(embedding, dtype=np.float32)

    def learn_one(self, user_id: str, index: int, value: float, ts: int) -> None:
        if not is_positive(value, self.threshold):
            return
        emb = self.catalog.embeddings[index]
        s = self._sum.get(user_id)
        self._sum[user_id] = emb.copy() if s is None else s + emb

    def flush(self) -> None:
        return None

    def score_all(self, user_id: str) -> npt.NDArray[np.float32]:
        q = self._sum.get(user_id)
        if q is None:
            q = self._profile.get(user_id)
        if q is None:
            return np.zeros(len(self.catalog), dtype=np.float32)
        return self.catalog.embeddings @ q  # embeddings are unit length: ranks like cosine

    def state_dict(self) -> dict[str, Any]:
        return {
            "sum": {k: v.copy() for k, v in self._sum.items()},
            "profile": {k: v.copy() for k, v in self._profile.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sum = {k: v.copy() for k, v in state["sum"].items()}
        self._profile = {k: v.copy() for k, v in state["profile"].items()}
