"""The student's networks: a content tower for items and a user tower, plus the blend rule.

Item ``i`` with ``n`` positive interactions so far and an id row gets

    v_i = a * e_i + (1 - a) * c(t_i),   b_i = a * beta_i + (1 - a) * cb(t_i),   a = n / (n + blend)

where ``t_i`` is the teacher embedding, ``c``/``cb`` the content tower (vector and bias head)
and ``e_i``/``beta_i`` the learned id embedding and bias (``a = 0`` before the item's first
interaction: a cold item is pure content). A user is

    u = g([p_u, h_u, has_p, has_h]) + e_u

with ``p_u`` the teacher embedding of their profile text, ``h_u`` the mean teacher embedding of
the last items they touched (both zero when missing), ``g`` the user tower and ``e_u`` the
user's id embedding once the id table admits them (zero before). Score: ``u . v_i + b_i``.

Inference runs in numpy on weights copied out after each training step
(:meth:`Towers.numpy_weights`), so scoring costs no torch dispatch per request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

__all__ = ["StudentConfig", "Towers", "blend_weight", "content_np", "user_np"]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class StudentConfig:
    """Hyper-parameters of the student and its online trainer."""

    dim: int = 64  # embedding size of both towers and the id tables
    hidden: int = 128
    batch_size: int = 128  # micro-batch of fresh interactions per training step
    negatives: int = 512  # uniformly sampled catalog items per step (besides in-batch ones)
    lr_dense: float = 1e-2  # Adam, towers
    lr_sparse: float = 0.1  # Adagrad, id rows
    blend: float = 5.0  # interactions at which id and content weigh the same
    history: int = 20  # items remembered per user for the history fallback
    distill: bool = True
    content_loss: bool = True  # also train the content tower by the interaction loss
    distill_min_count: int = 5  # an item is "warm" (a distillation target) from this count
    distill_emb: float = 3.0
    distill_rank: float = 3.0
    replay_size: int = 20_000
    replay_per_batch: int = 64
    user_min_count: int = 2  # frequency filter of the user id table
    user_ttl_ms: int | None = None  # idle expiry of user state (event time)
    max_users: int = 1_000_000  # bound on user rows and user state
    refresh_items: int = 1_000  # content rows recomputed per step at most (big catalogs)
    fresh_scales: tuple[float, ...] = (200.0, 2_000.0, 20_000.0)  # in positives seen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def blend_weight(n: npt.NDArray[Any], has_id: npt.NDArray[np.bool_], blend: float) -> F32:
    """Weight of the id side: 0 for a cold item, towards 1 as interactions accumulate."""
    return np.where(has_id, n / (n + blend), 0.0).astype(np.float32)


class Towers(nn.Module):
    def __init__(self, teacher_dim: int, cfg: StudentConfig) -> None:
        super().__init__()
        self.item_in = nn.Linear(teacher_dim, cfg.hidden)
        self.item_out = nn.Linear(cfg.hidden, cfg.dim)
        self.item_bias = nn.Linear(cfg.hidden, 1)
        self.user_in = nn.Linear(2 * teacher_dim + 2, cfg.hidden)
        self.user_out = nn.Linear(cfg.hidden, cfg.dim)
        self.fresh = nn.Linear(2 * len(cfg.fresh_scales), 1, bias=False)
        # weights of the teacher's own similarity: item to history mean, item to profile
        self.sim = nn.Parameter(torch.tensor([5.0, 2.0]))
        nn.init.zeros_(self.fresh.weight)
        for lin in (self.item_out, self.user_out):
            nn.init.normal_(lin.weight, std=0.5 / cfg.hidden**0.5)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.item_bias.bias)

    def content(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.item_in(t))
        return self.item_out(h), self.item_bias(h).squeeze(-1)

    def user(self, x: torch.Tensor) -> torch.Tensor:
        return self.user_out(torch.relu(self.user_in(x)))

    def numpy_weights(self) -> dict[str, F32]:
        return {k: v.detach().numpy().copy() for k, v in self.state_dict().items()}


def content_np(w: dict[str, F32], t: F32) -> tuple[F32, F32]:
    """Numpy twin of :meth:`Towers.content` for rows ``t`` (n, teacher_dim)."""
    h = np.maximum(t @ w["item_in.weight"].T + w["item_in.bias"], 0.0)
    vec = h @ w["item_out.weight"].T + w["item_out.bias"]
    bias = h @ w["item_bias.weight"][0] + w["item_bias.bias"][0]
    return vec.astype(np.float32), bias.astype(np.float32)


def user_np(w: dict[str, F32], x: F32) -> F32:
    """Numpy twin of :meth:`Towers.user` for one feature row."""
    h = np.maximum(w["user_in.weight"] @ x + w["user_in.bias"], 0.0)
    return (w["user_out.weight"] @ h + w["user_out.bias"]).astype(np.float32)
