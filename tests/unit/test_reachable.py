"""The quick broker check made before any Kafka client is built (``streams.topics``)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from core.settings import Settings
from streams.exceptions import BrokerError
from streams.topics import _address, check_reachable


@contextmanager
def _server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback TCP server that runs ``answer`` on its first connection."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        srv.close()


def _kafka_like(conn: socket.socket) -> None:
    _size, api, version, correlation = struct.unpack(">ihhi", conn.recv(12))
    assert (api, version) == (18, 0)
    conn.sendall(struct.pack(">ii", 6, correlation) + b"\x00\x00")


def _silent(conn: socket.socket) -> None:
    conn.recv(64)
    threading.Event().wait(2.0)


def test_a_broker_that_answers_api_versions_is_reachable() -> None:
    with _server(_kafka_like) as address:
        check_reachable(Settings(broker=address))


def test_a_refused_port_is_reported_with_the_hint() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        free = probe.getsockname()[1]
    with pytest.raises(BrokerError, match=r"refused.*coldstream broker"):
        check_reachable(Settings(broker=f"127.0.0.1:{free}"))


def test_something_that_accepts_but_never_answers_is_not_a_broker() -> None:
    with _server(_silent) as address, pytest.raises(BrokerError, match="cannot reach"):
        check_reachable(Settings(broker=address), timeout_s=0.3)


def test_one_live_address_among_several_is_enough() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        free = probe.getsockname()[1]
    with _server(_kafka_like) as address:
        check_reachable(Settings(broker=f"127.0.0.1:{free},{address}"))


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("kafka:9092", ("kafka", 9092)),
        ("[::1]:19092", ("::1", 19092)),
        ("::1", ("::1", 9092)),
        ("broker.example", ("broker.example", 9092)),
    ],
)
def test_bootstrap_addresses_are_parsed(server: str, expected: tuple[str, int]) -> None:
    assert _address(server) == expected
