"""Event records: what coldstream reads from and writes to its topics.

Three kinds of event flow through coldstream (docs/design.md, "Contracts"): interactions,
items and users, each a frozen dataclass here. :mod:`streams.validation` turns message bytes
into these records (or a reason why not); :func:`to_json` is their canonical JSON, and
:func:`dead_letter` the message a rejected event becomes on the dead-letter topic.

>>> from streams.validation import parse
>>> rec = parse("interaction", b'{"user_id": "u1", "item_id": 7, "ts": 1700000000}')
>>> rec.item_id, rec.ts, rec.value
('7', 1700000000000, 1.0)
>>> parse("interaction", to_json(rec)) == rec
True
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal

import orjson

#: dead letters stay under this many bytes, below a Kafka producer's default 1 MiB request limit
MAX_DEAD_LETTER_BYTES = 900_000

__all__ = [
    "KINDS",
    "FieldMap",
    "Interaction",
    "Invalid",
    "Item",
    "Kind",
    "Limits",
    "Record",
    "User",
    "dead_letter",
    "to_json",
]

Kind = Literal["interaction", "item", "user"]
KINDS: Final[tuple[Kind, ...]] = ("interaction", "item", "user")


@dataclass(frozen=True, slots=True)
class Interaction:
    """A user touched an item: a rating, a click, a purchase (``event`` says which)."""

    user_id: str
    item_id: str
    ts: int
    value: float = 1.0
    event: str = "interaction"
    context: Mapping[str, Any] | None = None

    kind: ClassVar[Kind] = "interaction"

    @property
    def key(self) -> str:
        return self.user_id


@dataclass(frozen=True, slots=True)
class Item:
    """A new item, or an update of one (the newest event for an ``item_id`` wins)."""

    item_id: str
    title: str
    ts: int
    text: str = ""
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    kind: ClassVar[Kind] = "item"

    @property
    def key(self) -> str:
        return self.item_id


@dataclass(frozen=True, slots=True)
class User:
    """A user profile: optional text and tags the teacher can read for a new user."""

    user_id: str
    ts: int
    text: str = ""
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    kind: ClassVar[Kind] = "user"

    @property
    def key(self) -> str:
        return self.user_id


Record = Interaction | Item | User


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a message was rejected: ``code`` is a short metric label, ``reason`` is for people."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds on what one event may carry, so one bad producer cannot blow up memory."""

    max_id: int = 256
    max_title: int = 1_000
    max_text: int = 20_000
    max_tags: int = 64
    max_tag: int = 100
    max_event: int = 64
    max_attributes: int = 64
    max_message_bytes: int = 1_000_000
    #: event times further ahead of this machine's clock are refused (a producer's clock or
    #: unit error would otherwise pin "newest event time" in every later snapshot); None: no bound
    max_future_s: float | None = 86_400.0


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Where each canonical field lives in the source messages.

    Keys are a canonical field name (for every kind) or ``kind.field`` (for one kind, which
    wins over the plain name); values are a source field name or a dotted path into nested
    objects (``"payload.userId"``). Fields not named are read under their canonical name.

    >>> fm = FieldMap.from_mapping({"user_id": "uid", "item.item_id": "id"})
    >>> fm.for_kind("item").get({"id": 3}, "item_id")
    3
    >>> fm.for_kind("user").get({"uid": 4}, "user_id")
    4
    """

    paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    by_kind: Mapping[str, FieldMap] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str] | None) -> FieldMap:
        if not mapping:
            return cls()
        common = {k: tuple(v.split(".")) for k, v in mapping.items() if "." not in k}
        views: dict[str, FieldMap] = {}
        for kind in KINDS:
            own = {
                k.split(".", 1)[1]: tuple(v.split("."))
                for k, v in mapping.items()
                if k.startswith(f"{kind}.")
            }
            views[kind] = cls({**common, **own})
        return cls(common, views)

    def for_kind(self, kind: str) -> FieldMap:
        """The map as seen by one kind of event (plain names plus ``kind.`` names)."""
        return self.by_kind.get(kind, self)

    def get(self, obj: Mapping[str, Any], name: str) -> Any:
        path = self.paths.get(name)
        if path is None:
            return obj.get(name)
        cur: Any = obj
        for part in path:
            if not isinstance(cur, Mapping):
                return None
            cur = cur.get(part)
        return cur


def to_json(rec: Record) -> bytes:
    """The canonical JSON of a record, as ``load`` publishes it and ``generate`` writes it."""
    if isinstance(rec, Interaction):
        d: dict[str, Any] = {
            "user_id": rec.user_id,
            "item_id": rec.item_id,
            "value": rec.value,
            "event": rec.event,
            "ts": rec.ts,
        }
        if rec.context is not None:
            d["context"] = rec.context
    elif isinstance(rec, Item):
        d = {
            "item_id": rec.item_id,
            "title": rec.title,
            "text": rec.text,
            "tags": list(rec.tags),
            "attributes": rec.attributes,
            "ts": rec.ts,
        }
    else:
        d = {
            "user_id": rec.user_id,
            "text": rec.text,
            "tags": list(rec.tags),
            "attributes": rec.attributes,
            "ts": rec.ts,
        }
    return orjson.dumps(d)


def dead_letter(
    invalid: Invalid,
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    raw: bytes | bytearray | memoryview | str | None,
    source: str | None = None,
    max_bytes: int = MAX_DEAD_LETTER_BYTES,
) -> bytes:
    """The dead-letter message of docs/design.md: ``{error, topic, partition, offset, raw}``.

    ``raw`` is the original message as text when it is UTF-8, else base64 with
    ``raw_encoding: "base64"``, so nothing is lost. ``reason`` is the short code used as the
    metric label; ``source`` (file and line, for rows of a loaded file) is added when known;
    ``size`` and ``sha256`` are the original bytes'. A message that would be over
    ``max_bytes`` (a producer refuses messages over its limit, 1 MiB by default) keeps all of
    that with ``raw`` cut to what fits and ``raw_truncated: true``.

    >>> orjson.loads(dead_letter(Invalid("not_json", "bad"), topic="t", partition=0, offset=9,
    ...                          raw=b"\\xff"))["raw_encoding"]
    'base64'
    >>> big = orjson.loads(dead_letter(Invalid("too_large", "big"), topic="t", partition=0,
    ...                    offset=1, raw=b"x" * 5_000_000))
    >>> big["size"], big["raw_truncated"], len(big["raw"]) < 1_000_000
    (5000000, True, True)
    """
    d: dict[str, Any] = {
        "error": invalid.reason,
        "reason": invalid.code,
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }
    if source is not None:
        d["source"] = source
    if raw is None:
        d["raw"] = None
        return orjson.dumps(d)
    b = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    d["size"] = len(b)
    d["sha256"] = hashlib.sha256(b).hexdigest()
    text = raw if isinstance(raw, str) else None
    if text is None:
        try:
            text = b.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is not None:
        d["raw"] = text
    else:
        d["raw"] = base64.b64encode(b).decode("ascii")
        d["raw_encoding"] = "base64"
    out = orjson.dumps(d)
    if len(out) <= max_bytes:
        return out
    # cut the raw bytes so the whole message fits (JSON escaping can grow text up to 6x)
    head = len(out) - len(orjson.dumps(d["raw"]))
    budget = max(0, max_bytes - head - 64)
    if text is not None:  # the longest prefix whose JSON string fits: a binary search
        lo, hi = 0, min(len(b), budget)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(orjson.dumps(b[:mid].decode("utf-8", "ignore"))) <= budget:
                lo = mid
            else:
                hi = mid - 1
        d["raw"] = b[:lo].decode("utf-8", "ignore")
    else:
        d["raw"] = base64.b64encode(b[: budget // 4 * 3]).decode("ascii")
    d["raw_truncated"] = True
    return orjson.dumps(d)
