"""How much of a difference between two models is the seed: the prequential comparison of
``coldstream evaluate`` repeated over several seeds, reported as mean and standard deviation.

    python -m bench.bench_seeds DATASET [--models student,student_no_distill] [--seeds 0,1,2]
        [--teacher NAME] [--events N] [--json out.json]

The teacher encodes the texts once; every model of every seed ranks every positive of the same
stream (one :class:`~models.evaluation.Prequential` loop, so the events are identical).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import first_events, show
from coldstream.commands.compare import embed
from core.threads import limit_threads
from models.catalog import Catalog
from models.evaluation import SLICES, Prequential, run_prequential
from models.registry import build_models, parse_models


def run(
    path: Path, names: list[str], seeds: list[int], teacher: str | None, events: int | None
) -> dict[str, str]:
    records, threshold = first_events(path, events)
    embeddings, dim = embed(records, teacher)
    catalog = Catalog(dim)
    models = {}
    for seed in seeds:
        for name, model in build_models(names, catalog, threshold=threshold, seed=seed).items():
            models[f"{name}#{seed}"] = model
    with limit_threads(1):
        result = run_prequential(
            records, Prequential(models, catalog, k=20, threshold=threshold), embeddings
        )
    out = {"evaluated": " ".join(f"{s} {result.evaluated[s]:,}" for s in SLICES)}
    for metric in ("recall", "ndcg"):
        for name in names:
            values = np.array(
                [[result.metrics[f"{name}#{s}"][metric][sl] for sl in SLICES] for s in seeds]
            )
            pairs = zip(values.mean(0), values.std(0), strict=True)
            cells = (f"{m:.3f}±{sd:.3f}" for m, sd in pairs)
            out[f"{metric} {name}"] = "  ".join(cells)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--models", default="student,student_no_distill")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--teacher", default=None, help="default: the packaged MiniLM")
    parser.add_argument("--events", type=int, default=None, help="first N interactions only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"slices: {', '.join(SLICES)}; mean±std over seeds {seeds}")
    show(run(args.dataset, parse_models(args.models), seeds, args.teacher, args.events), args.json)


if __name__ == "__main__":
    main()
