"""Validation: the bytes of one message in, a record or the reason it is not one out.

Messages are UTF-8 JSON objects (docs/design.md, "Contracts"). :func:`parse` turns the bytes
of one message into a frozen record of :mod:`core.records`, or into an
:class:`~core.records.Invalid` that says why not. It never raises, whatever
the input, so a worker can route every bad message to the dead-letter topic and go on.

Rules, the same for every source (Kafka, jsonl, csv):

- ids are non-empty strings (integers are accepted and turned into strings, since many
  existing topics carry numeric ids); at most ``Limits.max_id`` characters;
- numbers are finite; ``value`` may also be a numeric string;
- ``ts`` is epoch milliseconds, epoch seconds (any number below 1e11 is read as seconds) or
  ISO-8601 (naive times are UTC); it is normalised to epoch milliseconds. A missing ``ts``
  falls back to ``default_ts`` (the Kafka record timestamp) when one is given;
- strings and lists are bounded (:class:`Limits`); unknown fields are ignored;
- a :class:`FieldMap` reads fields under other names, dotted paths reach into nested objects.

>>> rec = parse("interaction", b'{"user_id": "u1", "item_id": 7, "ts": 1700000000}')
>>> rec.item_id, rec.ts, rec.value
('7', 1700000000000, 1.0)
>>> parse("interaction", b'{"user_id": "u1"}').reason
"missing field 'item_id'"
>>> fm = FieldMap.from_mapping({"user_id": "userId", "item_id": "product.id"})
>>> parse("interaction", b'{"userId": 3, "product": {"id": "p"}, "ts": 5e11}', fields=fm).user_id
'3'
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from core.records import KINDS, FieldMap, Interaction, Invalid, Item, Limits, Record, User

__all__ = ["parse", "parse_obj"]

#: Epoch numbers below this are seconds, at or above it milliseconds (1e11 s is year 5138,
#: 1e11 ms is 1973), so both encodings of any realistic event time are read correctly.
_SECONDS_BELOW: Final = 1e11
_MAX_TS_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_NO_MAP: Final = FieldMap()
_DEFAULT_LIMITS: Final = Limits()


class _Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason


def parse(
    kind: str,
    raw: bytes | bytearray | memoryview | str | None,
    *,
    fields: FieldMap = _NO_MAP,
    limits: Limits = _DEFAULT_LIMITS,
    default_ts: int | None = None,
) -> Record | Invalid:
    """Decode and validate one message; never raises."""
    try:
        if raw is None:
            return Invalid("empty", "message has no value (tombstone or null)")
        if len(raw) > limits.max_message_bytes:
            return Invalid(
                "too_large", f"message is {len(raw)} bytes, over {limits.max_message_bytes}"
            )
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Invalid("not_json", f"not UTF-8 JSON: {exc}")
        return parse_obj(kind, obj, fields=fields, limits=limits, default_ts=default_ts)
    except Exception as exc:  # the contract is "never raises": report, don't crash a worker
        return Invalid("internal", f"validator error {type(exc).__name__}: {exc}")


def parse_obj(
    kind: str,
    obj: Any,
    *,
    fields: FieldMap = _NO_MAP,
    limits: Limits = _DEFAULT_LIMITS,
    default_ts: int | None = None,
) -> Record | Invalid:
    """Validate an already decoded JSON value (a dict from jsonl or csv); never raises."""
    try:
        if not isinstance(obj, Mapping):
            return Invalid("not_object", f"expected a JSON object, got {_json_type(obj)}")
        get = fields.for_kind(kind).get
        if kind == "interaction":
            return Interaction(
                user_id=_id(get(obj, "user_id"), "user_id", limits),
                item_id=_id(get(obj, "item_id"), "item_id", limits),
                ts=_ts(get(obj, "ts"), default_ts, limits),
                value=_value(get(obj, "value")),
                event=_opt_str(get(obj, "event"), "event", limits.max_event) or "interaction",
                context=_opt_obj(get(obj, "context"), "context", limits),
            )
        if kind == "item":
            return Item(
                item_id=_id(get(obj, "item_id"), "item_id", limits),
                title=_req_str(get(obj, "title"), "title", limits.max_title),
                ts=_ts(get(obj, "ts"), default_ts, limits),
                text=_opt_str(get(obj, "text"), "text", limits.max_text),
                tags=_tags(get(obj, "tags"), limits),
                attributes=_opt_obj(get(obj, "attributes"), "attributes", limits) or {},
            )
        if kind == "user":
            return User(
                user_id=_id(get(obj, "user_id"), "user_id", limits),
                ts=_ts(get(obj, "ts"), default_ts, limits),
                text=_opt_str(get(obj, "text"), "text", limits.max_text),
                tags=_tags(get(obj, "tags"), limits),
                attributes=_opt_obj(get(obj, "attributes"), "attributes", limits) or {},
            )
        return Invalid("bad_kind", f"unknown event kind {kind!r}: use one of {', '.join(KINDS)}")
    except _Reject as rej:
        return Invalid(rej.code, rej.reason)
    except Exception as exc:
        return Invalid("internal", f"validator error {type(exc).__name__}: {exc}")


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return type(v).__name__


def _id(v: Any, name: str, limits: Limits) -> str:
    if v is None:
        raise _Reject("missing_field", f"missing field {name!r}")
    if isinstance(v, str):
        s = v.strip()
    elif isinstance(v, int) and not isinstance(v, bool):
        s = str(v)
    else:
        raise _Reject(
            "bad_type", f"field {name!r} must be a string or an integer, got {_json_type(v)}"
        )
    if not s:
        raise _Reject("bad_value", f"field {name!r} is empty")
    if len(s) > limits.max_id:
        raise _Reject("too_long", f"field {name!r} is {len(s)} characters, over {limits.max_id}")
    return s


def _req_str(v: Any, name: str, max_len: int) -> str:
    if v is None:
        raise _Reject("missing_field", f"missing field {name!r}")
    s = _opt_str(v, name, max_len)
    if not s.strip():
        raise _Reject("bad_value", f"field {name!r} is empty")
    return s


def _opt_str(v: Any, name: str, max_len: int) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _Reject("bad_type", f"field {name!r} must be a string, got {_json_type(v)}")
    if len(v) > max_len:
        raise _Reject("too_long", f"field {name!r} is {len(v)} characters, over {max_len}")
    return v


def _value(v: Any) -> float:
    if v is None:
        return 1.0
    if isinstance(v, bool):
        raise _Reject("bad_type", "field 'value' must be a number, got a boolean")
    if isinstance(v, int | float):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            raise _Reject("bad_type", f"field 'value' must be a number, got {v[:40]!r}") from None
    else:
        raise _Reject("bad_type", f"field 'value' must be a number, got {_json_type(v)}")
    if not math.isfinite(f):
        raise _Reject("bad_value", f"field 'value' must be finite, got {f}")
    return f


def _ts(v: Any, default_ts: int | None, limits: Limits = _DEFAULT_LIMITS) -> int:
    ms = _ts_ms(v, default_ts)
    ahead = limits.max_future_s
    if ahead is not None and ms > (time.time() + ahead) * 1000.0:
        when = datetime.fromtimestamp(ms / 1000.0, UTC).isoformat(timespec="seconds")
        raise _Reject(
            "future_timestamp",
            f"field 'ts' is {when}, more than {ahead:g} s ahead of this machine's clock "
            "(a producer's clock or unit error?)",
        )
    return ms


def _ts_ms(v: Any, default_ts: int | None) -> int:
    if v is None:
        if default_ts is not None and default_ts >= 0:
            return int(default_ts)
        raise _Reject("missing_field", "missing field 'ts'")
    if isinstance(v, bool):
        raise _Reject(
            "bad_timestamp", "field 'ts' must be epoch ms, epoch s or ISO-8601, got a boolean"
        )
    if isinstance(v, str):
        s = v.strip()
        try:
            num: float | None = float(s)
        except ValueError:
            num = None
        if num is None:
            return _iso_ms(s)
        v = num
    if not isinstance(v, int | float):
        raise _Reject(
            "bad_timestamp",
            f"field 'ts' must be epoch ms, epoch s or ISO-8601, got {_json_type(v)}",
        )
    f = float(v)
    if not math.isfinite(f) or f < 0:
        raise _Reject("bad_timestamp", f"field 'ts' must be a finite, non-negative time, got {v!r}")
    ms = f * 1000.0 if f < _SECONDS_BELOW else f
    if ms > _MAX_TS_MS:
        raise _Reject("bad_timestamp", f"field 'ts' {v!r} is past year 9999 (microseconds? use ms)")
    return int(ms)


def _iso_ms(s: str) -> int:
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise _Reject(
            "bad_timestamp", f"field 'ts' {s[:40]!r} is not epoch ms, epoch s or ISO-8601"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    ms = int(dt.timestamp() * 1000)
    if ms < 0:
        raise _Reject("bad_timestamp", f"field 'ts' {s[:40]!r} is before 1970")
    return ms


def _tags(v: Any, limits: Limits) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):  # "a|b" or "a,b": csv sources write lists this way
        parts = [p.strip() for p in v.replace("|", ",").split(",")]
        v = [p for p in parts if p]
    if not isinstance(v, list | tuple):
        raise _Reject("bad_type", f"field 'tags' must be a list of strings, got {_json_type(v)}")
    if len(v) > limits.max_tags:
        raise _Reject("too_long", f"field 'tags' has {len(v)} entries, over {limits.max_tags}")
    out = []
    for t in v:
        if not isinstance(t, str):
            raise _Reject("bad_type", f"field 'tags' must hold strings, got {_json_type(t)}")
        if len(t) > limits.max_tag:
            raise _Reject("too_long", f"a tag is {len(t)} characters, over {limits.max_tag}")
        out.append(t)
    return tuple(out)


def _opt_obj(v: Any, name: str, limits: Limits) -> Mapping[str, Any] | None:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise _Reject("bad_type", f"field {name!r} must be an object, got {_json_type(v)}")
    if len(v) > limits.max_attributes:
        raise _Reject("too_long", f"field {name!r} has {len(v)} keys, over {limits.max_attributes}")
    return v
