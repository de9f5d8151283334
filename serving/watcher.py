"""The snapshot watcher of ``coldstream serve``: follows ``LATEST`` (polled every
``serve_poll_s``, and woken by ``<prefix>.snapshots`` announcements), verifies, loads and warms
a new snapshot on its own thread, then swaps it in with one assignment. A snapshot that fails
verification is refused, counted and never retried; the current one keeps serving. ``LATEST``
is the authority: pointing it back at an older version rolls back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from core.errors import ColdstreamError
from core.settings import Settings
from serving.metrics import InferenceMetrics
from serving.scorer import Scorer
from snapshotlib.exceptions import SnapshotError
from snapshotlib.store import SnapshotStore

__all__ = ["ReloadState", "SnapshotWatcher"]

log = logging.getLogger(__name__)


@dataclass
class ReloadState:
    loaded: str | None = None  # directory name being served
    rejected: set[str] = field(default_factory=set)


class SnapshotWatcher:
    """Holds the :class:`~serving.scorer.Scorer` being served (``scorer``; None before the
    first snapshot) and replaces it as new snapshots appear."""

    def __init__(
        self,
        settings: Settings,
        store: SnapshotStore,
        metrics: InferenceMetrics,
        *,
        threads: int = 0,
        warm_batch: int = 1,
        announcements: bool = True,
    ) -> None:
        self.settings, self.store, self.metrics = settings, store, metrics
        self.threads, self.warm_batch, self.announcements = threads, warm_batch, announcements
        self.scorer: Scorer | None = None
        self.state = ReloadState()
        self._poke: asyncio.Event | None = None
        self._load_pool = ThreadPoolExecutor(1, thread_name_prefix="coldstream-load")
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Start following (in the running event loop); the first load starts at once."""
        self._poke = asyncio.Event()
        self._poke.set()  # load LATEST right away
        self._task = asyncio.create_task(self._watch(), name="coldstream-watch")
        if self.announcements:
            loop = asyncio.get_running_loop()
            threading.Thread(
                target=self._listen, args=(loop,), name="coldstream-announce", daemon=True
            ).start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._load_pool.shutdown(wait=False)

    async def _watch(self) -> None:
        """Follow ``LATEST`` until cancelled. Nothing it meets ends it: a damaged ``LATEST`` or
        an unreadable store is logged and counted (once per distinct failure, not per poll),
        the served version stays, and the next poll tries again."""
        assert self._poke is not None
        failing: str | None = None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.settings.serve_poll_s)
            self._poke.clear()
            try:
                name = self.store.latest()
                loaded, rejected = self.state.loaded, self.state.rejected
                if name is not None and name != loaded and name not in rejected:
                    await self.reload(name)
                failing = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if message != failing:
                    failing = message
                    self.metrics.watch_errors.inc()
                    current = self.scorer.version if self.scorer is not None else "none"
                    log.error("snapshot watcher: %s; still serving %s, retrying", message, current)

    def watching(self) -> bool:
        """Whether the snapshot watcher is running (``/healthz`` fails when it is not)."""
        return self._task is not None and not self._task.done()

    async def reload(self, name: str) -> bool:
        """Verify, load and warm ``name`` off the request path, then swap it in."""
        loop = asyncio.get_running_loop()
        t = time.perf_counter()
        try:
            scorer = await loop.run_in_executor(self._load_pool, self._load, name)
        except SnapshotError as exc:
            self._reject(name, exc.reason, str(exc))
            return False
        except Exception as exc:  # an unloadable model must not take the worker down
            self._reject(name, "unreadable", f"{type(exc).__name__}: {exc}")
            return False
        old = self.scorer
        if old is not None and scorer.version < old.version:
            # LATEST is the authority: an operator pointing it back at an older version rolls back
            log.warning("LATEST names %s, older than %s: rolling back", name, old.version)
        self.scorer = scorer  # the swap: batches already running keep their old reference
        self.state.loaded = name
        m, manifest = self.metrics, scorer.snapshot.manifest
        m.snapshot_load.observe(time.perf_counter() - t)
        m.snapshot_version.set(scorer.version)
        m.snapshot_created.set(float(manifest.get("created_at_ts") or 0.0))
        m.set_provider(scorer.provider)
        newest = manifest.get("newest_event_ts")
        if newest is not None:
            m.event_to_servable.observe(max(0.0, time.time() - newest / 1000.0))
        log.info("serving snapshot %s on %s", scorer.version, scorer.provider)
        return True

    def _load(self, name: str) -> Scorer:
        snapshot = self.store.open(name)
        return Scorer(
            snapshot,
            provider=self.settings.serve_provider,
            threads=self.threads,
            warm_batch=self.warm_batch,
        )

    def _reject(self, name: str, reason: str, message: str) -> None:
        self.state.rejected.add(name)
        self.metrics.snapshot_rejected.labels(reason=reason).inc()
        current = self.scorer.version if self.scorer is not None else "none"
        log.error("refused snapshot %s (%s); still serving %s", name, message, current)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread: wake the watcher on each ``.snapshots`` announcement (LATEST polling is
        the fallback, so a broker that is down or slow only costs the poll interval)."""
        from kafka import KafkaConsumer, TopicPartition

        from streams.topics import check_reachable

        topic = self.settings.topics.snapshots
        try:
            check_reachable(self.settings)
        except ColdstreamError as exc:
            log.warning("no snapshot announcements (%s); polling %s", exc, self.store.root)
            return
        try:
            consumer = KafkaConsumer(
                **self.settings.kafka_python_config(),
                group_id=None,
                enable_auto_commit=False,
                consumer_timeout_ms=1000,
            )
        except Exception as exc:
            log.warning("no snapshot announcements (%s); polling %s", exc, self.store.root)
            return
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            if not tps:
                log.warning("topic %s not found; polling %s only", topic, self.store.root)
                return
            consumer.assign(tps)
            consumer.seek_to_end(*tps)
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=200)
                if any(batch.values()):
                    poke = self._poke
                    if poke is not None:
                        loop.call_soon_threadsafe(poke.set)
        except Exception as exc:
            log.warning("snapshot announcements stopped (%s); polling continues", exc)
        finally:
            consumer.close()
