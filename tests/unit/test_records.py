from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from core.records import (
    FieldMap,
    Interaction,
    Invalid,
    Item,
    Limits,
    User,
    dead_letter,
    to_json,
)
from streams.validation import parse, parse_obj


def test_interaction_defaults_and_normalisation() -> None:
    rec = parse("interaction", b'{"user_id": "u", "item_id": "i", "ts": "2024-01-01T00:00:00Z"}')
    assert rec == Interaction("u", "i", 1_704_067_200_000, 1.0, "interaction", None)


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        (1_700_000_000, 1_700_000_000_000),  # epoch seconds
        (1_700_000_000.5, 1_700_000_000_500),
        (1_700_000_000_123, 1_700_000_000_123),  # epoch milliseconds
        ("1700000000", 1_700_000_000_000),
        ("2023-11-14T22:13:20+00:00", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
        ("2023-11-14 22:13:20", 1_700_000_000_000),  # naive is UTC
    ],
)
def test_timestamps(ts: object, ms: int) -> None:
    rec = parse_obj("interaction", {"user_id": "u", "item_id": "i", "ts": ts})
    assert isinstance(rec, Interaction)
    assert rec.ts == ms


@pytest.mark.parametrize(
    ("obj", "code", "words"),
    [
        ({"item_id": "i", "ts": 1}, "missing_field", "user_id"),
        ({"user_id": "", "item_id": "i", "ts": 1}, "bad_value", "empty"),
        ({"user_id": True, "item_id": "i", "ts": 1}, "bad_type", "boolean"),
        ({"user_id": "u", "item_id": ["i"], "ts": 1}, "bad_type", "array"),
        ({"user_id": "u", "item_id": "i", "ts": 1, "value": "nan"}, "bad_value", "finite"),
        ({"user_id": "u", "item_id": "i", "ts": 1, "value": "five"}, "bad_type", "number"),
        ({"user_id": "u", "item_id": "i", "ts": -5}, "bad_timestamp", "non-negative"),
        ({"user_id": "u", "item_id": "i", "ts": 1.7e18}, "bad_timestamp", "microseconds"),
        ({"user_id": "u", "item_id": "i", "ts": "yesterday"}, "bad_timestamp", "ISO-8601"),
        ({"user_id": "u", "item_id": "i", "ts": "2999-01-01T00:00:00"}, "future_timestamp", "2999"),
        ({"user_id": "u", "item_id": "i"}, "missing_field", "ts"),
        ({"user_id": "u" * 300, "item_id": "i", "ts": 1}, "too_long", "user_id"),
        ({"user_id": "u", "item_id": "i", "ts": 1, "context": [1]}, "bad_type", "context"),
    ],
)
def test_interaction_rejections(obj: dict[str, object], code: str, words: str) -> None:
    rec = parse_obj("interaction", obj)
    assert isinstance(rec, Invalid)
    assert rec.code == code
    assert words in rec.reason


def test_missing_ts_falls_back_to_kafka_timestamp() -> None:
    rec = parse("interaction", b'{"user_id": "u", "item_id": "i"}', default_ts=1234567890123)
    assert isinstance(rec, Interaction) and rec.ts == 1234567890123


def test_item_and_user() -> None:
    raw = b'{"item_id": 5, "title": "Tent", "tags": ["outdoors"], "ts": 1, "extra": 1}'
    item = parse("item", raw)
    assert item == Item("5", "Tent", 1000, "", ("outdoors",), {})
    assert isinstance(parse("item", b'{"item_id": 5, "ts": 1}'), Invalid)  # title required
    user = parse("user", b'{"user_id": "u", "text": "likes jazz", "tags": "jazz|blues", "ts": 2}')
    assert user == User("u", 2000, "likes jazz", ("jazz", "blues"), {})


def test_limits_apply() -> None:
    limits = Limits(max_text=5, max_tags=1)
    rec = parse_obj("item", {"item_id": "i", "title": "t", "text": "x" * 6, "ts": 1}, limits=limits)
    assert isinstance(rec, Invalid) and rec.code == "too_long"
    rec = parse_obj(
        "item", {"item_id": "i", "title": "t", "tags": ["a", "b"], "ts": 1}, limits=limits
    )
    assert isinstance(rec, Invalid) and "tags" in rec.reason
    assert parse("item", b"x" * 20, limits=Limits(max_message_bytes=10)).code == "too_large"  # type: ignore[union-attr]


