"""The ``coldstream`` command. ``coldstream --help`` lists the subcommands; each lives in its
own module under :mod:`coldstream.commands`."""

from __future__ import annotations

import typer

from coldstream.commands.broker import broker
from coldstream.commands.demo import demo
from coldstream.commands.evaluate import evaluate, pretrain
from coldstream.commands.generate import generate
from coldstream.commands.load import load
from coldstream.commands.replay import replay
from coldstream.commands.serve import serve
from coldstream.commands.worker import worker
from core.logs import setup_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="coldstream",
    help="Keep a small recommender fresh from a Kafka event stream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (broker, generate, load, worker, replay, demo, serve, evaluate, pretrain):
    app.command()(command)


def main() -> None:
    setup_logging()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
