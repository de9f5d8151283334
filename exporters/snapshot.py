"""ONNX snapshots of the student: export, the versioned store, and verification.

A snapshot is one directory per version under ``COLDSTREAM_SNAPSHOT_DIR``::

    snapshots/
      LATEST              -> "00000012" (the newest complete version)
      00000012/
        model.onnx        the scoring graph, weights inside: query rows -> top-K items, scores
        items.json        row -> item_id
        users.json        row -> user_id
        users.npy         one query row per user, plus the cold-user row last
        history.npy       each user's recent items (rows, -1 padded): served answers skip them,
                          and the latest of them are the co-occurrence window
        cooc_*.npy        the co-occurrence memory: neighbour rows and counts (CSR), item counts
        manifest.json     version, times, offsets, dimensions, sha256 of every file, signature

The scoring graph is what the student computes in :meth:`models.student.Student.score_all`:
``dense = query @ items.T + bias`` with ``items = [blended vector, gated teacher projection,
new-user freshness term]`` per catalog row (at most 128 floats) and ``query = [user vector,
projected teacher history/profile, 1 if the user has no history else 0]`` per user; then the
co-occurrence term (:func:`models.cooc.combine`): the query's boosted items (inputs
``boost_rows``/``boost``, which :mod:`serving.scorer` computes per request from ``cooc_*.npy``
and the user's window, as the student does) are added, and cold items get the mean boost of
the ``impute`` best warm items; followed by ONNX ``TopK``.
torch's ONNX exporter writes the graph once per shape signature (query width, ``k_max``,
``impute``) with the item tables as dynamic inputs; each snapshot then stores that graph with
the current matrix, bias and cold flags as initializers (so a snapshot costs milliseconds, not
the exporter's seconds). The catalog is padded to ``k_max`` rows, plus one row that unused
boost slots point at, with ``-3e38`` bias, so the graph never depends on the catalog size.

``teacher_rank`` optionally narrows the rows' teacher part further, to its top ``r`` right
singular vectors: the matrix narrows from ``dim + student teacher_rank + 1`` to ``dim + r + 1``
columns and the scores become approximate. The default is exact (what was evaluated is served).

Writing is atomic: files go to a temporary directory, are fsynced, the directory is renamed to
its version, and only then ``LATEST`` is replaced (temporary file, fsync, rename). With
``COLDSTREAM_SNAPSHOT_KEY`` set the manifest carries an HMAC-SHA256 over its canonical JSON,
and :func:`open_snapshot` refuses a snapshot whose hashes or signature do not match.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from models.student_config import NEW_USER_COLUMNS
from snapshotlib.store import SnapshotStore
from snapshotlib.tables import CoocTables, ServingTables, Snapshot

if TYPE_CHECKING:
    from models.student import Student

__all__ = ["SnapshotExporter", "UserPart", "newest_event_ts", "serving_tables", "user_part"]


#: one rank's users for a snapshot: ids, query rows (without the cold-user row), histories
UserPart = tuple[list[str], np.ndarray, np.ndarray]


def user_part(student: Student, keep: Callable[[str], bool] | None = None) -> UserPart:
    """The users ``student`` has any state for (a history, a profile, or an id row), or those
    of them ``keep`` accepts: their ids, query rows and recent items."""
    user_ids = list(dict.fromkeys([*student.state.keys(), *student.users.slots.keys()]))
    if keep is not None:
        user_ids = [u for u in user_ids if keep(u)]
    queries = student.queries([*user_ids, None])[:-1]
    hist_len = student.cfg.history
    history = np.full((len(user_ids), hist_len), -1, dtype=np.int32)
    for r, u in enumerate(user_ids):
        st = student.state.get(u)
        if st is not None and st.hist:
            h = st.hist[-hist_len:]
            history[r, : len(h)] = h
    return user_ids, queries, history


def serving_tables(
    student: Student, *, teacher_rank: int | None = None, parts: Sequence[UserPart] | None = None
) -> ServingTables:
    """The serving side of ``student`` right now (call after its pending batch is flushed).

    ``parts``: the users, each from the rank that owns them (:mod:`streams.ranks`); by default
    the student's own."""
    items, bias = student.serving_rows()
    items, bias = items.copy(), bias.copy()
    if parts is None:
        parts = [user_part(student)]
    user_ids = [u for ids, _, _ in parts for u in ids]
    cold = student.queries([None])
    queries = np.concatenate([*(q.reshape(-1, cold.shape[1]) for _, q, _ in parts), cold])
    hist_len = student.cfg.history
    history = np.concatenate([h.reshape(-1, hist_len) for _, _, h in parts]).astype(np.int32)
    d, dt = student.cfg.dim, student.catalog.dim
    tw = student.cfg.width - d - NEW_USER_COLUMNS  # the rows' teacher part
    rank = None
    if teacher_rank is not None and teacher_rank < tw and len(items):
        # principal directions of the rows' teacher part (uncentred: dot products)
        te = slice(d, d + tw)
        _, _, vt = np.linalg.svd(items[:, te], full_matrices=False)
        basis = vt[:teacher_rank].T.astype(np.float32)  # (tw, r)
        items = np.concatenate([items[:, :d], items[:, te] @ basis, items[:, d + tw :]], axis=1)
        queries = np.concatenate(
            [queries[:, :d], queries[:, te] @ basis, queries[:, d + tw :]], axis=1
        )
        rank = int(basis.shape[1])
    width = d + (tw if rank is None else rank) + NEW_USER_COLUMNS
    dims: dict[str, Any] = {
        "items": len(items),
        "users": len(user_ids),
        "width": int(items.shape[1]) if len(items) else width,
        "student_dim": d,
        "teacher_dim": dt,
        "teacher_width": tw,
        "teacher_rank": rank,
        "history": hist_len,
        "cooc": None,
    }
    cooc = None
    cfg = student.cfg
    if cfg.cooc_weight:
        n = len(items)
        indptr, rows, counts = student.cooc.csr(n)
        cooc = CoocTables(indptr, rows, counts, student.cooc.n[:n].astype(np.float32))
        dims["cooc"] = {
            "weight": cfg.cooc_weight,
            "alpha": cfg.cooc_alpha,
            "window": cfg.cooc_window,
            "top": cfg.cooc_top,
            "impute": cfg.cooc_impute,
            "pairs": len(rows),
        }
        weights = student.boost_weights()
        if weights is not None:  # one per count bucket (models.cooc.weigh); absent: all 1
            dims["cooc"]["bucket_weights"] = [float(w) for w in weights]
    return ServingTables(
        item_ids=list(student.catalog.ids),
        items=np.ascontiguousarray(items, dtype=np.float32),
        bias=np.ascontiguousarray(bias, dtype=np.float32),
        user_ids=user_ids,
        queries=np.ascontiguousarray(queries, dtype=np.float32),
        history=history,
        dims=dims,
        cooc=cooc,
    )


