"""Prometheus metrics of the worker, as one object built from a registry.

Names are the contract of docs/design.md (prefix ``coldstream_``, base units, counters end in
``_total``, never an id or offset in a label). Buckets are chosen for what each measures:
event-to-model latency spans milliseconds to minutes (replays of old data read as old), a
training step is milliseconds, teacher encoding is tens of milliseconds a batch.

>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> m = WorkerMetrics.create(reg)
>>> m.events.labels(topic="coldstream.interactions", outcome="applied").inc(3)
>>> reg.get_sample_value("coldstream_events_total",
...                      {"topic": "coldstream.interactions", "outcome": "applied"})
3.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "RankMetrics", "WorkerMetrics"]

#: event time -> applied; wide on purpose: a live stream sits at the low end, a backlog high.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_SIZES = (1, 8, 32, 128, 512, 2048, 8192, 32768)


@dataclass(frozen=True)
class WorkerMetrics:
    events: Counter
    dead_letters: Counter
    dead_letters_failed: Counter
    event_to_model: Histogram
    train_batch: Histogram
    train_batch_size: Histogram
    recall: Gauge
    evaluated: Gauge
    drift: Counter
    drift_last: Gauge
    data_drift: Counter
    psi: Gauge
    embedding_shift: Gauge
    snapshot_version: Gauge
    snapshot_export: Histogram
    item_to_rankable: Histogram
    teacher_encode: Histogram
    checkpoint: Histogram
    model_events: Gauge
    lag: Gauge
    offset_resets: Counter
    broker_connected: Gauge
    broker_disconnects: Counter
    fetch_stall: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WorkerMetrics:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        def hist(
            name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=registry)

        return cls(
            events=counter(
                "coldstream_events",
                "Messages read, by topic and outcome (applied, invalid).",
                ("topic", "outcome"),
            ),
            dead_letters=counter(
                "coldstream_dead_letters",
                "Messages sent to the dead-letter topic, by reason.",
                ("reason",),
            ),
            dead_letters_failed=counter(
                "coldstream_dead_letters_failed",
                "Dead letters the producer could not publish (each also logged with its reason, "
                "size and first bytes).",
            ),
            event_to_model=hist(
                "coldstream_event_to_model_seconds",
                "Wall time when an interaction is applied to the model minus its event time.",
                LATENCY_BUCKETS,
            ),
            train_batch=hist(
                "coldstream_train_batch_seconds",
                "Seconds to apply one batch of interactions.",
                _STEP_BUCKETS,
            ),
            train_batch_size=hist(
                "coldstream_train_batch_size", "Interactions per applied batch.", _BATCH_SIZES
            ),
            recall=gauge(
                "coldstream_recall_at_k",
                "Prequential Recall@K over the recent window, by model and slice.",
                ("model", "slice"),
            ),
            evaluated=gauge(
                "coldstream_evaluated_events",
                "Positive interactions ranked in the recent window, by model and slice.",
                ("model", "slice"),
            ),
            drift=counter(
                "coldstream_drift_detections",
                "Concept drift detections, by model and detector.",
                ("model", "detector"),
            ),
            drift_last=gauge(
                "coldstream_drift_last_detection_timestamp_seconds",
                "Event time of the interaction at the latest concept drift detection, by model "
                "and detector (0: none yet).",
                ("model", "detector"),
            ),
            data_drift=counter(
                "coldstream_data_drift_detections",
                "Data drift detections (PSI or item embedding shift over its threshold), by "
                "feature.",
                ("feature",),
            ),
            psi=gauge(
                "coldstream_psi",
                "Population stability index of a feature, recent window against the one before, "
                "by feature (item_popularity, student_score).",
                ("feature",),
            ),
            embedding_shift=gauge(
                "coldstream_item_embedding_shift",
                "Shift of the mean teacher embedding of new items, recent window against the one "
                "before, in units of the earlier window's spread.",
            ),
            snapshot_version=gauge("coldstream_snapshot_version", "Newest exported snapshot."),
            snapshot_export=hist(
                "coldstream_snapshot_export_seconds",
                "Seconds to export one snapshot.",
                _SLOW_BUCKETS,
            ),
            item_to_rankable=hist(
                "coldstream_item_to_rankable_seconds",
                "Wall time when a new or updated item enters the catalog (rankable) minus its "
                "event time.",
                LATENCY_BUCKETS,
            ),
            teacher_encode=hist(
                "coldstream_teacher_encode_seconds",
                "Seconds to encode one batch of item/user text.",
                _SLOW_BUCKETS,
            ),
            checkpoint=hist(
                "coldstream_checkpoint_seconds", "Seconds to write one checkpoint.", _SLOW_BUCKETS
            ),
            model_events=gauge(
                "coldstream_model_events",
                "Interactions applied to the model since it started from scratch (kept across "
                "restarts by the checkpoint).",
            ),
            lag=gauge(
                "coldstream_consumer_lag",
                "Records behind the end of the input topics, by topic.",
                ("topic",),
            ),
            offset_resets=counter(
                "coldstream_offset_resets",
                "Partitions whose applied offset was past their end (a broker restarted empty, "
                "a topic recreated, retention ahead of the worker), read again from their "
                "start; by topic.",
                ("topic",),
            ),
            broker_connected=gauge(
                "coldstream_broker_connected",
                "1 while the worker's Kafka consumer holds a live connection to a broker, 0 while "
                "it cannot reach one.",
            ),
            broker_disconnects=counter(
                "coldstream_broker_disconnects",
                "Times the worker lost its connection to every broker.",
            ),
            fetch_stall=gauge(
                "coldstream_fetch_stall_seconds",
                "Seconds since the worker last fetched a record, while records wait for it (a "
                "backlog, or the broker unreachable); 0 when it has read everything.",
            ),
        )

    def start_drift(
        self, detectors: Iterable[tuple[str | None, str]], features: Iterable[str]
    ) -> None:
        """Create the drift series before anything happens: detection counters and the latest
        detection time at 0 for each ``(model, detector)`` (``(None, feature)``: data drift), the
        PSI of each feature and the embedding shift NaN until there is enough data for them."""
        for model, name in detectors:
            if model is None:
                self.data_drift.labels(feature=name)
            else:
                self.drift.labels(model=model, detector=name)
                self.drift_last.labels(model=model, detector=name).set(0.0)
        for feature in features:
            self.psi.labels(feature=feature).set(math.nan)
        self.embedding_shift.set(math.nan)


@dataclass(frozen=True)
class RankMetrics:
    """The synchronisation metrics of one of several ranks (:mod:`streams.ranks`); every rank
    serves its own ``/metrics``, so Prometheus tells them apart by target (and ``rank``)."""

    info: Gauge
    syncs: Counter
    sync: Histogram
    sync_parts: Counter
    sync_bytes: Counter
    remote_events: Counter
    cuts: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, rank: int, world: int) -> RankMetrics:
        info = Gauge(
            "coldstream_rank",
            "1 on each of several ranks that learn one student, labelled with its rank and the "
            "number of ranks.",
            ("rank", "world"),
            registry=registry,
        )
        info.labels(rank=str(rank), world=str(world)).set(1)
        return cls(
            info=info,
            syncs=Counter("coldstream_syncs", "Synchronisation points passed.", registry=registry),
            sync=Histogram(
                "coldstream_sync_seconds",
                "Seconds per synchronisation point, the wait for the slowest rank included.",
                buckets=_STEP_BUCKETS,
                registry=registry,
            ),
            sync_parts=Counter(
                "coldstream_sync_part_seconds",
                "Seconds in synchronisation, by part (wait: for the slowest rank; events, dense, "
                "rows, cooc, freshness, caches; agree: offsets and watermark; catalog: items "
                "joining).",
                ("part",),
                registry=registry,
            ),
            sync_bytes=Counter(
                "coldstream_sync_bytes",
                "Bytes this rank sent in synchronisation collectives.",
                registry=registry,
            ),
            remote_events=Counter(
                "coldstream_remote_events",
                "Other ranks' interactions counted here at synchronisation points.",
                registry=registry,
            ),
            cuts=Counter(
                "coldstream_cuts",
                "Checkpoint cuts this rank wrote its part of, by outcome (complete: every rank "
                "wrote; incomplete).",
                ("outcome",),
                registry=registry,
            ),
        )
