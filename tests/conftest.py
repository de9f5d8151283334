"""Shared fixtures: one embedded broker per test session, fresh topic names per test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from core.settings import Settings
from streams.broker import EmbeddedBroker

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The real embedded Kafka-compatible broker, on a free loopback port."""
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture
def settings_factory(broker: EmbeddedBroker) -> Callable[..., Settings]:
    """Settings pointing at the session broker, each call with a topic prefix of its own."""

    def make(**overrides: object) -> Settings:
        overrides.setdefault("topic_prefix", f"t{next(_prefixes)}")
        return Settings.load(broker=broker.bootstrap, **overrides)

    return make
