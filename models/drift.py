"""Drift measures: rises in a model's error stream, and shifts in what flows in.

Concept drift shows as more errors: :class:`Rising` runs one of River's detectors
(``river.drift.ADWIN``, ``river.drift.PageHinkley``) on an error stream (1 for a miss, or a
loss) and reports only changes *up*. A model that learns makes fewer errors over time, and
that is no reason to act. :class:`WindowedADWIN` bounds ADWIN's memory so that a slow creep
is not taken for a change; :class:`LossWatch` puts a loss of any scale into units its
detectors' thresholds can share.

Data drift shows in the inputs, whatever the models make of them:

- :func:`psi`, the population stability index of two samples of a scalar feature over the
  reference's quantile bins, ``sum_b (c_b - r_b) * ln(c_b / r_b)``; by the usual rule of
  thumb, below 0.1 is stable, 0.1 to 0.25 a moderate shift, above 0.25 a large one.
- :class:`PSI` keeps it on a stream: the newest ``window`` values against the ``window``
  values just before them, so the reference rolls forward with the stream and a slow trend
  never piles up into an alarm.
- :class:`CentroidShift`: how far the mean embedding of newly arriving items moved, newest
  ``window`` items against the ``window`` before them, in units of the reference's spread.

>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(0, 1, 1000), rng.normal(0, 1, 1000)
>>> round(psi(a, b), 2), round(psi(a, b + 1.0), 1)
(0.02, 1.0)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from river.drift import ADWIN

__all__ = ["PSI", "CentroidShift", "LossWatch", "Rising", "WindowedADWIN", "psi"]


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    Bins are the reference's ``bins``-quantiles (equal values merge bins, so a feature with
    few distinct values works too); every bin gets half a count more in both samples, so an
    empty bin costs a finite amount.

    >>> psi([1, 2, 3, 4] * 25, [1, 2, 3, 4] * 25)
    0.0
    >>> round(psi([1, 2, 3, 4] * 25, [4] * 100), 2)
    3.86
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("psi needs values in both the reference and the current sample")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    n = len(edges) + 1
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=n) + 0.5
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=n) + 0.5
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


class _Alarm:
    """Rising-edge alarm on a measure: fires when it first goes above ``threshold`` and
    re-arms once it is back below half of it, so one shift raises one alarm."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.armed = True
        self.value = float("nan")
        self.drift_detected = False

    def _check(self, value: float) -> bool:
        self.value = value
        self.drift_detected = self.armed and value > self.threshold
        if self.drift_detected:
            self.armed = False
        elif value < self.threshold / 2:
            self.armed = True
        return self.drift_detected


class PSI(_Alarm):
    """:func:`psi` on a stream: the newest ``window`` values against the ``window`` before.

    It is computed every ``every`` values once two windows are full and the first ``grace``
    values have gone by (a model learning from scratch moves its scores fast at first, which is
    no drift). :meth:`update` is True when it rises above ``threshold``; ``value`` is the latest.

    >>> rng = np.random.default_rng(1)
    >>> p = PSI(window=500, every=100, threshold=0.25)
    >>> sum(p.update(x) for x in rng.normal(0, 1, 3000)), p.value < 0.1
    (0, True)
    >>> sum(p.update(x) for x in rng.normal(1, 1, 3000)), p.value < 0.1
    (1, True)
    """

    def __init__(
        self,
        window: int = 1000,
        *,
        bins: int = 10,
        every: int = 100,
        threshold: float = 0.25,
        grace: int = 0,
    ) -> None:
        if window < bins or every < 1 or bins < 2:
            raise ValueError(
                f"PSI needs bins >= 2, window >= bins and every >= 1; got window={window}, "
                f"bins={bins}, every={every}"
            )
        super().__init__(threshold)
        self.window, self.bins, self.every, self.grace = window, bins, every, grace
        self._buf = np.zeros(2 * window, dtype=np.float64)  # a ring: the two windows
        self.n = 0

    def update(self, x: float) -> bool:
        self._buf[self.n % len(self._buf)] = x
        self.n += 1
        if self.n < max(2 * self.window, self.grace) or self.n % self.every:
            self.drift_detected = False
            return False
        ring = np.roll(self._buf, -(self.n % len(self._buf)))  # oldest first
        return self._check(psi(ring[: self.window], ring[self.window :], self.bins))

    def update_many(self, xs: Iterable[float]) -> bool:
        """Update with each value; True if any of them raised the alarm."""
        return any([self.update(x) for x in xs])


class CentroidShift(_Alarm):
    """Distance between the centroids of the newest ``window`` embeddings and the ``window``
    before them, over the reference's spread (root mean squared distance of its rows to their
    centroid). Two samples of one distribution give about ``sqrt(2 / window)``.

    >>> rng = np.random.default_rng(2)
    >>> s = CentroidShift(dim=8, window=100, threshold=0.5)
    >>> sum(s.update(v) for v in rng.normal(0, 1, (400, 8))), bool(s.value < 0.3)
    (0, True)
    >>> sum(s.update(v) for v in rng.normal(1, 1, (400, 8)))
    1
    """

    def __init__(self, dim: int, window: int = 200, *, every: int = 20, threshold: float = 0.5):
        if window < 2 or every < 1:
            raise ValueError(f"CentroidShift needs window >= 2, every >= 1; got {window}, {every}")
        super().__init__(threshold)
        self.window, self.every = window, every
        self._buf = np.zeros((2 * window, dim), dtype=np.float32)
        self.n = 0

    def update(self, vector: npt.ArrayLike) -> bool:
        self._buf[self.n % len(self._buf)] = np.asarray(vector, dtype=np.float32)
        self.n += 1
        if self.n < 2 * self.window or self.n % self.every:
            self.drift_detected = False
            return False
        ring = np.roll(self._buf, -(self.n % len(self._buf)), axis=0).astype(np.float64)
        ref, cur = ring[: self.window], ring[self.window :]
        centre = ref.mean(0)
        spread = float(np.sqrt(((ref - centre) ** 2).sum(1).mean()))
        shift = float(np.linalg.norm(cur.mean(0) - centre)) / max(spread, 1e-12)
        return self._check(shift)


