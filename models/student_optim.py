"""The student's Adam parameter groups (:func:`param_groups`), and a saved optimiser state
fitted to them (:func:`regroup`).

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

__all__ = ["NEW_USER", "load_towers", "param_groups", "regroup"]


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


def load_towers(s: Student, towers: dict[str, torch.Tensor], opt: dict[str, Any]) -> bool:
    """Load dense weights and their optimiser state into student ``s``. A checkpoint from
    before the residual head, the boost weights or the new-user freshness weights lacks them:
    the head starts as the cold head, the weights at 1 and 0, Adam starts afresh; returns
    False."""
    missing, _ = s.towers.load_state_dict(towers, strict=False)
    if not missing:
        s.opt.load_state_dict(regroup(opt, s.towers, s.opt))
        return True
    if not all(k.startswith(("item_res", "cooc_log", "fresh_new")) for k in missing):
        raise KeyError(f"the checkpoint's student lacks {missing}")
    if any(k.startswith("item_res") for k in missing):
        s.towers.init_residual()
    return False
