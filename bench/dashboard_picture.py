"""A picture of the Grafana dashboard's panels: the same queries plotted from Prometheus's API.

No Grafana runs here, so this draws what ``docker/grafana/dashboards/coldstream.json`` would
show. It starts the embedded broker, ``coldstream worker --role all``, ``coldstream serve`` and a
real Prometheus (``prometheus`` from Debian's package, scraping both every second). It sends
the items and user profiles that exist at the dataset's start and waits until the worker has
learned them and a snapshot is served (the teacher encodes each text once). Then it streams
the rest of a generated dataset (``drift_at=0.5``) into the topics at a steady live rate (as
its event times are spread, each message stamped with the current wall-clock time, items before
their first interaction), plus a few poison messages for the dead-letter panels, while a client
sends ``/recommend``, ``/similar``, ``/score`` and a few malformed requests to the inference
worker. The run (``--seconds``) starts one rate interval after the stream, so its windows hold
the steady state rather than the start-up, and the stream ends at 80 % of the run (the last
fifth shows the worker idle, the snapshot ageing).
At the end every panel's PromQL (``tests/dashboard_support.py``, with
``$__rate_interval`` = 30s) goes to ``/api/v1/query_range`` over the run (step 2 s) and each
panel becomes a matplotlib subplot laid out as the dashboard's grid: time series as lines
(bars where the panel draws bars, threshold lines where it has them), stat panels as their
last value in big text over a sparkline.

Run: ``python -m bench.dashboard_picture --seconds 150 --out docs/dashboard.png``
(``--teacher hashing`` for the tiny teacher where MiniLM does not keep up).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import io
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaProducer

from coldstream.children import Child
from core.records import Record, to_json
from core.settings import Settings
from streams.broker import EmbeddedBroker
from streams.order import in_event_order
from streams.synthetic import SyntheticConfig, SyntheticDataset, generate
from streams.topics import ensure_topics
from tests.dashboard_support import DASHBOARD, Query, load_dashboard, start_prometheus

SCRAPE_S = 1
STEP_S = 2
RATE_INTERVAL = "30s"
SETTLE_S = 32.0  # the rate interval and a scrape: the start-up out of the run's windows
PREFIX = "picture"


# -- the stack ---------------------------------------------------------------------------------
def _api(base: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    url = f"{base}{path}?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body: dict[str, Any] = orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400/422: the error is in the body
        body = orjson.loads(exc.read())
    return body


def _wait_for_targets(prom: str, jobs: set[str], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = _api(prom, "/api/v1/query", {"query": "up"})["data"]["result"]
            if {r["metric"]["job"] for r in result if r["value"][1] == "1"} >= jobs:
                return
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"Prometheus did not see {sorted(jobs)} up within {timeout:.0f} s")


def _warm_up(
    settings: Settings, records: list[Record], prom: str, serve_port: int, timeout: float = 300.0
) -> None:
    """Send the catalog and profiles that exist at the dataset's start (stamped now) and wait
    until the worker has applied them (the teacher encodes each text once) and a snapshot is
    served, so the run shows the steady state rather than the start-up backlog."""
    producer = KafkaProducer(**settings.kafka_python_config(), linger_ms=5)
    for rec in records:
        now_ms = int(time.time() * 1000)
        value = to_json(dataclasses.replace(rec, ts=now_ms))
        producer.send(settings.topics.for_kind(rec.kind), value, key=rec.key.encode())
    producer.flush()
    producer.close(timeout=10)
    query = {"query": 'sum(coldstream_events_total{outcome="applied"})'}
    deadline = time.monotonic() + timeout
    applied, ready = 0.0, False
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, KeyError, ValueError, IndexError):
            applied = float(_api(prom, "/api/v1/query", query)["data"]["result"][0]["value"][1])
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", serve_port, timeout=5)
            conn.request("GET", "/readyz")
            ready = conn.getresponse().status == 200
            conn.close()
        if applied >= len(records) and ready:
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"warm-up: {applied:.0f} of {len(records)} records applied, snapshot served: {ready}, "
        f"after {timeout:.0f} s"
    )


# -- the traffic -------------------------------------------------------------------------------
@dataclass
class Counts:
    sent: int = 0
    poison: int = 0
    requests: dict[int, int] = field(default_factory=dict)  # HTTP status -> answers


def _produce(
    settings: Settings,
    records: list[Record],
    stream_s: float,
    stop: threading.Event,
    counts: Counts,
) -> None:
    """Send ``records`` (in event order) spread over ``stream_s`` seconds as their event times
    are spread, each stamped with the wall-clock time it is sent; poison now and then."""
    topics = settings.topics
    producer = KafkaProducer(**settings.kafka_python_config(), linger_ms=5)
    ts0, ts1 = records[0].ts, records[-1].ts
    span = max(ts1 - ts0, 1)
    poison_at = [stream_s * f for f in (0.1, 0.3, 0.5, 0.7, 0.9)]
    t0 = time.monotonic()
    try:
        for rec in records:
            due = t0 + (rec.ts - ts0) / span * stream_s
            while (wait := due - time.monotonic()) > 0:
                if stop.wait(min(wait, 0.05)):
                    return
            if poison_at and time.monotonic() - t0 >= poison_at[0]:
                poison_at.pop(0)
                for bad in (b"not json", b"not json", b'{"user_id": "u"}'):
                    producer.send(topics.interactions, bad)
                    counts.poison += 1
            now_ms = int(time.time() * 1000)
            value = to_json(dataclasses.replace(rec, ts=now_ms))
            producer.send(
                topics.for_kind(rec.kind), value, key=rec.key.encode(), timestamp_ms=now_ms
            )
            counts.sent += 1
        producer.flush()
    finally:
        producer.close(timeout=10)


def _clients(port: int, ds: SyntheticDataset, stop: threading.Event, counts: Counts) -> None:
    """Requests to the inference worker, ~25/s: mostly ``/recommend``, some ``/similar``,
    ``/score`` and batch ``POST /recommend``, and a few malformed ones (4xx)."""
    rng = np.random.default_rng(3)
    users = sorted({i.user_id for i in ds.interactions})
    items = [i.item_id for i in ds.items]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def pick(xs: list[str], n: int = 1) -> list[str]:
        return [xs[int(j)] for j in rng.integers(len(xs), size=n)]

    n = 0
    while not stop.wait(0.04):
        n += 1
        body: bytes | None = None
        if n % 29 == 0:
            method, path = "GET", "/recommend?user_id=u1&k=0"  # 400
        elif n % 37 == 0:
            method, path = "GET", "/similar?k=5"  # 400: no item_id
        elif n % 5 == 0:
            method, path = "GET", f"/similar?item_id={pick(items)[0]}&k=10"
        elif n % 7 == 0:
            method, path = "POST", "/score"
            body = orjson.dumps({"user_id": pick(users)[0], "item_ids": pick(items, 5)})
        elif n % 11 == 0:
            method, path = "POST", "/recommend"
            body = orjson.dumps({"user_ids": pick(users, 8), "k": 20})
        else:
            method, path = "GET", f"/recommend?user_id={pick(users)[0]}&k=20"
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            resp.read()
            counts.requests[resp.status] = counts.requests.get(resp.status, 0) + 1
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            stop.wait(0.2)
    conn.close()


# -- the panels --------------------------------------------------------------------------------
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
            body = _api(prom, "/api/v1/query_range", {**params, "step": f"{STEP_S}s"})
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
def run(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[list[Panel], float, float]:
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(prometheus).exists():
        raise SystemExit("prometheus is not installed (apt-get install prometheus)")
    ds = generate(
        SyntheticConfig(
            users=args.users, items=args.items, events=args.events, seed=args.seed, drift_at=0.5
        )
    )
    records = in_event_order([*ds.items, *ds.users, *ds.interactions])
    with (
        tempfile.TemporaryDirectory(prefix="coldstream-picture-") as tmp_s,
        EmbeddedBroker() as broker,
    ):
        tmp = Path(tmp_s)
        settings = Settings.load(broker=broker.bootstrap, topic_prefix=PREFIX, partitions=2)
        ensure_topics(settings)
        env = {
            **os.environ,
            "COLDSTREAM_BROKER": broker.bootstrap,
            "COLDSTREAM_TOPIC_PREFIX": PREFIX,
            "COLDSTREAM_SNAPSHOT_DIR": str(tmp / "snapshots"),
            "COLDSTREAM_CHECKPOINT_DIR": str(tmp / "checkpoints"),
            "COLDSTREAM_SNAPSHOT_INTERVAL_S": "2",
        }
        if args.teacher:
            env["COLDSTREAM_TEACHER_MODEL"] = args.teacher
        else:
            env.pop("COLDSTREAM_TEACHER_MODEL", None)
        children: list[Child] = []
        prom_proc: subprocess.Popen[bytes] | None = None
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            worker = Child(
                "worker",
                ["worker", "--role", "all", "--metrics-port", "0"],
                env,
                tmp / "worker.log",
            )
            children.append(worker)
            serve = Child(
                "serve",
                ["serve", "--host", "127.0.0.1", "--port", "0", "--threads", "1"],
                env,
                tmp / "serve.log",
            )
            children.append(serve)
            worker_port, serve_port = worker.port(), serve.port()
            prom_proc, prom = start_prometheus(
                prometheus, tmp, {"worker": worker_port, "serve": serve_port}, SCRAPE_S
            )
            _wait_for_targets(prom, {"worker", "serve"})
            warm = [r for r in records if r.ts == records[0].ts]
            say(
                f"stack up (worker :{worker_port}, serve :{serve_port}, {prom}); warm-up: "
                f"{len(warm)} items and profiles of the dataset's start"
            )
            _warm_up(settings, warm, prom, serve_port)
            counts = Counts()
            settle = SETTLE_S if args.settle is None else args.settle
            stream_s = settle + 0.8 * args.seconds
            threads = [
                threading.Thread(
                    target=_produce,
                    args=(settings, records[len(warm) :], stream_s, stop, counts),
                    daemon=True,
                ),
                threading.Thread(target=_clients, args=(serve_port, ds, stop, counts), daemon=True),
            ]
            for t in threads:
                t.start()
            say(f"warm-up done; streaming and requests for {settle:.0f} s before the run starts")
            time.sleep(settle)  # the start-up out of the run's rate windows: a steady state
            start = time.time()
            say("the run starts")
            end = start + args.seconds
            while (left := end - time.time()) > 0:
                time.sleep(min(left, 10.0))
                for p, name in (
                    (worker.proc, "worker"),
                    (serve.proc, "serve"),
                    (prom_proc, "prometheus"),
                ):
                    if p.poll() is not None:
                        raise RuntimeError(f"{name} exited with {p.returncode}")
                say(
                    f"t = {time.time() - start:5.0f} s: {counts.sent:,} records sent, "
                    f"{counts.poison} poison, requests by status {counts.requests}"
                )
            stop.set()
            for t in threads:
                t.join(15)
            time.sleep(2 * SCRAPE_S + 1)  # the last scrape in
            panels = fetch(prom, start, end)
        except Exception:
            for name in ("worker.log", "serve.log", "prometheus.log"):
                log = tmp / name
                if log.exists():
                    print(f"--- {name} (tail)\n{log.read_text()[-1500:]}", file=sys.stderr)
            raise
        finally:
            stop.set()
            if prom_proc is not None:
                prom_proc.terminate()
            for child in children:
                child.stop()
            if prom_proc is not None:
                prom_proc.wait(20)
    return panels, start, end


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150.0, help="length of the run")
    ap.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    ap.add_argument("--events", type=int, default=20_000, help="interactions streamed")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--teacher", default=None, help="COLDSTREAM_TEACHER_MODEL (default: MiniLM)")
    ap.add_argument("--dpi", type=int, default=80)
    ap.add_argument(
        "--settle", type=float, default=None, help=f"seconds between warm-up and run ({SETTLE_S})"
    )
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks run
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even if started ignoring it

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    panels, start, end = run(args, say)
    draw(panels, start, end, args.out, dpi=args.dpi)
    empty = [p.title for p in panels if not p.has_data()]
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB")
    print(f"{len(panels) - len(empty)} of {len(panels)} panels had data")
    for title in empty:
        errors = next(p.errors for p in panels if p.title == title)
        print(f"  no data: {title}" + (f" ({'; '.join(errors)})" if errors else ""))
    print(f"took {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
