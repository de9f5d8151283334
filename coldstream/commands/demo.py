"""``coldstream demo``: the whole system in one command (the run itself: :mod:`coldstream.demo`)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from coldstream.console import err
from coldstream.options import (
    BrokerOpt,
    fail,
)
from core.errors import ColdstreamError

__all__ = ["demo"]


def demo(
    events: Annotated[int, typer.Option(min=100, help="interactions to generate")] = 20_000,
    out_dir: Annotated[
        Path, typer.Option("--out", help="where the data and the children's logs go")
    ] = Path("data/demo"),
    report: Annotated[Path, typer.Option(help="where the replay report goes")] = Path(
        "reports/demo"
    ),
    broker: BrokerOpt = None,
) -> None:
    """Everything on the embedded broker: generate, worker, inference, live display, replay."""
    from coldstream.demo import run_demo

    def on_interrupt(signum: int, frame: object) -> None:
        # said at once: stopping the worker and the inference worker takes a few seconds
        err.print("stopping… (the broker, the worker and the inference worker)")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        run_demo(events=events, out_dir=out_dir, report_dir=report, broker=broker)
    except ColdstreamError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err.print("stopped: every process the demo started has exited")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)
