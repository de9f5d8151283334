"""``coldstream replay`` arguments: --from / --until parsing, and bad arguments that exit
non-zero with a hint before anything is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldstream.cli import app
from core.errors import ConfigError
from streams import history
from streams.broker import free_port
from streams.ranges import Start, Until, check_range, parse_from, parse_until

runner = CliRunner()
JAN1 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in epoch ms


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("earliest", Start()),
        (" EARLIEST ", Start()),
        ("0", Start(offset=0)),
        ("1200", Start(offset=1200)),
        ("2024-01-01", Start(time_ms=JAN1)),
        ("2024-01-01T00:00:00", Start(time_ms=JAN1)),  # naive times are UTC
        ("2024-01-01T00:00:00Z", Start(time_ms=JAN1)),
        ("2024-01-01T01:00:00+01:00", Start(time_ms=JAN1)),
        ("2024-01-01T00:00:03.728Z", Start(time_ms=JAN1 + 3728)),  # exact, no float error
        ("2024-01-01T00:00:00.0001Z", Start(time_ms=JAN1 + 1)),  # sub-ms: up to whole ms
    ],
)
def test_parse_from(text: str, start: Start) -> None:
    assert parse_from(text) == start


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("yesterday", "is not earliest, an offset or an ISO-8601 time"),
        ("", "--from 2024-05-01T12:00:00Z"),
        ("1.5", "--from 5000"),
        ("2024-13-01", "is not earliest"),
        ("-3", "negative; offsets start at 0"),
        ("end", "is not earliest"),
    ],
)
def test_parse_from_refuses_with_a_hint(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_from(text)
    assert words in str(exc.value)


@pytest.mark.parametrize(
    ("text", "until"),
    [
        ("end", Until()),
        ("End", Until()),
        ("2024-01-01", Until(time_ms=JAN1)),
        ("2024-01-01T00:00:00.500+00:00", Until(time_ms=JAN1 + 500)),
    ],
)
def test_parse_until(text: str, until: Until) -> None:
    assert parse_until(text) == until


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("100", "offsets are for --from only"),
        ("earliest", "is not end or an ISO-8601 time"),
        ("tomorrow", "--until 2024-05-02T00:00:00Z"),
    ],
)
def test_parse_until_refuses_with_a_hint(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_until(text)
    assert words in str(exc.value)


def test_check_range() -> None:
    check_range(Start(time_ms=JAN1), Until(time_ms=JAN1 + 1))
    check_range(Start(offset=10**9), Until(time_ms=1))  # an offset says nothing about time
    check_range(Start(time_ms=JAN1), Until())
    for until in (JAN1, JAN1 - 1):
        with pytest.raises(ConfigError, match=r"is not after --from .* give an --until later"):
            check_range(Start(time_ms=JAN1), Until(time_ms=until))


def test_bounds_print_as_they_are_written() -> None:
    assert str(Start()) == "earliest" and str(Start(offset=7)) == "offset 7"
    assert str(Start(time_ms=JAN1 + 5)) == "2024-01-01T00:00:00.005Z"
    assert str(Until()) == "end" and str(Until(time_ms=JAN1)) == "2024-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--from", "yesterday"], "Invalid value for --from: 'yesterday' is not earliest"),
        (["--from", "-5"], "offset -5 is negative"),
        (["--until", "100"], "Invalid value for --until: '100' is not end"),
        (["--from", "2024-01-02", "--until", "2024-01-01"], "the range would be empty"),
        (["--feedback", "stars"], "use implicit or explicit"),
        (["--models", "svd"], "unknown model 'svd'"),
        (["--init", "no/such.pt"], "make one with coldstream pretrain"),
        (["--k", "0"], "--k"),
        (["--broker", "nohost"], "host:port"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_hint(args: list[str], words: str) -> None:
    res = runner.invoke(app, ["replay", *args])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.replace("│", " ").split())
    assert words in text, text


def test_unreachable_broker_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(history, "BOOTSTRAP_TIMEOUT_MS", 300)
    broker = f"127.0.0.1:{free_port()}"  # nothing listens there
    res = runner.invoke(
        app, ["replay", "--broker", broker, "--models", "popularity", "--report", str(tmp_path)]
    )
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert f"cannot reach a Kafka broker at {broker}" in text
    assert "start one with `coldstream broker`" in text
    assert not (tmp_path / "report.json").exists()
