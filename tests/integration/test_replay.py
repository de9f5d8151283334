"""``coldstream replay`` against the real embedded broker: the same events as the file give the
same report as ``coldstream evaluate``, ranges select exactly their events, the broker's
time-index answers are checked by reading, and nothing is joined, committed or written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from typer.testing import CliRunner

from coldstream.cli import app
from coldstream.commands import compare
from core.records import Invalid, Record
from core.settings import Settings
from models.teacher import TextEncoder
from streams.broker import EmbeddedBroker
from streams.datasets import open_dataset
from streams.history import read_history
from streams.load import publish_dataset
from streams.order import in_event_order
from streams.ranges import Start, Until
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.topics import ensure_topics, read_topic
from streams.validation import parse

pytestmark = pytest.mark.integration

runner = CliRunner()
PARTITIONS = 4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 rated interactions, 200 items (60 of them at the start time, so many events share
    a time across partitions), 200 users, some arriving mid-stream."""
    out = tmp_path_factory.mktemp("replay-data")
    config = SyntheticConfig(users=200, items=200, events=3000, seed=7, feedback="explicit")
    write_jsonl(generate(config), out)
    return out


def _load(dataset: Path, settings: Settings) -> Settings:
    ensure_topics(settings)
    report = publish_dataset(open_dataset(dataset), settings)
    assert report.failed == 0 and report.dead_lettered == 0
    return settings


@pytest.fixture(scope="module")
def loaded(dataset: Path, broker: EmbeddedBroker) -> Settings:
    """The dataset published into topics with several partitions, shared by the tests that
    only read them (the session broker; a prefix no other module uses)."""
    settings = Settings.load(
        broker=broker.bootstrap, topic_prefix="replay-shared", partitions=PARTITIONS
    )
    return _load(dataset, settings)


@pytest.fixture(scope="module")
def view(loaded: Settings) -> list[tuple[int, int, int, Record]]:
    """Every message of the three topics, read by an independent reader (read_topic):
    (partition, offset, Kafka timestamp, record)."""
    out = []
    for kind in ("interaction", "item", "user"):
        for msg in read_topic(loaded, loaded.topics.for_kind(kind), idle_s=0.5):
            rec = parse(kind, msg.value)
            assert not isinstance(rec, Invalid), rec
            out.append((msg.partition, msg.offset, msg.timestamp, rec))
    return out


def _file_events(dataset: Path) -> list[Record]:
    return in_event_order(open_dataset(dataset).records())


def _replay_args(settings: Settings, *more: str) -> list[str]:
    return ["replay", "--broker", settings.broker, "--topic-prefix", settings.topic_prefix, *more]


def _metrics(report_dir: Path) -> dict[str, Any]:
    """report.json without the learning throughput (wall-clock time, differs run to run)."""
    rep = orjson.loads((report_dir / "report.json").read_bytes())
    for m in rep["models"].values():
        del m["learn_events_per_s"]
    return rep


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def test_replay_reads_the_events_of_the_file_in_its_order(
    dataset: Path, loaded: Settings, view: list[tuple[int, int, int, Record]]
) -> None:
    history = read_history(loaded)
    expected = _file_events(dataset)
    assert history.records == expected  # the same records, in the same order
    assert history.invalid == {} and history.outside == 0
    assert history.incomplete == [] and history.missing_topics == []
    assert sum(history.read.values()) == len(expected)
    assert len(history.partitions) == 3 * PARTITIONS
    # What makes this non-trivial: events of one time and kind sit in different partitions,
    # whose relative order Kafka does not keep. So the canonical order breaks such ties by
    # key, and here it differs from the file's line order, which the topics cannot give.
    where: dict[tuple[int, str], set[int]] = {}
    for partition, _, _, rec in view:
        where.setdefault((rec.ts, rec.kind), set()).add(partition)
    assert sum(len(p) > 1 for p in where.values()) >= 2
    assert list(open_dataset(dataset).records()) != expected


