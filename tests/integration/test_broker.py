"""The embedded broker as a context manager and as ``coldstream broker``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import Settings
from streams.broker import EmbeddedBroker, kafka_answers
from streams.exceptions import BrokerError
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration


def _gone(pid: int, wait_s: float = 5.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie child of ours still answers kill(0); it is gone once reaped
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split()[2] == "Z":
            return True
        time.sleep(0.05)
    return False


def test_context_manager_starts_answers_and_stops() -> None:
    with EmbeddedBroker() as b:
        host, port = b.bootstrap.split(":")
        assert host == "127.0.0.1"
        assert kafka_answers(host, int(port))
        pid = b.pid
        assert pid is not None
        made = ensure_topics(Settings.load(broker=b.bootstrap, partitions=2))
        assert set(made.values()) == {"created"}
    assert _gone(pid)
    assert not kafka_answers(host, int(port))


def test_port_taken_is_a_clear_error(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="taken"):
        EmbeddedBroker(port=int(broker.bootstrap.split(":")[1])).start()


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="not an executable"):
        EmbeddedBroker(binary=tmp_path / "tansu").start()


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldstream.cli", "broker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("broker listening on "), line + (
        proc.stderr.read() if proc.stderr else ""
    )
    return proc, line.split()[-1]


def _broker_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_broker_stops_cleanly_on_signals(sig: signal.Signals) -> None:
    proc, bootstrap = _start_cli("--partitions", "2")
    host, port = bootstrap.split(":")
    assert kafka_answers(host, int(port))
    children = _broker_children(proc.pid)
    assert children, "the broker runs as a child process"
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 0
    assert all(_gone(c) for c in children), "no broker process is left behind"
    assert not kafka_answers(host, int(port))


def test_cli_broker_killed_hard_leaves_no_broker() -> None:
    proc, _ = _start_cli("--no-topics")
    children = _broker_children(proc.pid)
    proc.kill()  # SIGKILL: no handler runs; the child must still go (PR_SET_PDEATHSIG)
    proc.wait(timeout=10)
    assert children and all(_gone(c) for c in children)


def test_cli_broker_port_taken(broker: EmbeddedBroker) -> None:
    port = broker.bootstrap.split(":")[1]
    done = subprocess.run(
        [sys.executable, "-m", "coldstream.cli", "broker", "--port", port],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "taken" in done.stderr and "--port" in done.stderr


def test_a_port_left_in_time_wait_is_free_again() -> None:
    """After a crash the broker's port keeps TIME-WAIT connections for ~60 s; a restart on the
    same port must not be refused as taken (the broker binds with SO_REUSEADDR)."""
    import socket

    from streams.broker import _port_taken

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the listening side closes first: its end of the pair waits in TIME-WAIT
    time.sleep(0.1)
    client.close()
    listener.close()
    with socket.socket() as plain, pytest.raises(OSError):  # the old check: refused
        plain.bind(("127.0.0.1", port))
    assert not _port_taken("127.0.0.1", port)
    with EmbeddedBroker(port=port) as b:
        assert kafka_answers("127.0.0.1", port) and b.bootstrap.endswith(f":{port}")
