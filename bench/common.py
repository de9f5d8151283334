"""What the benchmarks share: printing a result table and keeping it as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

__all__ = ["show"]


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
