from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import Settings


def test_defaults_follow_the_prefix() -> None:
    s = Settings.load()
    assert s.broker == "127.0.0.1:9092"
    assert s.topics.all() == {
        "interactions": "coldstream.interactions",
        "items": "coldstream.items",
        "users": "coldstream.users",
        "snapshots": "coldstream.snapshots",
        "dlq": "coldstream.dlq",
    }


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDSTREAM_BROKER", "kafka://b1:9092,b2:9093")
    monkeypatch.setenv("COLDSTREAM_TOPIC_PREFIX", "shop")
    monkeypatch.setenv("COLDSTREAM_TOPIC_ITEMS", "catalog.products")
    monkeypatch.setenv("COLDSTREAM_FIELD_MAP", '{"user_id": "userId", "item_id": "productId"}')
    monkeypatch.setenv("COLDSTREAM_PARTITIONS_BY_TOPIC", '{"interactions": 12}')
    s = Settings.load(topic_prefix=None, metrics_port=9999)
    assert s.broker == "b1:9092,b2:9093"
    assert s.topics.interactions == "shop.interactions"
    assert s.topics.items == "catalog.products"  # set on its own, not through the prefix
    assert s.fields.for_kind("interaction").get({"userId": "u"}, "user_id") == "u"
    assert s.partitions_for("interactions") == 12 and s.partitions_for("dlq") == 3
    assert s.metrics_port == 9999
    assert s.kafka_python_config()["bootstrap_servers"] == ["b1:9092", "b2:9093"]


def test_sasl_ssl_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDSTREAM_SASL_PASSWORD", "s3cret")
    s = Settings.load(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", sasl_username="app"
    )
    cfg = s.kafka_python_config()
    assert cfg["security_protocol"] == "SASL_PLAINTEXT"
    assert cfg["sasl_mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl_plain_username"] == "app" and cfg["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(s)  # secrets never print
    assert s.aiokafka_config()["sasl_plain_password"] == "s3cret"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"broker": "no-port"}, "host:port"),
        ({"security_protocol": "SASL_SSL"}, "COLDSTREAM_SASL_USERNAME"),
        ({"field_map": {"userid": "x"}}, "unknown field"),
        ({"field_map": {"order.user_id": "x"}}, "KIND.FIELD"),
        ({"partitions_by_topic": {"orders": 3}}, "unknown topic"),
        ({"partitions": 0}, "partitions"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_settings_say_what_to_fix(overrides: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings.load(**overrides)


def test_settings_are_frozen() -> None:
    s = Settings.load()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        s.broker = "x:1"  # type: ignore[misc]
