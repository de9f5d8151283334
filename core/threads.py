"""Thread limits for the compute-heavy commands.

Scoring and training here are many small matrix products; with several BLAS or torch threads
on a small (or shared) machine they were about 10x slower than with one, because the threads
spend their time synchronising. ``evaluate`` and ``worker`` run under :func:`limit_threads`.

The teacher is the exception: a transformer's matrix products are big enough to use every core
(MiniLM encoded 49 texts/s on one thread here and 88 on two), so the worker encodes under
:func:`torch_threads` with ``COLDSTREAM_TEACHER_THREADS`` (default: one per core).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cores", "limit_threads", "torch_threads"]


def cores() -> int:
    """CPU cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and ``n`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    with torch_threads(n), threadpool_limits(n):
        yield


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (0: one per core)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n or cores())
    try:
        yield
    finally:
        torch.set_num_threads(before)