def newest_event_ts(student: Student) -> int | None:
    """Newest event time the student has seen (interactions or item announcements), in ms."""
    from models.catalog import NO_TS

    announced = student.catalog.announced
    newest = [student.now] if student.now else []
    known = announced[announced != NO_TS]
    if len(known):
        newest.append(int(known.max()))
    return max(newest) if newest else None


class SnapshotExporter:
    """What the worker calls every N seconds or events: write a snapshot of its student and
    say so in metrics; :meth:`announcement` is the ``.snapshots`` message."""

    def __init__(
        self,
        store: SnapshotStore,
        *,
        k_max: int = 100,
        teacher_rank: int | None = None,
        teacher: str = "",
        metrics: Any = None,
    ) -> None:
        self.store, self.k_max, self.teacher_rank, self.teacher = (
            store,
            k_max,
            teacher_rank,
            teacher,
        )
        self.metrics = metrics  # exporters.metrics.WorkerMetrics or None

    def export(
        self,
        student: Student,
        *,
        offsets: Mapping[tuple[str, int], int] | None = None,
        parts: Sequence[UserPart] | None = None,
    ) -> Snapshot:
        """Write a snapshot of ``student`` (with ``parts``: every rank's users)."""
        t = time.perf_counter()
        snap = self.store.write(
            serving_tables(student, teacher_rank=self.teacher_rank, parts=parts),
            k_max=self.k_max,
            events_seen=student.learned,
            newest_event_ts=newest_event_ts(student),
            offsets=offsets,
            teacher=self.teacher,
            model_name=student.name,
        )
        if self.metrics is not None:
            self.metrics.snapshot_export.observe(time.perf_counter() - t)
            self.metrics.snapshot_version.set(snap.version)
        return snap

    @staticmethod
    def announcement(snap: Snapshot) -> bytes:
        m = snap.manifest
        return json.dumps(
            {
                "version": snap.version,
                "dir": snap.path.name,
                "created_at_ts": m["created_at_ts"],
                "newest_event_ts": m["newest_event_ts"],
                "events_seen": m["events_seen"],
            }
        ).encode()
