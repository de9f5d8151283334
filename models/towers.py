"""The student's dense parameters (one ``nn.Module``) and their numpy twins for serving.

- **Cold head** (``item_in`` -> ``item_out``, ``item_bias``): an item's vector and bias from its
  teacher embedding alone. A cold item is served from it; it is trained by the interaction loss
  through the share of the item vector that content still holds.
- **Distilled head** (``dist_out``, on the cold head's hidden layer, detached): trained to
  predict the vector the collaborative side has learned for warm items. An item's id vector
  starts in its direction at its first interaction (see :mod:`models.student`), so the id
  side starts pointing where warm items like it point; being detached, it cannot pull the cold
  head away from what brand-new items need. Only the direction is used, and no bias is
  predicted: a warm item's length and bias are popularity it earned, and handing them to an
  item at its first interaction let such items crowd out brand-new ones (README, "The
  learning core").
- **Query parts**: ``profile`` (the teacher embedding of a user's profile text, projected),
  ``u0`` (the query of a user with no history), ``pos`` (attention logits of the last
  ``history`` interactions, most recent first).
- **Teacher channel**: ``proj`` (a buffer: the top principal directions of the catalog's teacher
  embeddings, set by the student, not trained), ``sim`` (weights of the history and profile
  teacher terms) and ``gate`` (the channel's weight on the item side per log2 bucket of the
  item's interaction count: the hand-over from content to id).
- ``fresh``: weights of the freshness features (age and decayed recent counts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

if TYPE_CHECKING:
    from models.student import StudentConfig

__all__ = ["BUCKETS", "Towers", "bucket", "content_np"]

F32 = npt.NDArray[np.float32]
#: log2 buckets of an item's interaction count (0, 1, 2-3, 4-7, ..., >= 1024)
BUCKETS = 12


def bucket(n: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
    """The gate bucket of interaction counts ``n``: ``floor(log2(n + 1))``, capped.

    >>> bucket(np.array([0.0, 1.0, 2.0, 3.0, 7.0, 1e6])).tolist()
    [0, 1, 1, 2, 3, 11]
    """
    return np.minimum(np.floor(np.log2(np.asarray(n, dtype=np.float64) + 1.0)), BUCKETS - 1).astype(
        np.int64
    )


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

    def content(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cold-head vectors and biases of teacher rows ``t``, and the hidden layer."""
        h = torch.relu(self.item_in(t))
        return self.item_out(h), self.item_bias(h).squeeze(-1), h

    def distilled(self, h: torch.Tensor) -> torch.Tensor:
        """The distilled head on hidden rows ``h`` (detach them to keep the cold head apart)."""
        return self.dist_out(h)

    def numpy_weights(self) -> dict[str, F32]:
        return {k: v.detach().numpy().copy() for k, v in self.state_dict().items()}


def content_np(w: dict[str, F32], t: F32) -> tuple[F32, F32, F32]:
    """Numpy twin of both heads for teacher rows ``t``: cold vector, cold bias, distilled
    vector."""
    h = np.maximum(t @ w["item_in.weight"].T + w["item_in.bias"], 0.0)
    vec = h @ w["item_out.weight"].T + w["item_out.bias"]
    bias = h @ w["item_bias.weight"][0] + w["item_bias.bias"][0]
    dvec = h @ w["dist_out.weight"].T + w["dist_out.bias"]
    return vec.astype(np.float32), bias.astype(np.float32), dvec.astype(np.float32)
