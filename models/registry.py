"""The model registry: every model's name, how to build it on a shared catalog, whether it
reads teacher embeddings, and which worker roles run it. ``evaluate``, ``replay``, the worker
and the contract suite all read this one table.

- ``student``: the student (:mod:`models.student`); ``student_no_distill``,
  ``student_no_sequence``, ``student_no_content`` and ``student_no_cooc`` are its ablations,
  each with one part switched off (distillation, the order of the history, the teacher
  altogether, the co-occurrence term);
- ``river``: River's ``BiasedMF``; ``item_knn``: the online item-to-item co-occurrence kNN;
  ``popularity``: positive counts with exponential time decay; ``content``: teacher similarity.

Baseline settings are the ones ``bench/tune_baselines.py`` chose on development data (README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.catalog import Catalog
from models.exceptions import UnknownModelError
from models.protocol import Recommender

if TYPE_CHECKING:
    from models.student import StudentConfig

__all__ = [
    "DEFAULT_MODELS",
    "MODEL_NAMES",
    "NEEDS_TEACHER",
    "REGISTRY",
    "ROLES",
    "STUDENT_VARIANTS",
    "ModelSpec",
    "build_models",
    "parse_models",
]

#: each student variant: the config fields it changes
STUDENT_VARIANTS: dict[str, dict[str, Any]] = {
    "student": {},
    "student_no_distill": {"distill": False},
    "student_no_sequence": {"sequence": False},
    "student_no_content": {"content": False, "distill": False},
    "student_no_cooc": {"cooc_weight": 0.0},
}


@dataclass(frozen=True)
class Build:
    """What a factory gets besides the catalog."""

    threshold: float | None
    seed: int
    init: Path | None
    config: StudentConfig | None


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry."""

    build: Callable[[Catalog, Build], Recommender]
    needs_teacher: bool  # reads teacher embeddings (a comparison encodes texts only if asked)
    roles: tuple[str, ...] = ()  # the worker roles that run it live


def _student(name: str) -> Callable[[Catalog, Build], Recommender]:
    def build(catalog: Catalog, b: Build) -> Recommender:
        from models.student import Student, StudentConfig

        cfg = replace(b.config or StudentConfig(), **STUDENT_VARIANTS[name])
        student = Student(catalog, config=cfg, threshold=b.threshold, seed=b.seed, name=name)
        if b.init is not None:
            from models.transfer import load_pretrained

            load_pretrained(student, b.init)
        return student

    return build


def _river(catalog: Catalog, b: Build) -> Recommender:
    from models.baselines import RiverMF

    return RiverMF(catalog, threshold=b.threshold, seed=b.seed)


def _item_knn(catalog: Catalog, b: Build) -> Recommender:
    from models.knn import ItemKNN

    return ItemKNN(catalog, threshold=b.threshold, seed=b.seed)


def _popularity(catalog: Catalog, b: Build) -> Recommender:
    from models.baselines import Popularity

    return Popularity(catalog, threshold=b.threshold, seed=b.seed)


def _content(catalog: Catalog, b: Build) -> Recommender:
    from models.baselines import ContentSimilarity

    return ContentSimilarity(catalog, threshold=b.threshold, seed=b.seed)


#: every model, in the order reports list them
REGISTRY: dict[str, ModelSpec] = {
    "student": ModelSpec(_student("student"), True, ("student", "all")),
    "student_no_distill": ModelSpec(_student("student_no_distill"), True),
    "student_no_sequence": ModelSpec(_student("student_no_sequence"), True),
    "student_no_content": ModelSpec(_student("student_no_content"), False),
    "student_no_cooc": ModelSpec(_student("student_no_cooc"), True),
    "river": ModelSpec(_river, False, ("baseline", "all")),
    "item_knn": ModelSpec(_item_knn, False, ("all",)),
    "popularity": ModelSpec(_popularity, False, ("all",)),
    "content": ModelSpec(_content, True),
}
MODEL_NAMES = tuple(REGISTRY)
#: what ``evaluate`` and ``replay`` compare by default: every model, the ablations included
DEFAULT_MODELS = ",".join(MODEL_NAMES)
NEEDS_TEACHER = frozenset(name for name, spec in REGISTRY.items() if spec.needs_teacher)
#: worker role -> the models it runs (``coldstream worker --role``)
ROLES: dict[str, tuple[str, ...]] = {
    role: tuple(name for name, spec in REGISTRY.items() if role in spec.roles)
    for role in ("student", "baseline", "all")
}


def parse_models(spec: str) -> list[str]:
    """``"student, river"`` -> ``["student", "river"]``; unknown names raise with the valid ones.

    >>> parse_models("student, river")
    ['student', 'river']
    >>> try:
    ...     parse_models("svd")
    ... except UnknownModelError as exc:
    ...     print(str(exc)[:60])
    unknown model 'svd': use student, student_no_distill, studen
    """
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UnknownModelError(f"no model named: use {_choices()}")
    for n in names:
        if n not in MODEL_NAMES:
            raise UnknownModelError(f"unknown model {n!r}: use {_choices()}")
    return list(dict.fromkeys(names))


def _choices() -> str:
    return ", ".join(MODEL_NAMES[:-1]) + " or " + MODEL_NAMES[-1]


def build_models(
    names: list[str],
    catalog: Catalog,
    *,
    threshold: float | None,
    seed: int = 0,
    init: Path | None = None,
    config: StudentConfig | None = None,
) -> dict[str, Recommender]:
    """One fresh model per name, all sharing ``catalog``; ``init`` starts the students from a
    pretrained checkpoint (:func:`models.transfer.load_pretrained`), ``config`` replaces the
    students' default configuration (each variant still changes its own fields)."""
    b = Build(threshold=threshold, seed=seed, init=init, config=config)
    return {name: REGISTRY[name].build(catalog, b) for name in parse_models(",".join(names))}
