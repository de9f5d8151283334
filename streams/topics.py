"""Topic administration and reading whole topics, with kafka-python.

``ensure_topics`` creates the coldstream topics that are missing (and leaves existing ones, whose
partition counts may be the cluster owner's choice, alone). ``read_topic`` reads a topic from a
given offset to its current end by assigning partitions directly (no consumer group, so it never
disturbs a live group). It decides "the end" by reading until the broker has nothing more for
``idle_s`` seconds, instead of trusting ``end_offsets``, which some Kafka-compatible brokers
(the embedded Tansu among them) answer wrongly.

``check_reachable`` is the quick question asked before any Kafka client is built: does a Kafka
broker answer at one of the bootstrap addresses? It connects over TCP and, on plaintext and
SASL-plaintext listeners, sends an ApiVersions request and reads the answer's header (TLS
listeners get the TCP check only). A refused connection answers at once and a silent host or a
service that is not Kafka within ``PROBE_TIMEOUT_S``, where the Kafka clients would retry for
30 s and log each retry.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError

from core.settings import Settings
from streams.exceptions import BrokerError

__all__ = [
    "PROBE_TIMEOUT_S",
    "check_reachable",
    "ensure_topics",
    "partition_counts",
    "read_topic",
    "unreachable",
]

#: how long a bootstrap address may take to connect and answer before it counts as down
PROBE_TIMEOUT_S = 3.0


def unreachable(settings: Settings, exc: BaseException) -> BrokerError:
    """The error to raise when no broker answers, with what to do about it."""
    reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else type(exc).__name__
    return BrokerError(
        f"cannot reach a Kafka broker at {settings.broker} ({reason}): start one "
        "with `coldstream broker`, or point --broker / COLDSTREAM_BROKER at your cluster"
    )


def _address(server: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> ``(host, port)``; no port means 9092."""
    host, sep, port = server.strip().rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        return server.strip().strip("[]"), 9092  # no port (or a bare IPv6 address)
    return host.strip("[]"), int(port)


def check_reachable(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise :func:`unreachable` unless one bootstrap address accepts a connection (and, on a
    plaintext listener, answers ApiVersions) within ``timeout_s``; all addresses are tried in
    parallel, so the wait is about one timeout at most."""
    from concurrent.futures import ThreadPoolExecutor

    servers = [s for s in settings.broker.split(",") if s.strip()]

    kafka_probe = settings.security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT")

    def connect(server: str) -> BaseException | None:
        try:
            with socket.create_connection(_address(server), timeout=timeout_s) as sock:
                if kafka_probe:  # TLS listeners get the TCP check only
                    _api_versions(sock, timeout_s)
        except OSError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        errors = list(pool.map(connect, servers))
    if servers and any(e is None for e in errors):
        return
    first = next((e for e in errors if e is not None), OSError("no bootstrap address"))
    raise unreachable(settings, first)


def _api_versions(sock: socket.socket, timeout_s: float) -> None:
    """Send a Kafka ApiVersions v0 request and read the response's header: a proxy or another
    service that accepts the connection but is not a Kafka broker does not answer it. Brokers
    answer it before any SASL authentication."""
    client = b"coldstream-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client  # api key 18, version 0, id 7
    sock.settimeout(timeout_s)
    sock.sendall(struct.pack(">i", len(body)) + body)
    header = b""
    while len(header) < 8:
        chunk = sock.recv(8 - len(header))
        if not chunk:
            raise ConnectionError("the connection closed before a Kafka answer")
        header += chunk
    size, correlation = struct.unpack(">ii", header)
    if correlation != 7 or size < 4:
        raise ConnectionError("the answer is not a Kafka ApiVersions response")


def ensure_topics(settings: Settings, short_names: Iterable[str] | None = None) -> dict[str, str]:
    """Create the missing coldstream topics; returns ``{topic: "created" | "exists"}``."""
    wanted = settings.topics.all()
    names = list(short_names) if short_names is not None else list(wanted)
    check_reachable(settings)
    try:
        admin = KafkaAdminClient(**settings.kafka_python_config(), request_timeout_ms=30_000)
    except (KafkaError, OSError) as exc:
        raise unreachable(settings, exc) from None
    result: dict[str, str] = {}
    try:
        for short in names:
            topic = wanted[short]
            new = NewTopic(topic, settings.partitions_for(short), settings.replication_factor)
            try:
                admin.create_topics([new])
                result[topic] = "created"
            except TopicAlreadyExistsError:
                result[topic] = "exists"
    finally:
        admin.close()
    return result


def read_topic(
    settings: Settings,
    topic: str,
    *,
    start: int | None = None,
    idle_s: float = 2.0,
    max_records: int | None = None,
    consumer_config: dict[str, Any] | None = None,
) -> Iterator[ConsumerRecord]:
    """Yield the records of every partition of ``topic`` from ``start`` (default: earliest)."""
    check_reachable(settings)
    try:
        consumer = KafkaConsumer(
            **settings.kafka_python_config(),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            **(consumer_config or {}),
        )
    except (KafkaError, OSError) as exc:
        raise unreachable(settings, exc) from None
    try:
        parts = _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        for tp in tps:
            if start is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
        seen = 0
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            batch = consumer.poll(timeout_ms=200, max_records=10_000)
            if not batch:
                continue
            last = time.monotonic()
            for tp in sorted(batch, key=lambda t: t.partition):
                for rec in batch[tp]:
                    yield rec
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
    finally:
        consumer.close()


def _partitions(consumer: KafkaConsumer, topic: str, wait_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + wait_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise BrokerError(
                f"topic {topic!r} does not exist on {consumer.config['bootstrap_servers']}"
            )
        time.sleep(0.2)


def partition_counts(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """How many partitions each of ``topics`` has on the cluster."""
    check_reachable(settings)
    try:
        consumer = KafkaConsumer(**settings.kafka_python_config(), group_id=None)
    except (KafkaError, OSError) as exc:
        raise unreachable(settings, exc) from None
    try:
        return {t: len(_partitions(consumer, t)) for t in topics}
    finally:
        consumer.close()
