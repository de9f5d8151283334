"""``coldstream`` subcommands as child processes, and a client for their HTTP ports: the demo,
the Prometheus test and the benchmarks start workers and inference workers this way.

A :class:`Child` runs ``python -m coldstream.cli ARGS`` in its own process group that dies
with its parent (``PR_SET_PDEATHSIG``), copies everything it prints to a log file (a thread
keeps reading, so a chatty child never blocks on a full pipe), and reads the port it listens
on from the ``http://127.0.0.1:PORT`` line that ``worker`` and ``serve`` print when ready.
"""

from __future__ import annotations

import http.client
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from core.errors import ColdstreamError

__all__ = ["Child", "Http", "Samples"]

#: every sample of a /metrics page: (name, sorted labels) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

MARKER = "http://127.0.0.1:"


class Child:
    """A coldstream subprocess whose output goes to a log file; ``port`` is read from it."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._lines: queue.Queue[str] = queue.Queue()
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coldstream.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            self._lines.put(line)

    def port(self, marker: str = MARKER, timeout: float = 180.0) -> int:
        """The port in the first line containing ``marker`` (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if marker in line:
                return int(line.split(marker, 1)[1].split("/")[0].split()[0].rstrip(")"))
        tail = self.log.read_text()[-2000:] if self.log.exists() else ""
        raise ColdstreamError(f"{self.name} did not start; its log ({self.log}) ends:\n{tail}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the child checkpoints or drains), then SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    from streams.broker import die_with_parent

    die_with_parent()


class Http:
    """One keep-alive connection to ``127.0.0.1:port`` (reconnects once if it dropped)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, JSON body)``; a body that is not a JSON object comes back as bytes."""
        data = None if body is None else orjson.dumps(body)
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data)
                resp = self.conn.getresponse()
                raw = resp.read()
                return resp.status, orjson.loads(raw) if raw.startswith(b"{") else raw
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def metrics(self) -> Samples:
        """Every sample of the /metrics page (empty if it does not answer 200)."""
        from prometheus_client.parser import text_string_to_metric_families

        status, raw = self.call("GET", "/metrics")
        if status != 200:
            return {}
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(raw.decode())
            for s in fam.samples
        }
