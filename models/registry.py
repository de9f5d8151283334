"""Model names and how to build them on a shared catalog: the one list every command asks.

- ``student``: the student (:mod:`models.student`); ``student_no_distill``,
  ``student_no_sequence``, ``student_no_content`` and ``student_no_cooc`` are its ablations,
  each with one part switched off (distillation, the order of the history, the teacher
  altogether, the co-occurrence term);
- ``river``: River's ``BiasedMF``; ``item_knn``: the online item-to-item co-occurrence kNN;
  ``popularity``: positive counts with exponential time decay; ``content``: teacher similarity.

Baseline settings are the ones ``bench/tune_baselines.py`` chose on development data (README).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.catalog import Catalog
from models.exceptions import UnknownModelError
from models.protocol import Recommender

if TYPE_CHECKING:
    from models.student import StudentConfig

__all__ = [
    "MODEL_NAMES",
    "NEEDS_TEACHER",
    "STUDENT_VARIANTS",
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
MODEL_NAMES = (*STUDENT_VARIANTS, "river", "item_knn", "popularity", "content")
#: the models that read teacher embeddings (a comparison encodes texts only if one is asked)
NEEDS_TEACHER = frozenset(
    {"student", "student_no_distill", "student_no_sequence", "student_no_cooc", "content"}
)


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
    pretrained checkpoint (:func:`models.transfer.load_pretrained`)."""
    from models.baselines import ContentSimilarity, Popularity, RiverMF
    from models.knn import ItemKNN
    from models.student import Student, StudentConfig

    cfg = config or StudentConfig()
    out: dict[str, Recommender] = {}
    for name in parse_models(",".join(names)):
        if name in STUDENT_VARIANTS:
            student = Student(
                catalog,
                config=replace(cfg, **STUDENT_VARIANTS[name]),
                threshold=threshold,
                seed=seed,
                name=name,
            )
            if init is not None:
                from models.transfer import load_pretrained

                load_pretrained(student, init)
            out[name] = student
        elif name == "river":
            out[name] = RiverMF(catalog, threshold=threshold, seed=seed)
        elif name == "item_knn":
            out[name] = ItemKNN(catalog, threshold=threshold, seed=seed)
        elif name == "popularity":
            out[name] = Popularity(catalog, threshold=threshold, seed=seed)
        else:
            out[name] = ContentSimilarity(catalog, threshold=threshold, seed=seed)
    return out
