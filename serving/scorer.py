"""One loaded snapshot: its ONNX Runtime session on the best provider that really works.

onnxruntime-gpu lists ``CUDAExecutionProvider`` whenever the wheel was built with it, even on a
machine without a GPU or without the CUDA libraries it was built against (the PyPI wheel wants
CUDA 13); a session asked for CUDA then falls back to the CPU with only a log line. So the
provider in use is read back from the session (:attr:`Scorer.provider`), never assumed.

On CUDA the request batch goes through IO binding: the query rows are copied to the device
once, the catalog matrix already lives there (an initializer), and only the top-K come back.
The CUDA provider runs with TF32 off (:data:`CUDA_OPTIONS`): ONNX Runtime turns it on by
default, and on an H100 that moved scores by up to 4e-4 relative and changed the order of 6 to
15 of 65 top-20 lists against the CPU; with it off the GPU's answers equal the CPU's.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from models.cooc import combine, top_boost, weigh, window_scores
from snapshotlib.tables import Snapshot

__all__ = ["Recommendation", "Scorer", "available_providers"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
#: users whose co-occurrence boosts a scorer keeps (computed on their first request)
BOOST_CACHE = 10_000
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
#: full float32 products on the GPU, so what is served is what was evaluated (see above)
CUDA_OPTIONS = {"use_tf32": "0"}
_warned = False
# ONNX Runtime logs a failed CUDA provider load as an error on every session; we report the
# provider actually in use ourselves (log line, /readyz, coldstream_inference_provider)
ort.set_default_logger_severity(4)  # fatal only: real failures raise anyway


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


@dataclass(frozen=True, slots=True)
class Recommendation:
    user_id: str | None
    known: bool
    items: list[tuple[str, float]]


class Scorer:
    """A snapshot's session plus its tables; thread-safe for one caller at a time per run."""

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        provider: Literal["auto", "cuda", "cpu"] = "auto",
        threads: int = 0,
        warm_batch: int = 256,
    ) -> None:
        self.snapshot = snapshot
        self.tables = t = snapshot.tables
        self.version = snapshot.version
        self.k_max = int(snapshot.manifest["dims"]["k_max"])
        self.n_items = len(t.item_ids)
        self.user_rows = {u: r for r, u in enumerate(t.user_ids)}
        self.item_rows = {i: r for r, i in enumerate(t.item_ids)}
        self.cold_row = len(t.user_ids)
        dims = snapshot.manifest.get("dims", {})
        self.cooc = dims.get("cooc") if t.cooc is not None else None
        self.pad_row = int(dims.get("rows", max(self.n_items, self.k_max) + 1)) - 1
        self._cold = t.cold
        self._n = None if t.cooc is None else t.cooc.n.astype(np.float64)  # once, not per user
        weights = (self.cooc or {}).get("bucket_weights")  # learned per count bucket, or none
        self._weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self._boosts: OrderedDict[int, tuple[I64, F32]] = OrderedDict()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # the CUDA fallback is reported by us, once, clearly
        if threads:
            opts.intra_op_num_threads = threads
        wanted: list[Any] = [CPU]
        cuda = provider in ("auto", "cuda") and CUDA in available_providers()
        if cuda:
            wanted = [(CUDA, CUDA_OPTIONS), CPU]
        elif provider == "cuda":
            raise RuntimeError(
                "--provider cuda, but this onnxruntime has no CUDA provider; "
                "install onnxruntime-gpu or use --provider auto"
            )
        self.session = ort.InferenceSession(snapshot.model, sess_options=opts, providers=wanted)
        self.provider = self.session.get_providers()[0]
        if cuda and self.provider != CUDA:
            if provider == "cuda":
                raise RuntimeError(
                    "--provider cuda, but ONNX Runtime could not start CUDA here (no GPU, or the "
                    "CUDA/cuDNN libraries onnxruntime-gpu needs are missing); use --provider auto"
                )
            global _warned
            if not _warned:
                _warned = True
                log.warning(
                    "onnxruntime %s lists CUDAExecutionProvider but could not start it (no GPU, "
                    "or not the CUDA/cuDNN it was built for): serving on the CPU",
                    ort.__version__,
                )
        self._sims: F32 | None = None
        # warm both the single-request and the full-batch shapes before serving
        for b in {1, max(1, min(warm_batch, 256))}:
            self.topk(np.repeat(t.queries[-1:], b, axis=0))

    # -- scoring ----------------------------------------------------------------------------
    def boosts(self, row: int) -> tuple[I64, F32]:
        """A query row's co-occurrence boosts (:meth:`models.student.Student.cooc_boost` on the
        snapshot's copy of the memory, the user's latest items as the window); cached."""
        got = self._boosts.get(row)
        if got is not None:
            self._boosts.move_to_end(row)
            return got
        cfg, c, n = self.cooc, self.tables.cooc, self._n
        if cfg is None or c is None or n is None or row == self.cold_row:
            got = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        else:
            hist = self.tables.history[row]
            window = hist[hist >= 0][-int(cfg["window"]) :].tolist()
            idx, s = window_scores(window, c.neighbours, n, float(cfg["alpha"]))
            got = top_boost(idx, s, weight=float(cfg["weight"]), top=int(cfg["top"]))
            if self._weights is not None:
                got = (got[0], weigh(got[0], got[1], n, self._weights))
        self._boosts[row] = got
        if len(self._boosts) > BOOST_CACHE:
            self._boosts.popitem(last=False)
        return got

    def boost_inputs(self, rows: list[int]) -> tuple[I64, F32]:
        """The graph's ``boost_rows`` and ``boost`` for query rows (unused slots: the padding
        row, boost 0)."""
        parts = [self.boosts(r) for r in rows]
        width = max([1, *(len(i) for i, _ in parts)])
        idx = np.full((len(rows), width), self.pad_row, dtype=np.int64)
        val = np.zeros((len(rows), width), dtype=np.float32)
        for j, (i, v) in enumerate(parts):
            idx[j, : len(i)] = i
            val[j, : len(v)] = v
        return idx, val

    def topk(
        self, queries: F32, boost_rows: I64 | None = None, boost: F32 | None = None
    ) -> tuple[F32, npt.NDArray[np.int64]]:
        """Top ``k_max`` catalog rows and scores for each query row, with its co-occurrence
        boosts (none if not given; :meth:`boost_inputs`) (padding rows included when the
        catalog is smaller than ``k_max``; callers drop rows ``>= n_items``)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if boost_rows is None or boost is None:
            boost_rows = np.full((len(q), 1), self.pad_row, dtype=np.int64)
            boost = np.zeros((len(q), 1), dtype=np.float32)
        feeds = {"query": q, "boost_rows": boost_rows, "boost": boost}
        if self.provider == CUDA:
            binding = self.session.io_binding()
            for name, arr in feeds.items():
                value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), "cuda", 0)
                binding.bind_ortvalue_input(name, value)
            binding.bind_output("scores", "cpu")
            binding.bind_output("indices", "cpu")
            self.session.run_with_iobinding(binding)
            scores, indices = binding.copy_outputs_to_cpu()
        else:
            scores, indices = self.session.run(None, feeds)
        return np.asarray(scores), np.asarray(indices)

    def rows(self, user_ids: list[str | None]) -> list[int]:
        """Query row of each user: theirs if the snapshot knows them, else the cold row."""
        cold = self.cold_row
        return [cold if u is None else self.user_rows.get(u, cold) for u in user_ids]

    def recommend(self, user_ids: list[str | None], k: int) -> list[Recommendation]:
        """Top ``k`` items per user, without the items in their recent history."""
        rows = self.rows(user_ids)
        scores, indices = self.topk(self.tables.queries[rows], *self.boost_inputs(rows))
        out = []
        ids, history = self.tables.item_ids, self.tables.history
        for j, (user, row) in enumerate(zip(user_ids, rows, strict=True)):
            seen: set[int] = set()
            if row != self.cold_row:
                seen = {int(i) for i in history[row] if i >= 0}
            picks: list[tuple[str, float]] = []
            for s, i in zip(scores[j], indices[j], strict=True):
                if i < self.n_items and int(i) not in seen:
                    picks.append((ids[i], float(s)))
                    if len(picks) == k:
                        break
            out.append(Recommendation(user, row != self.cold_row, picks))
        return out

    def score(self, user_id: str | None, item_ids: list[str]) -> list[float | None]:
        """The model's score of each item for the user (None for an item it does not know)."""
        row = self.rows([user_id])[0]
        t = self.tables
        rows = [self.item_rows.get(i) for i in item_ids]
        known = [r for r in rows if r is not None]
        if self.cooc is None:
            values = t.items[known] @ t.queries[row] + t.bias[known]
        else:  # the co-occurrence term's imputation needs every item's dense score
            dense = t.items @ t.queries[row] + t.bias
            idx, boost = self.boosts(row)
            values = combine(dense, idx, boost, self._cold, int(self.cooc["impute"]))[known]
        it = iter(values.tolist())
        return [None if r is None else next(it) for r in rows]

    def similar(self, item_id: str, k: int) -> list[tuple[str, float]] | None:
        """Items closest to ``item_id`` by cosine of their serving rows (None: unknown item)."""
        row = self.item_rows.get(item_id)
        if row is None:
            return None
        if self._sims is None:
            m = self.tables.items
            self._sims = (m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)).astype(
                np.float32
            )
        sims = self._sims @ self._sims[row]
        sims[row] = -np.inf
        k = min(k, self.n_items - 1)
        if k <= 0:
            return []
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        return [(self.tables.item_ids[i], float(sims[i])) for i in top]

    def describe(self) -> dict[str, Any]:
        m = self.snapshot.manifest
        return {
            "version": self.version,
            "provider": self.provider,
            "items": self.n_items,
            "users": len(self.user_rows),
            "k_max": self.k_max,
            "created_at": m.get("created_at"),
            "newest_event_ts": m.get("newest_event_ts"),
        }
