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


def test_a_checkpoint_written_before_the_records_moved_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records parked in a checkpoint were pickled as ``streams.records.*`` before they moved
    to ``core.records``; ``core.pickles`` finds them under the new name."""
    import sys

    import core.records
    from core.records import Interaction

    rec = Interaction(user_id="u", item_id="i", value=1.0, ts=5)
    monkeypatch.setitem(sys.modules, "streams.records", core.records)
    monkeypatch.setattr(Interaction, "__module__", "streams.records")
    save_checkpoint(tmp_path, {"parked": [rec]}, {})
    monkeypatch.undo()
    assert b"streams.records" in (tmp_path / CHECKPOINT_FILE).read_bytes()
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None and loaded[0]["parked"] == [rec]
    assert type(loaded[0]["parked"][0]) is Interaction