def test_replay_and_evaluate_give_the_same_report(
    dataset: Path,
    loaded: Settings,
    real_teacher: TextEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # both commands get the real teacher loaded once for the session
    monkeypatch.setattr(compare, "load_teacher", lambda *_a, **_k: real_teacher)
    common = ["--seed", "3", "--k", "10"]
    ev = runner.invoke(
        app, ["evaluate", str(dataset), *common, "--report", str(tmp_path / "evaluate")]
    )
    assert ev.exit_code == 0, ev.output
    rp = runner.invoke(
        app,
        _replay_args(
            loaded, "--feedback", "explicit", *common, "--report", str(tmp_path / "replay")
        ),
    )
    assert rp.exit_code == 0, rp.output
    from_file, from_topics = _metrics(tmp_path / "evaluate"), _metrics(tmp_path / "replay")
    assert from_file["events"] == 3000 and from_file["evaluated"]["all"] > 500
    assert set(from_file["models"]) == set(compare.DEFAULT_MODELS.split(","))
    # identical, not approximately equal: same events, same order, same seeds, same code
    assert from_topics == from_file
    timeline = "timeline.json"
    assert (tmp_path / "replay" / timeline).read_bytes() == (
        tmp_path / "evaluate" / timeline
    ).read_bytes()
    assert {p.name for p in (tmp_path / "replay").glob("*.png")} == {
        "recall_over_time.png",
        "recall_by_slice.png",
        "ndcg_by_slice.png",
    }
    md = (tmp_path / "replay" / "report.md").read_text()
    assert "- range: from earliest until end" in md and "- positive threshold: 4.0" in md


def _window_cases(events: list[Record]) -> list[tuple[int | None, int | None]]:
    inter = [r.ts for r in events if r.kind == "interaction"]
    start = events[0].ts  # the start time: 60 items and the profiled users share it
    return [
        (inter[1000], inter[2000]),  # both bounds exactly on events: from in, until out
        (inter[2500], None),
        (None, inter[400]),
        (start, inter[10]),
        (start + 1, inter[10] + 1),
    ]


@pytest.mark.parametrize(
    "case",
    range(5),
    ids=["bounds-on-events", "from-only", "until-only", "start-time-ties", "one-ms-later"],
)
def test_a_time_window_selects_exactly_its_events(
    case: int, dataset: Path, loaded: Settings
) -> None:
    events = _file_events(dataset)
    lo, hi = _window_cases(events)[case]
    start = Start(time_ms=lo) if lo is not None else Start()
    until = Until(time_ms=hi)
    expected = [r for r in events if (lo is None or r.ts >= lo) and (hi is None or r.ts < hi)]
    assert expected and len(expected) < len(events)
    for use_time_index in (True, False):
        history = read_history(loaded, start, until, use_time_index=use_time_index)
        assert history.records == expected
        # the embedded broker's time index answers "the beginning": everything was read
        assert history.outside == len(events) - len(expected)


def test_replay_command_with_iso_times(dataset: Path, loaded: Settings, tmp_path: Path) -> None:
    events = _file_events(dataset)
    lo, hi = _window_cases(events)[0]
    res = runner.invoke(
        app,
        _replay_args(
            loaded,
            "--from",
            _iso(lo),
            "--until",
            _iso(hi).replace("+00:00", "Z"),
            "--models",
            "popularity,river",
            "--report",
            str(tmp_path),
        ),
    )
    assert res.exit_code == 0, res.output
    rep = _metrics(tmp_path)
    assert rep["events"] == sum(1 for r in events if r.kind == "interaction" and lo <= r.ts < hi)
    assert set(rep["models"]) == {"popularity", "river"}
    md = (tmp_path / "report.md").read_text()
    assert f"- range: from {_iso(lo)[:-6]}Z until {_iso(hi)[:-6]}Z" in md


def test_from_offset_starts_every_partition_there(
    loaded: Settings, view: list[tuple[int, int, int, Record]], tmp_path: Path
) -> None:
    offset = 150
    expected = in_event_order(rec for _, o, _, rec in view if o >= offset)
    assert 0 < len(expected) < len(view)
    history = read_history(loaded, Start(offset=offset))
    assert history.records == expected
    assert {p.first for p in history.partitions} == {offset}
    res = runner.invoke(
        app,
        _replay_args(
            loaded, "--from", str(offset), "--models", "popularity", "--report", str(tmp_path)
        ),
    )
    assert res.exit_code == 0, res.output
    assert _metrics(tmp_path)["events"] == sum(r.kind == "interaction" for r in expected)


@pytest.mark.parametrize("answer", ["exact", "late", "early", "past_end"])
def test_time_index_answers_are_checked_by_reading(
    answer: str,
    dataset: Path,
    loaded: Settings,
    view: list[tuple[int, int, int, Record]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The embedded broker answers offsets_for_times with 0 (harmless), so a fake broker
    answer stands in for a real cluster's: an exact one is used, a wrong one is caught and
    its partition is read from the beginning; the records are exact either way."""
    events = _file_events(dataset)
    t = [r.ts for r in events if r.kind == "interaction"][1200]
    # the true answer per partition: the first offset with a Kafka timestamp at or after t
    true: dict[tuple[str, int], int | None] = {}
    ends: dict[tuple[str, int], int] = {}
    for partition, offset, kafka_ts, rec in sorted(view, key=lambda v: (v[0], v[1])):
        key = (loaded.topics.for_kind(rec.kind), partition)
        ends[key] = offset + 1
        true.setdefault(key, None)
        if kafka_ts >= t and true[key] is None:
            true[key] = offset
    shift = {"exact": 0, "late": 3, "early": -3}

    def fake(_self: KafkaConsumer, timestamps: dict[TopicPartition, int]) -> dict[Any, Any]:
        assert set(timestamps.values()) == {t}
        out: dict[Any, Any] = {}
        for tp in timestamps:
            right = true.get((tp.topic, tp.partition))
            if right is None:
                out[tp] = None
            elif answer == "past_end":
                out[tp] = SimpleNamespace(offset=ends[(tp.topic, tp.partition)] + 5)
            else:
                out[tp] = SimpleNamespace(offset=right + shift[answer])
        return out

    monkeypatch.setattr(KafkaConsumer, "offsets_for_times", fake)
    history = read_history(loaded, Start(time_ms=t))
    assert history.records == [r for r in events if r.ts >= t]
    how = {(p.topic, p.partition): p.how for p in history.partitions}
    used = [k for k, v in true.items() if v is not None and v > 3]
    assert len(used) >= PARTITIONS  # the answer mattered for several partitions
    for key in used:
        if answer == "exact":
            assert how[key] == "time index"
        else:
            assert how[key] == "time index rejected: earliest", key
    if answer == "exact":  # reading started just before the answer, not at the beginning
        firsts = {(p.topic, p.partition): p.first for p in history.partitions}
        assert all(firsts[k] == true[k] - 1 for k in used)  # type: ignore[operator]


def _groups_reading(admin: KafkaAdminClient, topics: set[str]) -> dict[str, Any]:
    """Consumer groups with committed offsets on any of ``topics``."""
    out = {}
    for g in admin.list_groups():
        offsets = admin.list_group_offsets(g["group_id"]).get(g["group_id"], {})
        mine = {tp: o for tp, o in offsets.items() if tp.topic in topics}
        if mine:
            out[g["group_id"]] = mine
    return out


def test_replay_joins_no_group_commits_nothing_writes_nothing(
    dataset: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    loaded = _load(dataset, settings_factory(partitions=PARTITIONS))  # topics of its own
    topics = loaded.topics
    producer = KafkaProducer(**loaded.kafka_python_config())
    for raw in (b"not json", b'{"user_id": "u1"}'):  # skipped and counted, never dead-lettered
        producer.send(topics.interactions, raw, key=b"u1")
    producer.flush()
    producer.close()
    admin = KafkaAdminClient(**loaded.kafka_python_config())
    try:
        ours = set(topics.all().values())
        groups_before = {g["group_id"] for g in admin.list_groups()}
        topics_before = set(admin.list_topics())
        res = runner.invoke(
            app, _replay_args(loaded, "--models", "popularity", "--report", str(tmp_path))
        )
        assert res.exit_code == 0, res.output
        assert "- invalid messages skipped: 2" in (tmp_path / "report.md").read_text()
        assert {g["group_id"] for g in admin.list_groups()} == groups_before
        assert _groups_reading(admin, ours) == {}
        assert set(admin.list_topics()) == topics_before
        assert list(read_topic(loaded, topics.dlq, idle_s=0.5)) == []
        # the check above can see a group: one that commits on these topics shows up
        group = KafkaConsumer(**loaded.kafka_python_config(), group_id=f"{loaded.topic_prefix}-g")
        tp = TopicPartition(topics.interactions, 0)
        group.assign([tp])
        group.commit({tp: OffsetAndMetadata(1, "", -1)})
        group.close()
        assert set(_groups_reading(admin, ours)) == {f"{loaded.topic_prefix}-g"}
    finally:
        admin.close()


def test_missing_topics_say_what_to_do(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()  # a fresh prefix: no topics at all
    res = runner.invoke(app, _replay_args(settings, "--models", "popularity"))
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert f"topic '{settings.topics.interactions}' does not exist" in text
    assert "coldstream load" in text
