"""The user side of the student's serving product: queries (one user, or a batch), the
co-occurrence term's boosts, and the served item rows (:mod:`models.student` has the
formulas). Functions of a :class:`~models.student.Student`, which calls them from its
methods of the same names."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from models.cooc import top_boost, weigh, window_scores

if TYPE_CHECKING:
    from models.student import Student

__all__ = ["attention", "cooc_boost", "queries", "query", "serving_rows"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def cooc_boost(s: Student, user_id: str, *, weighted: bool = True) -> tuple[I64, F32]:
    """The co-occurrence term's boosted items and boosts for a user (their latest
    ``cooc_window`` items as the window): what a snapshot's scorer computes from its copy
    of the memory."""
    st = s.state.get(user_id)
    window = st.hist[-s.cfg.cooc_window :] if st is not None else []
    idx, sc = window_scores(window, s.cooc.neighbours, s.cooc.n, s.cfg.cooc_alpha)
    idx, boost = top_boost(idx, sc, weight=s.cfg.cooc_weight, top=s.cfg.cooc_top)
    weights = s.boost_weights() if weighted else None
    return idx, boost if weights is None else weigh(idx, boost, s.cooc.n, weights)


def query(s: Student, user_id: str) -> F32:
    """The user's side of the serving product (:attr:`StudentConfig.width` floats): one
    user's :meth:`queries`, without the batch machinery (the evaluator asks per event)."""
    cfg, w = s.cfg, s._w
    st = s.state.get(user_id)
    hist = st.hist[::-1] if st is not None else []
    x = np.zeros(cfg.teacher_rank, dtype=np.float64)
    if hist and len(s._v):
        logits = w["pos"][: len(hist)] if cfg.sequence else np.zeros(len(hist))
        att = np.exp(logits - logits.max())
        att /= att.sum()
        q = att @ s._v[hist]
        if cfg.content:
            x = w["sim"][0] * (att @ s.tp[hist])
    else:
        q = w["u0"].astype(np.float64)
    row = s.users.get(user_id)
    if row >= 0:
        q = q + s.users.weight[row].numpy()
    new_user = [0.0 if hist and len(s._v) else 1.0]  # weighs the rows' new-user column
    if not cfg.content:
        return np.concatenate([q, new_user]).astype(np.float32)
    if st is not None and st.profile is not None:
        q = q + w["profile.weight"] @ st.profile + w["profile.bias"]
        x = x + w["sim"][1] * (w["proj"] @ st.profile)
    return np.concatenate([q, x, new_user]).astype(np.float32)


def queries(s: Student, user_ids: list[str | None]) -> F32:
    """:meth:`query` for many users at once (``None``: a user the student never saw)."""
    cfg, w = s.cfg, s._w
    states = [None if u is None else s.state.get(u) for u in user_ids]
    hist = np.full((len(states), cfg.history), -1, dtype=np.int64)
    for r, st in enumerate(states):
        if st is not None and st.hist:
            hist[r, : len(st.hist)] = st.hist[::-1]
    att = attention(s, hist >= 0)
    safe = np.maximum(hist, 0)
    if not len(s._v):  # no catalog yet: nobody has a history
        safe = np.zeros((len(states), 0), dtype=np.int64)
        att = att[:, :0]
    q = np.einsum("rh,rhd->rd", att, s._v[safe])
    no_hist = att.sum(1) == 0
    q[no_hist] += w["u0"]
    new_user = no_hist[:, None].astype(np.float64)  # weighs the rows' new-user column
    rows = np.array([-1 if u is None else s.users.get(u) for u in user_ids], np.int64)
    known = rows >= 0
    if known.any():
        q[known] += s.users.weight[torch.from_numpy(rows[known])].numpy()
    if not cfg.content:
        return np.concatenate([q, new_user], axis=1).astype(np.float32)
    x = w["sim"][0] * np.einsum("rh,rhk->rk", att, s.tp[safe])
    for r, st in enumerate(states):
        if st is not None and st.profile is not None:
            q[r] += w["profile.weight"] @ st.profile + w["profile.bias"]
            x[r] += w["sim"][1] * (w["proj"] @ st.profile)
    return np.concatenate([q, x, new_user], axis=1).astype(np.float32)


def serving_rows(s: Student) -> tuple[F32, F32]:
    """The served item matrix and bias, one row per catalog item: :meth:`score_all` is
    ``rows @ query + bias``."""
    n = len(s.catalog)
    parts = [s._v[:n], s._g[:n, None] * s.tp[:n]] if s.cfg.content else [s._v[:n]]
    rows = np.concatenate([*parts, s._fn[:n, None]], axis=1)
    return rows.astype(np.float32), s._b[:n].astype(np.float32)


def attention(s: Student, valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    logits = np.where(valid, s._w["pos"] if s.cfg.sequence else 0.0, -np.inf)
    top = np.max(logits, axis=1, keepdims=True)
    e = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
    total = e.sum(1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)