class Rising:
    """A River drift detector on an error stream that reports rises only.

    ``PageHinkley`` should be built with ``mode="up"``; ``ADWIN`` finds changes either way, so
    a detection counts only if its estimate of the mean went up (it drops the older part of
    its window when it detects, so the estimate jumps to the newer level). ``scale`` divides
    every value first: detector thresholds are in units of the stream's typical size.

    >>> from river.drift import ADWIN
    >>> r = Rising(ADWIN(delta=1e-4))
    >>> sum(r.update(x) for x in [1.0] * 500 + [0.0] * 500)   # errors stop: no alarm
    0
    >>> sum(r.update(x) for x in [1.0] * 500)                   # errors come back
    1
    """

    def __init__(self, detector: Any, scale: float = 1.0) -> None:
        self.detector, self.scale = detector, scale
        self.drift_detected = False

    def update(self, x: float) -> bool:
        det = self.detector
        before = getattr(det, "estimation", None)
        det.update(x / self.scale)
        self.drift_detected = bool(det.drift_detected) and (
            before is None or det.estimation > before
        )
        return self.drift_detected


class WindowedADWIN:
    """``river.drift.ADWIN`` over at most the latest ``max_window`` values.

    Plain ADWIN keeps every value since its last cut, so after a long calm stretch it finds
    even a slow trend significant (a model whose misses creep up as the catalog grows). Here,
    once the window reaches ``max_window``, a fresh ADWIN takes over, primed with the latest
    ``max_window // 2`` values, so an abrupt change still meets at least that much history.

    >>> rng = np.random.default_rng(5)
    >>> creep = (rng.random(20_000) < np.linspace(0.45, 0.6, 20_000)).astype(float)
    >>> plain, windowed = Rising(ADWIN(delta=1e-4)), Rising(WindowedADWIN(delta=1e-4))
    >>> sum(plain.update(x) for x in creep), sum(windowed.update(x) for x in creep)
    (1, 0)
    >>> sum(windowed.update(x) for x in (rng.random(2000) < 0.75).astype(float))
    1
    """

    def __init__(self, delta: float = 1e-5, max_window: int = 4000) -> None:
        if max_window < 64:
            raise ValueError(f"WindowedADWIN needs max_window >= 64, got {max_window}")
        self.delta, self.max_window = delta, max_window
        self._adwin = ADWIN(delta=delta)
        self._recent: deque[float] = deque(maxlen=max_window // 2)
        self.drift_detected = False

    @property
    def estimation(self) -> float:
        return float(self._adwin.estimation)

    @property
    def width(self) -> int:
        return int(self._adwin.width)

    def update(self, x: float) -> None:
        self._adwin.update(x)
        self._recent.append(x)
        self.drift_detected = bool(self._adwin.drift_detected)
        if self._adwin.width >= self.max_window:
            self._adwin = ADWIN(delta=self.delta)
            for y in self._recent:
                self._adwin.update(y)


class LossWatch:
    """:class:`Rising` detectors on a loss stream of any scale.

    Values are averaged over blocks of ``block`` (1 when each is an average already, such as a
    training step's loss); the first ``calibrate`` block means only fix the unit, the root mean
    square of successive differences over sqrt(2) (a trend does not inflate it, a noisy loss
    gets a big unit); every later block mean goes to the detectors in that unit.
    :meth:`update` returns the names of the detectors that fired.

    >>> from river.drift import PageHinkley
    >>> rng = np.random.default_rng(3)
    >>> w = LossWatch({"ph": Rising(PageHinkley(delta=0.5, threshold=10, alpha=1.0, mode="up"))})
    >>> [w.update(x) for x in 100 + 5 * rng.standard_normal(300)].count(["ph"])
    0
    >>> [w.update(x) for x in 110 + 5 * rng.standard_normal(50)].count(["ph"])
    1
    """

    def __init__(self, detectors: dict[str, Rising], block: int = 1, calibrate: int = 30):
        if block < 1 or calibrate < 2:
            raise ValueError(
                f"LossWatch needs block >= 1, calibrate >= 2; got {block}, {calibrate}"
            )
        self.detectors, self.block, self.calibrate = detectors, block, calibrate
        self._sum, self._n = 0.0, 0
        self._first: list[float] = []

    def update(self, x: float) -> list[str]:
        self._sum += x
        self._n += 1
        if self._n < self.block:
            return []
        mean, self._sum, self._n = self._sum / self.block, 0.0, 0
        if len(self._first) < self.calibrate:
            self._first.append(mean)
            if len(self._first) == self.calibrate:
                unit = float(np.sqrt(np.mean(np.diff(self._first) ** 2) / 2)) or 1.0
                for det in self.detectors.values():
                    det.scale = unit
            return []
        return [name for name, det in self.detectors.items() if det.update(mean)]
