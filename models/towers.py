"""The student's dense parameters (one ``nn.Module``) and their numpy twins for serving.

- **Cold head** (``item_in`` -> ``item_out``, ``item_bias``): an item's vector and bias from its
  teacher embedding alone. A cold item is served from it; it is trained by the interaction loss
  through the share of the item vector that content still holds.
- **Residual head** (``item_res``, ``item_res_bias``, on the same hidden layer): the content
  share of an item that has interactions, blended with its id row (``a * e + (1 - a) * r``).
  The cold head serves and learns only from items with none. With one head for both jobs, the
  head learned to correct id rows (which start where the distilled head points) and got worse
  at serving brand-new items on its own; apart, each does one job (README, "The learning
  core"). It starts as a copy of the cold head.
- **Distilled head** (``dist_out``, on the cold head's hidden layer, detached): trained to
  predict the vector the collaborative side has learned for warm items. A brand-new item is
  served, and its id vector starts at its first interaction, three quarters of the way to its
  direction (see :mod:`models.student`), so it points towards where warm items like it point.
  Being detached, it cannot pull the cold head away from what brand-new items need, and the
  cold head learns without the turn (through it, it learned to cancel the turn: README, "The
  learning core"), so two predictors are combined. Only the direction is used,
  and no bias is predicted: a warm item's length and bias are popularity it earned, and
  handing them to an item at its first interaction let such items crowd out brand-new ones
  (README, "The learning core").
- **Query parts**: ``profile`` (the teacher embedding of a user's profile text, projected),
  ``u0`` (the query of a user with no history), ``pos`` (attention logits of the last
  ``history`` interactions, most recent first).
- **Teacher channel**: ``proj`` (a buffer: the top principal directions of the catalog's teacher
  embeddings, set by the student, not trained), ``sim`` (weights of the history and profile
  teacher terms) and ``gate`` (the channel's weight on the item side per log2 bucket of the
  item's interaction count: the hand-over from content to id).
- ``fresh``: weights of the freshness features (age and decayed recent counts);
  ``fresh_new``: weights added to them for a query with no history (a new user's first item
  follows another popularity than a user's next one), starting at zero.
- ``cooc_log``: log weight of the co-occurrence term's boost per log2 bucket of the boosted
  item's interaction count (:func:`models.cooc.weigh`), learned from the boosts of every
  ``cooc_learn_every``-th interaction against the step's dense scores (detached).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.cooc import BUCKETS, bucket

if TYPE_CHECKING:
    from models.student import StudentConfig

__all__ = ["BUCKETS", "Towers", "bucket", "content_np", "toward"]


F32 = npt.NDArray[np.float32]


class Towers(nn.Module):
    proj: torch.Tensor  # a buffer: (teacher_rank, teacher_dim)

    def __init__(self, teacher_dim: int, cfg: StudentConfig) -> None:
        super().__init__()
        d, h = cfg.dim, cfg.hidden
        self.item_in = nn.Linear(teacher_dim, h)
        self.item_out = nn.Linear(h, d)
        self.item_bias = nn.Linear(h, 1)
        self.dist_out = nn.Linear(h, d)
        self.profile = nn.Linear(teacher_dim, d)
        self.u0 = nn.Parameter(torch.zeros(d))
        self.pos = nn.Parameter(-0.1 * torch.arange(cfg.history, dtype=torch.float32))
        self.sim = nn.Parameter(torch.tensor([5.0, 2.0]))
        self.gate = nn.Parameter(torch.ones(BUCKETS))
        self.fresh = nn.Linear(2 * len(cfg.fresh_scales), 1, bias=False)
        self.register_buffer("proj", torch.zeros(cfg.teacher_rank, teacher_dim))
        for lin in (self.item_out, self.dist_out, self.profile):
            nn.init.normal_(lin.weight, std=0.5 / lin.in_features**0.5)
            nn.init.zeros_(lin.bias)
        for zero in (self.item_bias, self.fresh):
            nn.init.zeros_(zero.weight)
        nn.init.zeros_(self.item_bias.bias)
        # registered last: the other parameters (and their random init) are as before
        self.item_res = nn.Linear(h, d)
        self.item_res_bias = nn.Linear(h, 1)
        self.init_residual()
        if cfg.cooc_weight and cfg.cooc_learn_every:
            self.cooc_log = nn.Parameter(torch.zeros(BUCKETS))
        self.fresh_new = nn.Linear(2 * len(cfg.fresh_scales), 1, bias=False)
        nn.init.zeros_(self.fresh_new.weight)

    def init_residual(self) -> None:
        """The residual head starts as the cold head (its bias at zero)."""
        with torch.no_grad():
            self.item_res.weight.copy_(self.item_out.weight)
            self.item_res.bias.copy_(self.item_out.bias)
            self.item_res_bias.weight.zero_()
            self.item_res_bias.bias.zero_()

    def content(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cold-head vectors and biases of teacher rows ``t``, and the hidden layer."""
        h = torch.relu(self.item_in(t))
        return self.item_out(h), self.item_bias(h).squeeze(-1), h

    def residual(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual-head vectors and biases on hidden rows ``h``."""
        return self.item_res(h), self.item_res_bias(h).squeeze(-1)

    def distilled(self, h: torch.Tensor) -> torch.Tensor:
        """The distilled head on hidden rows ``h`` (detach them to keep the cold head apart)."""
        return self.dist_out(h)

    def numpy_weights(self) -> dict[str, F32]:
        return {k: v.detach().numpy().copy() for k, v in self.state_dict().items()}


def content_np(w: dict[str, F32], t: F32) -> tuple[F32, F32, F32, F32, F32]:
    """Numpy twin of the heads for teacher rows ``t``: cold vector and bias, distilled vector,
    residual vector and bias."""
    h = np.maximum(t @ w["item_in.weight"].T + w["item_in.bias"], 0.0)
    vec = h @ w["item_out.weight"].T + w["item_out.bias"]
    bias = h @ w["item_bias.weight"][0] + w["item_bias.bias"][0]
    dvec = h @ w["dist_out.weight"].T + w["dist_out.bias"]
    rvec = h @ w["item_res.weight"].T + w["item_res.bias"]
    rbias = h @ w["item_res_bias.weight"][0] + w["item_res_bias.bias"][0]
    f32 = np.float32
    return vec.astype(f32), bias.astype(f32), dvec.astype(f32), rvec.astype(f32), rbias.astype(f32)


def toward(cold: torch.Tensor, distilled: torch.Tensor, mix: float) -> torch.Tensor:
    """Rows with the length of ``cold``'s and a direction ``mix`` of the way from ``cold``'s
    to ``distilled``'s: a brand-new item's served vector, and where its id row starts."""
    length = cold.norm(dim=1, keepdim=True).clamp(min=1e-6)
    unit = distilled / distilled.norm(dim=1, keepdim=True).clamp(min=1e-6)
    direction = mix * unit + (1.0 - mix) * cold / length
    return length * direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-6)
