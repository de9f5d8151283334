"""``coldstream broker``: the embedded Kafka-compatible broker, on loopback."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Annotated

import typer

from coldstream.console import err, out
from coldstream.options import (
    PartitionsOpt,
    PrefixOpt,
    fail,
    settings_or_fail,
)
from core.errors import ColdstreamError
from streams.broker import MEMORY

__all__ = ["broker"]


def broker(
    host: Annotated[
        str, typer.Option(help="address to listen on (loopback by default)")
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port; a free one when left out")
    ] = None,
    topics: Annotated[
        bool, typer.Option("--topics/--no-topics", help="create the coldstream topics")
    ] = True,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
    storage: Annotated[
        str,
        typer.Option(
            help="memory://tansu/ (nothing survives a stop) or s3://BUCKET/: topics, records "
            "and group offsets in an S3-compatible store, found again after a restart; its "
            "address and credentials come from AWS_ENDPOINT, AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (and AWS_ALLOW_HTTP=true for http://)",
            envvar="COLDSTREAM_BROKER_STORAGE",
        ),
    ] = MEMORY,
) -> None:
    """Run the embedded Kafka-compatible broker until Ctrl-C or SIGTERM."""
    from streams.broker import EmbeddedBroker
    from streams.topics import ensure_topics

    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] listening on {host}: the embedded broker has no auth")
    try:
        embedded = EmbeddedBroker(host, port, storage=storage)
    except ColdstreamError as exc:
        fail(str(exc))
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            embedded.start()
        except ColdstreamError as exc:
            fail(str(exc))
        if topics:
            settings = settings_or_fail(
                broker=embedded.bootstrap, topic_prefix=topic_prefix, partitions=partitions
            )
            made = ensure_topics(settings)
            err.print(f"topics: {', '.join(made)}")
        err.print(f"storage: {storage}", highlight=False)
        out.print(f"broker listening on {embedded.bootstrap}", highlight=False)
        out.print(f"export COLDSTREAM_BROKER={embedded.bootstrap}", highlight=False)
        out.file.flush()
        while not stop["signal"]:
            if not embedded.running():
                fail(f"the broker exited unexpectedly:\n{embedded.log_tail()}")
            time.sleep(0.2)
        err.print(f"stopping the broker ({signal.Signals(stop['signal']).name})")
    finally:
        embedded.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
