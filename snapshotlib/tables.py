"""What a snapshot holds, as arrays: the item and user tables, the co-occurrence memory, and
reading them back from a snapshot's files (:func:`read_tables`)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FORMAT",
    "LATEST",
    "MODEL_FILE",
    "OPSET",
    "CoocTables",
    "ServingTables",
    "Snapshot",
    "impute_of",
    "npy_bytes",
    "read_tables",
]

F32 = npt.NDArray[np.float32]
FORMAT = 2  # 2: the co-occurrence term (cooc_*.npy, the graph's boost inputs)
OPSET = 18
MODEL_FILE = "model.onnx"
LATEST = "LATEST"


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


def npy_bytes(arr: npt.NDArray[Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def impute_of(dims: Mapping[str, Any]) -> int:
    cooc = dims.get("cooc")
    return int(cooc["impute"]) if isinstance(cooc, Mapping) else 0


def read_tables(blobs: dict[str, bytes], manifest: dict[str, Any]) -> ServingTables:
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
