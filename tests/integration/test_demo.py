"""The README's demo command, as a newcomer runs it (a shorter stream), and its Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coldstream.demo import run_demo
from models.registry import MODEL_NAMES
from streams.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

DEMO = [sys.executable, "-m", "coldstream.cli", "demo", "--events", "3000"]  # the CI-sized demo


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie has exited but is not reaped yet: it counts as stopped
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z")


def test_demo_command_runs_end_to_end(tmp_path: Path) -> None:
    report = tmp_path / "report"
    done = subprocess.run(
        [*DEMO, "--out", str(tmp_path / "demo"), "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "inference worker answers" in done.stdout
    assert "someone-new" in done.stdout  # a cold user got an answer
    assert re.search(r"new item new-\d+: served [\d.]+ s after its announcement", done.stdout)
    assert "every process it started is stopped" in done.stdout
    for name in ("report.json", "report.md", "recall_by_slice.png", "recall_over_time.png"):
        assert (report / name).stat().st_size > 0, name
    body = json.loads((report / "report.json").read_text())
    assert set(body["models"]) == set(MODEL_NAMES)
    pids = [int(p) for p in re.findall(r"pid (\d+)", done.stderr)]
    assert len(pids) == 2 and all(_gone(p) for p in pids)


def test_demo_serves_a_new_item_and_stops_its_children(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    result = run_demo(
        events=2000, out_dir=tmp_path / "d", report_dir=tmp_path / "r", broker=broker.bootstrap
    )
    assert sum(result.published.values()) > 2000 and result.applied == 2000
    assert result.version >= 1
    assert len(result.recommendations) == 3
    assert all(len(items) == 5 for items in result.recommendations.values())
    assert result.new_item_served_s is not None and result.new_item_served_s < 30
    assert 0.0 <= result.recall["student/all"] <= 1.0
    assert all(_gone(p) for p in result.pids)


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*DEMO, "--out", str(tmp_path / "demo"), "--report", str(tmp_path / "report")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stderr is not None
    pids: list[int] = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        pids += [int(p) for p in re.findall(r"pid (\d+)", line)]
        if len(pids) == 2 or time.monotonic() > deadline:
            break
    assert len(pids) == 2, "the demo did not start its children"
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, rest[-2000:]
    lines = rest.splitlines()
    said = [i for i, line in enumerate(lines) if line.startswith("stopping…")]
    assert said, rest[-2000:]
    assert any(line.startswith("stopped:") for line in lines[said[0] :]), rest[-2000:]
    assert "error:" not in rest
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in pids)
