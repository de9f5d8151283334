"""The one settings object: every ``COLDSTREAM_*`` environment variable, CLI flags on top.

Only this module reads the environment. Build it with :meth:`Settings.load`, which applies
CLI overrides (``None`` means "not given") and turns validation errors into one
:class:`~core.errors.ConfigError` that says what to fix.

>>> s = Settings.load(broker="kafka://10.0.0.5:9093", topic_prefix="shop")
>>> s.broker, s.topics.interactions, s.topics.dlq
('10.0.0.5:9093', 'shop.interactions', 'shop.dlq')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.records import KINDS, FieldMap, Limits

__all__ = ["Settings", "TopicNames"]

_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_FIELDS = frozenset(
    {"user_id", "item_id", "value", "event", "ts", "context", "title", "text", "tags", "attributes"}
)


def _canonical(key: str) -> str:
    kind, sep, name = key.partition(".")
    return name if sep and kind in KINDS else ("" if sep else key)


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The five topic names, resolved from the prefix and the per-topic overrides."""

    interactions: str
    items: str
    users: str
    snapshots: str
    dlq: str

    def for_kind(self, kind: str) -> str:
        """The input topic of an event kind (``interaction``, ``item`` or ``user``)."""
        return {"interaction": self.interactions, "item": self.items, "user": self.users}[kind]

    def all(self) -> dict[str, str]:
        return {
            "interactions": self.interactions,
            "items": self.items,
            "users": self.users,
            "snapshots": self.snapshots,
            "dlq": self.dlq,
        }


