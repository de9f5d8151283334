"""Process-level wiring of ``coldstream worker``: topics, teacher, checkpoint, /metrics, Faust."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server

from coldstream.console import err, out
from core.settings import Settings
from core.threads import limit_threads
from exporters.metrics import WorkerMetrics

if TYPE_CHECKING:
    from exporters.snapshot import SnapshotExporter
    from streams.worker import WorkerCore

__all__ = ["EXIT_DEADLINE_S", "make_exporter", "run_worker_command"]

log = logging.getLogger(__name__)

#: seconds from SIGTERM/SIGINT to the end of the process, in every state
EXIT_DEADLINE_S = 9.0


def _exit_deadline() -> None:
    """Start the watchdog of a stopping worker: every step of the way out is bounded
    (:func:`streams.app.run_worker`), and this ends the process if something still is not."""

    def fire() -> None:
        log.error(
            "still stopping %.0f s after the signal; exiting now (the last checkpoint stands)",
            EXIT_DEADLINE_S,
        )
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(EXIT_DEADLINE_S, fire)
    timer.daemon = True
    timer.start()


def make_exporter(
    settings: Settings, core: WorkerCore, metrics: WorkerMetrics
) -> SnapshotExporter | None:
    """The snapshot exporter of a worker whose role has a student (the baseline has nothing
    to serve)."""
    from exporters.snapshot import SnapshotExporter
    from models.student import Student
    from snapshotlib.store import SnapshotStore

    if not isinstance(core.models.get("student"), Student):
        return None
    key = settings.snapshot_key
    return SnapshotExporter(
        SnapshotStore(
            settings.snapshot_dir,
            keep=settings.snapshot_keep,
            key=None if key is None else key.get_secret_value().encode(),
        ),
        k_max=settings.snapshot_k_max,
        teacher_rank=settings.snapshot_teacher_rank,
        teacher=core.teacher.name,
        metrics=metrics,
    )


def _snapshot_hook(
    settings: Settings, core: WorkerCore, metrics: WorkerMetrics
) -> Callable[[WorkerCore], bytes | None] | None:
    """The worker's snapshot hook: export the student to the snapshot store."""
    from models.student import Student

    exporter = make_exporter(settings, core, metrics)
    student = core.models.get("student")
    if exporter is None or not isinstance(student, Student):
        return None

    def hook(c: WorkerCore) -> bytes:
        return exporter.announcement(exporter.export(student, offsets=c.offsets))

    return hook


def run_worker_command(
    settings: Settings,
    *,
    role: str,
    threshold: float | None,
    k: int,
    eval_every: int,
    checkpoint_s: float,
    checkpoint_events: int,
    max_poll_records: int,
    threads: int = 1,
    snapshots: bool = True,
    adapt: bool = False,
    init: Path | None = None,
) -> None:
    from models.monitor import Adaptation
    from models.teacher import load_teacher
    from streams.app import WorkerApp, run_worker
    from streams.topics import ensure_topics
    from streams.worker import WorkerCore

    ensure_topics(settings)
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    with err.status(f"loading the teacher ({settings.teacher_model or 'all-MiniLM-L6-v2'})"):
        teacher = load_teacher(settings.teacher_model)
    core = WorkerCore(
        settings,
        role=role,
        teacher=teacher,
        metrics=metrics,
        k=k,
        threshold=threshold,
        eval_every=eval_every,
        adapt=Adaptation() if adapt else None,
        init=init,
        encode_async=True,  # the teacher encodes in its own thread, off the learning path
    )
    directory = settings.checkpoint_dir / role
    if core.restore(directory):
        err.print(
            f"restored the checkpoint in {directory}: {core.model_events:,} events applied, "
            f"offsets {sorted(core.offsets.items())}"
            + (f" (it supersedes --init {init})" if init is not None else "")
        )
    elif init is not None:
        err.print(f"the student starts from the pretrained checkpoint {init}")
    server, _thread = start_http_server(settings.metrics_port, addr="0.0.0.0", registry=registry)
    port = server.server_port
    out.print(f"worker ({role}) on {settings.broker}: metrics at http://127.0.0.1:{port}/metrics")
    out.file.flush()
    started = time.monotonic()
    on_snapshot = _snapshot_hook(settings, core, metrics) if snapshots else None
    worker = WorkerApp(
        settings,
        core,
        checkpoint_dir=directory,
        checkpoint_s=checkpoint_s,
        checkpoint_events=checkpoint_events,
        max_poll_records=max_poll_records,
        on_snapshot=on_snapshot,
        snapshot_s=settings.snapshot_interval_s,
        snapshot_events=settings.snapshot_events,
    )
    with asyncio.Runner() as aio:  # what asyncio.run does, with the way out in our hands
        try:
            with limit_threads(threads):
                clean = aio.run(run_worker(worker, on_stopping=_exit_deadline))
        finally:
            server.shutdown()
        took = time.monotonic() - started
        err.print(f"stopped after {took:.0f} s; {core.model_events:,} events applied in all")
        if not clean:
            # Faust is stuck on the broker: cancelling its tasks would log each as a crash, and
            # its consumer thread (not a daemon) would hold the process open. Nothing is lost:
            # the checkpoint and the last snapshot are written.
            err.file.flush()
            out.file.flush()
            logging.shutdown()
            os._exit(0)
