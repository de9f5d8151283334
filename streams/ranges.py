"""The range of a replay: ``--from`` (``earliest``, an offset, or an ISO-8601 event time) and
``--until`` (``end``, or an ISO-8601 event time), parsed and checked before anything is read.
A time range is half-open, ``from <= ts < until``, so consecutive windows neither overlap nor
leave gaps; :mod:`streams.history` reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.errors import ConfigError

__all__ = ["Start", "Until", "check_range", "parse_from", "parse_until"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Start:
    """Where a replay starts: ``earliest`` (both fields None), an offset, or an event time."""

    offset: int | None = None
    time_ms: int | None = None

    def __str__(self) -> str:
        if self.offset is not None:
            return f"offset {self.offset}"
        if self.time_ms is not None:
            return _iso(self.time_ms)
        return "earliest"


@dataclass(frozen=True, slots=True)
class Until:
    """Where a replay ends: the end (``time_ms`` None) or before an event time."""

    time_ms: int | None = None

    def __str__(self) -> str:
        return "end" if self.time_ms is None else _iso(self.time_ms)


def parse_from(text: str) -> Start:
    """``earliest``, an offset (a non-negative integer) or an ISO-8601 time (naive = UTC).

    >>> parse_from("earliest"), parse_from("1200"), parse_from("2024-01-01T00:00:01Z")
    (Start(offset=None, time_ms=None), Start(offset=1200, time_ms=None), \
Start(offset=None, time_ms=1704067201000))
    >>> parse_from("yesterday")
    Traceback (most recent call last):
    ...
    core.errors.ConfigError: 'yesterday' is not earliest, an offset or an ISO-8601 time; \
write e.g. --from earliest, --from 5000 or --from 2024-05-01T12:00:00Z
    """
    s = text.strip()
    if s.lower() == "earliest":
        return Start()
    if s.lstrip("+-").isdigit():
        offset = int(s)
        if offset < 0:
            raise ConfigError(
                f"offset {offset} is negative; offsets start at 0 (or use --from earliest)"
            )
        return Start(offset=offset)
    ms = _parse_time(s)
    if ms is None:
        raise ConfigError(
            f"{text!r} is not earliest, an offset or an ISO-8601 time; write e.g. "
            "--from earliest, --from 5000 or --from 2024-05-01T12:00:00Z"
        )
    return Start(time_ms=ms)


def parse_until(text: str) -> Until:
    """``end`` or an ISO-8601 time (naive = UTC); events before it are replayed.

    >>> parse_until("end"), parse_until("2024-01-01")
    (Until(time_ms=None), Until(time_ms=1704067200000))
    """
    s = text.strip()
    if s.lower() == "end":
        return Until()
    ms = _parse_time(s)
    if ms is None:
        hint = " (offsets are for --from only)" if s.lstrip("+-").isdigit() else ""
        raise ConfigError(
            f"{text!r} is not end or an ISO-8601 time{hint}; write e.g. --until end "
            "or --until 2024-05-02T00:00:00Z (events before that time are replayed)"
        )
    return Until(time_ms=ms)


def check_range(start: Start, until: Until) -> None:
    """Refuse a time range that holds nothing: ``until`` at or before ``from``.

    >>> check_range(parse_from("2024-01-02"), parse_until("2024-01-01"))
    Traceback (most recent call last):
    ...
    core.errors.ConfigError: --until 2024-01-01T00:00:00.000Z is not after \
--from 2024-01-02T00:00:00.000Z: the range would be empty; give an --until later than --from
    """
    if start.time_ms is not None and until.time_ms is not None and until.time_ms <= start.time_ms:
        raise ConfigError(
            f"--until {until} is not after --from {start}: the range would be empty; "
            "give an --until later than --from"
        )


def _parse_time(s: str) -> int | None:
    """Epoch ms of an ISO-8601 time, exactly (no float), rounded up: event times are whole
    ms, so ``ts >= t`` and ``ts < t`` hold exactly when they hold for ``ceil(t)``."""
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return -((_EPOCH - dt) // timedelta(milliseconds=1))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
