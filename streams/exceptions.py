"""Errors of the streaming layer (broker, topics, datasets)."""

from core.errors import ColdstreamError

__all__ = ["BrokerError", "DatasetError", "StreamsError"]


class StreamsError(ColdstreamError):
    """Base class of the errors raised by ``streams``."""


class BrokerError(StreamsError):
    """The embedded broker could not start, or a broker did not answer."""


class DatasetError(StreamsError):
    """A dataset on disk cannot be read (missing file, unknown format, bad header)."""
