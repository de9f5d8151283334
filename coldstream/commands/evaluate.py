"""``coldstream evaluate SOURCE``: prequential comparison of the models on a dataset, and
``coldstream pretrain SOURCE OUT``: a student checkpoint trained offline for ``--init``.

No Kafka involved: the dataset is read (streams.datasets) and handed to the comparison that
``coldstream replay`` shares (:func:`coldstream.commands.compare.compare`): the teacher encodes
every item and user text once, then each model ranks each positive interaction before learning
from it (models.evaluation). Results go to a rich table on stdout and to ``report.json``,
``report.md`` and PNG plots under ``--report``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import typer

from coldstream.commands.compare import (
    DEFAULT_MODELS,
    EveryOpt,
    InitOpt,
    JobsOpt,
    KOpt,
    ModelsOpt,
    Options,
    ReportOpt,
    SeedOpt,
    TeacherOpt,
    ThreadsOpt,
    ThresholdOpt,
    WindowOpt,
    compare,
    embed,
    options,
    positive_threshold,
)
from coldstream.console import err, out, progress_bar
from core.errors import ColdstreamError
from core.records import Record
from core.threads import cores, limit_threads
from streams.datasets import FORMAT_CHOICES, FORMAT_HELP, FORMATS, open_dataset
from streams.movielens import EXPECTED as MOVIELENS_FILES

__all__ = ["evaluate", "pretrain"]


def _check_source(source: Path, fmt: str) -> None:
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"unknown format {fmt!r}: use {FORMAT_CHOICES}", param_hint="--format"
        )
    if not source.exists():
        raise typer.BadParameter(
            f"{source} does not exist: give a jsonl directory (coldstream generate), a csv file "
            f"or a MovieLens directory ({MOVIELENS_FILES})",
            param_hint="SOURCE",
        )


def _load(source: Path, fmt: str) -> tuple[list[Record], str]:
    try:
        ds = open_dataset(source, fmt)
    except ColdstreamError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    if ds.bad:
        err.print(
            f"[yellow]skipped {len(ds.bad)} invalid rows[/] (first: {ds.bad[0].invalid.reason})"
        )
    return list(ds.records()), ds.feedback


def evaluate(
    source: Annotated[Path, typer.Argument(help="dataset: jsonl dir, csv file or MovieLens dir")],
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    models: ModelsOpt = DEFAULT_MODELS,
    k: KOpt = 20,
    report: ReportOpt = Path("reports/evaluate"),
    every: EveryOpt = 1,
    teacher: TeacherOpt = None,
    seed: SeedOpt = 0,
    init: InitOpt = None,
    threshold: ThresholdOpt = None,
    window: WindowOpt = None,
    threads: ThreadsOpt = 1,
    jobs: JobsOpt = None,
    adapt: Annotated[
        bool,
        typer.Option(
            "--adapt",
            help="when ADWIN or Page-Hinkley sees a student's misses rise (concept drift), "
            "boost its learning for a while (models.monitor.Adaptation)",
        ),
    ] = False,
) -> None:
    """Prequential comparison of the models on a dataset: rank, then learn, event by event."""
    opts = options(
        models,
        k=k,
        report=report,
        every=every,
        teacher=teacher,
        seed=seed,
        init=init,
        threshold=threshold,
        window=window,
    )
    opts = dataclasses.replace(opts, adapt=adapt, jobs=jobs or cores())
    _check_source(source, format)
    with limit_threads(threads):
        _evaluate(source, format, opts)


def _evaluate(source: Path, format: str, opts: Options) -> None:
    start = time.perf_counter()
    records, feedback = _load(source, format)
    opts = dataclasses.replace(opts, threshold=positive_threshold(feedback, opts.threshold))
    compare(records, opts, facts={"source": str(source), "feedback": feedback}, started=start)


def pretrain(
    source: Annotated[
        str,
        typer.Argument(
            help="history: a jsonl dir, csv file or MovieLens dir; or kafka:// (the configured "
            "broker) or kafka://HOST:PORT to read the topics' history (--from, --until)"
        ),
    ],
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="checkpoint file to write")],
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    teacher: Annotated[str | None, typer.Option(help="teacher model dir or name")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="passes over the history")] = 1,
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    threshold: Annotated[float | None, typer.Option(help="positive if value >= this")] = None,
    from_: Annotated[
        str, typer.Option("--from", help="topics: earliest, an offset or an ISO-8601 time")
    ] = "earliest",
    until: Annotated[
        str, typer.Option(help="topics: end or an ISO-8601 time (events before it)")
    ] = "end",
    topic_prefix: Annotated[
        str | None, typer.Option(help="topics: prefix [env: COLDSTREAM_TOPIC_PREFIX]")
    ] = None,
    feedback: Annotated[
        str, typer.Option(help="topics: implicit or explicit (ratings)")
    ] = "implicit",
) -> None:
    """Train a student offline on history (a file or the topics); start students from it with
    ``coldstream worker --init`` or ``coldstream evaluate --init``."""
    from models.student import StudentConfig
    from models.transfer import pretrain as run_pretrain

    if source.startswith("kafka:"):
        records, feedback = _history(source, from_, until, topic_prefix, feedback)
    else:
        _check_source(Path(source), format)
        records, feedback = _load(Path(source), format)
    threshold = positive_threshold(feedback, threshold)
    embeddings, dim = embed(records, teacher)
    with progress_bar("pretraining", len(records) * epochs) as advance:
        path = run_pretrain(
            records,
            out_path,
            embeddings,
            teacher_dim=dim,
            threshold=threshold,
            config=StudentConfig(),
            seed=seed,
            epochs=epochs,
            progress=advance,
        )
    out.print(f"checkpoint: {path} ({path.stat().st_size / 1e6:.1f} MB)")


def _history(
    source: str, from_: str, until: str, topic_prefix: str | None, feedback: str
) -> tuple[list[Record], str]:
    """The topics' history over ``[--from, --until)``, as ``coldstream replay`` reads it."""
    from core.settings import Settings
    from streams.history import read_history
    from streams.ranges import check_range, parse_from, parse_until

    if feedback not in ("implicit", "explicit"):
        raise typer.BadParameter(
            f"{feedback!r} is not a feedback kind: use implicit or explicit",
            param_hint="--feedback",
        )
    address = source.removeprefix("kafka:").removeprefix("//") or None
    try:
        start, end = parse_from(from_), parse_until(until)
        check_range(start, end)
        settings = Settings.load(broker=address, topic_prefix=topic_prefix)
    except ColdstreamError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        with progress_bar(f"reading {settings.broker}", None) as advance:
            history = read_history(settings, start, end, progress=advance)
    except ColdstreamError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    if not history.counts()["interaction"]:
        err.print(
            f"[bold red]error:[/] no interactions in {settings.topics.interactions} between "
            f"--from {from_} and --until {until}: nothing to pretrain on"
        )
        raise typer.Exit(1)
    from streams.order import in_event_order

    return in_event_order(history.records), feedback
