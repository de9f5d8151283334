"""What the benchmarks share: printing a result table and keeping it as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

__all__ = ["show"]


def show(results: dict[str, Any], json_path: Path | None = None) -> None:
    """Print ``results`` one per line (floats with separators); write them to ``json_path``."""
    width = max(len(k) for k in results) + 2
    for key, value in results.items():
        text = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"{key:>{width}}: {text}")
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
