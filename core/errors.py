"""The root of every error coldstream raises on purpose.

Each package adds its own subclasses in its ``exceptions.py``; callers that want to catch
"anything coldstream said no to" catch :class:`ColdstreamError`.
"""

__all__ = ["CheckpointError", "ColdstreamError", "ConfigError"]


class ColdstreamError(Exception):
    """Base class of coldstream's own errors; the message says what to do."""


class ConfigError(ColdstreamError, ValueError):
    """A setting or CLI argument that cannot work, with the fix in the message."""


class CheckpointError(ColdstreamError):
    """A checkpoint (the worker's, or a pretrained student's) is missing, unreadable or was
    written for another version or other dimensions."""
