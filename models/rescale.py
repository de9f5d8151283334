"""One rank's worker state from the states every rank wrote at one consistent cut, for another
number of ranks (scale 2 -> 3, 2 -> 1, 1 -> 2: :mod:`streams.cut`).

At a cut every rank holds the same shared state (:class:`models.distributed.StudentSync` has
just run): the catalog, the dense towers, the item rows, the counts, the item and user events
waiting for their time. What belongs to one user lives with the rank that owned the user's
partition: the user's id row, history and profile, replayed events, pending micro-batch,
evaluation state (items seen, last event time) and waiting or parked interactions.
:func:`regroup` takes the shared state from the first old rank and each user's state from
the old rank that owned the user, keeping the users the new rank owns. The running metric sums
and the event counters go to the new rank 0, so their sums over ranks are unchanged; the drift
monitor and Adam's moments, which are each rank's own, are the first old rank's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["regroup"]

Owns = Callable[[str], bool]


def regroup(
    states: Sequence[dict[str, Any]],
    owned_by: Callable[[str], int],
    keep: Owns,
    *,
    first: bool,
) -> dict[str, Any]:
    """The :meth:`~streams.worker.WorkerCore.state_dict` of one new rank.

    ``states``: every old rank's state, by old rank; ``owned_by(user)``: the old rank that
    owned the user; ``keep(user)``: whether the new rank owns the user; ``first``: whether it
    is the new rank 0 (it takes the sums and counters)."""
    picks = [(st, _picker(r, owned_by, keep)) for r, st in enumerate(states)]
    base = states[0]
    out = dict(base)
    out["parked"] = [
        (rec, since) for st, mine in picks for rec, since in st["parked"] if mine(rec.user_id)
    ]
    shared = [w for w in base["waiting"] if w.kind != "interaction"]
    own = [
        w
        for st, mine in picks
        for w in st["waiting"]
        if w.kind == "interaction" and mine(w.vector.user_id)
    ]
    waiting = sorted(shared + own, key=lambda w: (w.ts, w.order, w.seq))
    for seq, w in enumerate(waiting, 1):  # each rank numbered its own: number them anew
        w.seq = seq
    out["waiting"] = waiting
    out["seq"] = len(waiting)
    out["model_events"] = sum(int(st["model_events"]) for st in states) if first else 0
    out["evaluator"] = _evaluator([st["evaluator"] for st in states], picks, first)
    return out


def _picker(rank: int, owned_by: Callable[[str], int], keep: Owns) -> Owns:
    return lambda user: keep(user) and owned_by(user) == rank


def _evaluator(
    states: list[dict[str, Any]], picks: list[tuple[Any, Owns]], first: bool
) -> dict[str, Any]:
    base = states[0]
    out = dict(base)
    mines = [mine for _, mine in picks]
    for key in ("sum", "n", "win", "learn_s"):
        out[key] = sum(st[key] for st in states) if first else np.zeros_like(base[key])
    out["win_n"] = sum(st["win_n"] for st in states) if first else 0
    out["counters"] = (
        tuple(sum(st["counters"][i] for st in states) for i in range(len(base["counters"])))
        if first
        else (0,) * len(base["counters"])
    )
    out["timeline"] = base["timeline"] if first else {k: [] for k in base["timeline"]}
    out["seen"] = _by_user([st["seen"] for st in states], mines)
    out["last"] = _by_user([st["last"] for st in states], mines)
    models = dict(base["models"])
    if "student" in models:
        models["student"] = _student([st["models"]["student"] for st in states], mines)
    out["models"] = models
    return out


def _by_user(dicts: list[dict[str, Any]], mines: list[Owns]) -> dict[str, Any]:
    return {u: v for d, mine in zip(dicts, mines, strict=True) for u, v in d.items() if mine(u)}


def _student(states: list[dict[str, Any]], mines: list[Owns]) -> dict[str, Any]:
    out = dict(states[0])
    out["users"] = _table([st["users"] for st in states], mines)
    out["user_state"] = [
        e for st, mine in zip(states, mines, strict=True) for e in st["user_state"] if mine(e[0])
    ]
    out["replay"] = _replay([st["replay"] for st in states], mines)
    out["recent"] = [
        e for st, mine in zip(states, mines, strict=True) for e in st["recent"] if mine(e[0])
    ]
    pending: list[Any] = []
    boosts: dict[int, Any] = {}
    for st, mine in zip(states, mines, strict=True):
        saved = st.get("pending_boosts", {})
        for i, event in enumerate(st["pending"]):
            if mine(event[0]):
                if i in saved:
                    boosts[len(pending)] = saved[i]
                pending.append(event)
    out["pending"], out["pending_boosts"] = pending, boosts
    return out


def _table(tables: list[dict[str, Any]], mines: list[Owns]) -> dict[str, Any]:
    """An :class:`~models.idtable.IdTable` state holding the picked keys' rows."""
    out = dict(tables[0])
    keys: list[str | None] = []
    rows: list[tuple[int, int]] = []  # (source, row)
    for s, (t, mine) in enumerate(zip(tables, mines, strict=True)):
        for key, row in t["slots"].items():
            if mine(key):
                keys.append(key)
                rows.append((s, row))
    dim = int(out["dim"])

    def gather(name: str) -> Any:
        parts = [tables[s][name][row] for s, row in rows]
        if name in ("weight", "accum"):
            return torch.stack(parts) if parts else torch.zeros(0, dim)
        return np.asarray(parts, dtype=np.int64)

    for name in ("weight", "accum", "last", "count"):
        out[name] = gather(name)
    out["keys"], out["slots"], out["free"] = keys, {k: i for i, k in enumerate(keys)}, []
    out["pending"] = {
        k: v
        for t, mine in zip(tables, mines, strict=True)
        for k, v in t["pending"].items()
        if mine(k)
    }
    return out


def _replay(buffers: list[dict[str, Any]], mines: list[Owns]) -> dict[str, Any]:
    """A :class:`~models.replay.ReplayBuffer` state holding the picked users' events (the
    reservoir's count of events offered scaled to the share kept)."""
    out = dict(buffers[0])
    size = int(out["size"])
    users: list[str] = []
    items, hist = np.zeros_like(out["items"]), np.full_like(out["hist"], -1)
    seen = 0.0
    for b, mine in zip(buffers, mines, strict=True):
        kept = [i for i, u in enumerate(b["users"]) if mine(u)]
        seen += b["seen"] * len(kept) / max(len(b["users"]), 1)
        for i in kept[: size - len(users)]:
            items[len(users)], hist[len(users)] = b["items"][i], b["hist"][i]
            users.append(b["users"][i])
    out.update(users=users, items=items, hist=hist, seen=max(round(seen), len(users)))
    return out
