"""Errors of the learning core (teacher, models, evaluation)."""

from core.errors import CheckpointError, ColdstreamError

__all__ = ["CheckpointError", "ModelsError", "TeacherError", "UnknownModelError"]


class ModelsError(ColdstreamError):
    """Base class of the errors raised by ``models``."""


class TeacherError(ModelsError):
    """The teacher model could not be loaded (bad path, or a name that needs the network)."""


class UnknownModelError(ModelsError, ValueError):
    """A model name that coldstream does not know."""
