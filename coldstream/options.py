"""What the ``coldstream`` commands share: the connection options, and failing with a message
that says what to do."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from coldstream.console import err
from core.errors import ColdstreamError
from core.settings import Settings

__all__ = [
    "BrokerOpt",
    "FieldOpt",
    "PartitionsOpt",
    "PrefixOpt",
    "check_feedback",
    "fail",
    "field_map",
    "settings_or_fail",
]

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Kafka bootstrap servers, host:port or kafka://host:port [env: COLDSTREAM_BROKER]",
        show_default=False,
    ),
]
PrefixOpt = Annotated[
    str | None,
    typer.Option("--topic-prefix", help="topic name prefix [env: COLDSTREAM_TOPIC_PREFIX]"),
]
PartitionsOpt = Annotated[
    int | None,
    typer.Option(
        "--partitions", min=1, help="partitions of topics created [env: COLDSTREAM_PARTITIONS]"
    ),
]

FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        help="read a field under another name: [KIND.]CANONICAL=SOURCE (repeatable) "
        "[env: COLDSTREAM_FIELD_MAP]",
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def settings_or_fail(**overrides: object) -> Settings:
    try:
        return Settings.load(**overrides)
    except ColdstreamError as exc:
        fail(str(exc), 2)


def field_map(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    mapping = {}
    for pair in pairs:
        canonical, sep, source = pair.partition("=")
        if not sep or not canonical or not source:
            raise typer.BadParameter(
                f"{pair!r} is not CANONICAL=SOURCE; write e.g. --field user_id=userId",
                param_hint="--field",
            )
        mapping[canonical.strip()] = source.strip()
    return mapping


def check_feedback(feedback: str) -> None:
    if feedback not in ("implicit", "explicit"):
        raise typer.BadParameter(
            f"{feedback!r} is not a feedback kind: use implicit or explicit",
            param_hint="--feedback",
        )
