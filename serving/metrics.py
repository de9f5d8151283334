"""Prometheus metrics of an inference worker (names: docs/design.md, "Contracts").

Request latency buckets start at 100 µs: a top-20 over a small catalog answers in well under a
millisecond, and percentiles computed from coarser buckets would say nothing.

>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> m = InferenceMetrics.create(reg)
>>> m.set_provider("CPUExecutionProvider")
>>> reg.get_sample_value("coldstream_inference_provider", {"provider": "CPUExecutionProvider"})
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["PROVIDERS", "REQUEST_BUCKETS", "InferenceMetrics"]

REQUEST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
_SERVABLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_LOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: every provider the gauge may name (each is 0 but the one in use)
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class InferenceMetrics:
    request_seconds: Histogram
    requests: Counter
    snapshot_version: Gauge
    snapshot_created: Gauge
    snapshot_load: Histogram
    snapshot_rejected: Counter
    watch_errors: Counter
    event_to_servable: Histogram
    provider: Gauge
    batch_size: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> InferenceMetrics:
        return cls(
            request_seconds=Histogram(
                "coldstream_inference_request_seconds",
                "Seconds to answer one HTTP request, by endpoint.",
                ["endpoint"],
                buckets=REQUEST_BUCKETS,
                registry=registry,
            ),
            requests=Counter(
                "coldstream_inference_requests",
                "HTTP requests answered, by endpoint and status code.",
                ["endpoint", "status"],
                registry=registry,
            ),
            snapshot_version=Gauge(
                "coldstream_inference_snapshot_version",
                "Snapshot version being served (0: none yet).",
                registry=registry,
            ),
            snapshot_created=Gauge(
                "coldstream_inference_snapshot_created_timestamp_seconds",
                "When the served snapshot was exported (Unix time).",
                registry=registry,
            ),
            snapshot_load=Histogram(
                "coldstream_inference_snapshot_load_seconds",
                "Seconds to verify, load and warm a snapshot before swapping it in.",
                buckets=_LOAD_BUCKETS,
                registry=registry,
            ),
            snapshot_rejected=Counter(
                "coldstream_inference_snapshot_rejected",
                "Snapshots refused (hash or signature mismatch, unreadable), by reason.",
                ["reason"],
                registry=registry,
            ),
            watch_errors=Counter(
                "coldstream_inference_watch_errors",
                "Failures of the snapshot watcher (a damaged LATEST, an unreadable store), each "
                "logged; the watcher retries on its next poll.",
                registry=registry,
            ),
            event_to_servable=Histogram(
                "coldstream_event_to_servable_seconds",
                "Newest event time in a snapshot to the moment it is served.",
                buckets=_SERVABLE_BUCKETS,
                registry=registry,
            ),
            provider=Gauge(
                "coldstream_inference_provider",
                "1 for the ONNX Runtime execution provider in use.",
                ["provider"],
                registry=registry,
            ),
            batch_size=Histogram(
                "coldstream_inference_batch_size",
                "Users scored in one ONNX Runtime run (concurrent requests are batched).",
                buckets=_BATCH_SIZES,
                registry=registry,
            ),
        )

    def set_provider(self, provider: str) -> None:
        for name in {*PROVIDERS, provider}:
            self.provider.labels(provider=name).set(1.0 if name == provider else 0.0)