class Settings(BaseSettings):
    """coldstream's configuration, from ``COLDSTREAM_<FIELD>`` variables (``COLDSTREAM_BROKER``)."""

    model_config = SettingsConfigDict(
        env_prefix="COLDSTREAM_", frozen=True, extra="forbid", env_nested_delimiter=None
    )

    # -- Kafka ---------------------------------------------------------------------------
    broker: str = Field("127.0.0.1:9092", description="bootstrap servers, host:port[,host:port]")
    topic_prefix: str = Field("coldstream", description="prefix of the default topic names")
    topic_interactions: str | None = None
    topic_items: str | None = None
    topic_users: str | None = None
    topic_snapshots: str | None = None
    topic_dlq: str | None = None
    partitions: int = Field(3, ge=1, le=10_000, description="partitions of topics we create")
    partitions_by_topic: dict[str, int] = Field(
        default_factory=dict, description='per-topic partitions, e.g. {"interactions": 12}'
    )
    replication_factor: int = Field(1, ge=1, le=32)
    client_id: str = "coldstream"
    group_id: str = "coldstream"

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None

    # -- events --------------------------------------------------------------------------
    field_map: dict[str, str] = Field(
        default_factory=dict,
        description='[kind.]field -> source field or dotted path, e.g. {"user_id": "userId"}',
    )
    limits: Limits = Field(default_factory=Limits)

    # -- model, snapshots, metrics ----------------------------------------------------------
    teacher_model: str | None = Field(None, description="sentence-transformers path or name")
    teacher_threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="torch threads the teacher encodes with when it runs on the learning path "
        "(0: one per core); `coldstream worker` encodes in its own thread instead, with the "
        "worker's --threads (torch's thread count is per process)",
    )
    user_ttl_hours: float = Field(
        720.0,
        gt=0,
        description="the worker forgets a user idle this long in event time (the student's "
        "history, profile and id row, the evaluator's seen items): memory stays bounded",
    )
    snapshot_dir: Path = Path("snapshots")
    checkpoint_dir: Path = Path("checkpoints")
    snapshot_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key: snapshots are signed, and serving refuses unsigned"
    )
    snapshot_keep: int = Field(5, ge=1, le=1000, description="snapshot versions kept on disk")
    snapshot_interval_s: float = Field(
        30.0, gt=0, description="the worker exports a snapshot this often (seconds)..."
    )
    snapshot_events: int = Field(
        1_000_000, ge=1, description="...or after this many records, whichever comes first"
    )
    snapshot_k_max: int = Field(
        100, ge=1, le=10_000, description="largest k a snapshot answers (top-K in the graph)"
    )
    snapshot_teacher_rank: int | None = Field(
        None,
        ge=1,
        description="serve the teacher-similarity term through this many principal directions "
        "of the catalog's teacher embeddings (smaller, faster, approximate); None: exact",
    )
    metrics_port: int = Field(9464, ge=0, le=65535)
    http_port: int = Field(8080, ge=0, le=65535)
    serve_provider: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="ONNX Runtime provider of `serve`: auto uses CUDA when it really works"
    )
    serve_max_batch: int = Field(256, ge=1, le=65_536, description="requests batched per run")
    serve_poll_s: float = Field(0.25, gt=0, description="how often `serve` checks LATEST")

    @field_validator("broker", mode="before")
    @classmethod
    def _normalise_broker(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        hosts = []
        for part in v.split(","):
            part = part.strip()
            if part.startswith("kafka://"):
                part = part[len("kafka://") :]
            part = part.rstrip("/")
            if not _HOSTPORT.match(part):
                raise ValueError(
                    f"{part!r} is not host:port; use e.g. 127.0.0.1:9092 or kafka://broker:9092"
                )
            hosts.append(part)
        return ",".join(hosts)

    @field_validator("field_map")
    @classmethod
    def _known_fields(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(k for k in v if _canonical(k) not in _FIELDS)
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(unknown)} in the field map; map FIELD or "
                f"KIND.FIELD with KIND one of {', '.join(KINDS)} and FIELD one of "
                f"{', '.join(sorted(_FIELDS))}"
            )
        return v

    @field_validator("partitions_by_topic")
    @classmethod
    def _known_topics(cls, v: dict[str, int]) -> dict[str, int]:
        names = {"interactions", "items", "users", "snapshots", "dlq"}
        bad = sorted(set(v) - names)
        if bad:
            raise ValueError(f"unknown topic(s) {', '.join(bad)}: use {', '.join(sorted(names))}")
        if any(n < 1 for n in v.values()):
            raise ValueError("partition counts must be >= 1")
        return v

    @model_validator(mode="after")
    def _sasl_complete(self) -> Settings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs COLDSTREAM_SASL_MECHANISM, "
                "COLDSTREAM_SASL_USERNAME and COLDSTREAM_SASL_PASSWORD"
            )
        return self

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Environment first, then every override that is not ``None`` (CLI flags)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"invalid configuration: {problems}") from None

    # -- derived ---------------------------------------------------------------------------
    @property
    def topics(self) -> TopicNames:
        p = self.topic_prefix
        return TopicNames(
            interactions=self.topic_interactions or f"{p}.interactions",
            items=self.topic_items or f"{p}.items",
            users=self.topic_users or f"{p}.users",
            snapshots=self.topic_snapshots or f"{p}.snapshots",
            dlq=self.topic_dlq or f"{p}.dlq",
        )

    @property
    def fields(self) -> FieldMap:
        return FieldMap.from_mapping(self.field_map)

    def partitions_for(self, topic: str) -> int:
        """Partitions to create for one of the five topics, by short name (``interactions``)."""
        return self.partitions_by_topic.get(topic, self.partitions)

    def kafka_python_config(self) -> dict[str, Any]:
        """Connection settings for kafka-python clients (producer, admin, consumer)."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": self.broker.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        cfg.update(self._sasl())
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                cfg[name] = str(value)
        if self.ssl_password is not None:
            cfg["ssl_password"] = self.ssl_password.get_secret_value()
        return cfg

    def aiokafka_config(self) -> dict[str, Any]:
        """Connection settings for aiokafka clients (the worker's consumers)."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": self.broker,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        cfg.update(self._sasl())
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            cfg["ssl_context"] = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
                password=self.ssl_password.get_secret_value() if self.ssl_password else None,
            )
        return cfg

    def _sasl(self) -> dict[str, Any]:
        if not self.security_protocol.startswith("SASL"):
            return {}
        assert self.sasl_password is not None  # checked by _sasl_complete
        return {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password.get_secret_value(),
        }
