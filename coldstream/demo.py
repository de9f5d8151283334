"""``coldstream demo``: the whole system on the embedded broker, in one command.

1. start the embedded broker (or use ``--broker``, with topics of a prefix of their own);
2. generate a dataset;
3. start ``coldstream worker --role all`` (student, River, item-kNN, popularity in one process;
   snapshots every 2 s) and ``coldstream serve``, as child processes;
4. stream the events in, with a live display: events published, read and learned, with rates
   over the last seconds, the rolling Recall@20 of the student vs River (all and brand-new
   items) and how many ranked positives it covers, the snapshot version being served;
5. ask the inference worker for a few users, announce a brand-new item and show it being
   served (and where it ranks) seconds later;
6. replay the topics into the prequential comparison and write the report (JSON, Markdown,
   PNG plots).

Every child process is stopped at the end, on errors and on Ctrl-C (and, through
``PR_SET_PDEATHSIG``, even if the demo itself is killed). Logs of the children are kept in
``<out>/run/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.live import Live
from rich.table import Table

from coldstream.children import Child, Http
from coldstream.console import err, out, progress_bar
from core.errors import ColdstreamError
from core.settings import Settings

__all__ = ["DemoResult", "run_demo"]

STEPS = 6


@dataclass
class DemoResult:
    published: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    recall: dict[str, float] = field(default_factory=dict)  # "student/all" -> value
    ranked: dict[str, int] = field(default_factory=dict)  # positives the recall covers, per key
    version: int = 0
    recommendations: dict[str, list[str]] = field(default_factory=dict)
    new_item: str = ""
    new_item_served_s: float | None = None
    new_item_rank: int | None = None  # 1-based rank for the user it was made for
    report_dir: Path | None = None
    seconds: float = 0.0
    pids: list[int] = field(default_factory=list)  # of the child processes (all stopped)


def run_demo(
    *,
    events: int,
    out_dir: Path,
    report_dir: Path,
    broker: str | None = None,
    seed: int = 7,
) -> DemoResult:
    """Run the demo end to end; every child process is stopped when it returns or raises."""
    from streams.broker import EmbeddedBroker
    from streams.synthetic import SyntheticConfig, generate, write_jsonl
    from streams.topics import ensure_topics

    started = time.monotonic()
    result = DemoResult()
    run = out_dir / "run"
    with contextlib.ExitStack() as stack:
        if broker is None:
            embedded = stack.enter_context(EmbeddedBroker())
            broker = embedded.bootstrap
            prefix = "coldstream"
            err.print(f"[bold]1/{STEPS}[/] embedded broker on {broker}")
        else:  # a real cluster may hold older demo topics: this run gets its own
            prefix = f"coldstream-demo-{int(time.time())}"
            err.print(f"[bold]1/{STEPS}[/] using the broker at {broker}, topics {prefix}.*")
        settings = Settings.load(broker=broker, topic_prefix=prefix)
        ensure_topics(settings)

        users, items = max(50, events // 40), max(30, events // 70)
        config = SyntheticConfig(users=users, items=items, events=events, seed=seed)
        with progress_bar(f"[bold]2/{STEPS}[/] generating", events) as advance:
            dataset = generate(config, progress=advance)
        write_jsonl(dataset, out_dir)

        shutil.rmtree(run, ignore_errors=True)  # old checkpoints must not resume a new stream
        run.mkdir(parents=True)
        env = {
            **os.environ,
            "COLDSTREAM_BROKER": broker,
            "COLDSTREAM_TOPIC_PREFIX": prefix,
            "COLDSTREAM_SNAPSHOT_DIR": str(run / "snapshots"),
            "COLDSTREAM_CHECKPOINT_DIR": str(run / "checkpoints"),
            "COLDSTREAM_SNAPSHOT_INTERVAL_S": "2",
            "COLDSTREAM_GROUP_ID": f"{prefix}-demo",
        }
        err.print(f"[bold]3/{STEPS}[/] starting the worker and the inference worker (logs: {run})")
        worker = Child(
            "worker",
            [
                "worker",
                *("--role", "all", "--metrics-port", "0", "--checkpoint-s", "5"),
                *("--eval-every", "1"),  # a short stream: rank every positive
            ],
            env,
            run / "worker.log",
        )
        stack.callback(worker.stop)
        serve = Child(
            "serve", ["serve", "--host", "127.0.0.1", "--port", "0"], env, run / "serve.log"
        )
        stack.callback(serve.stop)
        result.pids = [worker.proc.pid, serve.proc.pid]
        err.print(f"    worker pid {worker.proc.pid}, inference worker pid {serve.proc.pid}")
        wclient, sclient = Http(worker.port()), Http(serve.port())

        _stream(settings, out_dir, wclient, sclient, result)
        _query(settings, dataset, sclient, result)

        err.print(f"[bold]6/{STEPS}[/] replaying the topics into the model comparison")
        replay = subprocess.run(
            [sys.executable, "-m", "coldstream.cli", "replay", "--report", str(report_dir)],
            env=env,
            check=False,
        )
        if replay.returncode != 0:
            raise ColdstreamError(f"replay failed (exit {replay.returncode})")
        result.report_dir = report_dir
    result.seconds = time.monotonic() - started
    _summary(result)
    return result


def _stream(
    settings: Settings, data: Path, wclient: Http, sclient: Http, result: DemoResult
) -> None:
    """Publish the dataset while showing what the worker and the inference worker do."""
    from streams.datasets import open_dataset
    from streams.load import publish_dataset

    dataset = open_dataset(data)
    interactions = dataset.counts()["interaction"]
    total = len(dataset)
    sent = [0]
    failure: list[BaseException] = []
    rate: list[float] = []

    def publish() -> None:
        try:
            report = publish_dataset(dataset, settings, progress=lambda n: _add(sent, n))
            result.published = dict(report.published)
            rate.append(report.events_per_s)
        except BaseException as exc:  # shown by the main thread
            failure.append(exc)

    loader = threading.Thread(target=publish, daemon=True)
    loader.start()
    t0 = time.monotonic()
    rates = _Rates()
    m: Metrics = {}

    def board() -> Table:
        rates.sample(sent[0], _read(m), result.applied)
        return _board(m, sent[0], total, interactions, rates, result, time.monotonic() - t0)

    with Live(console=err, refresh_per_second=4, transient=False) as live:
        while True:
            m = wclient.metrics()
            status, ready = sclient.call("GET", "/readyz")
            result.version = ready.get("version", 0) if status == 200 else 0
            result.applied = int(m.get(("coldstream_model_events", ()), 0))
            live.update(board())
            if failure:
                raise ColdstreamError(f"publishing failed: {failure[0]}")
            if not loader.is_alive() and result.applied >= interactions:
                break
            if time.monotonic() - t0 > 600:
                raise ColdstreamError("the worker did not apply the stream within 10 minutes")
            time.sleep(0.5)
        # the last snapshot (exported every 2 s) has the whole stream
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, ready = sclient.call("GET", "/readyz")
            newest = ready.get("newest_event_ts") or 0 if status == 200 else 0
            if newest >= max(r.ts for r in dataset.records()):
                result.version = ready["version"]
                break
            time.sleep(0.25)
        # the worker sets its rolling gauges once a second: read them after the last events
        key = ("coldstream_recall_at_k", (("model", "student"), ("slice", "all")))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = wclient.metrics()
            if key in m:
                break
            time.sleep(0.25)
        live.update(board())
    err.print()
    for model in ("student", "river"):
        for sl in ("all", "0"):
            labels = (("model", model), ("slice", sl))
            result.recall[f"{model}/{sl}"] = m.get(("coldstream_recall_at_k", labels), float("nan"))
            result.ranked[f"{model}/{sl}"] = int(m.get(("coldstream_evaluated_events", labels), 0))


Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]
#: the display's rates are over about this many recent seconds
RATE_S = 3.0


class _Rates:
    """Per-second rates of a few counters over the last :data:`RATE_S` seconds."""

    def __init__(self) -> None:
        self._samples: list[tuple[float, tuple[int, ...]]] = []

    def sample(self, *counts: int) -> None:
        now = time.monotonic()
        self._samples.append((now, counts))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_S:
            self._samples.pop(0)

    def per_s(self, i: int) -> float:
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1[i] - c0[i]) / (t1 - t0) if t1 > t0 else 0.0


def _read(m: Metrics) -> int:
    """Messages the worker has read (valid and invalid), all topics."""
    return int(sum(v for (name, _), v in m.items() if name == "coldstream_events_total"))


def _add(box: list[int], n: int) -> None:
    box[0] += n


def _board(
    m: Metrics,
    sent: int,
    total: int,
    interactions: int,
    rates: _Rates,
    result: DemoResult,
    elapsed: float,
) -> Table:
    def recall(model: str, sl: str) -> str:
        v = m.get(("coldstream_recall_at_k", (("model", model), ("slice", sl))))
        return "-" if v is None else f"{v:.3f}"

    def ranked(sl: str) -> int:
        return int(m.get(("coldstream_evaluated_events", (("model", "student"), ("slice", sl))), 0))

    table = Table(title=f"[bold]4/{STEPS}[/] streaming ({elapsed:.0f} s)", show_header=True)
    table.add_column("")
    table.add_column("so far", justify="right")
    table.add_column(f"per s, last {RATE_S:.0f} s", justify="right")
    table.add_row("events published", f"{sent:,} of {total:,}", f"{rates.per_s(0):,.0f}")
    table.add_row("messages read by the worker", f"{_read(m):,}", f"{rates.per_s(1):,.0f}")
    table.add_row(
        "interactions learned by the models",
        f"{result.applied:,} of {interactions:,}",
        f"{rates.per_s(2):,.0f}",
    )
    table.add_row(
        f"Recall@20 student / River, all items (last {ranked('all'):,} ranked)",
        f"{recall('student', 'all')} / {recall('river', 'all')}",
        "",
    )
    table.add_row(
        f"Recall@20 student / River, brand-new items (last {ranked('0'):,} ranked)",
        f"{recall('student', '0')} / {recall('river', '0')}",
        "",
    )
    table.add_row("snapshot version served", str(result.version), "")
    return table


def _query(settings: Settings, dataset: Any, sclient: Http, result: DemoResult) -> None:
    """Recommendations for a few users; then a brand-new item, served seconds later."""
    from kafka import KafkaProducer

    err.print(f"[bold]5/{STEPS}[/] asking the inference worker")
    active: dict[str, int] = {}
    for r in dataset.interactions:
        active[r.user_id] = active.get(r.user_id, 0) + 1
    users = [*sorted(active, key=lambda u: -active[u])[:2], "someone-new"]
    for user in users:
        status, body = sclient.call("GET", f"/recommend?user_id={user}&k=5")
        if status != 200:
            raise ColdstreamError(f"/recommend answered {status}: {body}")
        result.recommendations[user] = [it["item_id"] for it in body["items"]]
    # a new item written like the top pick of the most active user
    user = users[0]
    top = result.recommendations[user][0]
    like = next(i for i in dataset.items if i.item_id == top)
    new_id = f"new-{int(time.time())}"
    item = {
        "item_id": new_id,
        "title": f"New: {like.title}",
        "text": like.text,
        "tags": list(like.tags),
        "ts": int(time.time() * 1000),
    }
    producer = KafkaProducer(**settings.kafka_python_config())
    sent_at = time.monotonic()
    producer.send(settings.topics.items, key=new_id.encode(), value=orjson.dumps(item))
    producer.flush(30)
    producer.close()
    result.new_item = new_id
    deadline = sent_at + 60
    while time.monotonic() < deadline:
        _, body = sclient.call("POST", "/score", {"user_id": user, "item_ids": [new_id]})
        if body["scores"][0]["score"] is not None:
            result.new_item_served_s = time.monotonic() - sent_at
            break
        time.sleep(0.05)
    status, body = sclient.call("GET", f"/recommend?user_id={user}&k=100")
    ranked = [it["item_id"] for it in body.get("items", [])]
    result.new_item_rank = ranked.index(new_id) + 1 if new_id in ranked else None


def _summary(result: DemoResult) -> None:
    table = Table(title="inference worker answers (top 5)")
    table.add_column("user")
    table.add_column("recommended items")
    for user, items in result.recommendations.items():
        table.add_row(user, ", ".join(items))
    out.print(table)
    if result.new_item_served_s is None:
        out.print(f"new item {result.new_item}: [red]not served within 60 s[/]")
    else:
        rank = f"rank {result.new_item_rank}" if result.new_item_rank else "not in the top 100"
        out.print(
            f"new item {result.new_item}: served {result.new_item_served_s:.1f} s after its "
            f"announcement, before anyone touched it; {rank} for the user it resembles"
        )

    def r(key: str) -> str:
        return f"{result.recall.get(key, float('nan')):.3f}"

    out.print(
        f"live Recall@20 over the worker's latest {result.ranked.get('student/all', 0):,} ranked "
        f"positives (a rolling window, not the whole stream: step 6 ranks every one): student "
        f"{r('student/all')} vs River {r('river/all')}; brand-new items, latest "
        f"{result.ranked.get('student/0', 0):,}: {r('student/0')} vs {r('river/0')}; "
        f"snapshot version {result.version}"
    )
    if result.report_dir is not None:
        files = sorted(p.name for p in result.report_dir.iterdir())
        out.print(f"report: {result.report_dir}/ ({', '.join(files)})")
    out.print(f"demo finished in {result.seconds:.0f} s; every process it started is stopped")
