"""Thread limits for the compute-heavy commands.

Scoring and training here are many small matrix products; with several BLAS or torch threads
on a small (or shared) machine they were about 10x slower than with one, because the threads
spend their time synchronising. ``evaluate`` and ``worker`` run under :func:`limit_threads`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["limit_threads"]


@contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and ``n`` BLAS threads."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)
