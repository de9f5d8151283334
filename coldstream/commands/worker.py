"""``coldstream worker``: the online learner (Faust agents, checkpoints, ``/metrics``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from coldstream.options import (
    BrokerOpt,
    FieldOpt,
    PrefixOpt,
    check_feedback,
    fail,
    field_map,
    settings_or_fail,
)
from core.errors import ColdstreamError

__all__ = ["worker"]


def worker(
    role: Annotated[
        str, typer.Option(help="student (the student), baseline (River) or all (both, one process)")
    ] = "student",
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    group_id: Annotated[
        str | None, typer.Option(help="consumer group prefix; the role is appended")
    ] = None,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="where checkpoints go [env: COLDSTREAM_CHECKPOINT_DIR]")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="/metrics port; 0 picks a free one")
    ] = None,
    teacher: Annotated[str | None, typer.Option(help="teacher model path or name")] = None,
    feedback: Annotated[
        str, typer.Option(help="implicit (every event is positive) or explicit (ratings)")
    ] = "implicit",
    threshold: Annotated[
        float, typer.Option(help="positive threshold for explicit feedback")
    ] = 4.0,
    k: Annotated[int, typer.Option(min=1, help="K of the live Recall@K")] = 20,
    eval_every: Annotated[
        int,
        typer.Option(
            min=1,
            help="rank every Nth positive for the live metrics (every interaction is learned); "
            "1 ranks all, at about half the learning rate",
        ),
    ] = 10,
    checkpoint_s: Annotated[
        float, typer.Option(min=0.05, help="seconds between checkpoints")
    ] = 10.0,
    checkpoint_events: Annotated[
        int, typer.Option(min=1, help="records between checkpoints (whichever comes first)")
    ] = 100_000,
    max_poll_records: Annotated[
        int, typer.Option(min=1, help="most records fetched per partition and batch")
    ] = 5000,
    threads: Annotated[
        int, typer.Option(min=1, help="torch and BLAS threads (1 is fastest for small models)")
    ] = 1,
    adapt: Annotated[
        bool,
        typer.Option(
            "--adapt/--no-adapt",
            help="on a drift detection, boost the student's learning rates and replay only "
            "recent events for a while (see the README's Drift section)",
        ),
    ] = False,
    field: FieldOpt = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="start the student from this checkpoint (coldstream pretrain) instead of zero; "
            "a worker checkpoint in --checkpoint-dir, once there, takes precedence"
        ),
    ] = None,
    sync_records: Annotated[
        int,
        typer.Option(
            min=1,
            help="under torchrun: interaction records a rank reads between two synchronisation "
            "points (or --sync-s, whichever comes first)",
        ),
    ] = 128,
    sync_s: Annotated[
        float, typer.Option(min=0.01, help="under torchrun: most seconds between two points")
    ] = 0.5,
) -> None:
    """Learn online from the topics (Faust), checkpoint, and serve /metrics, until Ctrl-C.

    Under torchrun (WORLD_SIZE > 1) each process is one rank of one student: README, "Several
    ranks, one student"."""
    from coldstream.ranked import ranks_from_env
    from models.registry import ROLES

    try:
        ranks = ranks_from_env()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="WORLD_SIZE") from None
    if ranks and role != "student":
        # several ranks learn one student; River learns per event and stays one process
        raise typer.BadParameter(
            f"started as one of {ranks} ranks (WORLD_SIZE={ranks}, e.g. by torchrun) with "
            f"--role {role}: several ranks learn one student, so use --role student, and run "
            "--role baseline as one process without torchrun (README, 'Several ranks, one "
            "student')",
            param_hint="--role",
        )
    if role not in ROLES:
        raise typer.BadParameter(
            f"unknown role {role!r}: use {', '.join(ROLES)}", param_hint="--role"
        )
    if init is not None:
        if not init.is_file():
            raise typer.BadParameter(
                f"{init} is not a file: make one with coldstream pretrain", param_hint="--init"
            )
        if "student" not in ROLES[role]:
            raise typer.BadParameter(
                f"role {role!r} has no student to start from a checkpoint: use --role student "
                "or --role all",
                param_hint="--init",
            )
    check_feedback(feedback)
    settings = settings_or_fail(
        broker=broker,
        topic_prefix=topic_prefix,
        group_id=group_id,
        checkpoint_dir=checkpoint_dir,
        metrics_port=metrics_port,
        teacher_model=teacher,
        field_map=field_map(field),
    )
    from coldstream.runner import run_worker_command

    common: dict[str, Any] = {
        "threshold": threshold if feedback == "explicit" else None,
        "k": k,
        "eval_every": eval_every,
        "checkpoint_s": checkpoint_s,
        "checkpoint_events": checkpoint_events,
        "max_poll_records": max_poll_records,
        "threads": threads,
        "init": init,
    }
    if ranks and adapt:
        raise typer.BadParameter(
            "--adapt is not available under torchrun yet (each rank would boost its own "
            "learning rates): leave it out, or run one process",
            param_hint="--adapt",
        )
    try:
        if ranks:  # under torchrun, one rank or several
            from coldstream.ranked import run_ranked_worker

            run_ranked_worker(settings, sync_records=sync_records, sync_s=sync_s, **common)
        else:
            run_worker_command(settings, role=role, adapt=adapt, **common)
    except ColdstreamError as exc:
        fail(str(exc))
