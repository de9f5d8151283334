"""CPU of idle processes: a ``coldstream worker`` that has read everything, and ``coldstream
serve`` with a snapshot loaded and no requests, each measured from ``/proc/PID/stat`` (user +
system time) over the same window.

    python -m bench.bench_idle [--seconds 30] [--teacher NAME] [--json FILE]

It starts the embedded broker, loads a small generated stream, starts the worker (default
teacher unless ``--teacher``) and ``serve`` as real processes, waits until the worker has
applied every interaction and ``serve`` is ready, lets both settle for 5 s, then reads their
CPU time at the start and the end of the window. Result: percent of one core.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.common import show
from coldstream.children import Child, Http
from core.settings import Settings
from streams.broker import EmbeddedBroker
from streams.datasets import open_dataset
from streams.load import publish_dataset
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.topics import ensure_topics

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measuring window")
    ap.add_argument("--teacher", default=None, help="teacher of the worker (default: MiniLM)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        root = Path(tmp)
        settings = Settings.load(broker=broker.bootstrap, topic_prefix="idle")
        ensure_topics(settings)
        write_jsonl(generate(SyntheticConfig(users=200, items=300, events=5000)), root / "d")
        publish_dataset(open_dataset(root / "d"), settings)
        env = {
            **os.environ,
            "COLDSTREAM_BROKER": settings.broker,
            "COLDSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "COLDSTREAM_CHECKPOINT_DIR": str(root / "ckpt"),
            "COLDSTREAM_SNAPSHOT_DIR": str(root / "snapshots"),
            "COLDSTREAM_SNAPSHOT_INTERVAL_S": "2",
        }
        teacher = ["--teacher", args.teacher] if args.teacher else []
        worker = Child("worker", ["worker", "--metrics-port", "0", *teacher], env, root / "w.log")
        serve = None
        try:
            metrics = Http(worker.port())
            deadline = time.monotonic() + 300
            while metrics.metrics().get(("coldstream_model_events", ()), 0) < 5000:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the worker did not apply the stream; see {worker.log}")
                time.sleep(0.5)
            serve = Child("serve", ["serve", "--port", "0", "--host", "127.0.0.1"], env, root / "s")
            http = Http(serve.port())
            while http.call("GET", "/readyz")[0] != 200:
                time.sleep(0.2)
            time.sleep(5.0)  # the last snapshot, the first requests' warm-up
            t0, w0, s0 = time.monotonic(), cpu_seconds(worker.pid), cpu_seconds(serve.pid)
            time.sleep(args.seconds)
            took = time.monotonic() - t0
            w1, s1 = cpu_seconds(worker.pid), cpu_seconds(serve.pid)
        finally:
            worker.stop()
            if serve is not None:
                serve.stop()
    show(
        {
            "window_s": took,
            "idle_worker_cpu_percent_of_a_core": 100 * (w1 - w0) / took,
            "idle_serve_cpu_percent_of_a_core": 100 * (s1 - s0) / took,
            "worker_teacher": args.teacher or "default (all-MiniLM-L6-v2)",
        },
        args.json,
    )


if __name__ == "__main__":
    main()
