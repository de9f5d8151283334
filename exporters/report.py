"""Evaluation reports: ``report.json`` (the docs/design.md format), ``report.md`` and PNG plots.

Written by ``coldstream evaluate`` (and ``replay``) into one directory:

- ``report.json``: ``{"k", "events", "evaluated": {slice: n}, "models": {name: {"recall",
  "ndcg", "mrr": {slice: x}, "learn_events_per_s": x}}}``, nothing else;
- ``timeline.json``: per model, windows of evaluated events with their Recall/NDCG;
- ``report.md``: the tables, the run's facts and links to the plots;
- ``recall_over_time.png``, ``recall_by_slice.png``, ``ndcg_by_slice.png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

__all__ = ["SLICE_ORDER", "markdown_tables", "write_report"]

SLICE_ORDER = ("all", "0", "1-5", "6-20", ">20", "new_user")


def markdown_tables(report: Mapping[str, Any]) -> str:
    """Recall@K and NDCG@K tables (models x slices), then MRR and learning throughput."""
    k = report["k"]
    models: Mapping[str, Any] = report["models"]
    ev = report["evaluated"]
    head = "| model | " + " | ".join(SLICE_ORDER) + " |\n|---|" + "---:|" * len(SLICE_ORDER) + "\n"
    counts = "| *evaluated* | " + " | ".join(str(ev.get(s, 0)) for s in SLICE_ORDER) + " |\n"
    out = []
    for metric, label in (("recall", f"Recall@{k}"), ("ndcg", f"NDCG@{k}"), ("mrr", "MRR")):
        rows = "".join(
            f"| {name} | "
            + " | ".join(f"{m[metric].get(s, 0.0):.4f}" for s in SLICE_ORDER)
            + " |\n"
            for name, m in models.items()
        )
        out.append(f"### {label}\n\n{head}{rows}{counts}")
    speed = "".join(f"| {name} | {m['learn_events_per_s']:,.0f} |\n" for name, m in models.items())
    out.append("### Learning throughput\n\n| model | interactions/s |\n|---|---:|\n" + speed)
    return "\n".join(out)


def write_report(
    report: Mapping[str, Any],
    out_dir: Path,
    *,
    timeline: Mapping[str, list[dict[str, float]]] | None = None,
    facts: Mapping[str, Any] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write the report files into ``out_dir`` (created); returns their paths by name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    paths["json"].write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if timeline is not None:
        paths["timeline"] = out_dir / "timeline.json"
        paths["timeline"].write_bytes(orjson.dumps(timeline, option=orjson.OPT_INDENT_2))
    if plots:
        paths.update(_plots(report, timeline or {}, out_dir))
    lines = [f"# Prequential evaluation (K = {report['k']})", ""]
    for key, value in (facts or {}).items():
        lines.append(f"- {key}: {value}")
    lines += ["", markdown_tables(report), ""]
    for name in ("recall_over_time", "recall_by_slice", "ndcg_by_slice"):
        if name in paths:
            lines.append(f"![{name}]({paths[name].name})")
    paths["markdown"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def _plots(
    report: Mapping[str, Any], timeline: Mapping[str, list[dict[str, float]]], out_dir: Path
) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    k = report["k"]
    paths: dict[str, Path] = {}
    if any(timeline.values()):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name, points in timeline.items():
            if points:
                ax.plot([p["events"] for p in points], [p["recall"] for p in points], label=name)
        ax.set(xlabel="interactions seen", ylabel=f"Recall@{k} (window)", title="Recall over time")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # never over data
        ax.grid(alpha=0.3)
        paths["recall_over_time"] = out_dir / "recall_over_time.png"
        fig.savefig(paths["recall_over_time"], dpi=100, bbox_inches="tight")
        plt.close(fig)
    models = report["models"]
    x = np.arange(len(SLICE_ORDER))
    width = 0.8 / max(1, len(models))
    for metric in ("recall", "ndcg"):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for j, (name, m) in enumerate(models.items()):
            ax.bar(x + j * width, [m[metric].get(s, 0.0) for s in SLICE_ORDER], width, label=name)
        ax.set_xticks(x + width * (len(models) - 1) / 2, SLICE_ORDER)
        ax.set(
            xlabel="item interactions so far / new users",
            ylabel=f"{metric.upper()}@{k}",
            title=f"{metric.upper()}@{k} by slice",
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # never over data
        ax.grid(axis="y", alpha=0.3)
        key = f"{metric}_by_slice"
        paths[key] = out_dir / f"{key}.png"
        fig.savefig(paths[key], dpi=100, bbox_inches="tight")
        plt.close(fig)
    return paths
