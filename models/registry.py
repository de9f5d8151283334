"""Model names and how to build them on a shared catalog."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from models.catalog import Catalog
from models.exceptions import UnknownModelError
from models.protocol import Recommender

if TYPE_CHECKING:
    from models.student import StudentConfig

__all__ = ["MODEL_NAMES", "build_models", "parse_models"]

MODEL_NAMES = ("student", "student_no_distill", "river", "popularity", "content")


def parse_models(spec: str) -> list[str]:
    """``"student, river"`` -> ``["student", "river"]``; unknown names raise with the valid ones.

    >>> parse_models("student, river")
    ['student', 'river']
    >>> try:
    ...     parse_models("svd")
    ... except UnknownModelError as exc:
    ...     print(exc)
    unknown model 'svd': use student, student_no_distill, river, popularity or content
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
    from models.student import StudentConfig
    from models.trainer import Student

    cfg = config or StudentConfig()
    out: dict[str, Recommender] = {}
    for name in parse_models(",".join(names)):
        if name in ("student", "student_no_distill"):
            student = Student(
                catalog,
                config=replace(cfg, distill=name == "student"),
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
        elif name == "popularity":
            out[name] = Popularity(catalog, threshold=threshold, seed=seed)
        else:
            out[name] = ContentSimilarity(catalog, threshold=threshold, seed=seed)
    return out
