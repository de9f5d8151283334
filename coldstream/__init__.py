"""coldstream: keep a small recommender fresh from a Kafka event stream."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("coldstream")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
