"""Errors of the inference worker."""

from core.errors import ColdstreamError

__all__ = ["BadRequest", "ServingError"]


class ServingError(ColdstreamError):
    """Base class of the errors raised by ``serving``."""


class BadRequest(ServingError):
    """A request ``serve`` answers with a 4xx (or 503 before the first snapshot): the message
    says what to send."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
