"""The inference worker of ``coldstream serve``: the HTTP API (hot reload in
:mod:`serving.watcher`, request batching in :mod:`serving.batcher`).

Requests never wait for a reload. A new snapshot (announced on ``<prefix>.snapshots``, or seen
as a change of ``LATEST``, polled every ``serve_poll_s``) is verified, loaded and warmed on a
separate thread; then one assignment swaps it in. A batch already running holds its own
reference to the old :class:`~serving.scorer.Scorer`, so requests in flight finish on the old
version and every answer names the version that produced it. A snapshot that fails
verification is refused, counted in ``coldstream_inference_snapshot_rejected_total`` and never
retried; the current one keeps serving. ``LATEST`` is the authority: pointing it back at an
older version rolls back.

Concurrent ``/recommend`` requests are batched: a single scoring thread takes every request
waiting (up to ``serve_max_batch`` users) into one ONNX Runtime run.

API (every answer names ``version``)::

    GET  /recommend?user_id=U&k=20              {"version", "user_id", "known", "items": [...]}
    POST /recommend {"user_ids": [...], "k": 20} {"version", "results": [...]}
    POST /score {"user_id": U, "item_ids": [...]} {"version", "user_id", "known", "scores": [...]}
    GET  /similar?item_id=I&k=10                 {"version", "item_id", "items": [...]}

where each item is ``{"item_id", "score"}``.
    GET  /healthz   /readyz   /metrics

An unknown user gets the cold-user answer (``"known": false``): what the student ranks for
someone it knows nothing about (fresh and popular items). Malformed requests get a 4xx with a
message saying what to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.settings import Settings
from serving.batcher import Batcher
from serving.exceptions import BadRequest
from serving.metrics import InferenceMetrics
from serving.scorer import Recommendation, Scorer
from serving.watcher import ReloadState, SnapshotWatcher
from snapshotlib.store import SnapshotStore

__all__ = ["InferenceServer", "serve"]

log = logging.getLogger(__name__)

MAX_USERS_PER_REQUEST = 1024
MAX_ITEMS_PER_SCORE = 10_000


class InferenceServer:
    """The HTTP side of ``coldstream serve``: routes, validation, answers and metrics; the
    :class:`~serving.watcher.SnapshotWatcher` keeps the scorer current and the
    :class:`~serving.batcher.Batcher` scores ``/recommend`` requests in batches."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        threads: int = 0,
        announcements: bool = True,
    ) -> None:
        self.settings = settings
        key = settings.snapshot_key
        self.store = SnapshotStore(
            settings.snapshot_dir,
            keep=settings.snapshot_keep,
            key=None if key is None else key.get_secret_value().encode(),
        )
        self.registry = registry or CollectorRegistry()
        self.metrics = InferenceMetrics.create(self.registry)
        self.metrics.snapshot_version.set(0)
        self.watcher = SnapshotWatcher(
            settings,
            self.store,
            self.metrics,
            threads=threads,
            warm_batch=settings.serve_max_batch,
            announcements=announcements,
        )
        self.batcher = Batcher(lambda: self.watcher.scorer, self.metrics, settings.serve_max_batch)
        self.app = self._build_app()

    @property
    def scorer(self) -> Scorer | None:
        """The scorer being served (None before the first snapshot)."""
        return self.watcher.scorer

    @property
    def state(self) -> ReloadState:
        return self.watcher.state

    # -- lifecycle --------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=8 << 20)
        r = app.router
        r.add_get("/recommend", self._timed("recommend", self.recommend_get))
        r.add_post("/recommend", self._timed("recommend_batch", self.recommend_post))
        r.add_post("/score", self._timed("score", self.score))
        r.add_get("/similar", self._timed("similar", self.similar))
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics_page)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        self.batcher.start()
        self.watcher.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.watcher.stop()
        await self.batcher.stop()

    # -- handlers ---------------------------------------------------------------------------
    def _timed(
        self, endpoint: str, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        m = self.metrics

        async def wrapped(request: web.Request) -> web.StreamResponse:
            t = time.perf_counter()
            try:
                body = await handler(request)
                resp = _json(body)
            except BadRequest as exc:
                resp = _json({"error": str(exc)}, exc.status)
            except Exception as exc:  # answer, count, keep serving
                log.exception("%s failed", endpoint)
                resp = _json({"error": f"internal error: {type(exc).__name__}"}, 500)
            m.requests.labels(endpoint=endpoint, status=str(resp.status)).inc()
            m.request_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - t)
            return resp

        return wrapped

    def _k(self, raw: Any, default: int = 20) -> int:
        k_max = self.scorer.k_max if self.scorer is not None else self.settings.snapshot_k_max
        if raw is None or raw == "":
            return min(default, k_max)
        try:
            k = int(raw)
        except (TypeError, ValueError):
            raise BadRequest(f"k must be an integer from 1 to {k_max}, got {raw!r}") from None
        if isinstance(raw, bool) or not 1 <= k <= k_max:
            raise BadRequest(f"k must be an integer from 1 to {k_max}, got {raw!r}")
        return k

    async def recommend_get(self, request: web.Request) -> dict[str, Any]:
        user_id = request.query.get("user_id")
        if not user_id:
            raise BadRequest("missing user_id: GET /recommend?user_id=U&k=20")
        k = self._k(request.query.get("k"))
        version, [rec] = await self.batcher.recommend([user_id], k)
        return {"version": version, **_rec(rec)}

    async def recommend_post(self, request: web.Request) -> dict[str, Any]:
        body = await _body(request, 'POST /recommend {"user_ids": ["u1", "u2"], "k": 20}')
        users = body.get("user_ids")
        if (
            not isinstance(users, list)
            or not users
            or not all(isinstance(u, str) and u for u in users)
        ):
            raise BadRequest('user_ids must be a non-empty list of strings: {"user_ids": ["u1"]}')
        if len(users) > MAX_USERS_PER_REQUEST:
            raise BadRequest(f"at most {MAX_USERS_PER_REQUEST} user_ids per request", 413)
        k = self._k(body.get("k"))
        version, recs = await self.batcher.recommend(list(users), k)
        return {"version": version, "results": [_rec(r) for r in recs]}

    async def score(self, request: web.Request) -> dict[str, Any]:
        body = await _body(request, 'POST /score {"user_id": "u1", "item_ids": ["i1", "i2"]}')
        user_id, items = body.get("user_id"), body.get("item_ids")
        if not isinstance(user_id, str) or not user_id:
            raise BadRequest('user_id must be a non-empty string: {"user_id": "u1", ...}')
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise BadRequest('item_ids must be a non-empty list of strings: {"item_ids": ["i1"]}')
        if len(items) > MAX_ITEMS_PER_SCORE:
            raise BadRequest(f"at most {MAX_ITEMS_PER_SCORE} item_ids per request", 413)
        scorer = self._ready()
        scores = scorer.score(user_id, items)
        return {
            "version": scorer.version,
            "user_id": user_id,
            "known": user_id in scorer.user_rows,
            "scores": [{"item_id": i, "score": s} for i, s in zip(items, scores, strict=True)],
        }

    async def similar(self, request: web.Request) -> dict[str, Any]:
        item_id = request.query.get("item_id")
        if not item_id:
            raise BadRequest("missing item_id: GET /similar?item_id=I&k=10")
        k = self._k(request.query.get("k"), default=10)
        scorer = self._ready()
        items = scorer.similar(item_id, k)
        if items is None:
            raise BadRequest(f"unknown item_id {item_id!r} in snapshot {scorer.version}", 404)
        return {
            "version": scorer.version,
            "item_id": item_id,
            "items": [{"item_id": i, "score": s} for i, s in items],
        }

    def _ready(self) -> Scorer:
        scorer = self.scorer
        if scorer is None:
            raise BadRequest("no snapshot loaded yet: start a worker that exports one", 503)
        return scorer

    async def healthz(self, _request: web.Request) -> web.Response:
        if not self.watcher.watching():
            return _json({"status": "the snapshot watcher is not running: restart serve"}, 503)
        return _json({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        scorer = self.scorer
        if scorer is None:
            return _json(
                {"ready": False, "reason": f"no snapshot loaded yet from {self.store.root}"}, 503
            )
        return _json({"ready": True, **scorer.describe()})

    async def metrics_page(self, _request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(self.registry))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        resp.charset = "utf-8"
        return resp


def _rec(rec: Recommendation) -> dict[str, Any]:
    return {
        "user_id": rec.user_id,
        "known": rec.known,
        "items": [{"item_id": i, "score": s} for i, s in rec.items],
    }


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def _body(request: web.Request, example: str) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise BadRequest(f"body is not JSON; send e.g. {example}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"body must be a JSON object; send e.g. {example}")
    return body


async def serve(
    server: InferenceServer,
    *,
    host: str = "0.0.0.0",
    port: int = 8080,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``server`` until ``stop`` (or SIGINT/SIGTERM); ``ready(port)`` once listening."""
    import signal

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        server_ = site._server
        sockets = getattr(server_, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        if ready is not None:
            ready(bound)
        await stop.wait()
    finally:
        await runner.cleanup()
