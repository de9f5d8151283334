"""Tune the practitioner's baselines honestly: a small grid on development data.

The grid is what a practitioner would try first: the item-kNN's window of recent items and
whether low ratings count as co-occurrences, and popularity's half-life. Each setting runs the
prequential protocol of ``coldstream evaluate`` (Recall@20, every positive ranked against the
full catalog) on each development stream; the setting with the best Recall@20 (``all``) on
the first one (give a real stream first: a generator's structure is ours to choose) becomes
the default in :mod:`models.registry`; the others are shown for information. Development
streams are never the ones the README's tables report (there: MovieLens 100K and the
generated stream of seed 0).

    python -m bench.tune_baselines DEV [DEV ...] [--events 100000] [--json out.json]

DEV is any dataset ``coldstream evaluate`` reads (a MovieLens directory, a generated jsonl
directory, ...); ``--events`` keeps the first N interactions of each. No teacher is needed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import first_events, show
from models.baselines import DAY_MS, Popularity
from models.catalog import Catalog
from models.evaluation import Prequential, run_prequential
from models.knn import ItemKNN
from models.protocol import Recommender

Factory = Callable[[Catalog, float | None], Recommender]


def grid() -> dict[str, Factory]:
    out: dict[str, Factory] = {}
    for window in (5, 10, 20, 50):
        for positives_only in (True, False):
            name = f"item_knn window={window} {'positives' if positives_only else 'all'}"
            out[name] = lambda c, t, w=window, p=positives_only: ItemKNN(
                c, threshold=t, window=w, positives_only=p
            )
    for days in (1, 7, 30, 180, None):
        half_life = None if days is None else days * DAY_MS
        name = f"popularity half-life={'none' if days is None else f'{days}d'}"
        out[name] = lambda c, t, h=half_life: Popularity(c, threshold=t, half_life_ms=h)
    return out


def tune(paths: list[Path], events: int) -> dict[str, Any]:
    factories = grid()
    recall: dict[str, list[float]] = {name: [] for name in factories}
    for path in paths:
        records, threshold = first_events(path, events)
        catalog = Catalog(1)  # the baselines read no teacher embedding
        models = {name: f(catalog, threshold) for name, f in factories.items()}
        evaluator = Prequential(models, catalog, k=20, threshold=threshold)
        result = run_prequential(records, evaluator, {})
        for name, m in result.metrics.items():
            recall[name].append(m["recall"]["all"])
        print(f"{path}: {result.events:,} interactions, {result.evaluated['all']:,} ranked")
    table: dict[str, Any] = {
        name: " ".join(f"{x:.3f}" for x in values) for name, values in recall.items()
    }
    for family in ("item_knn", "popularity"):
        best = max((n for n in recall if n.startswith(family)), key=lambda n: recall[n][0])
        table[f"best {family} on {paths[0].name}"] = best
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dev", nargs="+", type=Path, help="development datasets")
    parser.add_argument("--events", type=int, default=100_000, help="interactions of each")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    show(tune(args.dev, args.events), args.json)


if __name__ == "__main__":
    main()
