"""The student's Adam parameter groups (:func:`param_groups`), and loading its dense weights
with their optimiser state (:func:`load_towers`).

``u0``, the query of a user with no history, and ``fresh_new``, the freshness weights added
for such a query, are trained only by users' first events: too rarely for the dense learning
rate, at which ``u0`` stayed near zero and a new user was ranked almost by the item biases
alone. They learn at ``lr_new_user`` times the rate (README, "The learning core"); the other
dense parameters at the rate. A group's ``rate`` is its multiple of
``lr_dense``, which a drift boost multiplies further (:meth:`models.student.Student.boost`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from models.student import Student
    from models.student_config import StudentConfig
    from models.towers import Towers

__all__ = ["NEW_USER", "load_towers", "param_groups"]


#: the dense parameters only users' first events train
NEW_USER = ("u0", "fresh_new.weight")


def param_groups(towers: Towers, cfg: StudentConfig) -> list[dict[str, Any]]:
    """Adam's parameter groups: the :data:`NEW_USER` parameters at ``lr_new_user`` times
    ``lr_dense``, the others at it."""
    named = list(towers.named_parameters())
    rest = [p for name, p in named if name not in NEW_USER]
    new = [p for name, p in named if name in NEW_USER]
    return [
        {"params": rest, "rate": 1.0, "lr": cfg.lr_dense},
        {"params": new, "rate": cfg.lr_new_user, "lr": cfg.lr_dense * cfg.lr_new_user},
    ]


def load_towers(s: Student, towers: dict[str, torch.Tensor], opt: dict[str, Any]) -> bool:
    """Load dense weights and their optimiser state into student ``s``. A checkpoint from
    before the residual head, the boost weights or the new-user freshness weights lacks them
    (and its Adam state has one parameter group: ``u0`` had no rate of its own): the head
    starts as the cold head, the weights at 1 and 0, Adam starts afresh; returns False."""
    missing, _ = s.towers.load_state_dict(towers, strict=False)
    if not missing:
        s.opt.load_state_dict(opt)
        return True
    if not all(k.startswith(("item_res", "cooc_log", "fresh_new")) for k in missing):
        raise KeyError(f"the checkpoint's student lacks {missing}")
    if any(k.startswith("item_res") for k in missing):
        s.towers.init_residual()
    return False
