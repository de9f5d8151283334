"""``coldstream replay``: the prequential comparison of ``coldstream evaluate`` on a range of
the topics' history instead of a file.

The range is read by :func:`streams.history.read_history` (its own consumer, no consumer
group, nothing committed or written), then handed to the same comparison ``evaluate`` runs
(:func:`coldstream.commands.compare.compare`), so the same events give the same report.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coldstream.commands.compare import (
    DEFAULT_MODELS,
    EveryOpt,
    FeedbackOpt,
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
)
from coldstream.console import err, progress_bar
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
from core.settings import Settings
from models.evaluation import EvalResult
from streams.history import History, HistoryError, read_history
from streams.ranges import Start, Until

__all__ = ["replay", "run_replay"]


def run_replay(
    settings: Settings,
    start: Start,
    until: Until,
    opts: Options,
    *,
    feedback: str,
    use_time_index: bool = True,
) -> EvalResult:
    """Read ``[start, until)`` from the topics and compare the models on it."""
    began = time.perf_counter()
    with progress_bar(f"reading {settings.broker}", None) as advance:
        history = read_history(
            settings, start, until, use_time_index=use_time_index, progress=advance
        )
    err.print(_read_table(settings, history))
    for topic in history.missing_topics:
        err.print(f"[yellow]topic {topic} does not exist[/]: read as empty")
    if history.incomplete:
        err.print(
            f"[yellow]warning:[/] {', '.join(history.incomplete)} stopped answering before "
            "their end: the replay covers what was read"
        )
    counts = history.counts()
    if counts["interaction"] == 0:
        raise HistoryError(
            f"no interactions between --from {start} and --until {until} in "
            f"{settings.topics.interactions} ({sum(history.read.values()):,} messages read): "
            "widen the range, or check --topic-prefix"
        )
    facts = {
        "source": f"kafka {settings.broker}: {settings.topics.interactions}, "
        f"{settings.topics.items}, {settings.topics.users}",
        "range": f"from {start} until {until}",
        "feedback": feedback,
        "messages read": sum(history.read.values()),
        "events in range": f"{counts['item']:,} items, {counts['user']:,} users, "
        f"{counts['interaction']:,} interactions",
        "invalid messages skipped": sum(history.invalid.values()),
    }
    return compare(history.records, opts, facts=facts, started=began)


def _read_table(settings: Settings, history: History) -> Table:
    table = Table(title=f"read {settings.broker} in {history.seconds:.1f} s")
    table.add_column("topic")
    table.add_column("partitions", justify="right")
    table.add_column("messages read", justify="right")
    table.add_column("events in range", justify="right")
    counts = history.counts()
    topics = settings.topics
    for topic, kind in (
        (topics.items, "item"),
        (topics.users, "user"),
        (topics.interactions, "interaction"),
    ):
        parts = sum(1 for p in history.partitions if p.topic == topic)
        table.add_row(topic, str(parts), f"{history.read.get(topic, 0):,}", f"{counts[kind]:,}")
    if history.invalid:
        reasons = ", ".join(f"{code} {n:,}" for code, n in sorted(history.invalid.items()))
        table.caption = f"invalid messages skipped (not dead-lettered): {reasons}"
    return table


def replay(
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="earliest, an offset (every partition from it) or an ISO-8601 time (events "
            "at or after it; naive = UTC)",
        ),
    ] = "earliest",
    until: Annotated[
        str,
        typer.Option(
            help="end (each partition's end when reading starts) or an ISO-8601 time "
            "(events before it)"
        ),
    ] = "end",
    report: ReportOpt = Path("reports/replay"),
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    field: FieldOpt = None,
    models: ModelsOpt = DEFAULT_MODELS,
    k: KOpt = 20,
    feedback: FeedbackOpt = "implicit",
    threshold: ThresholdOpt = None,
    every: EveryOpt = 1,
    teacher: TeacherOpt = None,
    seed: SeedOpt = 0,
    init: InitOpt = None,
    window: WindowOpt = None,
    threads: ThreadsOpt = 1,
    jobs: JobsOpt = None,
    time_index: Annotated[
        bool,
        typer.Option(
            "--time-index/--no-time-index",
            help="with --from TIME: start where the broker's time index says (checked by "
            "reading) or read every partition from its beginning",
        ),
    ] = True,
) -> None:
    """Prequential comparison of the models on a range of the topics' history (read-only:
    no consumer group, nothing committed, nothing written)."""
    from coldstream.commands.compare import options, positive_threshold
    from core.errors import ConfigError
    from core.threads import limit_threads
    from streams.ranges import check_range, parse_from, parse_until

    try:
        start = parse_from(from_)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--from") from None
    try:
        end = parse_until(until)
        check_range(start, end)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--until") from None
    check_feedback(feedback)
    opts = options(
        models,
        k=k,
        report=report,
        every=every,
        teacher=teacher,
        seed=seed,
        init=init,
        threshold=positive_threshold(feedback, threshold),
        window=window,
    )
    from core.threads import cores

    opts = dataclasses.replace(opts, jobs=jobs or cores())
    settings = settings_or_fail(
        broker=broker, topic_prefix=topic_prefix, field_map=field_map(field)
    )

    try:
        with limit_threads(threads):
            run_replay(settings, start, end, opts, feedback=feedback, use_time_index=time_index)
    except ColdstreamError as exc:
        fail(str(exc))
