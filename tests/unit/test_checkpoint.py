"""Worker checkpoints: the round trip, and a clear refusal of another version's format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streams.checkpoint import CHECKPOINT_FILE, CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_and_nothing_there(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, {"a": 1}, {("t.interactions", 0): 7})
    assert load_checkpoint(tmp_path) == ({"a": 1}, {("t.interactions", 0): 7})


def test_a_checkpoint_of_another_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    torch.save({"format": 1, "state": {}, "offsets": []}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(CheckpointError, match=r"format 1.*--group-id"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="move it away"):
        load_checkpoint(tmp_path)
