"""The student: blend rule, fallbacks, distillation, feedback, bounded state, transfer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.catalog import Catalog
from models.exceptions import CheckpointError
from models.student import StudentConfig, blend_weight
from models.trainer import Student
from models.transfer import load_pretrained, pretrain, save_checkpoint
from streams.records import Interaction, Item
from tests.unit.models_support import (
    TINY,
    feed,
    one_thread,  # noqa: F401 (autouse fixture)
    tiny_stream,
)

STREAM = tiny_stream(events=600)


def _student(cfg: StudentConfig = TINY, n_items: int | None = None, **kw: object) -> Student:
    cat = Catalog(STREAM.emb.shape[1])
    s = Student(cat, config=cfg, **kw)  # type: ignore[arg-type]
    for i, vec in enumerate(STREAM.emb[:n_items]):
        s.observe_item(cat.add(f"i{i}", vec))
    return s


def test_blend_moves_from_content_to_id() -> None:
    a = blend_weight(np.array([0.0, 0.0, 5.0, 45.0]), np.array([False, True, True, True]), 5.0)
    np.testing.assert_allclose(a, [0.0, 0.0, 0.5, 0.9])


def test_a_cold_item_is_served_from_content_alone() -> None:
    s = _student()
    feed(s, STREAM.events[:200])
    s.flush()
    cold = int(np.flatnonzero(s.item_n[: len(s.catalog)] == 0)[0])
    before = s.score_all("u1")[cold]
    s.item_emb[cold] += 100.0  # the id side of a cold item must not matter
    s.item_bias[cold] += 100.0
    s._serve(np.array([cold]))
    assert s.score_all("u1")[cold] == pytest.approx(before)


def test_new_user_fallbacks_profile_and_history() -> None:
    s = _student()
    feed(s, STREAM.events[:200])
    s.flush()
    blank = s.score_all("stranger")
    s.observe_user("with_profile", STREAM.emb[0])
    assert not np.allclose(s.score_all("with_profile"), blank)
    s.learn_one("with_history", 3, 1.0, 999)  # one event: history fallback, no id row yet
    assert s.users.get("with_history") == -1
    assert not np.allclose(s.score_all("with_history"), blank)


def test_distillation_aligns_content_with_warm_ids() -> None:
    gaps = {}
    for distill in (True, False):
        s = _student(replace(TINY, distill=distill, distill_min_count=3))
        for epoch in range(2):
            feed(s, STREAM.events, t0=epoch * 1000)
        s.flush()
        n = len(s.catalog)
        warm = s.item_n[:n] >= 3
        gaps[distill] = float(
            np.linalg.norm(s.c_vec[:n][warm] - s.item_emb[:n][warm], axis=1).mean()
        )
    assert gaps[True] < 0.7 * gaps[False]


def test_explicit_feedback_learns_positives_only() -> None:
    s = _student(threshold=4.0)
    s.learn_one("u", 0, 2.0, 0)
    s.learn_one("u", 1, 4.5, 1)
    assert s.learned == 1 and s.state["u"].hist == [1]


def test_user_state_is_bounded() -> None:
    s = _student(replace(TINY, max_users=50, user_min_count=1))
    for j in range(3000):
        s.learn_one(f"user{j}", j % 40, 1.0, j)
    assert len(s.state) <= 50 and len(s.users) <= 50


def test_idle_users_expire() -> None:
    s = _student(replace(TINY, user_ttl_ms=100, user_min_count=1))
    for j in range(4000):
        s.learn_one(f"user{j}", j % 40, 1.0, j)
    # expiry runs every 100 steps (1,600 events here): far fewer than 4,000 remain
    assert len(s.state) < 2000 and len(s.users) < 2000
    assert "user3999" in s.state and "user0" not in s.state


def test_transfer_from_a_pretrained_checkpoint(tmp_path: Path) -> None:
    items = [Item(f"i{i}", f"item {i}", 0) for i in range(len(STREAM.emb))]
    inter = [Interaction(u, f"i{i}", j + 1) for j, (u, i) in enumerate(STREAM.events)]
    emb = {("item", f"i{i}"): v for i, v in enumerate(STREAM.emb)}
    ckpt = pretrain(
        items + inter, tmp_path / "s.ckpt", emb, teacher_dim=STREAM.emb.shape[1], config=TINY
    )
    fresh = _student(n_items=0)
    load_pretrained(fresh, ckpt)
    idx = fresh.catalog.add("i5", STREAM.emb[5])
    fresh.observe_item(idx)
    assert fresh.has_id[idx] and fresh.item_n[idx] > 0  # matched by id, warm from the start
    cold = _student(n_items=6)
    # the pretrained towers rank a returning user's topic better than untrained ones
    u = next(u for u, _ in STREAM.events)
    assert not np.allclose(fresh.user_vector(u), cold.user_vector(u))

    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_pretrained(fresh, tmp_path / "missing.ckpt")
    other = Student(Catalog(7), config=TINY)
    save_checkpoint(other, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="teacher dim 7"):
        load_pretrained(_student(n_items=0), tmp_path / "other.ckpt")
