"""Transfer: train the student offline on history, save it, and start a live student from it.

:func:`pretrain` replays historical records (event-time order) through a fresh student,
one or more passes, and writes a checkpoint; :func:`load_pretrained` starts another student
from it: tower weights, optimizer state, user ids and profiles are copied; item id embeddings are
matched by item id when each item is observed (so the new catalog may differ from the old).
Checkpoints are pickles (``torch.save``): load only checkpoints you made or trust.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

import core.pickles
from core.records import Interaction, Item, Record, User
from models.catalog import Catalog
from models.exceptions import CheckpointError
from models.student import Student, StudentConfig

__all__ = ["load_checkpoint", "load_pretrained", "pretrain", "save_checkpoint"]

_FORMAT = "coldstream-student"
_VERSION = 2  # the student of one low-dimensional scoring space


def save_checkpoint(student: Student, path: Path) -> Path:
    """Write the student's full state (atomically: a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "format": _FORMAT,
            "version": _VERSION,
            "teacher_dim": student.catalog.dim,
            "state": student.state_dict(),
        },
        tmp,
    )
    tmp.replace(path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: make one with models.transfer.pretrain")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, pickle_module=core.pickles)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a coldstream student checkpoint")
    if ckpt.get("version") != _VERSION:
        raise CheckpointError(
            f"{path} holds a student of format version {ckpt.get('version')}, this coldstream "
            f"reads version {_VERSION}: make it again with coldstream pretrain"
        )
    return ckpt


def load_pretrained(student: Student, path: Path) -> Student:
    """Start ``student`` from the checkpoint at ``path`` (same teacher and student sizes)."""
    ckpt = load_checkpoint(path)
    state = ckpt["state"]
    theirs = _shape(state["config"])
    ours = _shape(student.cfg.to_dict())
    if ckpt["teacher_dim"] != student.catalog.dim or theirs != ours:
        raise CheckpointError(
            f"checkpoint {path} has teacher dim {ckpt['teacher_dim']} and student shape "
            f"{theirs}, this student {student.catalog.dim} and {ours}: "
            "pretrain with the same teacher and student settings"
        )
    student.load_towers(state["towers"], state["opt"])
    student.users.load_state_dict(state["users"])
    # histories hold rows of the old catalog: keep profiles, let histories rebuild
    student.load_user_state([(key, [], p, last) for key, _, p, last in state["user_state"]])
    arrays = state["arrays"]
    student.pretrained = {
        item_id: (arrays["emb"][i], float(arrays["bias"][i]), float(arrays["n"][i]))
        for i, item_id in enumerate(state["item_ids"])
        if arrays["n"][i] > 0
    }
    student.basis_n = state["counters"][4]  # the teacher basis came with the towers
    student.sync_weights()
    return student


def _shape(cfg: dict[str, Any]) -> tuple[int, ...]:
    """What must agree for weights to move between students: the parameter shapes
    ``(dim, teacher_rank, hidden, history, freshness scales)``."""
    keys = ("dim", "teacher_rank", "hidden", "history")
    return (*(int(cfg[k]) for k in keys), len(cfg["fresh_scales"]))


def pretrain(
    records: Iterable[Record],
    out: Path,
    embeddings: dict[tuple[str, str], npt.NDArray[np.float32]],
    *,
    teacher_dim: int,
    threshold: float | None = None,
    config: StudentConfig | None = None,
    seed: int = 0,
    epochs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Train a student on historical ``records`` for ``epochs`` passes; write a checkpoint.

    ``embeddings`` are the teacher's vectors by ``(kind, id)`` (see
    :meth:`models.teacher.SentenceTeacher.embed_records`).
    """
    recs = list(records)
    catalog = Catalog(teacher_dim)
    student = Student(catalog, config=config, threshold=threshold, seed=seed)
    for _ in range(max(1, epochs)):
        for rec in recs:
            if isinstance(rec, Item):
                student.observe_item(
                    catalog.add(rec.item_id, embeddings.get(("item", rec.item_id)))
                )
            elif isinstance(rec, User):
                student.observe_user(rec.user_id, embeddings.get(("user", rec.user_id)))
            elif isinstance(rec, Interaction):
                idx = catalog.get(rec.item_id)
                if idx is None:
                    idx = catalog.add(rec.item_id, None)
                    student.observe_item(idx)
                student.learn_one(rec.user_id, idx, rec.value, rec.ts)
            if progress is not None:
                progress(1)
        student.flush()
    return save_checkpoint(student, out)
