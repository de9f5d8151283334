"""The student: served rows, the hand-over from content to id, distillation, the sequence-aware
query, fallbacks, bounded state, transfer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from core.records import Interaction, Item
from models import student_queries
from models.catalog import Catalog
from models.cooc import BUCKETS, bucket, combine
from models.exceptions import CheckpointError
from models.student import MAX_WIDTH, Student, StudentConfig
from models.transfer import load_pretrained, pretrain, save_checkpoint
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


def test_served_rows_are_narrow_and_score_like_the_student() -> None:
    s = _student()
    feed(s, STREAM.events[:200])
    s.flush()
    rows, bias = s.serving_rows()
    assert rows.shape == (len(s.catalog), TINY.dim + TINY.teacher_rank + 1) == (40, TINY.width)
    cold = s.cooc.n[: len(s.catalog)] == 0
    for user in ("u1", "nobody"):
        dense = rows @ s.query(user) + bias
        idx, boost = s.cooc_boost(user)
        served = combine(dense, idx, boost, cold, TINY.cooc_impute)
        np.testing.assert_allclose(served, s.score_all(user), rtol=1e-5)
    # u1 has a window, so the co-occurrence term moves their scores; nobody has none
    assert len(s.cooc_boost("u1")[0]) and not len(s.cooc_boost("nobody")[0])
    assert not np.allclose(rows @ s.query("u1") + bias, s.score_all("u1"))
    assert StudentConfig().width <= MAX_WIDTH
    with pytest.raises(ValueError, match="at most 128 floats"):
        StudentConfig(dim=100, teacher_rank=64)


def test_a_cold_item_is_served_from_content_alone() -> None:
    s = _student()
    feed(s, STREAM.events[:200])
    s.flush()
    cold = int(np.flatnonzero(s.n[: len(s.catalog)] == 0)[0])
    before = s.score_all("u1")[cold]
    s.emb[cold] += 100.0  # the id side of a cold item must not matter
    s.bias[cold] += 100.0
    s._serve(np.array([cold]))
    assert s.score_all("u1")[cold] == pytest.approx(before)


@pytest.mark.parametrize(("distill", "mix"), [(True, 1.0), (True, 0.5), (False, 0.5)])
def test_the_id_side_starts_from_the_distilled_or_cold_head(distill: bool, mix: float) -> None:
    s = _student(replace(TINY, distill=distill, distill_mix=mix))
    feed(s, STREAM.events[:100])
    s.flush()
    item = int(np.flatnonzero(s.n[: len(s.catalog)] == 0)[0])
    cold, distilled = s.cv[item].copy(), s.dv[item].copy()
    served = s._v[item].copy()  # as a brand-new item
    s.learn_one("someone", item, 1.0, 10_000)
    start = s.emb[item]
    np.testing.assert_allclose(start, served, rtol=1e-5, atol=1e-7)  # no jump at the hand-over
    if distill:  # mix of the way to the distilled direction, the cold head's length
        unit = [x / np.linalg.norm(x) for x in (distilled, cold)]
        direction = mix * unit[0] + (1 - mix) * unit[1]
        direction /= np.linalg.norm(direction)
        np.testing.assert_allclose(start, direction * np.linalg.norm(cold), rtol=1e-5)
        assert not np.allclose(start, cold)  # distillation moved it
    else:
        np.testing.assert_array_equal(start, cold)
    assert s.bias[item] == s.cb[item]  # a bias is earned, never distilled
    # the hand-over: the served vector moves from content to id as interactions accumulate
    assert s._alpha(np.array([0.0, 1.0, 9.0])).tolist() == pytest.approx([0.0, 0.5, 0.9])


def test_distillation_turns_what_is_served_and_never_what_the_cold_head_learns() -> None:
    """Two students that differ only in their distilled heads serve brand-new items
    differently, and their cold heads learn the same step (through the turn, the cold head
    learned to cancel it)."""
    a, b = _student(), _student()
    with torch.no_grad():
        b.towers.dist_out.weight.normal_(generator=torch.Generator().manual_seed(7))
        for s in (a, b):  # a query that reads the candidates' vectors
            s.towers.u0.copy_(torch.linspace(-1.0, 1.0, TINY.dim))
    for s in (a, b):
        s.sync_weights()
    cold = {k: v.clone() for k, v in a.towers.state_dict().items() if k.startswith("item_out")}
    assert not np.allclose(a.new_rows(np.arange(5)), b.new_rows(np.arange(5)))
    # one step of first events (no history: the queries do not read the served rows)
    events = [(f"new{k}", k % len(a.catalog)) for k in range(TINY.batch_size)]
    for s in (a, b):
        feed(s, events)
    assert a.steps == b.steps == 1
    for key, before in cold.items():
        assert not torch.equal(a.towers.state_dict()[key], before)  # the step moved it
        torch.testing.assert_close(a.towers.state_dict()[key], b.towers.state_dict()[key])


def test_brand_new_items_get_the_cold_head_and_the_others_the_residual_head() -> None:
    s = _student(replace(TINY, distill=False))  # with distillation: turned, tested above
    feed(s, STREAM.events[:100])  # after 100 events some items are still brand new
    s.flush()
    n = len(s.catalog)
    new, seen = s.n[:n] == 0, s.n[:n] > 0
    assert new.any() and seen.any()
    a = s._alpha(s.n[:n])[:, None]
    np.testing.assert_allclose(s._v[:n][new], s.cv[:n][new], rtol=1e-6)
    d = _student()  # with distillation: the cold head's length, turned
    feed(d, STREAM.events[:100])
    d.flush()
    fresh = np.flatnonzero(d.n[:n] == 0)
    lengths = np.linalg.norm(d._v[fresh], axis=1)
    np.testing.assert_allclose(lengths, np.linalg.norm(d.cv[fresh], axis=1), rtol=1e-5)
    assert not np.allclose(d._v[fresh], d.cv[fresh], atol=1e-4)
    blended = a * s.emb[:n] + (1 - a) * s.cr[:n]
    np.testing.assert_allclose(s._v[:n][seen], blended[seen], rtol=1e-5, atol=1e-6)
    # the two heads started equal and learned apart, each from its own items
    assert not np.allclose(s.cr[:n], s.cv[:n], atol=1e-3)


def test_a_checkpoint_from_before_the_residual_head_still_loads() -> None:
    s = _student()
    feed(s, STREAM.events[:300])
    s.flush()
    state = s.state_dict()
    state["towers"] = {k: v for k, v in state["towers"].items() if not k.startswith("item_res")}
    state["arrays"] = {k: v for k, v in state["arrays"].items() if k not in ("cr", "cbr")}
    state["opt"] = {"state": {}, "param_groups": []}  # Adam's state had fewer parameters
    t = _student()
    t.load_state_dict(state)
    w = t.towers
    np.testing.assert_array_equal(w.item_res.weight.detach(), w.item_out.weight.detach())
    n = len(t.catalog)
    np.testing.assert_allclose(t.cr[:n], t.cv[:n], rtol=1e-6)  # recomputed, not zeros
    feed(t, STREAM.events[300:400], t0=10_000)  # and it learns on
    t.flush()
    assert np.isfinite(t.score_all("u1")).all()


def test_boost_weights_are_learned_per_count_bucket_and_can_be_fixed() -> None:
    s = _student()
    for epoch in range(2):
        feed(s, STREAM.events, t0=epoch * 10_000)
    s.flush()
    w = s.boost_weights()
    assert w is not None and w.shape == (BUCKETS,) and not np.allclose(w, 1.0)
    # what is served: the raw boosts times the weight of each boosted item's count bucket
    idx, raw = student_queries.cooc_boost(s, "u1", weighted=False)
    served_idx, served = s.cooc_boost("u1")
    assert len(idx) and np.array_equal(idx, served_idx)
    np.testing.assert_allclose(served, raw * w[bucket(s.cooc.n[idx])], rtol=1e-6)
    fixed = _student(replace(TINY, cooc_learn_every=0))
    feed(fixed, STREAM.events)
    fixed.flush()
    assert fixed.boost_weights() is None and "cooc_log" not in fixed.towers.state_dict()


def test_a_checkpoint_from_before_the_boost_weights_still_loads() -> None:
    s = _student()
    feed(s, STREAM.events[:300])
    s.flush()
    state = s.state_dict()
    state["towers"] = {k: v for k, v in state["towers"].items() if k != "cooc_log"}
    state["opt"] = {"state": {}, "param_groups": []}  # Adam's state had fewer parameters
    del state["pending_boosts"]
    t = _student()
    t.load_state_dict(state)
    w = t.boost_weights()
    assert w is not None and np.array_equal(w, np.ones(BUCKETS, np.float32))
    feed(t, STREAM.events[300:600], t0=10_000)  # and it learns on, the weights included
    t.flush()
    assert np.isfinite(t.score_all("u1")).all() and not np.allclose(t.boost_weights(), 1.0)


def test_distillation_teaches_the_distilled_head_warm_vectors() -> None:
    cosine = {}
    for distill in (True, False):
        s = _student(replace(TINY, distill=distill, distill_min_count=3))
        for epoch in range(2):
            feed(s, STREAM.events, t0=epoch * 1000)
        s.flush()
        n = len(s.catalog)
        warm = s.n[:n] >= 3
        a, b = s.dv[:n][warm], s._v[:n][warm]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        cosine[distill] = float(cos.mean())
    # from text alone, the distilled head points where warm items' learned vectors point
    assert cosine[True] > 0.2 > abs(cosine[False])


def test_the_query_attends_to_recent_items_in_order() -> None:
    orders = {}
    for sequence in (True, False):
        s = _student(replace(TINY, sequence=sequence))
        feed(s, STREAM.events[:300])
        s.flush()
        for name, hist in (("ab", [3, 7]), ("ba", [7, 3])):
            s.learn_one(name, hist[0], 1.0, 5000)
            s.learn_one(name, hist[1], 1.0, 5001)
        orders[sequence] = (s.query("ab"), s.query("ba"))
    assert not np.allclose(*orders[True])  # the order of the same two items matters
    np.testing.assert_allclose(*orders[False], rtol=1e-6)  # the ablation: an order-free mean


def test_new_user_fallbacks_profile_and_history() -> None:
    s = _student()
    feed(s, STREAM.events[:200])
    s.flush()
    blank = s.score_all("stranger")
    s.observe_user("with_profile", STREAM.emb[0])
    assert not np.allclose(s.score_all("with_profile"), blank)
    s.learn_one("with_history", 3, 1.0, 999)  # one event: history, no id row yet
    assert s.users.get("with_history") == -1
    assert not np.allclose(s.score_all("with_history"), blank)


def test_every_interaction_is_learned_whatever_its_rating() -> None:
    s = _student(threshold=4.0)
    s.learn_one("u", 0, 2.0, 0)
    s.learn_one("u", 1, 4.5, 1)
    assert s.learned == 2 and s.state["u"].hist == [0, 1]


def test_the_teacher_basis_is_refitted_as_the_catalog_doubles_then_fixed() -> None:
    cfg = replace(TINY, basis_until=32)
    s = _student(cfg, n_items=0)
    sizes = []
    for i in range(40):
        s.observe_item(s.catalog.add(f"i{i}", STREAM.emb[i]))
        sizes.append(s.basis_n)
    assert sorted(set(sizes)) == [0, 16, 32]
    assert s.tp.shape[1] == TINY.teacher_rank
    np.testing.assert_allclose(s.tp[:40], STREAM.emb[:40] @ s._w["proj"].T, rtol=1e-5, atol=1e-6)


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
    assert fresh.n[idx] > 0  # matched by id, warm from the start
    assert fresh.basis_n == 32  # the teacher basis came with the towers
    cold = _student(n_items=6)
    u = next(u for u, _ in STREAM.events)
    assert not np.allclose(fresh.query(u), cold.query(u))  # the user's id row came along

    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_pretrained(fresh, tmp_path / "missing.ckpt")
    other = Student(Catalog(7), config=TINY)
    save_checkpoint(other, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="teacher dim 7"):
        load_pretrained(_student(n_items=0), tmp_path / "other.ckpt")


def test_new_user_parameters_learn_at_their_own_rate_through_a_round_trip() -> None:
    s = _student()
    dense, fast = s.opt.param_groups
    new = [s.towers.u0, s.towers.fresh_new.weight]
    assert len(fast["params"]) == 2 and all(
        p is q for p, q in zip(fast["params"], new, strict=True)
    )
    assert all(p is not q for p in dense["params"] for q in new)
    assert fast["lr"] == pytest.approx(s.cfg.lr_new_user * dense["lr"])
    feed(s, STREAM.events[:100])
    s.flush()
    for p in new:  # first events trained them
        assert float(p.detach().abs().sum()) > 0
    t = _student()
    t.load_state_dict(s.state_dict())
    assert [(g["lr"], g["rate"]) for g in t.opt.param_groups] == [
        (g["lr"], g["rate"]) for g in s.opt.param_groups
    ]
    torch.testing.assert_close(
        t.opt.state[t.towers.u0]["exp_avg"], s.opt.state[s.towers.u0]["exp_avg"]
    )
    feed(s, STREAM.events[100:300])
    feed(t, STREAM.events[100:300])
    np.testing.assert_allclose(t.score_all("u1"), s.score_all("u1"), rtol=1e-5, atol=1e-6)


def test_new_users_get_the_new_user_column_and_old_checkpoints_start_it_at_zero() -> None:
    s = _student()
    feed(s, STREAM.events[:300])
    s.flush()
    rows, _ = s.serving_rows()  # they score like the student: the test above
    known = next(u for u, st in s.state.items() if st.hist)
    assert s.query(known)[-1] == 0.0 and s.query("never-seen")[-1] == 1.0
    assert np.abs(rows[:, -1]).sum() > 0  # the term learned something
    state = s.state_dict()  # as saved before the new-user freshness weights
    del state["towers"]["fresh_new.weight"], state["arrays"]["_fn"]
    t = _student()
    t.load_state_dict(state)
    assert float(t.towers.fresh_new.weight.detach().abs().sum()) == 0
    rows_t, _ = t.serving_rows()
    assert rows_t.shape == rows.shape and not rows_t[:, -1].any()
    for k in range(8):  # new users' first events train it from there
        t.learn_one(f"newcomer{k}", k, 1.0, t.now + 1)
    t.flush()
    assert t.serving_rows()[0][:, -1].any()


def test_a_checkpoint_without_the_turned_rows_derives_them() -> None:
    s = _student()
    feed(s, STREAM.events[:100])
    s.flush()
    state = s.state_dict()
    del state["arrays"]["_cn"]  # saved before brand-new items were served turned
    t = _student()
    t.load_state_dict(state)
    n = len(s.catalog)
    assert np.abs(s.new_rows(slice(0, n))).sum() > 0
    np.testing.assert_array_equal(t.new_rows(slice(0, n)), s.new_rows(slice(0, n)))
