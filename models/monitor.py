"""The drift monitor of a worker (and of ``coldstream evaluate --adapt``), and what a detection
can do: boost the student.

:meth:`DriftMonitor.attach` hooks a :class:`~models.evaluation.Prequential` evaluator, so the
monitor sees what the models see, in the same order, before they learn it:

- concept drift, per model: ADWIN and Page-Hinkley on the miss stream (``adwin``,
  ``page_hinkley``; 1 when the target was not in the top K) and on a loss stream
  (``adwin_loss``, ``page_hinkley_loss``): the student's loss on each micro-batch of fresh
  interactions before it learns them, River's squared error on each ranked target before it
  learns it (averaged per ``loss_block``). Only rises count (:class:`~models.drift.Rising`).
- data drift: PSI of item popularity (where the interacted item stands in the catalog by
  interactions so far, 0 = least popular, 1 = most) and of the student's score of the
  target of each ranked event; the centroid shift of the teacher embeddings of new items.

Each detection becomes a :class:`Detection` in ``log`` (concept drift names its model; data
drift has ``model=None`` and names the feature) and goes to every callback in ``listeners``.
With an :class:`Adaptation`, a detection by one of its ``detectors`` boosts the student it
concerns (:meth:`models.student.Student.boost`; a data-drift detection boosts every student).

The defaults were tuned on generated streams; ``bench/bench_drift.py`` measures them and the
README says on which seeds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from river.drift import ADWIN, PageHinkley

from models.baselines import RiverMF, grow
from models.catalog import Catalog
from models.drift import PSI, CentroidShift, LossWatch, Rising, WindowedADWIN
from models.evaluation import EvalObserver, Prequential
from models.protocol import Recommender
from models.student import Student

__all__ = ["Adaptation", "Detection", "DriftConfig", "DriftMonitor"]

LOG_SIZE = 1000  # detections kept in ``log`` (and in checkpoints), newest last


class Detection(NamedTuple):
    model: str | None  # None: data drift
    detector: str  # adwin, page_hinkley, adwin_loss, page_hinkley_loss; or the data feature
    events: int  # interactions before the one that raised it
    ts: int  # its event time, epoch ms


@dataclass(frozen=True)
class DriftConfig:
    """Detector settings (misses are 0/1; losses are in the unit :class:`LossWatch` fixes)."""

    adwin_delta: float = 1e-5
    adwin_window: int = 4000  # ADWIN on the misses sees at most this many (WindowedADWIN)
    ph_delta: float = 0.08
    ph_threshold: float = 50.0
    loss_block: int = 128  # per-interaction losses (River) are averaged over this many
    loss_adwin_delta: float = 2e-3
    loss_ph_delta: float = 0.5
    loss_ph_threshold: float = 10.0
    psi_threshold: float = 0.25
    psi_window: int = 1000
    grace: int = 4000  # interactions before a PSI may alarm (a new model's scores move fast)
    shift_window: int = 100
    shift_threshold: float = 0.35  # noise is about sqrt(2 / shift_window) = 0.14


@dataclass(frozen=True)
class Adaptation:
    """On a detection by one of ``detectors``: ``Student.boost(factor, steps, horizon)``, twice
    the learning rates and replay from the latest 1,024 positives for 50 steps (6,400
    interactions at the default batch size). Tuned with ``bench/bench_drift.py``: a factor of 5
    hurt, 1.5 to 3 helped, and the short horizon added to it."""

    factor: float = 2.0
    steps: int = 50
    horizon: int = 1024
    detectors: tuple[str, ...] = ("adwin", "page_hinkley")


class DriftMonitor(EvalObserver):
    def __init__(
        self,
        models: Mapping[str, Recommender],
        catalog: Catalog,
        *,
        config: DriftConfig | None = None,
        adapt: Adaptation | None = None,
    ) -> None:
        self.models, self.catalog, self.adapt = models, catalog, adapt
        self.cfg = c = config or DriftConfig()
        self.hits = {
            name: {
                "adwin": Rising(WindowedADWIN(c.adwin_delta, c.adwin_window)),
                "page_hinkley": Rising(_page_hinkley(c.ph_delta, c.ph_threshold)),
            }
            for name in models
        }
        self.losses = {
            name: LossWatch(
                {
                    "adwin_loss": Rising(ADWIN(delta=c.loss_adwin_delta, clock=4)),
                    "page_hinkley_loss": Rising(
                        _page_hinkley(c.loss_ph_delta, c.loss_ph_threshold)
                    ),
                },
                block=1 if isinstance(model, Student) else c.loss_block,
            )
            for name, model in models.items()
            if isinstance(model, Student | RiverMF)
        }
        features = ["item_popularity"]
        self.psi_models = ["student"] if isinstance(models.get("student"), Student) else []
        if self.psi_models:
            features.append("student_score")
        self.psi = {
            f: PSI(c.psi_window, threshold=c.psi_threshold, grace=c.grace) for f in features
        }
        self.shift = CentroidShift(catalog.dim, c.shift_window, threshold=c.shift_threshold)
        self.counts = np.zeros(0, dtype=np.int64)  # interactions per catalog row (capacity)
        # popularity ranks in O(1): _below[k] = catalog rows (of the first _rows) with fewer
        # than k interactions; every row has fewer than len(_below) - 1
        self._below = np.zeros(2, dtype=np.int64)
        self._rows = 0
        self.items = 0  # catalog rows seen (by :meth:`item`)
        self.log: deque[Detection] = deque(maxlen=LOG_SIZE)
        self.boosts: deque[Detection] = deque(maxlen=LOG_SIZE)  # those that boosted a student
        self.listeners: list[Callable[[Detection], None]] = []
        self.events, self.ts = 0, 0  # where the stream is: interactions so far, event time
        self._steps = {n: m.steps for n, m in models.items() if isinstance(m, Student)}
        self._target, self._value = 0, 1.0  # catalog row and value of the interaction in hand

    def detectors(self) -> list[tuple[str | None, str]]:
        """Every ``(model, detector)`` the monitor runs (data drift: ``(None, feature)``)."""
        pairs: list[tuple[str | None, str]] = [(m, d) for m, ds in self.hits.items() for d in ds]
        pairs += [(m, d) for m, watch in self.losses.items() for d in watch.detectors]
        return pairs + [(None, f) for f in (*self.psi, "item_embedding")]

    # -- hooks (an EvalObserver of the evaluator) --------------------------------------------
    def attach(self, evaluator: Prequential) -> None:
        """Watch ``evaluator``: its new items, its interactions and its ranked events. The
        student's score of a ranked target and River's prediction for it come from the
        evaluator's own ranking: nothing is computed twice, and nothing touches River's state
        (its ``predict_one`` creates the latent vectors of a user it has not seen)."""
        evaluator.observers.append(self)

    def ranked(self, model: str, hit: bool, score: float) -> None:
        """A ranked event of ``model``: was the target in its top K, and its raw score."""
        for name, det in self.hits[model].items():
            if det.update(0.0 if hit else 1.0):
                self._detected(model, name)
        if model not in self.psi_models and not isinstance(self.models[model], RiverMF):
            return
        x = score
        m = self.models[model]
        if isinstance(m, RiverMF):  # its squared error on the target before learning it
            y = self._value if m.threshold is not None else 1.0
            for fired in self.losses[model].update((y - x) ** 2):
                self._detected(model, fired)
        else:
            self._psi("student_score", x)

    def before(self, user_id: str, index: int, value: float, ts: int) -> None:
        """An interaction, before any model has ranked or learned it."""
        self.events, self.ts, self._target, self._value = self.events + 1, ts, index, value
        self._psi("item_popularity", self._popularity_rank(index))

    def _popularity_rank(self, index: int) -> float:
        """Share of catalog rows with fewer interactions than ``index`` has, before counting
        this one (then counts it)."""
        n = len(self.catalog)
        if n > self._rows:  # new rows have no interactions: fewer than any k >= 1
            self.counts = grow(self.counts, n)
            self._below[1:] += n - self._rows
            self._rows = n
        c = int(self.counts[index])
        below = int(self._below[c])
        if c + 2 >= len(self._below):
            self._below = np.concatenate(
                [self._below, np.full(len(self._below) + c, self._rows, dtype=np.int64)]
            )
        self.counts[index] = c + 1
        self._below[c + 1] -= 1
        return below / n

    def _rebuild_ranks(self) -> None:
        self._rows = min(len(self.catalog), len(self.counts))
        hist = np.bincount(self.counts[: self._rows], minlength=2)
        self._below = np.concatenate([[0], np.cumsum(hist), [self._rows]]).astype(np.int64)

    def after(self) -> None:
        """After the models learned an interaction: the loss of each new training step."""
        for name, steps in self._steps.items():
            model = self.models[name]
            assert isinstance(model, Student)
            if model.steps != steps:
                self._steps[name] = model.steps
                for det in self.losses[name].update(model.last_loss):
                    self._detected(name, det)

    def item(self, index: int) -> None:
        """An item event; a new item's teacher embedding moves the centroid."""
        if index < self.items:
            return  # known already: an update
        self.items = index + 1
        vec = self.catalog.embeddings[index]
        if vec.any() and self.shift.update(vec):  # an unannounced item has no embedding
            self._detected(None, "item_embedding")

    # -- detections -----------------------------------------------------------------------
    def _psi(self, feature: str, x: float) -> None:
        if self.psi[feature].update(x):
            self._detected(None, feature)

    def _detected(self, model: str | None, detector: str) -> None:
        d = Detection(model, detector, self.events - 1, self.ts)
        self.log.append(d)
        a = self.adapt
        if a is not None and detector in a.detectors:
            targets = self.models if model is None else {model: self.models[model]}
            students = [m for m in targets.values() if isinstance(m, Student)]
            for m in students:
                m.boost(a.factor, a.steps, a.horizon)
            if students:
                self.boosts.append(d)
        for listener in self.listeners:
            listener(d)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "losses": self.losses,
            "psi": self.psi,
            "shift": self.shift,
            "counts": self.counts.copy(),
            "items": self.items,
            "log": list(self.log),
            "boosts": list(self.boosts),
            "position": (self.events, self.ts),
            "steps": dict(self._steps),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.hits, self.losses, self.psi = state["hits"], state["losses"], state["psi"]
        self.shift, self.counts = state["shift"], state["counts"].copy()
        self.items = int(state["items"])
        self._rebuild_ranks()
        self.log = deque((Detection(*d) for d in state["log"]), LOG_SIZE)
        self.boosts = deque((Detection(*d) for d in state["boosts"]), LOG_SIZE)
        self.events, self.ts = state["position"]
        self._steps = dict(state["steps"])


def _page_hinkley(delta: float, threshold: float) -> PageHinkley:
    # alpha 1: no forgetting, or the test statistic wanders up to the threshold on its own
    return PageHinkley(delta=delta, threshold=threshold, alpha=1.0, mode="up")
