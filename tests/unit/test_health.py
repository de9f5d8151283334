"""The worker's broker health (connected, stalled) and the Kafka client log filter, on a fake
clock: what the metrics read and what is logged at each state change."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from core.logs import RepeatFilter
from exporters.metrics import WorkerMetrics
from streams.health import BrokerHealth


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def setup() -> tuple[BrokerHealth, CollectorRegistry, Clock]:
    registry, clock = CollectorRegistry(), Clock()
    health = BrokerHealth(WorkerMetrics.create(registry), "b:9092", clock=clock, remind_s=60)
    return health, registry, clock


def _read(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


def test_an_outage_is_a_gauge_a_counter_and_two_log_lines(
    setup: tuple[BrokerHealth, CollectorRegistry, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    health, registry, clock = setup
    caplog.set_level(logging.INFO, logger="streams.health")
    health.update(True, waiting=False)
    clock.t += 1.5
    health.update(True, waiting=False)
    assert _read(registry, "coldstream_broker_connected") == 1
    health.update(False, waiting=False)  # a blip shorter than settle_s is no outage
    clock.t += 0.5
    health.update(True, waiting=False)
    assert _read(registry, "coldstream_broker_disconnects_total") == 0
    health.fetched()
    for _ in range(3):  # the broker goes away
        health.update(False, waiting=False)
        clock.t += 0.6
    assert _read(registry, "coldstream_broker_connected") == 0
    assert _read(registry, "coldstream_broker_disconnects_total") == 1
    # unreachable counts as stalled even without a known backlog
    stall = _read(registry, "coldstream_fetch_stall_seconds")
    assert stall is not None and stall > 1
    clock.t += 61
    health.update(False, waiting=False)  # the reminder
    clock.t += 10
    health.update(True, waiting=True)
    clock.t += 1.1
    health.update(True, waiting=True)
    assert _read(registry, "coldstream_broker_connected") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "connected to the broker (b:9092)"
    assert messages[1].startswith("lost the connection to the broker (b:9092)")
    assert "still unreachable, for 62 s" in messages[2]
    assert messages[3].startswith("the broker (b:9092) is reachable again after 73 s")
    assert len(messages) == 4, messages


def test_a_backlog_that_is_not_fetched_is_a_stall_and_warned_once(
    setup: tuple[BrokerHealth, CollectorRegistry, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    health, registry, clock = setup
    health.update(True, waiting=False)
    clock.t += 2
    health.update(True, waiting=False)
    assert _read(registry, "coldstream_fetch_stall_seconds") == 0  # caught up: no stall
    health.fetched()
    clock.t += 30
    health.update(True, waiting=True)
    assert _read(registry, "coldstream_fetch_stall_seconds") == 30
    caplog.set_level(logging.WARNING, logger="streams.health")
    for _ in range(3):
        clock.t += 40
        health.update(True, waiting=True)
    assert [r.getMessage()[:28] for r in caplog.records] == ["no record fetched for 70 s a"]
    health.fetched()
    health.update(True, waiting=True)
    assert _read(registry, "coldstream_fetch_stall_seconds") == 0


def test_the_repeat_filter_passes_each_kafka_message_once_per_state() -> None:
    f = RepeatFilter()

    def rec(name: str, msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, "", 0, msg, args, None)

    assert f.filter(rec("aiokafka.conn", "Unable connect to node %s", 1))
    assert not f.filter(rec("aiokafka.conn", "Unable connect to node %s", 2))  # same template
    assert f.filter(rec("aiokafka.conn", "Failed fetch"))
    assert f.filter(rec("aiokafkax", "not a kafka logger"))
    assert all(f.filter(rec("streams.health", "ours")) for _ in range(3))
    assert f.reset() == 1
    assert f.filter(rec("aiokafka.conn", "Unable connect to node %s", 3))
    later = rec("aiokafka.conn", "Unable connect to node %s", 4)
    later.created += 601  # held back for ten minutes: passes once more
    assert f.filter(later)
