"""Errors of the snapshot format and store."""

from core.errors import ColdstreamError

__all__ = ["SnapshotError"]


class SnapshotError(ColdstreamError):
    """A snapshot that cannot be used. ``reason`` says why, in a word fit for a metric label:
    ``hash`` (a file differs from its sha256), ``signature`` (unsigned with a key set, or a
    signature that does not match) or ``unreadable`` (anything else)."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason
