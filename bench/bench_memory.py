"""Benchmark: resident memory of ``coldstream worker --role student`` while user ids churn.

The worker's learning path in one process (``WorkerCore.apply`` on raw JSON record batches,
as the Kafka transport hands them over: decode, validate, order, learn, evaluate every 10th
positive) on a stream where every user is new: ``--users`` distinct user ids, each with
``--per-user`` interactions one event-second apart, over a catalog of 1,000 items, with the
expiry of the worker's settings (``user_ttl_hours``, here ``--ttl-hours``). Every
``--sample`` users it records the process's resident memory (``VmRSS``) and the sizes of the
per-user structures (the student's user state, its id table, the evaluator's seen items).

The must-show: after the first 200,000 users, resident memory stays within 1.3x of its level
then (``rss_end_vs_200k``). ``--ttl-hours 0`` turns expiry off, for contrast: memory then grows
with the users (``--overlay`` draws such a run's curve in the same plot). The teacher is the
hashing encoder (item texts only; memory of the real teacher is a constant). A plot of memory
against users goes to ``--plot``.

Run: ``python -m bench.bench_memory --users 2000000`` (``--json FILE`` to keep the numbers);
the README's plot: ``python -m bench.bench_memory --users 600000 --ttl-hours 0 --json off.json``
then ``python -m bench.bench_memory --overlay off.json --plot docs/bench/memory.png``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from rich.progress import Progress

from bench.common import show
from core.settings import Settings
from core.threads import limit_threads
from exporters.metrics import WorkerMetrics
from models.student import Student
from models.teacher import load_teacher
from streams.transport import RecordBatch
from streams.worker import WorkerCore

_TP = namedtuple("_TP", "topic partition")
_Rec = namedtuple("_Rec", "offset timestamp key value")
_ITEMS = 1000
_T0 = 1_700_000_000_000  # ms


def rss_mib() -> float:
    """This process's resident set size (``VmRSS``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def _batch(topic: str, first: int, values: list[bytes]) -> RecordBatch:
    return RecordBatch(_TP(topic, 0), [_Rec(first + i, 0, None, v) for i, v in enumerate(values)])


def run(users: int, per_user: int, ttl_hours: float, sample: int, chunk: int) -> dict[str, Any]:
    ttl = ttl_hours if ttl_hours > 0 else 1e9  # 0: effectively never
    settings = Settings.load(topic_prefix="bench-memory", user_ttl_hours=ttl)
    core = WorkerCore(
        settings,
        role="student",
        teacher=load_teacher("hashing"),
        metrics=WorkerMetrics.create(CollectorRegistry()),
        eval_every=10,
    )
    topics = settings.topics
    items = [
        orjson.dumps({"item_id": f"i{j}", "title": f"item {j} topic {j % 37}", "ts": _T0})
        for j in range(_ITEMS)
    ]
    core.apply(_batch(topics.items, 0, items))
    student = core.models["student"]
    assert isinstance(student, Student)
    samples: list[dict[str, float]] = []
    events = users * per_user
    offset, t0 = 0, time.perf_counter()
    with limit_threads(1), Progress() as progress:
        task = progress.add_task("users", total=users)
        while offset < events:
            n = min(chunk, events - offset)
            values = []
            for e in range(offset, offset + n):
                user = e // per_user
                item = (user * 7 + e % per_user * 13) % _ITEMS
                rec = {"user_id": f"user-{user}", "item_id": f"i{item}", "ts": _T0 + 1000 * e}
                values.append(orjson.dumps(rec))
            core.apply(_batch(topics.interactions, offset, values))
            offset += n
            done = offset // per_user
            progress.update(task, completed=done)
            if done % sample < chunk // per_user or offset == events:
                gc.collect()
                samples.append(
                    {
                        "users": done,
                        "rss_mib": rss_mib(),
                        "student_users": len(student.state),
                        "id_rows": len(student.users),
                        "id_pending": len(student.users.pending),
                        "evaluator_users": len(core.evaluator.seen),
                    }
                )
    seconds = time.perf_counter() - t0
    at = min(samples, key=lambda s: abs(s["users"] - 200_000))
    end = samples[-1]
    return {
        "users": users,
        "events": events,
        "ttl_hours": ttl_hours,
        "events_per_s": events / seconds,
        "rss_mib_at_200k": at["rss_mib"],
        "rss_mib_end": end["rss_mib"],
        "rss_mib_max_after_200k": max(s["rss_mib"] for s in samples if s["users"] >= at["users"]),
        "rss_end_vs_200k": end["rss_mib"] / at["rss_mib"],
        "student_users_end": end["student_users"],
        "id_rows_end": end["id_rows"],
        "evaluator_users_end": end["evaluator_users"],
        "samples": samples,
    }


def _label(results: dict[str, Any]) -> str:
    ttl = results["ttl_hours"]
    return f"user expiry {f'{ttl:g} h' if ttl else 'off'}"


def plot(results: dict[str, Any], path: Path, overlay: dict[str, Any] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for res in (results, overlay):
        if res is not None:
            s = res["samples"]
            ax.plot([x["users"] / 1e6 for x in s], [x["rss_mib"] for x in s], label=_label(res))
    ax.axhline(1.3 * results["rss_mib_at_200k"], ls="--", c="grey", label="1.3x its level at 200k")
    ax.set_xlabel("distinct users streamed (millions)")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title("worker --role student while user ids churn")
    ax.set_ylim(bottom=0)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description="worker memory while user ids churn")
    parser.add_argument("--users", type=int, default=2_000_000, help="distinct user ids")
    parser.add_argument("--per-user", type=int, default=2, help="interactions per user")
    parser.add_argument(
        "--ttl-hours", type=float, default=1.0, help="user expiry in event time (0: off)"
    )
    parser.add_argument("--sample", type=int, default=50_000, help="users between samples")
    parser.add_argument("--chunk", type=int, default=5000, help="records per batch")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write a plot of memory against users here")
    parser.add_argument("--overlay", type=Path, help="also plot the run in this --json file")
    args = parser.parse_args()
    if args.users < 200_000 or args.per_user < 1 or args.chunk % args.per_user:
        parser.error("--users must be at least 200000, --chunk a multiple of --per-user")
    results = run(args.users, args.per_user, args.ttl_hours, args.sample, args.chunk)
    if args.plot is not None:
        overlay = orjson.loads(args.overlay.read_bytes()) if args.overlay else None
        plot(results, args.plot, overlay)
    summary = {k: v for k, v in results.items() if k != "samples"}
    show(summary)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
