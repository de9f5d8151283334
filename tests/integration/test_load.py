"""``load`` against the real embedded broker: what goes in comes back out, unchanged."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from coldstream.cli import app
from core.records import Interaction, Item, Record
from core.settings import Settings
from streams.datasets import open_dataset
from streams.load import publish_dataset
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.topics import ensure_topics, read_topic
from streams.validation import parse
from tests.movielens import write_movielens

pytestmark = pytest.mark.integration


def _consume(settings: Settings, kind: str) -> list[tuple[Record, bytes, int, int]]:
    """(record, key, kafka timestamp, partition) for each message, in partition order."""
    out = []
    for msg in read_topic(settings, settings.topics.for_kind(kind), idle_s=1.0):
        rec = parse(kind, msg.value)
        assert not hasattr(rec, "code"), rec
        out.append((rec, msg.key, msg.timestamp, msg.partition))
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    config = SyntheticConfig(users=150, items=120, events=4000, seed=3, feedback="explicit")
    write_jsonl(generate(config), out)
    return out


def test_generated_dataset_round_trips(
    generated: Path, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(partitions=3)
    ensure_topics(settings)
    dataset = open_dataset(generated)
    report = publish_dataset(dataset, settings)
    assert report.failed == 0 and report.dead_lettered == 0
    assert report.events == len(dataset) > 4000

    for kind in ("interaction", "item", "user"):
        sent = [r for r in dataset.records() if r.kind == kind]
        got = _consume(settings, kind)
        # exactly the same events: nothing lost, nothing doubled, nothing changed
        assert sorted(map(repr, (g[0] for g in got))) == sorted(map(repr, sent))
        # keyed by user or item id, Kafka timestamp = event time
        for rec, key, kafka_ts, _ in got:
            assert key == rec.key.encode()
            assert kafka_ts == rec.ts
        # same order per key
        sent_by_key: dict[str, list[Record]] = defaultdict(list)
        got_by_key: dict[str, list[Record]] = defaultdict(list)
        for rec in sent:
            sent_by_key[rec.key].append(rec)
        for rec, _, _, _ in got:
            got_by_key[rec.key].append(rec)
        assert got_by_key == sent_by_key
        # a key lives on one partition
        partitions: dict[bytes, set[int]] = defaultdict(set)
        for _, key, _, part in got:
            partitions[key].add(part)
        assert all(len(p) == 1 for p in partitions.values())
        if kind == "interaction":
            assert len({p for _, _, _, p in got}) == 3  # spread over all partitions


def test_movielens_loads_items_before_first_rating(
    tmp_path: Path, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(partitions=1)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "load",
            str(write_movielens(tmp_path / "ml")),
            "--broker",
            settings.broker,
            "--topic-prefix",
            settings.topic_prefix,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "events/s" in result.output and "2 invalid row(s)" in result.output

    items = {r.item_id: ts for r, _, ts, _ in _consume(settings, "item") if isinstance(r, Item)}
    ratings = [r for r, _, _, _ in _consume(settings, "interaction")]
    assert len(ratings) == 7 and all(isinstance(r, Interaction) for r in ratings)
    first: dict[str, int] = {}
    for r in ratings:
        assert isinstance(r, Interaction)
        first[r.item_id] = min(first.get(r.item_id, r.ts), r.ts)
    assert set(items) == set(first)
    assert all(items[i] <= first[i] for i in first), "each movie announced by its first rating"

    dlq = [orjson.loads(m.value) for m in read_topic(settings, settings.topics.dlq, idle_s=1.0)]
    assert sorted(d["reason"] for d in dlq) == ["bad_type", "unknown_item"]
    assert all(d["source"].startswith("ratings.csv:") and d["raw"] for d in dlq)


def test_strict_publishes_nothing(
    tmp_path: Path, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory()
    ensure_topics(settings)
    result = CliRunner().invoke(
        app,
        [
            "load",
            str(write_movielens(tmp_path / "ml")),
            "--strict",
            "--broker",
            settings.broker,
            "--topic-prefix",
            settings.topic_prefix,
        ],
    )
    assert result.exit_code == 1
    assert "nothing was published" in result.output
    assert list(read_topic(settings, settings.topics.interactions, idle_s=0.5)) == []
