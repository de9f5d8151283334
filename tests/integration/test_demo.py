"""The README's demo command, as a newcomer runs it (a shorter stream)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coldstream.demo import run_demo
from streams.broker import EmbeddedBroker
from streams.datasets import open_dataset

pytestmark = pytest.mark.integration


def test_demo_command_runs_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "coldstream.cli",
            "demo",
            "--events",
            "3000",
            "--out",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "coldstream.interactions" in done.stdout
    assert "not in the demo yet" in done.stdout  # says honestly what is missing
    assert (tmp_path / "demo" / "interactions.jsonl").is_file()


def test_demo_reads_back_every_event(tmp_path: Path, broker: EmbeddedBroker) -> None:
    read = run_demo(events=2000, out_dir=tmp_path / "d", broker=broker.bootstrap)
    counts = open_dataset(tmp_path / "d").counts()
    assert read == {
        "coldstream.items": counts["item"],
        "coldstream.users": counts["user"],
        "coldstream.interactions": counts["interaction"],
    }
