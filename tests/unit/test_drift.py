"""Drift measures (models.drift), the monitor and its adaptation (models.monitor), and
Student.boost, on small hand-made streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from river.drift import ADWIN, PageHinkley

from models.catalog import Catalog
from models.drift import PSI, CentroidShift, LossWatch, Rising, psi
from models.evaluation import Prequential
from models.monitor import Adaptation, DriftConfig, DriftMonitor
from models.registry import build_models
from models.student import RECENT, Student, StudentConfig
from tests.unit.models_support import one_thread  # noqa: F401 (autouse fixture)


def test_psi_is_zero_for_one_sample_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 2000)
    assert psi(ref, ref) == 0.0
    shifts = [psi(ref, rng.normal(mu, 1, 2000)) for mu in (0.0, 0.25, 0.5, 1.0)]
    assert shifts[0] < 0.02 and shifts == sorted(shifts) and shifts[-1] > 0.8
    assert psi([0, 0, 0, 1], [1, 1, 1, 1]) > 1.0  # few distinct values: ties merge bins
    with pytest.raises(ValueError, match="both"):
        psi([], [1.0])


def test_psi_stream_rolls_its_reference_and_alarms_once_per_shift() -> None:
    rng = np.random.default_rng(1)
    p = PSI(window=400, every=50, threshold=0.25, grace=1000)
    assert not p.update_many(rng.normal(5, 1, 999))  # grace: nothing is computed
    assert np.isnan(p.value)
    assert not p.update_many(rng.normal(5, 1, 2000))
    assert p.value < 0.1
    alarms = [p.update(x) for x in rng.normal(7, 1, 800)]
    assert sum(alarms) == 1  # one shift, one alarm, though PSI stays high for a while
    assert p.update_many(rng.normal(7, 1, 400)) is False and p.value < 0.1  # the new normal
    assert p.update_many(rng.normal(5, 1, 800))  # and a shift back alarms again
    with pytest.raises(ValueError):
        PSI(window=5, bins=10)


def test_centroid_shift_is_in_units_of_spread() -> None:
    rng = np.random.default_rng(2)
    s = CentroidShift(dim=16, window=200, every=10, threshold=0.35)
    same = sum(s.update(v) for v in 3.0 * rng.normal(0, 1, (1000, 16)))
    assert same == 0 and s.value < 0.2  # about sqrt(2 / 200) = 0.14
    moved = 3.0 * rng.normal(0, 1, (400, 16))
    moved[:, 0] += 3.0  # one spread along one axis of sixteen: 3 / (3 * 4) = 0.25 of it
    assert sum(s.update(v) for v in moved) == 0
    moved[:, 1] += 6.0
    assert sum(s.update(v) for v in moved) == 1


def test_rising_reports_more_errors_only() -> None:
    adwin = Rising(ADWIN(delta=1e-4))
    assert sum(adwin.update(x) for x in [1.0] * 1000 + [0.0] * 1000) == 0
    assert sum(adwin.update(x) for x in [1.0] * 300) == 1
    ph = Rising(PageHinkley(delta=0.08, threshold=50, alpha=1.0, mode="up"))
    assert sum(ph.update(x) for x in [1.0] * 500 + [0.0] * 2000) == 0
    assert sum(ph.update(x) for x in [1.0] * 200) == 1


def test_loss_watch_does_not_care_about_the_scale() -> None:
    rng = np.random.default_rng(3)
    stream = np.concatenate([rng.normal(5, 0.2, 3000), rng.normal(5.2, 0.2, 1000)])

    def fired(scale: float) -> list[int]:
        det = Rising(PageHinkley(delta=0.5, threshold=10, alpha=1.0, mode="up"))
        w = LossWatch({"ph": det}, block=10)
        return [i for i, x in enumerate(stream * scale) if w.update(x)]

    assert fired(1.0) == fired(1000.0)
    assert len(fired(1.0)) == 1 and fired(1.0)[0] >= 3000


# -- Student.boost ----------------------------------------------------------------------------
def _student(n_items: int = 40) -> tuple[Student, Catalog]:
    cat = Catalog(8)
    rng = np.random.default_rng(4)
    for i in range(n_items):
        cat.add(f"i{i}", rng.normal(0, 1, 8))
    cfg = StudentConfig(dim=8, teacher_rank=4, hidden=16, batch_size=8, negatives=16)
    st = Student(cat, config=cfg)
    for i in range(n_items):
        st.observe_item(i)
    return st, cat


def _learn(st: Student, n: int, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    for t in range(n):
        st.learn_one(f"u{rng.integers(10)}", int(rng.integers(len(st.catalog))), 1.0, t)


def test_boost_raises_both_learning_rates_for_n_steps_then_restores_them() -> None:
    st, _ = _student()
    lr = st.cfg.lr_dense
    st.boost(3.0, steps=2, horizon=16)
    assert st.opt.param_groups[0]["lr"] == pytest.approx(3 * lr) and st.lr_factor() == 3.0
    _learn(st, 8)  # one step
    assert st.boosted[1] == 1 and st.opt.param_groups[0]["lr"] == pytest.approx(3 * lr)
    _learn(st, 8)
    assert st.boosted[1] == 0 and st.lr_factor() == 1.0
    assert st.opt.param_groups[0]["lr"] == pytest.approx(lr)
    assert st.opt.param_groups[1]["lr"] == pytest.approx(lr * st.cfg.lr_new_user)  # u0's rate
    assert np.isfinite(st.last_loss)
    for bad in ({"factor": 0.0, "steps": 1}, {"factor": 2.0, "steps": -1}):
        with pytest.raises(ValueError, match="boost needs"):
            st.boost(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="horizon"):
        st.boost(2.0, 1, horizon=RECENT + 1)


def test_a_boost_replays_the_latest_interactions_only() -> None:
    st, _ = _student()
    _learn(st, 200)
    recent = {(u, i) for u, i, _ in list(st.recent)[-40:-8]}
    st.boost(2.0, steps=1, horizon=32)
    users, items, hist = st.replay_rows(skip=8)
    assert len(users) == 32 and hist.shape == (32, st.cfg.history)
    assert set(zip(users, items.tolist(), strict=True)) <= recent


def test_boost_state_survives_a_round_trip() -> None:
    st, cat = _student()
    _learn(st, 40)
    st.boost(2.0, steps=5, horizon=64)
    other = Student(cat, config=st.cfg)
    other.load_state_dict(st.state_dict())
    assert other.boosted == st.boosted and list(other.recent) == list(st.recent)
    assert other.last_loss == st.last_loss
    assert other.opt.param_groups[0]["lr"] == pytest.approx(st.opt.param_groups[0]["lr"])
    _learn(st, 16, seed=9)
    _learn(other, 16, seed=9)
    for a, b in zip(st.towers.parameters(), other.towers.parameters(), strict=True):
        assert torch.equal(a, b)


# -- DriftMonitor ----------------------------------------------------------------------------
def _monitored(adapt: Adaptation | None = None) -> tuple[DriftMonitor, Prequential]:
    cat = Catalog(8)
    models = build_models(["student", "river"], cat, threshold=None, seed=0)
    ev = Prequential(models, cat, k=5)
    mon = DriftMonitor(models, cat, adapt=adapt)
    mon.attach(ev)
    rng = np.random.default_rng(6)
    for i in range(30):
        ev.item(cat.add(f"i{i}", rng.normal(0, 1, 8), 0))
    return mon, ev


def test_the_monitor_watches_the_evaluator_and_boosts_on_a_miss_streak() -> None:
    mon, ev = _monitored(Adaptation(factor=4.0, steps=3, horizon=64))
    assert mon.items == 30 and mon.shift.n == 30  # new items reached the centroid shift
    for t in range(300):
        ev.interaction(f"u{t % 7}", t % 30, 1.0, 1000 + t)
    assert mon.events == 300 and int(mon.counts[:30].sum()) == 300
    ranked = int(ev.totals()[1][0])  # the student's score of each ranked target
    assert mon.psi["item_popularity"].n == 300 and 0 < mon.psi["student_score"].n == ranked
    student = ev.models["student"]
    assert isinstance(student, Student)
    assert student.boosted[1] == 0  # nothing happened yet
    mon.ranked("student", True, 0.5)  # warm the detectors on hits, then a streak of misses
    for _ in range(2000):
        mon.ranked("student", True, 0.5)
    for _ in range(300):
        mon.ranked("student", False, 0.5)
    detections = [d for d in mon.log if d.model == "student"]
    assert {d.detector for d in detections} == {"adwin", "page_hinkley"}
    assert all(d.events == 299 and d.ts == 1299 for d in detections)  # the latest event
    assert student.boosted[0] == 4.0 and student.boosted[1] == 3


def test_the_monitor_state_round_trips() -> None:
    mon, ev = _monitored()
    for t in range(200):
        ev.interaction(f"u{t % 5}", t % 30, 1.0, t)
    for _ in range(1000):
        mon.ranked("river", True, 0.5)
    for _ in range(300):
        mon.ranked("river", False, 0.5)
    state = mon.state_dict()
    fresh = DriftMonitor(ev.models, ev.catalog, config=DriftConfig())
    fresh.load_state_dict(state)
    assert fresh.log == mon.log and fresh.log and fresh.events == 200
    assert (fresh.counts == mon.counts).all() and fresh.items == mon.items
    assert fresh.psi["item_popularity"].n == mon.psi["item_popularity"].n
