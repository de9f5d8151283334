"""What the benchmarks share: printing a result table and keeping it as JSON, and reading the
first events of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from core.records import Interaction, Record
from streams.datasets import open_dataset
from streams.order import in_event_order

__all__ = ["first_events", "show"]


def show(results: dict[str, Any], json_path: Path | None = None) -> None:
    """Print ``results`` one per line (floats with separators, small ones with three
    significant digits, so 1.4e-06 does not read 0.00); write them to ``json_path``."""
    width = max(len(k) for k in results) + 2
    for key, value in results.items():
        if isinstance(value, float):
            text = f"{value:.3g}" if 0 < abs(value) < 0.1 else f"{value:,.2f}"
        else:
            text = str(value)
        print(f"{key:>{width}}: {text}")
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


def first_events(path: Path, events: int | None) -> tuple[list[Record], float | None]:
    """A dataset in event order up to its first ``events`` interactions (all: ``None``), and
    the positive threshold ``coldstream evaluate`` would use (4.0 for ratings)."""
    ds = open_dataset(path)
    kept, n = [], 0
    for rec in in_event_order(list(ds.records())):
        if isinstance(rec, Interaction):
            n += 1
            if events is not None and n > events:
                break
        kept.append(rec)
    return kept, (4.0 if ds.feedback == "explicit" else None)
