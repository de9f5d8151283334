"""Every subcommand has working help; bad arguments exit non-zero and say what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldstream.cli import app

runner = CliRunner()
COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]


def test_top_level_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
    assert {"broker", "generate", "load", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_console_script_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coldstream.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "generate" in done.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--role", "baseline"], ["one of 2 ranks", "use --role student", "without torchrun"]),
        (["--role", "all"], ["one of 2 ranks", "use --role student"]),
        (["--adapt"], ["--adapt is not available under torchrun"]),
    ],
)
def test_a_worker_under_torchrun_refuses_what_ranks_cannot_do_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], words: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun --nproc-per-node 2 sets it
    result = runner.invoke(app, ["worker", "--checkpoint-dir", str(tmp_path / "ck"), *args])
    assert result.exit_code != 0
    text = " ".join(result.output.replace("│", " ").split())
    assert all(w in text for w in words), text
    assert not (tmp_path / "ck").exists()  # refused before anything started


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["load", "nowhere"], "does not exist"),
        (["load", ".", "--format", "xls"], "use auto, jsonl, csv or movielens"),
        (["load", ".", "--broker", "nohost"], "host:port"),
        (["load", ".", "--field", "user_id"], "CANONICAL=SOURCE"),
        (["load", ".", "--field", "userid=x"], "unknown field"),
        (["generate", "out", "--feedback", "stars"], "use implicit or explicit"),
        (["generate", "out", "--events", "0"], "events"),
        (["generate", "out", "--drift-at", "1.0"], "between 0 and 1"),
        (["broker", "--port", "70000"], "port"),
        (["serve", "--provider", "gpu"], "use auto, cuda or cpu"),
        (["serve", "--port", "-1"], "port"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_hint(
    args: list[str], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    text = " ".join(result.output.replace("│", " ").split())  # rich wraps and boxes lines
    assert words in text, text
