"""The versioned snapshot store: atomic writes, the ``LATEST`` pointer, pruning, and
verification when a snapshot is opened (every file's sha256 and, with a key, the manifest's
HMAC-SHA256 signature)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapshotlib.exceptions import SnapshotError
from snapshotlib.graph import padded_rows, scoring_model
from snapshotlib.tables import (
    FORMAT,
    LATEST,
    MODEL_FILE,
    OPSET,
    ServingTables,
    Snapshot,
    impute_of,
    npy_bytes,
    read_tables,
)

__all__ = ["SnapshotStore", "open_snapshot", "sign_manifest"]


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
        impute = impute_of(tables.dims)
        model = scoring_model(
            tables.items, tables.bias, k_max, cold=tables.cold, impute=impute
        ).SerializeToString()
        files = {
            MODEL_FILE: model,
            "items.json": json.dumps(tables.item_ids).encode(),
            "users.json": json.dumps(tables.user_ids).encode(),
            "users.npy": npy_bytes(tables.queries),
            "history.npy": npy_bytes(tables.history),
        }
        if tables.cooc is not None:
            c = tables.cooc
            files |= {
                "cooc_indptr.npy": npy_bytes(c.indptr),
                "cooc_rows.npy": npy_bytes(c.rows),
                "cooc_counts.npy": npy_bytes(c.counts),
                "cooc_n.npy": npy_bytes(c.n),
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
        tables = read_tables(blobs, manifest)
    except (KeyError, ValueError) as exc:
        raise SnapshotError(f"{path}: unreadable serving tables: {exc}") from exc
    return Snapshot(path, manifest, blobs[MODEL_FILE], tables)
