"""Fetch the dashboard's queries from Prometheus over a time range and draw them as the
dashboard lays them out (matplotlib): the picture part of ``bench/dashboard_picture.py``."""

from __future__ import annotations

import io
import math
import re
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.dashboards import DASHBOARD, Query, load_dashboard

__all__ = ["RATE_INTERVAL", "STEP_S", "Panel", "Series", "api", "draw", "fetch"]

STEP_S = 2  # seconds between the points of a range query
RATE_INTERVAL = "30s"  # what $__rate_interval stands for


def api(base: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    url = f"{base}{path}?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body: dict[str, Any] = orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400/422: the error is in the body
        body = orjson.loads(exc.read())
    return body


@dataclass
class Series:
    legend: str
    t: np.ndarray[Any, np.dtype[np.float64]]  # seconds since the start of the run
    v: np.ndarray[Any, np.dtype[np.float64]]


@dataclass
class Panel:
    title: str
    kind: str  # "timeseries", "stat", ...
    row: str  # the dashboard row it sits in
    grid: dict[str, int]  # gridPos: x, y, w, h
    defaults: dict[str, Any]  # fieldConfig.defaults
    series: list[Series] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def has_data(self) -> bool:
        return any(np.isfinite(s.v).any() for s in self.series)


def _dashboard_panels(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every data panel with the title of the row above it (rows of collapsed panels too)."""
    out: list[tuple[str, dict[str, Any]]] = []
    row = ""
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            row = p.get("title", "")
            out.extend((row, q) for q in p.get("panels", []))
        else:
            out.append((row, p))
    return out


def _legend(fmt: str, labels: dict[str, str]) -> str:
    if not fmt:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return labels.get("__name__", "") + (f"{{{inner}}}" if inner else "") or "value"
    return re.sub(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def fetch(prom: str, start: float, end: float, path: Path = DASHBOARD) -> list[Panel]:
    """Every panel of the dashboard with its queries' series over ``[start, end]``."""
    out = []
    for i, (row, p) in enumerate(_dashboard_panels(load_dashboard(path))):
        grid = p.get("gridPos") or {"x": 8 * (i % 3), "y": 8 * (i // 3), "w": 8, "h": 8}
        defaults = (p.get("fieldConfig") or {}).get("defaults") or {}
        panel = Panel(p.get("title", ""), p.get("type", "timeseries"), row, grid, defaults)
        for target in p.get("targets", []):
            ds = target.get("datasource") or p.get("datasource") or {}
            q = Query(panel.title, target.get("refId", ""), target["expr"], ds)
            promql = q.promql(rate_interval=RATE_INTERVAL, interval="5s", time_range="5m")
            params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}"}
            body = api(prom, "/api/v1/query_range", {**params, "step": f"{STEP_S}s"})
            if body.get("status") != "success":
                panel.errors.append(f"{q.ref}: {body.get('error', body)}")
                continue
            for r in body["data"]["result"]:
                t = np.array([float(x[0]) - start for x in r["values"]])
                v = np.array([float(x[1]) for x in r["values"]])  # "NaN", "+Inf" parse
                v[~np.isfinite(v)] = np.nan
                panel.series.append(
                    Series(_legend(target.get("legendFormat", ""), r["metric"]), t, v)
                )
        out.append(panel)
    return out


_UNIT_LABEL = {"ops": "per second", "reqps": "requests/s", "s": "seconds", "percentunit": ""}


def _stat_text(value: float, defaults: dict[str, Any], start: float) -> str:
    for m in defaults.get("mappings", []):
        if m.get("type") == "value":
            for key, spec in (m.get("options") or {}).items():
                try:
                    if float(key) == value:
                        return str(spec.get("text", key))
                except ValueError:
                    pass
    unit = defaults.get("unit", "short")
    if unit == "dateTimeAsIso":  # epoch ms; here event time is wall-clock time
        when = datetime.fromtimestamp(value / 1000, tz=UTC)
        return f"{when:%H:%M:%S}\nt = {value / 1000 - start:.0f} s"
    if unit == "s":
        return f"{value:.3g} s" if value < 100 else f"{value:,.0f} s"
    if unit == "percentunit":
        return f"{100 * value:.1f} %"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.3g}"


def _draw_stat(ax: Any, panel: Panel, colors: list[Any], start: float) -> None:
    """Each series' last value in big text over its sparkline, in a grid of cells."""
    ax.set_axis_off()
    shown = [s for s in panel.series if np.isfinite(s.v).any()]
    n = len(shown)
    cols = n if n <= 4 else math.ceil(n / 2)
    rows = math.ceil(n / cols)
    size, label_size = (24, 9) if n <= 2 else (15, 8) if n <= 4 else (9, 6.5)
    sparkline = panel.defaults.get("unit") != "dateTimeAsIso"  # 0 then 1.7e12: no shape
    for k, s in enumerate(shown):
        c, r = k % cols, k // cols
        cell = ax.inset_axes((c / cols, 1 - (r + 1) / rows, 1 / cols, 1 / rows))
        cell.set_axis_off()
        color = colors[k % len(colors)]
        ok = np.isfinite(s.v)
        if sparkline:
            lo, hi = s.v[ok].min(), s.v[ok].max()
            cell.fill_between(s.t[ok], s.v[ok], lo, color=color, alpha=0.12, lw=0)
            cell.plot(s.t[ok], s.v[ok], color=color, alpha=0.45, lw=1)
            cell.set_ylim(lo, hi + 1.2 * (hi - lo) + 1e-9)  # the line under the text
        cell.text(
            0.5,
            0.5 if n <= 4 else 0.4,
            _stat_text(float(s.v[ok][-1]), panel.defaults, start),
            ha="center",
            va="center",
            fontsize=size,
            fontweight="bold",
            color=color,
            transform=cell.transAxes,
        )
        chars = int(16 * panel.grid["w"] / 24 / cols * 72 / (0.6 * label_size))
        label = textwrap.fill(s.legend.replace("_", " ") if n > 4 else s.legend, max(chars, 8))
        cell.text(
            0.5, 0.97, label, ha="center", va="top", fontsize=label_size, transform=cell.transAxes
        )


def _draw_timeseries(ax: Any, panel: Panel, colors: list[Any]) -> None:
    custom = panel.defaults.get("custom") or {}
    shown = [s for s in panel.series if np.isfinite(s.v).any()]
    bottom = np.zeros(len(shown[0].t)) if shown else np.zeros(0)
    for k, s in enumerate(shown):
        color = colors[k % len(colors)]
        if custom.get("drawStyle") == "bars" and len(s.t) == len(bottom):  # stacked bars
            v = np.nan_to_num(s.v)
            ax.bar(s.t, v, width=0.8 * STEP_S, bottom=bottom, color=color, label=s.legend)
            bottom = bottom + v
        else:
            ax.plot(s.t, s.v, color=color, lw=1.3, label=s.legend)
    if (custom.get("thresholdsStyle") or {}).get("mode", "off") != "off":
        for step in (panel.defaults.get("thresholds") or {}).get("steps", [])[1:]:
            ax.axhline(step["value"], color=step.get("color", "red"), ls="--", lw=1)
    unit = panel.defaults.get("unit", "short")
    if unit == "percentunit":
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if "min" in panel.defaults:
        ax.set_ylim(bottom=panel.defaults["min"])
    if _UNIT_LABEL.get(unit):
        ax.set_ylabel(_UNIT_LABEL[unit], fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)
    if len(shown) <= 5:
        ax.legend(fontsize=7, loc="best", framealpha=0.7, borderaxespad=0.3)
    else:  # below the plot, as Grafana lists them
        width = panel.grid["w"]
        ax.legend(
            fontsize=6.5,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.08),
            ncol=max(1, min(len(shown), width // 3 + 1)),
            frameon=False,
            handlelength=1.2,
            columnspacing=1.0,
        )


def draw(panels: list[Panel], start: float, end: float, out: Path, dpi: int = 80) -> None:
    """One PNG: each band of panels (same gridPos y) a row of subplots, spans as in Grafana."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = sorted({p.grid["y"] for p in panels})
    heights = [max(p.grid["h"] for p in panels if p.grid["y"] == y) for y in bands]
    fig = plt.figure(figsize=(16, 0.34 * sum(heights) + 0.35 * len(bands)), layout="constrained")
    subfigs = fig.subfigures(len(bands), 1, height_ratios=heights, squeeze=False)[:, 0]
    tab10 = plt.get_cmap("tab10")
    colors = [tab10(i) for i in range(10)]
    seen_rows: set[str] = set()
    for sub, y in zip(subfigs, bands, strict=True):
        gs = sub.add_gridspec(1, 24)
        band = sorted((p for p in panels if p.grid["y"] == y), key=lambda p: p.grid["x"])
        row = band[0].row
        if row and row not in seen_rows:
            seen_rows.add(row)
            sub.suptitle(row, x=0.005, ha="left", fontsize=13, fontweight="bold")
        for p in band:
            ax = sub.add_subplot(gs[0, p.grid["x"] : p.grid["x"] + p.grid["w"]])
            ax.set_title(p.title, fontsize=10)
            ax.set_xlim(-STEP_S, end - start + STEP_S)
            if p.errors and not p.has_data():
                ax.text(
                    0.5,
                    0.5,
                    "query error:\n" + "\n".join(p.errors)[:300],
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="firebrick",
                    wrap=True,
                    transform=ax.transAxes,
                )
                ax.set_axis_off()
            elif not p.has_data():
                ax.text(
                    0.5,
                    0.5,
                    "no data",
                    ha="center",
                    va="center",
                    fontsize=16,
                    color="grey",
                    transform=ax.transAxes,
                )
                ax.set_xticks([])
                ax.set_yticks([])
            elif p.kind in ("stat", "gauge"):
                _draw_stat(ax, p, colors, start)
            else:
                _draw_timeseries(ax, p, colors)
    when = datetime.fromtimestamp(start, tz=UTC)
    fig.suptitle(
        f"coldstream dashboard: its PromQL plotted from Prometheus, {end - start:.0f} s run "
        f"from {when:%Y-%m-%d %H:%M:%S} UTC ($__rate_interval = {RATE_INTERVAL}, step {STEP_S} s)",
        fontsize=11,
    )
    fig.supxlabel("seconds since the start of the run", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi)
    plt.close(fig)
    from PIL import Image  # matplotlib's own dependency

    # a 256-colour palette: the same picture at about a third of the bytes
    image = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)


# -- main --------------------------------------------------------------------------------------
