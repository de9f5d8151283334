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
``dense = query @ items.T + bias`` with ``items = [blended vector, gated teacher projection]``
per catalog row (at most 128 floats) and ``query = [user vector, projected teacher
history/profile]`` per user; then the co-occurrence term (:func:`models.cooc.combine`): the
query's boosted items (inputs ``boost_rows``/``boost``, which :mod:`serving.scorer` computes
per request from ``cooc_*.npy`` and the user's window, as the student does) are added, and
cold items get the mean boost of the ``impute`` best warm items; followed by ONNX ``TopK``.
torch's ONNX exporter writes the graph once per shape signature (query width, ``k_max``,
``impute``) with the item tables as dynamic inputs; each snapshot then stores that graph with
the current matrix, bias and cold flags as initializers (so a snapshot costs milliseconds, not
the exporter's seconds). The catalog is padded to ``k_max`` rows, plus one row that unused
boost slots point at, with ``-3e38`` bias, so the graph never depends on the catalog size.

``teacher_rank`` optionally narrows the rows' teacher part further, to its top ``r`` right
singular vectors: the matrix narrows from ``dim + student teacher_rank`` to ``dim + r`` columns
and the scores become approximate. The default is exact (what was evaluated is served).

Writing is atomic: files go to a temporary directory, are fsynced, the directory is renamed to
its version, and only then ``LATEST`` is replaced (temporary file, fsync, rename). With
``COLDSTREAM_SNAPSHOT_KEY`` set the manifest carries an HMAC-SHA256 over its canonical JSON,
and :func:`open_snapshot` refuses a snapshot whose hashes or signature do not match.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnx

    from models.student import Student

__all__ = [
    "FORMAT",
    "OPSET",
    "CoocTables",
    "ServingTables",
    "Snapshot",
    "SnapshotError",
    "SnapshotExporter",
    "SnapshotStore",
    "newest_event_ts",
    "open_snapshot",
    "padded_rows",
    "scoring_model",
    "serving_tables",
    "sign_manifest",
]

F32 = npt.NDArray[np.float32]
FORMAT = 2  # 2: the co-occurrence term (cooc_*.npy, the graph's boost inputs)
OPSET = 18
MODEL_FILE = "model.onnx"
LATEST = "LATEST"
_PAD_BIAS = np.float32(-3.0e38)  # padding rows never reach a top-K over real items


class SnapshotError(Exception):
    """A snapshot that cannot be used. ``reason`` says why, in a word fit for a metric label:
    ``hash`` (a file differs from its sha256), ``signature`` (unsigned with a key set, or a
    signature that does not match) or ``unreadable`` (anything else)."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CoocTables:
    """The student's co-occurrence memory as served (:mod:`models.cooc`): each item's
    neighbour rows and counts as CSR, and every item's interaction count."""

    indptr: npt.NDArray[np.int64]  # (n + 1,)
    rows: npt.NDArray[np.int32]  # (pairs,)
    counts: F32  # (pairs,), whole numbers
    n: F32  # (n,), interactions per item, whole numbers

    def neighbours(self, j: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        lo, hi = int(self.indptr[j]), int(self.indptr[j + 1])
        return self.rows[lo:hi].astype(np.int64), self.counts[lo:hi].astype(np.float64)


@dataclass(frozen=True)
class ServingTables:
    """Everything a snapshot stores, as arrays (what :func:`serving_tables` takes from a
    student and what :class:`Snapshot` gives back)."""

    item_ids: list[str]
    items: F32  # (n, width)
    bias: F32  # (n,)
    user_ids: list[str]
    queries: F32  # (users + 1, width): the last row is the cold user
    history: npt.NDArray[np.int32]  # (users, history), -1 padded
    dims: dict[str, Any] = field(default_factory=dict)
    cooc: CoocTables | None = None  # None: no co-occurrence term

    @property
    def cold(self) -> npt.NDArray[np.bool_]:
        """Items without an interaction (the co-occurrence term imputes their boost)."""
        if self.cooc is None:
            return np.zeros(len(self.item_ids), dtype=np.bool_)
        return self.cooc.n == 0

    @property
    def width(self) -> int:
        return int(self.items.shape[1])


def serving_tables(student: Student, *, teacher_rank: int | None = None) -> ServingTables:
    """The serving side of ``student`` right now (call after its pending batch is flushed)."""
    items, bias = student.serving_rows()
    items, bias = items.copy(), bias.copy()
    # users with any state: a history, a profile, or an id row
    user_ids = list(dict.fromkeys([*student.state.keys(), *student.users.slots.keys()]))
    queries = student.queries([*user_ids, None])
    hist_len = student.cfg.history
    history = np.full((len(user_ids), hist_len), -1, dtype=np.int32)
    for r, u in enumerate(user_ids):
        st = student.state.get(u)
        if st is not None and st.hist:
            h = st.hist[-hist_len:]
            history[r, : len(h)] = h
    d, dt = student.cfg.dim, student.catalog.dim
    tw = student.cfg.width - d  # the rows' teacher part
    rank = None
    if teacher_rank is not None and teacher_rank < tw and len(items):
        # principal directions of the rows' teacher part (uncentred: dot products)
        _, _, vt = np.linalg.svd(items[:, d:], full_matrices=False)
        basis = vt[:teacher_rank].T.astype(np.float32)  # (tw, r)
        items = np.concatenate([items[:, :d], items[:, d:] @ basis], axis=1)
        queries = np.concatenate([queries[:, :d], queries[:, d:] @ basis], axis=1)
        rank = int(basis.shape[1])
    dims: dict[str, Any] = {
        "items": len(items),
        "users": len(user_ids),
        "width": int(items.shape[1]) if len(items) else d + (tw if rank is None else rank),
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


# ---- the ONNX graph -------------------------------------------------------------------------
_templates: dict[tuple[int, int, int], bytes] = {}
_templates_lock = threading.Lock()


def _template(width: int, k: int, impute: int) -> onnx.ModelProto:
    """torch's export of the scoring graph with the item tables as inputs (cached)."""
    import onnx

    key = (width, k, impute)
    with _templates_lock:
        blob = _templates.get(key)
        if blob is None:
            blob = _templates[key] = _export_template(*key).SerializeToString()
    model = onnx.ModelProto()
    model.ParseFromString(blob)
    return model


def _export_template(width: int, k: int, impute: int) -> onnx.ModelProto:
    import logging
    import warnings

    import torch

    class ScoringGraph(torch.nn.Module):
        """:func:`models.cooc.combine` over the dense product, then the top ``k``: few passes
        over the (batch, rows) scores, the rest touches only the boosted and cold items."""

        def forward(
            self,
            query: torch.Tensor,
            boost_rows: torch.Tensor,
            boost: torch.Tensor,
            items: torch.Tensor,
            bias: torch.Tensor,
            penalty: torch.Tensor,
            cold_rows: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            # one Gemm (transB): faster in ONNX Runtime than MatMul over a transposed copy
            dense = torch.nn.functional.linear(query, items, bias)
            # the leading warm items (penalty: -inf on cold and padding rows) and their boosts
            leaders = torch.topk(dense + penalty, impute, dim=1).indices
            hit = leaders.unsqueeze(2) == boost_rows.unsqueeze(1)
            imputed = ((hit * boost.unsqueeze(1)).sum(dim=(1, 2)) / impute).unsqueeze(1)
            # boosted items get their boost, cold items the imputed one: one scatter
            cold = cold_rows.unsqueeze(0).expand(query.shape[0], -1)
            rows = torch.cat([boost_rows, cold], dim=1)
            add = torch.cat([boost, imputed.expand(-1, cold.shape[1])], dim=1)
            scores = dense.scatter(1, rows, dense.gather(1, rows) + add)
            return torch.topk(scores, k, dim=1)

    n = max(2 * k, 2 * impute, 8)
    example = (
        torch.zeros(2, width),
        torch.zeros(2, 3, dtype=torch.int64),
        torch.zeros(2, 3),
        torch.zeros(n, width),
        torch.zeros(n),
        torch.zeros(n),
        torch.arange(3, dtype=torch.int64),
    )
    batch, rows = torch.export.Dim("batch"), torch.export.Dim("rows", min=max(k, impute))
    boosted, colds = torch.export.Dim("boosted"), torch.export.Dim("cold")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                ScoringGraph(),
                example,
                dynamo=True,
                input_names=[
                    "query",
                    "boost_rows",
                    "boost",
                    "items",
                    "bias",
                    "penalty",
                    "cold_rows",
                ],
                output_names=["scores", "indices"],
                dynamic_shapes={
                    "query": {0: batch},
                    "boost_rows": {0: batch, 1: boosted},
                    "boost": {0: batch, 1: boosted},
                    "items": {0: rows},
                    "bias": {0: rows},
                    "penalty": {0: rows},
                    "cold_rows": {0: colds},
                },
                opset_version=OPSET,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    assert program is not None
    return program.model_proto


def padded_rows(n: int, k_max: int, impute: int) -> int:
    """Rows of a snapshot's item matrix: the catalog, padded to at least ``k_max`` and
    ``impute`` rows, plus one padding row that absent boosts point at."""
    return max(n, k_max, impute) + 1


def scoring_model(
    items: F32, bias: F32, k_max: int, *, cold: npt.NDArray[np.bool_] | None = None, impute: int = 0
) -> onnx.ModelProto:
    """The self-contained scoring graph for ``items`` (n, width), ``bias`` (n,) and the
    co-occurrence term's ``cold`` items and ``impute``: inputs ``query`` (batch, width),
    ``boost_rows`` (batch, m) and ``boost`` (batch, m) (each query's boosted items; unused
    slots point at the last row with boost 0), outputs ``scores`` and ``indices`` (batch,
    k_max); rows past the catalog score ``-3e38``."""
    from onnx import numpy_helper

    n, width = items.shape
    impute = max(impute, 1)
    rows = padded_rows(n, k_max, impute)
    padded_items = np.zeros((rows, width), dtype=np.float32)
    padded_items[:n] = items
    padded = np.full(rows, _PAD_BIAS, dtype=np.float32)
    padded[:n] = bias
    penalty = np.full(rows, -np.inf, dtype=np.float32)  # padding never leads the imputation
    penalty[:n] = 0.0 if cold is None else np.where(cold, -np.inf, 0.0)
    # the cold items, and the last padding row so the list is never empty (ONNX Runtime's
    # Expand does not take an empty dimension); that row stays at -3e38 whatever it is given
    cold_rows = np.append(np.flatnonzero(np.zeros(n) if cold is None else cold), rows - 1)
    model = _template(width, k_max, impute)
    graph = model.graph
    weights: dict[str, npt.NDArray[Any]] = {
        "items": padded_items,
        "bias": padded,
        "penalty": penalty,
        "cold_rows": cold_rows.astype(np.int64),
    }
    keep = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(keep)
    for name, arr in weights.items():
        graph.initializer.append(numpy_helper.from_array(arr, name))
    model.doc_string = "coldstream student: query rows and boosts -> top-K catalog items"
    return model


# ---- manifest, signature --------------------------------------------------------------------
def _canonical(manifest: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign_manifest(manifest: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) of the manifest's canonical JSON without its ``signature``.

    >>> m = {"version": 1, "files": {"model.onnx": "ab"}}
    >>> sig = sign_manifest(m, b"k")
    >>> sig == sign_manifest({"files": {"model.onnx": "ab"}, "version": 1, "signature": "x"}, b"k")
    True
    >>> sig == sign_manifest(m, b"other")
    False
    """
    return hmac.new(key, _canonical(manifest), hashlib.sha256).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _npy(arr: npt.NDArray[Any]) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


# ---- the store ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot: its manifest, the ONNX model bytes and the serving tables."""

    path: Path
    manifest: dict[str, Any]
    model: bytes
    tables: ServingTables

    @property
    def version(self) -> int:
        return int(self.manifest["version"])


class SnapshotStore:
    """Versioned snapshot directories under ``root`` with an atomic ``LATEST`` pointer."""

    def __init__(self, root: Path, *, keep: int = 5, key: bytes | None = None) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self.root, self.keep, self.key = Path(root), keep, key

    def versions(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())

    def latest(self) -> str | None:
        """The directory name ``LATEST`` points at, or None before the first snapshot (or when
        it is empty). Anything but a version name (ASCII digits) raises :class:`SnapshotError`
        with reason ``latest``: an operator's typo or a damaged disk, never a crash."""
        try:
            raw = (self.root / LATEST).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SnapshotError(f"cannot read {self.root / LATEST}: {exc}", "latest") from exc
        name = raw.strip()
        if not name:
            return None
        if not (name.isdigit() and len(name) <= 20):  # bytes.isdigit: ASCII digits only
            raise SnapshotError(
                f"{self.root / LATEST} holds {raw[:40]!r}, not a version name such as "
                "00000012: write the version to serve into it, or remove it",
                "latest",
            )
        return name.decode("ascii")

    def _latest_or_none(self) -> str | None:
        """:meth:`latest`, with a damaged ``LATEST`` counting as none (the writer replaces it)."""
        try:
            return self.latest()
        except SnapshotError:
            return None

    def write(
        self,
        tables: ServingTables,
        *,
        k_max: int,
        events_seen: int,
        newest_event_ts: int | None,
        offsets: Mapping[tuple[str, int], int] | None = None,
        teacher: str = "",
        model_name: str = "student",
    ) -> Snapshot:
        """Write a new version in full, then move ``LATEST`` to it and prune old versions."""
        self.root.mkdir(parents=True, exist_ok=True)
        latest = self._latest_or_none()
        version = max([*self.versions(), int(latest) if latest else 0]) + 1
        name = f"{version:08d}"
        impute = _impute(tables.dims)
        model = scoring_model(
            tables.items, tables.bias, k_max, cold=tables.cold, impute=impute
        ).SerializeToString()
        files = {
            MODEL_FILE: model,
            "items.json": json.dumps(tables.item_ids).encode(),
            "users.json": json.dumps(tables.user_ids).encode(),
            "users.npy": _npy(tables.queries),
            "history.npy": _npy(tables.history),
        }
        if tables.cooc is not None:
            c = tables.cooc
            files |= {
                "cooc_indptr.npy": _npy(c.indptr),
                "cooc_rows.npy": _npy(c.rows),
                "cooc_counts.npy": _npy(c.counts),
                "cooc_n.npy": _npy(c.n),
            }
        now = time.time()
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": version,
            "model": model_name,
            "created_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "created_at_ts": now,
            "events_seen": int(events_seen),
            "newest_event_ts": None if newest_event_ts is None else int(newest_event_ts),
            "offsets": [
                {"topic": t, "partition": p, "offset": int(o)}
                for (t, p), o in sorted((offsets or {}).items())
            ],
            "dims": {
                **tables.dims,
                "k_max": k_max,
                "rows": padded_rows(len(tables.item_ids), k_max, max(impute, 1)),
            },
            "teacher": teacher,
            "opset": OPSET,
            "files": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
        }
        if self.key is not None:
            manifest["signature_alg"] = "HMAC-SHA256"
            manifest["signature"] = sign_manifest(manifest, self.key)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.root))
        try:
            for fname, data in files.items():
                _write(tmp / fname, data)
            _write(tmp / "manifest.json", json.dumps(manifest, indent=1).encode())
            _fsync_dir(tmp)
            final = self.root / name
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.root)
        pointer = self.root / f".{LATEST}.{os.getpid()}"
        _write(pointer, name.encode())
        os.replace(pointer, self.root / LATEST)
        _fsync_dir(self.root)
        self.prune()
        return Snapshot(final, manifest, model, tables)

    def prune(self) -> None:
        """Keep the newest ``keep`` versions (never the one ``LATEST`` names) and drop leftovers
        of interrupted writes."""
        latest = self._latest_or_none()
        for old in self.versions()[: -self.keep]:
            if f"{old:08d}" != latest:
                shutil.rmtree(self.root / f"{old:08d}", ignore_errors=True)
        for tmp in self.root.glob(".0*-*"):
            if tmp.is_dir() and time.time() - tmp.stat().st_mtime > 600:
                shutil.rmtree(tmp, ignore_errors=True)

    def open(self, name: str | None = None) -> Snapshot:
        """Read and verify a version (default: ``LATEST``)."""
        name = name or self.latest()
        if name is None:
            raise SnapshotError(f"no snapshot in {self.root} yet (no {LATEST} file)")
        return open_snapshot(self.root / name, key=self.key)


def open_snapshot(path: Path, *, key: bytes | None = None) -> Snapshot:
    """Load a snapshot directory, checking every file's sha256 and, with ``key``, the
    signature (then an unsigned manifest is refused too). Raises :class:`SnapshotError`."""
    try:
        manifest = json.loads((path / "manifest.json").read_bytes())
    except FileNotFoundError as exc:
        raise SnapshotError(f"{path} has no manifest.json") from exc
    except ValueError as exc:
        raise SnapshotError(f"{path}/manifest.json is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path}/manifest.json: not a format-{FORMAT} snapshot manifest")
    if key is not None:
        sig = manifest.get("signature")
        if not isinstance(sig, str):
            raise SnapshotError(
                f"{path}: unsigned manifest, and a snapshot key is set", "signature"
            )
        if not hmac.compare_digest(sig, sign_manifest(manifest, key)):
            raise SnapshotError(
                f"{path}: manifest signature does not match (wrong key or edited)", "signature"
            )
    files = manifest.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise SnapshotError(f"{path}/manifest.json lists no {MODEL_FILE}")
    blobs: dict[str, bytes] = {}
    for fname, digest in files.items():
        if "/" in fname or fname.startswith("."):
            raise SnapshotError(f"{path}: manifest names an odd file {fname!r}")
        try:
            data = (path / fname).read_bytes()
        except FileNotFoundError as exc:
            raise SnapshotError(f"{path}/{fname} is missing") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise SnapshotError(f"{path}/{fname}: sha256 does not match the manifest", "hash")
        blobs[fname] = data
    try:
        tables = _tables(blobs, manifest)
    except (KeyError, ValueError) as exc:
        raise SnapshotError(f"{path}: unreadable serving tables: {exc}") from exc
    return Snapshot(path, manifest, blobs[MODEL_FILE], tables)


def _tables(blobs: dict[str, bytes], manifest: dict[str, Any]) -> ServingTables:
    import io

    from onnx import load_model_from_string, numpy_helper

    def npy(name: str) -> npt.NDArray[Any]:
        return np.load(io.BytesIO(blobs[name]), allow_pickle=False)

    item_ids = json.loads(blobs["items.json"])
    weights = {
        init.name: numpy_helper.to_array(init)
        for init in load_model_from_string(blobs[MODEL_FILE]).graph.initializer
        if init.name in ("items", "bias")
    }
    n = len(item_ids)
    items = np.ascontiguousarray(weights["items"][:n], dtype=np.float32)
    cooc = None
    if "cooc_indptr.npy" in blobs:
        cooc = CoocTables(
            indptr=npy("cooc_indptr.npy").astype(np.int64, copy=False),
            rows=npy("cooc_rows.npy").astype(np.int32, copy=False),
            counts=npy("cooc_counts.npy").astype(np.float32, copy=False),
            n=npy("cooc_n.npy").astype(np.float32, copy=False),
        )
        if len(cooc.indptr) != n + 1 or len(cooc.n) != n or cooc.indptr[-1] != len(cooc.rows):
            raise ValueError("the co-occurrence tables do not match the catalog")
        if len(cooc.rows) and not 0 <= int(cooc.rows.min()) <= int(cooc.rows.max()) < n:
            raise ValueError("the co-occurrence tables name rows outside the catalog")
    return ServingTables(
        item_ids=item_ids,
        items=items,
        bias=np.asarray(weights["bias"][:n], dtype=np.float32),
        user_ids=json.loads(blobs["users.json"]),
        queries=npy("users.npy").astype(np.float32, copy=False),
        history=npy("history.npy").astype(np.int32, copy=False),
        dims=dict(manifest.get("dims", {})),
        cooc=cooc,
    )


def _impute(dims: Mapping[str, Any]) -> int:
    cooc = dims.get("cooc")
    return int(cooc["impute"]) if isinstance(cooc, Mapping) else 0


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
        self, student: Student, *, offsets: Mapping[tuple[str, int], int] | None = None
    ) -> Snapshot:
        t = time.perf_counter()
        snap = self.store.write(
            serving_tables(student, teacher_rank=self.teacher_rank),
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
