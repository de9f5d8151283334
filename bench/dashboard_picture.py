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
At the end every panel's PromQL (``bench/dashboards.py``, with
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
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaProducer

from bench.dashboard_render import Panel, api, draw, fetch
from bench.dashboards import start_prometheus
from coldstream.children import Child
from core.records import Record, to_json
from core.settings import Settings
from streams.broker import EmbeddedBroker
from streams.order import in_event_order
from streams.synthetic import SyntheticConfig, SyntheticDataset, generate
from streams.topics import ensure_topics

SCRAPE_S = 1
SETTLE_S = 32.0  # the rate interval and a scrape: the start-up out of the run's windows
PREFIX = "picture"


# -- the stack ---------------------------------------------------------------------------------
def _wait_for_targets(prom: str, jobs: set[str], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = api(prom, "/api/v1/query", {"query": "up"})["data"]["result"]
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
            applied = float(api(prom, "/api/v1/query", query)["data"]["result"][0]["value"][1])
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
