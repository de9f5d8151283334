"""Checkpoints: the whole learning state and the consumed offsets, written atomically.

A checkpoint is one file, ``checkpoint.pt`` in the checkpoint directory, holding the learning
state and, for every partition, the offset of the next record to apply. It is written to a
temporary file in the same directory, flushed and fsynced, then renamed over the old one (a
rename is atomic on POSIX), and the directory is fsynced, so a crash at any moment leaves
either the old checkpoint or the new one, never a torn file. On start the worker loads it
and skips every record below the stored offsets, so each event is applied exactly once.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> save_checkpoint(d, {"events": 3}, {("t", 0): 42}).name
'checkpoint.pt'
>>> load_checkpoint(d)
({'events': 3}, {('t', 0): 42})
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import torch

import core.pickles
from core.errors import CheckpointError

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "fsync_dir",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FILE = "checkpoint.pt"
#: 2: the redesigned student (one low-dimensional scoring space); its state differs from 1's
_FORMAT = 2


def save_checkpoint(
    directory: Path,
    state: dict[str, Any],
    offsets: dict[tuple[str, int], int],
    name: str = CHECKPOINT_FILE,
) -> Path:
    """Write ``state`` and ``offsets`` atomically (to ``directory / name``); returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    payload = {
        "format": _FORMAT,
        "state": state,
        "offsets": [[t, p, o] for (t, p), o in offsets.items()],
    }
    torch.save(payload, buf)
    final = directory / name
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(buf.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    fsync_dir(directory)
    return final


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def load_checkpoint(
    directory: Path, name: str = CHECKPOINT_FILE
) -> tuple[dict[str, Any], dict[tuple[str, int], int]] | None:
    """The checkpoint ``directory / name``, or None if there is none."""
    path = directory / name
    if not path.is_file():
        return None
    try:
        # our own file: it holds numpy arrays and plain objects, not only tensors
        payload = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=core.pickles
        )
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); move it away to "
            "start from scratch"
        ) from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path} is not a coldstream checkpoint")
    if payload["format"] != _FORMAT:
        raise CheckpointError(
            f"{path} is a checkpoint of format {payload['format']}, written by another coldstream "
            f"version; this one reads format {_FORMAT}. Move it away and start the worker with "
            "a new --group-id to learn from the topics' start, from scratch or from a student "
            "made with coldstream pretrain (worker --init)"
        )
    offsets = {(str(t), int(p)): int(o) for t, p, o in payload["offsets"]}
    return payload["state"], offsets
