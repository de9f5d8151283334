"""Id tables that grow on demand and stay bounded: a frequency filter admits new ids, idle
ids expire, and a full table evicts the least recently seen id (as in Monolith).

Rows are torch tensors so the trainer can gather them into a batch; updates use a sparse
Adagrad step on the touched rows only. The per-row counters (last sighting, count) are numpy
arrays: :meth:`IdTable.lookup` runs once per event, and a torch scalar write costs ~10x more.

>>> t = IdTable(dim=2, min_count=2, ttl=100, max_rows=4)
>>> t.lookup("u", ts=0), t.lookup("u", ts=1)   # admitted at its second sighting
(-1, 0)
>>> t.lookup("v", ts=500, admit=True), t.expire(now=500), t.get("u")
(1, 1, -1)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["IdTable"]


class IdTable:
    """key -> row of a ``(rows, dim)`` embedding with per-row Adagrad state and counters."""

    def __init__(
        self,
        dim: int,
        *,
        min_count: int = 1,
        ttl: int | None = None,
        max_rows: int = 1 << 22,
        init_std: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.min_count = min_count
        self.ttl = ttl
        self.max_rows = max_rows
        self.init_std = init_std
        self._gen = torch.Generator().manual_seed(seed)
        self.slots: dict[str, int] = {}
        self.pending: dict[str, tuple[int, int]] = {}  # key -> (count, last ts) before admission
        self.free: list[int] = []
        self.weight = torch.zeros(0, dim)
        self.accum = torch.zeros(0, dim)
        self.last = np.zeros(0, dtype=np.int64)
        self.count = np.zeros(0, dtype=np.int64)
        self.keys: list[str | None] = []

    def __len__(self) -> int:
        return len(self.slots)

    def get(self, key: str) -> int:
        return self.slots.get(key, -1)

    def lookup(self, key: str, ts: int, *, admit: bool = False) -> int:
        """Count one sighting of ``key``; its row, or -1 while the frequency filter holds it."""
        row = self.slots.get(key)
        if row is None:
            n = self.pending.pop(key, (0, 0))[0] + 1
            if n < self.min_count and not admit:
                self.pending[key] = (n, ts)
                if len(self.pending) > self.max_rows:  # bounded too: forget the stalest
                    del self.pending[next(iter(self.pending))]
                return -1
            row = self._new_row(key)
        self.last[row] = ts
        self.count[row] += 1
        return row

    def _new_row(self, key: str) -> int:
        if self.free:
            row = self.free.pop()
        elif len(self.keys) < self.max_rows:
            row = len(self.keys)
            self._grow(row + 1)
            self.keys.append(None)
        else:  # full: the least recently seen id gives its row away
            row = int(np.argmin(self.last))
            old = self.keys[row]
            if old is not None:
                del self.slots[old]
        self.keys[row] = key
        self.slots[key] = row
        if self.init_std > 0:
            self.weight[row] = torch.randn(self.dim, generator=self._gen) * self.init_std
        else:
            self.weight[row] = 0.0
        self.accum[row] = 0.0
        self.count[row] = 0
        return row

    def _grow(self, need: int) -> None:
        cap = self.weight.shape[0]
        if need <= cap:
            return
        new = min(max(need, cap * 2, 64), self.max_rows)
        pad = new - cap
        self.weight = torch.cat([self.weight, torch.zeros(pad, self.dim)])
        self.accum = torch.cat([self.accum, torch.zeros(pad, self.dim)])
        self.last = np.concatenate([self.last, np.full(pad, -(1 << 62), dtype=np.int64)])
        self.count = np.concatenate([self.count, np.zeros(pad, dtype=np.int64)])

    def expire(self, now: int) -> int:
        """Free the rows (and pending counts) idle for longer than ``ttl``; returns rows freed."""
        if self.ttl is None:
            return 0
        cutoff = now - self.ttl
        n = len(self.keys)
        idle = np.flatnonzero(self.last[:n] < cutoff).tolist()
        freed = 0
        for row in idle:
            key = self.keys[row]
            if key is not None:
                del self.slots[key]
                self.keys[row] = None
                self.free.append(row)
                self.last[row] = -(1 << 62)
                freed += 1
        self.pending = {k: v for k, v in self.pending.items() if v[1] >= cutoff}
        return freed

    def adagrad_(
        self, rows: torch.Tensor, grad: torch.Tensor, lr: float, eps: float = 1e-8
    ) -> None:
        """Sparse Adagrad on unique ``rows`` with their summed gradients."""
        acc = self.accum[rows] + grad * grad
        self.accum[rows] = acc
        self.weight[rows] -= lr * grad / (acc.sqrt() + eps)

    def state_dict(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "min_count": self.min_count,
            "ttl": self.ttl,
            "max_rows": self.max_rows,
            "init_std": self.init_std,
            "gen": self._gen.get_state(),
            "slots": dict(self.slots),
            "pending": dict(self.pending),
            "free": list(self.free),
            "weight": self.weight.clone(),
            "accum": self.accum.clone(),
            "last": self.last.copy(),
            "count": self.count.copy(),
            "keys": list(self.keys),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("dim", "min_count", "ttl", "max_rows", "init_std"):
            setattr(self, name, state[name])
        self._gen.set_state(state["gen"])
        self.slots = dict(state["slots"])
        self.pending = dict(state["pending"])
        self.free = list(state["free"])
        self.weight, self.accum = state["weight"].clone(), state["accum"].clone()
        for name in ("last", "count"):  # torch tensors in older checkpoints
            setattr(self, name, np.array(state[name], dtype=np.int64))
        self.keys = list(state["keys"])
