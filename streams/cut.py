"""Checkpoints of several ranks: a consistent cut, restorable into any number of ranks.

At a synchronisation point chosen for a checkpoint (:mod:`streams.ranks`), every rank writes
its state and the offsets of its partitions to ``cut-<point>/rank-<r>.pt`` (atomically, as
:func:`streams.checkpoint.save_checkpoint` writes), the ranks agree that all of them wrote, and
only then rank 0 writes ``cut-<point>/COMPLETE``. A cut without ``COMPLETE`` (a rank died while
writing) does not count. Older cuts are removed once a newer one is complete::

    checkpoints/student/
      checkpoint.pt            one process's checkpoint (coldstream worker without torchrun)
      cut-000000001234/
        rank-0.pt rank-1.pt    every rank's state and offsets at point 1234
        COMPLETE               {"world": 2, "partitions": 4, "point": 1234}

:func:`restore_state` reads the newest of the two kinds (by the time each was completed) for
rank ``r`` of ``world``: with the world it was written by, rank ``r``'s own file; with another,
every file regrouped (:func:`models.rescale.regroup`): the shared state of the first, each user's
state from the rank that owned the user's partition, kept by the new rank that owns it now;
interaction offsets from the rank that owned the partition, item and user offsets (the same on
every rank at a cut) from the first.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import CheckpointError
from models.distributed import owner
from models.rescale import regroup
from streams.checkpoint import CHECKPOINT_FILE, fsync_dir, load_checkpoint, save_checkpoint

__all__ = [
    "Cut",
    "complete_cut",
    "highest_point",
    "latest_cut",
    "newest",
    "restore_state",
    "write_rank",
]

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]
COMPLETE = "COMPLETE"


@dataclass(frozen=True)
class Cut:
    path: Path
    world: int
    partitions: int
    point: int


def cut_path(directory: Path, point: int) -> Path:
    return directory / f"cut-{point:012d}"


def write_rank(
    directory: Path, point: int, rank: int, state: dict[str, Any], offsets: Offsets
) -> Path:
    """Rank ``rank``'s part of the cut at ``point``."""
    return save_checkpoint(cut_path(directory, point), state, offsets, name=f"rank-{rank}.pt")


def complete_cut(directory: Path, point: int, world: int, partitions: int, keep: int = 2) -> Path:
    """Mark the cut at ``point`` complete (rank 0, after every rank wrote), then remove all but
    the ``keep`` newest complete cuts and every older incomplete one."""
    path = cut_path(directory, point)
    tmp = path / f".{COMPLETE}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"world": world, "partitions": partitions, "point": point}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path / COMPLETE)
    fsync_dir(path)
    cuts = sorted(directory.glob("cut-*"))
    done = [c for c in cuts if (c / COMPLETE).is_file()]
    stale = set(done[:-keep]) | {c for c in cuts if c < path and not (c / COMPLETE).is_file()}
    for c in stale:
        shutil.rmtree(c, ignore_errors=True)
    return path


def highest_point(directory: Path) -> int:
    """The highest point of any cut directory, complete or not (0: none): new cuts are numbered
    above it, so they never mix with a cut a dead rank left half written."""
    points = [int(p.name.split("-", 1)[1]) for p in directory.glob("cut-*") if p.name[4:].isdigit()]
    return max(points, default=0)


def latest_cut(directory: Path) -> Cut | None:
    """The newest complete cut in ``directory``."""
    for path in sorted(directory.glob("cut-*"), reverse=True):
        marker = path / COMPLETE
        if marker.is_file():
            try:
                meta = json.loads(marker.read_text())
                return Cut(path, int(meta["world"]), int(meta["partitions"]), int(meta["point"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(
                    f"{marker} is unreadable ({exc}); move the cut away"
                ) from None
    return None


def newest(directory: Path) -> Cut | Path | None:
    cut, single = latest_cut(directory), directory / CHECKPOINT_FILE
    if cut is None:
        return single if single.is_file() else None
    if single.is_file() and single.stat().st_mtime > (cut.path / COMPLETE).stat().st_mtime:
        return single
    return cut


def restore_state(
    directory: Path, *, rank: int, world: int, partitions: int, interactions: str
) -> tuple[dict[str, Any], Offsets, int] | None:
    """The state and offsets rank ``rank`` of ``world`` starts from, and the point they were
    written at (0 for one process's checkpoint); None when there is no checkpoint.

    ``partitions``: of the interactions topic ``interactions`` now (with ``world``, it decides
    which users the rank owns)."""
    found = newest(directory)
    if found is None:
        return None
    if isinstance(found, Path):
        loaded = load_checkpoint(directory)
        assert loaded is not None
        parts, old_world, old_partitions, point = [loaded], 1, partitions, 0
    else:
        if world > 1 and found.world > 1 and found.partitions != partitions:
            log.warning(
                "the cut in %s was written with %d partitions of %s, which now has %d: users "
                "whose events move to another partition start afresh on their new rank",
                found.path,
                found.partitions,
                interactions,
                partitions,
            )
        old_world, old_partitions, point = found.world, found.partitions, found.point
        parts = []
        for r in range(old_world) if old_world != world else (rank,):
            loaded = load_checkpoint(found.path, name=f"rank-{r}.pt")
            if loaded is None:
                raise CheckpointError(f"{found.path} is complete but rank-{r}.pt is missing")
            parts.append(loaded)
        if old_world == world:
            return parts[0][0], parts[0][1], point
    state = regroup(
        [s for s, _ in parts],
        lambda u: owner(u, old_partitions, old_world),
        lambda u: owner(u, partitions, world) == rank,
        first=rank == 0,
    )
    offsets: Offsets = {}
    for r, (_, offs) in enumerate(parts):
        for (topic, p), o in offs.items():
            if topic != interactions:
                if r == 0:
                    offsets[(topic, p)] = o
            elif p % old_world == r and p % world == rank:
                offsets[(topic, p)] = o
    return state, offsets, point
