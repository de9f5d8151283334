"""The student's Adam parameter groups (:func:`param_groups`), and a saved optimiser state
fitted to them (:func:`regroup`).

``u0``, the query of a user with no history, is trained only by users' first events: too
rarely for the dense learning rate, at which it stayed near zero and a new user was ranked
almost by the item biases alone. It learns at ``lr_new_user`` times the rate (README, "The
learning core"); the other dense parameters at the rate. A group's ``rate`` is its multiple of
``lr_dense``, which a drift boost multiplies further (:meth:`models.student.Student.boost`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from models.student_config import StudentConfig
    from models.towers import Towers

__all__ = ["param_groups", "regroup"]


def param_groups(towers: Towers, cfg: StudentConfig) -> list[dict[str, Any]]:
    """Adam's parameter groups: every dense parameter but ``u0`` at ``lr_dense``, ``u0`` at
    ``lr_new_user`` times it."""
    rest = [p for name, p in towers.named_parameters() if name != "u0"]
    return [
        {"params": rest, "rate": 1.0, "lr": cfg.lr_dense},
        {"params": [towers.u0], "rate": cfg.lr_new_user, "lr": cfg.lr_dense * cfg.lr_new_user},
    ]


def regroup(opt: dict[str, Any], towers: Towers, current: torch.optim.Optimizer) -> dict[str, Any]:
    """Adam's saved state in ``current``'s parameter groups. A checkpoint from before u0
    learned at its own rate has one group, the parameters in ``named_parameters`` order; its
    moments carry over, each group's rate applied to its saved learning rate."""
    saved = opt["param_groups"]
    if len(saved) == len(current.param_groups):
        return opt
    (old,) = saved
    slot = {name: old["params"][k] for k, (name, _) in enumerate(towers.named_parameters())}
    name_of = {id(p): name for name, p in towers.named_parameters()}
    groups = [
        {
            **old,
            "rate": g["rate"],
            "lr": old["lr"] * g["rate"],
            "params": [slot[name_of[id(p)]] for p in g["params"]],
        }
        for g in current.param_groups
    ]
    return {"state": opt["state"], "param_groups": groups}
