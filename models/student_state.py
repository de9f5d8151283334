"""The student's whole state as a dict (:func:`state_dict`) and back (:func:`load_state_dict`):
dense weights and their optimiser, id tables, user histories, replay, caches, counters; a
round trip gives the same scores, and learning goes on the same way."""

from __future__ import annotations

import copy
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from models.cooc import Cooccurrence
from models.student_config import CACHES, ITEM_ARRAYS, RECENT

if TYPE_CHECKING:
    from models.student import Student

__all__ = ["load_state_dict", "state_dict"]


def state_dict(s: Student) -> dict[str, Any]:
    return {
        "config": s.cfg.to_dict(),
        "name": s.name,
        "seed": s.seed,
        "towers": {k: v.clone() for k, v in s.towers.state_dict().items()},
        "opt": copy.deepcopy(s.opt.state_dict()),  # else it shares the moment tensors
        "gen": s.gen.get_state(),
        "rng": s._rng.bit_generator.state,
        "users": s.users.state_dict(),
        "user_state": [(k, list(s.hist), s.profile, s.last) for k, s in s.state.items()],
        "replay": s.replay.state_dict(),
        "recent": [(u, i, list(h)) for u, i, h in s.recent],
        "boost": (*s.boosted, s.last_loss),
        "arrays": {k: getattr(s, k).copy() for k in (*ITEM_ARRAYS, *CACHES)},
        "fresh": s.fresh.state_dict(),
        "cooc": s.cooc.state_dict(),
        "pending": [(u, i, list(h)) for u, i, h in s.pending],
        "pending_boosts": {r: (i.copy(), b.copy()) for r, (i, b) in s._boosts.items()},
        "counters": (s.steps, s.learned, s.now, s._refresh_at, s.basis_n),
        "item_ids": list(s.catalog.ids),
        "pretrained": {k: (v[0].copy(), v[1], v[2]) for k, v in s.pretrained.items()},
    }


def load_state_dict(s: Student, state: dict[str, Any]) -> None:
    current = s.load_towers(state["towers"], state["opt"])
    s.gen.set_state(state["gen"])
    s._rng.bit_generator.state = state["rng"]
    s.users.load_state_dict(state["users"])
    s.load_user_state(state["user_state"])
    s.replay.load_state_dict(state["replay"])
    s.recent = deque(((u, i, list(h)) for u, i, h in state["recent"]), RECENT)
    *boosted, s.last_loss = state["boost"]
    s.boosted = (float(boosted[0]), int(boosted[1]), int(boosted[2]))
    for k, v in state["arrays"].items():
        setattr(s, k, v.copy())
    if not current:  # cached residual rows, computed below
        s.cr, s.cbr = np.zeros_like(s.cv), np.zeros_like(s.cb)
    if "_fn" not in state["arrays"]:  # from before the new-user freshness weights (derived
        s._fn = np.zeros_like(s.cb)  # by sync_weights below: their weights are missing too)
    if "_cn" not in state["arrays"]:  # from before brand-new items were served turned
        s._cn = np.zeros_like(s.cv)
        s.turn(slice(0, len(s.cv)))
    s.fresh.load_state_dict(state["fresh"])
    s.cooc = Cooccurrence(s.cfg.cooc_alpha, neighbours=s.cfg.cooc_neighbours)
    if "cooc" in state:
        s.cooc.load_state_dict(state["cooc"])
    for index in range(len(s.cooc.n), len(s.n)):
        s.cooc.observe_item(index)  # a checkpoint from before the co-occurrence term
    s.pending = [(u, i, list(h)) for u, i, h in state["pending"]]
    s._boosts = {r: (i.copy(), b.copy()) for r, (i, b) in state.get("pending_boosts", {}).items()}
    s.steps, s.learned, s.now, s._refresh_at, s.basis_n = state["counters"]
    s.pretrained = {k: (v[0].copy(), v[1], v[2]) for k, v in state["pretrained"].items()}
    s._w = s.towers.numpy_weights()
    if not current:
        s.sync_weights()
