"""The PromQL of the Grafana dashboard, for the tests and the dashboard picture: every query of
every panel, the metric names it reads, and the expression with Grafana's macros replaced,
ready for Prometheus's HTTP API (``GET /api/v1/query?query=...``).

>>> qs = queries()
>>> q = next(q for q in qs if "coldstream_events_total" in q.expr)
>>> sorted(q.metrics()), "$__" in q.promql()
(['coldstream_events_total'], False)
>>> q.promql(rate_interval="30s")
'sum by (topic, outcome) (rate(coldstream_events_total[30s]))'
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DASHBOARD",
    "Query",
    "load_dashboard",
    "metric_names",
    "panels",
    "queries",
    "start_prometheus",
]

DASHBOARD = Path(__file__).resolve().parents[1] / "docker" / "grafana" / "dashboards"
DASHBOARD = DASHBOARD / "coldstream.json"
_METRIC = re.compile(r"\bcoldstream_[A-Za-z0-9_]+")
_MACRO = re.compile(r"\$__(rate_interval|interval|range)\b")


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression (every coldstream one, as Prometheus stores it).

    >>> sorted(metric_names('histogram_quantile(0.5, sum by (le) (rate(coldstream_x_bucket[1m])))'))
    ['coldstream_x_bucket']
    """
    return set(_METRIC.findall(expr))


@dataclass(frozen=True)
class Query:
    panel: str  # the panel's title
    ref: str  # its refId (A, B, ...)
    expr: str  # as the dashboard has it, Grafana macros included
    datasource: dict[str, Any]

    def metrics(self) -> set[str]:
        return metric_names(self.expr)

    def promql(
        self, *, rate_interval: str = "1m", interval: str = "15s", time_range: str = "1h"
    ) -> str:
        """The expression with ``$__rate_interval``, ``$__interval`` and ``$__range`` replaced."""
        values = {"rate_interval": rate_interval, "interval": interval, "range": time_range}
        return _MACRO.sub(lambda m: values[m.group(1)], self.expr)


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows left out, panels inside collapsed rows included)."""
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def queries(path: Path = DASHBOARD) -> list[Query]:
    """Every PromQL query of the dashboard, in panel order."""
    out = []
    for p in panels(load_dashboard(path)):
        for t in p.get("targets", []):
            ds = t.get("datasource") or p.get("datasource") or {}
            out.append(Query(p.get("title", ""), t.get("refId", ""), t["expr"], ds))
    return out


def start_prometheus(
    binary: str, tmp: Path, targets: dict[str, int], scrape_s: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """A real Prometheus on a free loopback port scraping ``127.0.0.1:PORT`` of each job in
    ``targets`` every ``scrape_s`` seconds (config, data and log under ``tmp``); returns the
    process and its base URL."""
    from streams.broker import die_with_parent, free_port

    port = free_port()
    config = tmp / "prometheus.yml"
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs: [targets: ['127.0.0.1:{p}']]\n"
        for job, p in targets.items()
    )
    config.write_text(
        f"global:\n  scrape_interval: {scrape_s}s\n  evaluation_interval: {scrape_s}s\n"
        f"scrape_configs:\n{jobs}"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=(tmp / "prometheus.log").open("w"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    return proc, f"http://127.0.0.1:{port}"
