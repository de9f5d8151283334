"""``coldstream demo``: the whole path on the embedded broker, as far as it is built.

Built so far: start the embedded broker (or use ``--broker``), generate a dataset, publish it
into the topics, and read the topics back to check that every event arrived. The worker,
inference and replay stages join here with issue 7 (``coldstream worker`` runs on its own).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from rich.table import Table

from coldstream.console import err, out, progress_bar
from coldstream.settings import Settings

__all__ = ["run_demo"]


def run_demo(*, events: int, out_dir: Path, broker: str | None = None) -> dict[str, int]:
    """Run the demo; returns the number of messages read back per topic."""
    from streams.broker import EmbeddedBroker
    from streams.datasets import open_dataset
    from streams.load import publish_dataset
    from streams.synthetic import SyntheticConfig, generate, write_jsonl
    from streams.topics import ensure_topics, read_topic

    with contextlib.ExitStack() as stack:
        if broker is None:
            embedded = stack.enter_context(EmbeddedBroker())
            broker = embedded.bootstrap
            err.print(f"[bold]1/4[/] embedded broker on {broker}")
        else:
            err.print(f"[bold]1/4[/] using the broker at {broker}")
        settings = Settings.load(broker=broker)
        ensure_topics(settings)

        users, items = max(50, events // 40), max(30, events // 70)
        config = SyntheticConfig(users=users, items=items, events=events, seed=7)
        with progress_bar("[bold]2/4[/] generating", events) as advance:
            write_jsonl(generate(config, progress=advance), out_dir)

        dataset = open_dataset(out_dir)
        with progress_bar("[bold]3/4[/] publishing", len(dataset)) as advance:
            report = publish_dataset(dataset, settings, progress=advance)

        read: dict[str, int] = {}
        with progress_bar("[bold]4/4[/] reading back", len(dataset)) as advance:
            for kind in ("item", "user", "interaction"):
                topic = settings.topics.for_kind(kind)
                n = 0
                for _ in read_topic(settings, topic, idle_s=1.0):
                    n += 1
                    advance(1)
                read[topic] = n

    table = Table(title="demo: events through the broker")
    table.add_column("topic")
    table.add_column("published", justify="right")
    table.add_column("read back", justify="right")
    for topic, n in read.items():
        table.add_row(topic, f"{report.published.get(topic, 0):,}", f"{n:,}")
    out.print(table)
    out.print(
        f"published {report.events:,} events at {report.events_per_s:,.0f}/s; data in {out_dir}\n"
        "[yellow]not in the demo yet:[/] the online worker (run `coldstream worker` by hand), "
        "inference workers and the replay report (see the README's status section)."
    )
    return read
