"""The learning core: teacher, student and its online trainer, baselines, evaluation.

Every model implements :class:`Recommender` on a shared :class:`Catalog`;
:func:`build_models` makes them by name, :class:`Prequential` compares them event by event.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.baselines import ContentSimilarity, Popularity, RiverMF
    from models.catalog import Catalog
    from models.evaluation import SLICES, EvalResult, Prequential, count_slice, run_prequential
    from models.exceptions import CheckpointError, ModelsError, TeacherError, UnknownModelError
    from models.idtable import IdTable
    from models.knn import ItemKNN
    from models.protocol import Recommender, is_positive, rank
    from models.registry import (
        DEFAULT_MODELS,
        MODEL_NAMES,
        NEEDS_TEACHER,
        REGISTRY,
        ROLES,
        ModelSpec,
        build_models,
        parse_models,
    )
    from models.replay import ReplayBuffer
    from models.student import Student, StudentConfig
    from models.teacher import HashingTeacher, SentenceTeacher, TextEncoder, load_teacher, text_of
    from models.towers import Towers
    from models.transfer import load_checkpoint, load_pretrained, pretrain, save_checkpoint

# name -> module; loaded on first use, so ``import models.catalog`` does not load torch
_EXPORTS = {
    "Catalog": "models.catalog",
    "CheckpointError": "models.exceptions",
    "ContentSimilarity": "models.baselines",
    "EvalResult": "models.evaluation",
    "HashingTeacher": "models.teacher",
    "IdTable": "models.idtable",
    "ItemKNN": "models.knn",
    "DEFAULT_MODELS": "models.registry",
    "MODEL_NAMES": "models.registry",
    "REGISTRY": "models.registry",
    "ROLES": "models.registry",
    "ModelSpec": "models.registry",
    "NEEDS_TEACHER": "models.registry",
    "ModelsError": "models.exceptions",
    "Popularity": "models.baselines",
    "Prequential": "models.evaluation",
    "Recommender": "models.protocol",
    "ReplayBuffer": "models.replay",
    "RiverMF": "models.baselines",
    "SLICES": "models.evaluation",
    "SentenceTeacher": "models.teacher",
    "Student": "models.student",
    "StudentConfig": "models.student",
    "TeacherError": "models.exceptions",
    "TextEncoder": "models.teacher",
    "Towers": "models.towers",
    "UnknownModelError": "models.exceptions",
    "build_models": "models.registry",
    "count_slice": "models.evaluation",
    "is_positive": "models.protocol",
    "load_checkpoint": "models.transfer",
    "load_pretrained": "models.transfer",
    "load_teacher": "models.teacher",
    "parse_models": "models.registry",
    "pretrain": "models.transfer",
    "rank": "models.protocol",
    "run_prequential": "models.evaluation",
    "save_checkpoint": "models.transfer",
    "text_of": "models.teacher",
}

__all__ = [
    "DEFAULT_MODELS",
    "MODEL_NAMES",
    "NEEDS_TEACHER",
    "REGISTRY",
    "ROLES",
    "SLICES",
    "Catalog",
    "CheckpointError",
    "ContentSimilarity",
    "EvalResult",
    "HashingTeacher",
    "IdTable",
    "ItemKNN",
    "ModelSpec",
    "ModelsError",
    "Popularity",
    "Prequential",
    "Recommender",
    "ReplayBuffer",
    "RiverMF",
    "SentenceTeacher",
    "Student",
    "StudentConfig",
    "TeacherError",
    "TextEncoder",
    "Towers",
    "UnknownModelError",
    "build_models",
    "count_slice",
    "is_positive",
    "load_checkpoint",
    "load_pretrained",
    "load_teacher",
    "parse_models",
    "pretrain",
    "rank",
    "run_prequential",
    "save_checkpoint",
    "text_of",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