def test_event_times_ahead_of_the_clock_are_bounded() -> None:
    import time

    hour_ahead = int((time.time() + 3600) * 1000)
    two_days_ahead = int((time.time() + 2 * 86400) * 1000)
    obj = {"user_id": "u", "item_id": "i"}
    assert isinstance(parse_obj("interaction", {**obj, "ts": hour_ahead}), Interaction)
    late = parse_obj("interaction", {**obj, "ts": two_days_ahead})
    assert isinstance(late, Invalid) and late.code == "future_timestamp"
    unbounded = Limits(max_future_s=None)
    assert isinstance(
        parse_obj("interaction", {**obj, "ts": two_days_ahead}, limits=unbounded), Interaction
    )


def test_field_map_reads_other_names_and_nested_paths() -> None:
    fm = FieldMap.from_mapping({"user_id": "userId", "item_id": "product.id", "ts": "timestamp"})
    raw = b'{"userId": 7, "product": {"id": "p1"}, "timestamp": "2024-01-01T00:00:00Z"}'
    rec = parse("interaction", raw, fields=fm)
    assert rec == Interaction("7", "p1", 1_704_067_200_000)
    missing = parse("interaction", b'{"userId": 7, "product": "flat", "timestamp": 1}', fields=fm)
    assert isinstance(missing, Invalid) and "item_id" in missing.reason


def test_not_json_not_object_and_unknown_kind() -> None:
    assert parse("interaction", b"\xff\xfe").code == "not_json"  # type: ignore[union-attr]
    assert parse("interaction", b"[1, 2]").code == "not_object"  # type: ignore[union-attr]
    assert parse("interaction", None).code == "empty"  # type: ignore[union-attr]
    assert parse("order", b"{}").code == "bad_kind"  # type: ignore[union-attr]


def test_to_json_round_trips() -> None:
    recs = [
        Interaction("u", "i", 1_700_000_000_005, 4.5, "rating", {"device": "tv"}),
        Item("i", "Tent", 1_700_000_000_006, "A tent.", ("outdoors", "camping"), {"price": 10}),
        User("u", 1_700_000_000_007, "likes jazz", ("jazz",), {}),
    ]
    for rec in recs:
        assert parse(rec.kind, to_json(rec)) == rec


def test_dead_letter_keeps_raw_bytes() -> None:
    msg = orjson.loads(
        dead_letter(Invalid("not_json", "bad"), topic="t", partition=2, offset=9, raw=b"{oops")
    )
    assert msg == {
        "error": "bad",
        "reason": "not_json",
        "topic": "t",
        "partition": 2,
        "offset": 9,
        "raw": "{oops",
        "size": 5,
        "sha256": hashlib.sha256(b"{oops").hexdigest(),
    }
    binary = orjson.loads(
        dead_letter(Invalid("x", "y"), topic="t", partition=0, offset=0, raw=b"\x00\xff")
    )
    assert base64.b64decode(binary["raw"]) == b"\x00\xff"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff" * 900_000,  # not UTF-8: base64 grows it past 1 MB
        b'{"item_id": "i", "title": "' + b"x" * 5_000_000 + b'"}',  # a 5 MB item
        ('"' * 500_000).encode(),  # JSON escaping doubles it
    ],
)
def test_oversized_dead_letters_fit_and_keep_what_identifies_them(raw: bytes) -> None:
    from core.records import MAX_DEAD_LETTER_BYTES, dead_letter

    msg = dead_letter(
        Invalid("too_large", "message is big"), topic="t.items", partition=2, offset=7, raw=raw
    )
    assert len(msg) <= MAX_DEAD_LETTER_BYTES
    d = orjson.loads(msg)
    assert (d["topic"], d["partition"], d["offset"], d["reason"]) == ("t.items", 2, 7, "too_large")
    assert d["size"] == len(raw) and d["sha256"] == hashlib.sha256(raw).hexdigest()
    assert d["raw_truncated"] is True
    kept = base64.b64decode(d["raw"]) if d.get("raw_encoding") == "base64" else d["raw"].encode()
    assert raw.startswith(kept) and len(kept) > MAX_DEAD_LETTER_BYTES // 4
    small = orjson.loads(
        dead_letter(Invalid("x", "y"), topic="t", partition=0, offset=1, raw=b"ok")
    )
    assert small["raw"] == "ok" and "raw_truncated" not in small and small["size"] == 2
