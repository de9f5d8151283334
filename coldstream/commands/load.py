"""``coldstream load SOURCE``: publish a dataset into the topics in event-time order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coldstream.console import err, out, progress_bar
from coldstream.options import (
    BrokerOpt,
    FieldOpt,
    PartitionsOpt,
    PrefixOpt,
    fail,
    field_map,
    settings_or_fail,
)
from core.errors import ColdstreamError
from streams.datasets import FORMAT_CHOICES, FORMAT_HELP

__all__ = ["load"]


def load(
    source: Annotated[Path, typer.Argument(help="a dataset directory or file")],
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
    field: FieldOpt = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="publish nothing if any row is invalid")
    ] = False,
    create_topics: Annotated[
        bool, typer.Option("--create-topics/--no-create-topics", help="create missing topics")
    ] = True,
) -> None:
    """Publish a dataset into the topics in event-time order (Kafka timestamp = event time)."""
    from streams.datasets import FORMATS, open_dataset
    from streams.load import publish_dataset
    from streams.topics import ensure_topics

    if format not in FORMATS:
        raise typer.BadParameter(
            f"unknown format {format!r}: use {FORMAT_CHOICES}", param_hint="--format"
        )
    settings = settings_or_fail(
        broker=broker, topic_prefix=topic_prefix, partitions=partitions, field_map=field_map(field)
    )
    try:
        with err.status(f"reading {source}"):
            dataset = open_dataset(source, format, fields=settings.fields, limits=settings.limits)
    except ColdstreamError as exc:
        fail(str(exc))
    if dataset.bad:
        err.print(f"[yellow]{len(dataset.bad):,} invalid row(s)[/], for example:")
        for row in dataset.bad[:5]:
            err.print(f"  {row.source}:{row.line}: {row.invalid.reason}", highlight=False)
        if strict:
            fail("--strict: nothing was published; fix the rows above or drop --strict")
    try:
        if create_topics:
            ensure_topics(settings)
        with progress_bar("publishing", len(dataset)) as advance:
            report = publish_dataset(dataset, settings, progress=advance)
    except ColdstreamError as exc:
        fail(str(exc))
    table = Table(title=f"loaded {source} ({dataset.format}) into {settings.broker}")
    table.add_column("topic")
    table.add_column("messages", justify="right")
    for topic, n in report.published.items():
        table.add_row(topic, f"{n:,}")
    table.add_row(f"{settings.topics.dlq} (invalid rows)", f"{report.dead_lettered:,}")
    out.print(table)
    out.print(
        f"{report.events:,} events in {report.seconds:.1f} s: {report.events_per_s:,.0f} events/s"
    )
    if report.failed:
        fail(f"{report.failed:,} message(s) were not delivered; first error: {report.first_error}")
