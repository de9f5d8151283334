"""Shared helpers of the model tests: the contract suite's tiny stream and driver
(:mod:`models.checks`), and one torch thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.threads import torch_threads
from models.checks import TINY, Stream, feed, fresh_models, tiny_stream

__all__ = ["TINY", "Stream", "feed", "fresh_models", "one_thread", "tiny_stream"]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """The student's matrices are tiny: one torch thread is faster and immune to a busy CPU."""
    with torch_threads(1):
        yield
