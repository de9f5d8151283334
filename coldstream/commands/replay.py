"""``coldstream replay``: the prequential comparison of ``coldstream evaluate`` on a range of
the topics' history instead of a file.

The range is read by :func:`streams.history.read_history` (its own consumer, no consumer
group, nothing committed or written), then handed to the same comparison ``evaluate`` runs
(:func:`coldstream.commands.compare.compare`), so the same events give the same report.
The typer command itself is in :mod:`coldstream.cli`, beside the broker options it shares.
"""

from __future__ import annotations

import time

from rich.table import Table

from coldstream.commands.compare import Options, compare
from coldstream.console import err, progress_bar
from core.settings import Settings
from models.evaluation import EvalResult
from streams.history import History, HistoryError, Start, Until, read_history

__all__ = ["run_replay"]


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
