"""Process-level wiring of ``coldstream worker`` as one of several ranks (under ``torchrun``):
the process group, the teacher, the checkpoint, ``/metrics`` on its own port, the loop."""

from __future__ import annotations

import datetime
import logging
import os
import time
from pathlib import Path

import torch.distributed as dist
from prometheus_client import CollectorRegistry, start_http_server

from coldstream.console import err, out
from core.errors import ConfigError
from core.settings import Settings
from core.threads import cores, limit_threads
from exporters.metrics import RankMetrics, WorkerMetrics

__all__ = ["run_ranked_worker"]

log = logging.getLogger(__name__)


def run_ranked_worker(
    settings: Settings,
    *,
    threshold: float | None,
    k: int,
    eval_every: int,
    checkpoint_s: float,
    checkpoint_events: int,
    max_poll_records: int,
    threads: int = 1,
    sync_records: int = 128,
    sync_s: float = 0.5,
    sync_timeout_s: float = 300.0,
    snapshots: bool = True,
    init: Path | None = None,
) -> None:
    """Rank ``RANK`` of ``WORLD_SIZE`` (set by torchrun), role student (:mod:`streams.ranks`)."""
    from coldstream.runner import make_exporter
    from models.distributed import SharedTeacher
    from models.teacher import load_teacher
    from streams.ranks import RankedWorker
    from streams.topics import ensure_topics, partition_counts
    from streams.worker import WorkerCore

    # kafka-python's notes on a loop that also learns ("a task ran for 0.2 s") and on a
    # consumer without a group (on purpose: torchrun assigns the partitions) are not faults
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    logging.getLogger("kafka.coordinator.consumer").setLevel(logging.ERROR)
    # gloo: the student is small and learns on CPU; a rank that dies leaves the others
    # waiting in a collective until torchrun stops and restarts the group (or this timeout)
    timeout = datetime.timedelta(seconds=sync_timeout_s)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    dist.init_process_group(
        "gloo", store=_store(rank, world, timeout), rank=rank, world_size=world, timeout=timeout
    )
    if settings.teacher_threads == 0:  # "one per core": the ranks on this host share them
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        settings = settings.model_copy(update={"teacher_threads": max(1, cores() // local)})
    try:
        if rank == 0:
            ensure_topics(settings)
        dist.barrier()
        topics = settings.topics
        partitions = partition_counts(settings, (topics.interactions, topics.items, topics.users))
        if partitions[topics.interactions] < world:
            raise ConfigError(
                f"{topics.interactions} has {partitions[topics.interactions]} partitions for "
                f"{world} ranks: a rank would learn nothing. Start at most that many ranks "
                "(torchrun --nproc-per-node), or give the topic more partitions"
            )
        registry = CollectorRegistry()
        metrics = WorkerMetrics.create(registry)
        rank_metrics = RankMetrics.create(registry, rank, world)
        # every rank encodes a share of the new items' and profiles' texts (models.distributed)
        teacher = SharedTeacher(load_teacher(settings.teacher_model))
        core = WorkerCore(
            settings,
            role="student",
            teacher=teacher,
            metrics=metrics,
            k=k,
            threshold=threshold,
            eval_every=eval_every,
            ranks=world,
            init=init,
        )
        directory = settings.checkpoint_dir / "student"
        n_int = partitions[topics.interactions]
        if core.restore(directory, rank=rank, world=world, partitions=n_int):
            err.print(
                f"rank {rank}: restored the checkpoint in {directory} (point "
                f"{core.restored_point}): {core.model_events:,} events applied here"
            )
        # rank r serves /metrics on COLDSTREAM_METRICS_PORT + r (0: a free port each)
        port = settings.metrics_port + rank if settings.metrics_port else 0
        server, _thread = start_http_server(port, addr="0.0.0.0", registry=registry)
        out.print(
            f"worker (student, rank {rank} of {world}) on {settings.broker}: metrics at "
            f"http://127.0.0.1:{server.server_port}/metrics"
        )
        out.file.flush()
        exporter = make_exporter(settings, core, metrics) if snapshots and rank == 0 else None
        worker = RankedWorker(
            settings,
            core,
            rank_metrics,
            checkpoint_dir=directory,
            partitions=partitions,
            checkpoint_s=checkpoint_s,
            checkpoint_events=checkpoint_events,
            snapshot=exporter,
            sync_records=sync_records,
            sync_s=sync_s,
            max_poll_records=max_poll_records,
        )
        started = time.monotonic()
        try:
            with limit_threads(threads):
                worker.run()
        finally:
            worker.close()
            server.shutdown()
        err.print(
            f"rank {rank} stopped after {time.monotonic() - started:.0f} s; "
            f"{core.model_events:,} events applied here"
        )
    finally:
        dist.destroy_process_group()


def _store(rank: int, world: int, timeout: datetime.timedelta) -> dist.Store:
    """The group's store, its keys under a prefix of torchrun's restart count. After a rank
    died and torchrun restarted the group, the ranks otherwise read the dead round's addresses
    from the store and failed to connect ("Gloo connectFullMesh failed ... Connection
    refused"), until the restarts ran out."""
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    base = dist.TCPStore(
        os.environ.get("MASTER_ADDR", "127.0.0.1"),
        int(os.environ.get("MASTER_PORT", "29500")),
        world,
        is_master=not agent and rank == 0,
        timeout=timeout,
        multi_tenant=not agent,
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"coldstream/attempt-{attempt}/", base)


def ranks_from_env() -> int:
    """The number of ranks torchrun started (``WORLD_SIZE``); 0 without torchrun (the worker
    then runs as one process, on Faust, as it always did)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ and "WORLD_SIZE" not in os.environ:
        return 0
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"WORLD_SIZE={raw!r} is not a number of ranks") from None
