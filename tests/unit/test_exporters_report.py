"""Evaluation reports: the exact report.json of docs/design.md, the Markdown tables, the plots."""

from __future__ import annotations

from pathlib import Path

import orjson

from exporters.report import SLICE_ORDER, markdown_tables, write_report

REPORT = {
    "k": 20,
    "events": 10,
    "evaluated": dict.fromkeys(SLICE_ORDER, 2),
    "models": {
        name: {
            "recall": {s: 0.5 for s in SLICE_ORDER},
            "ndcg": {s: 0.25 for s in SLICE_ORDER},
            "mrr": {s: 0.125 for s in SLICE_ORDER},
            "learn_events_per_s": 1234.0,
        }
        for name in ("student", "river")
    },
}


def test_write_report(tmp_path: Path) -> None:
    timeline = {
        "student": [{"events": 5.0, "evaluated": 1.0, "recall": 1.0, "ndcg": 1.0}],
        "river": [],
    }
    paths = write_report(REPORT, tmp_path / "r", timeline=timeline, facts={"source": "x"})
    assert orjson.loads(paths["json"].read_bytes()) == REPORT
    for key in ("recall_over_time", "recall_by_slice", "ndcg_by_slice"):
        assert paths[key].read_bytes()[:4] == b"\x89PNG"
    md = paths["markdown"].read_text()
    assert "- source: x" in md and "![recall_by_slice](recall_by_slice.png)" in md


def test_markdown_tables() -> None:
    md = markdown_tables(REPORT)
    assert (
        "| student | 0.5000 | 0.5000 |" in md and "### NDCG@20" in md and "| river | 1,234 |" in md
    )
