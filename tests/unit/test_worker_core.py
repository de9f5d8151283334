"""WorkerCore without Kafka: batches are built by hand, the teacher is the hashing encoder."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from core.records import Interaction, Item, Record, User, to_json
from core.settings import Settings
from exporters.metrics import WorkerMetrics
from models.evaluation import _EXPIRE_EVERY
from models.student import Student
from models.teacher import HashingTeacher
from streams.transport import RecordBatch
from streams.worker import WorkerCore

T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Feed:
    """Builds record batches per topic with running offsets, like a fetch would."""

    def __init__(self, settings: Settings) -> None:
        t = settings.topics
        self.topic = {"interaction": t.interactions, "item": t.items, "user": t.users}
        self.next: dict[str, int] = {}

    def batch(
        self,
        kind: str,
        values: list[bytes],
        *,
        highwater: int | None = None,
        start: int | None = None,
    ) -> RecordBatch:
        topic = self.topic[kind]
        first = self.next.get(topic, 0) if start is None else start
        recs = [
            SimpleNamespace(offset=first + i, timestamp=T0, key=None, value=v)
            for i, v in enumerate(values)
        ]
        self.next[topic] = max(self.next.get(topic, 0), first + len(values))
        return RecordBatch(TP(topic, 0), recs, highwater)

    def records(self, recs: list[Record], **kw: Any) -> RecordBatch:
        return self.batch(recs[0].kind, [to_json(r) for r in recs], **kw)


@pytest.fixture
def setup() -> tuple[WorkerCore, Feed, CollectorRegistry, Clock]:
    settings = Settings.load(topic_prefix="u")
    registry = CollectorRegistry()
    clock = Clock()
    core = WorkerCore(
        settings,
        role="all",
        teacher=HashingTeacher(32),
        metrics=WorkerMetrics.create(registry),
        clock=clock,
        park_s=2.0,
    )
    return core, Feed(settings), registry, clock


def item(i: str, ts: int) -> Item:
    return Item(i, f"title {i}", T0 + ts, tags=("tag",))


def click(u: str, i: str, ts: int) -> Interaction:
    return Interaction(u, i, T0 + ts)


def test_invalid_records_become_dead_letters(setup: Any) -> None:
    core, feed, registry, _ = setup
    dead = core.apply(feed.batch("interaction", [b"{", b'{"user_id": "u"}', b"[]"]))
    assert [d.reason for d in dead] == ["not_json", "missing_field", "not_object"]
    letters = [orjson.loads(d.value) for d in dead]
    assert [d["offset"] for d in letters] == [0, 1, 2]
    assert all(d["topic"] == "u.interactions" and d["partition"] == 0 for d in letters)
    sample = registry.get_sample_value
    assert sample("coldstream_events_total", {"topic": "u.interactions", "outcome": "invalid"}) == 3
    assert sample("coldstream_dead_letters_total", {"reason": "not_json"}) == 1
    assert core.offsets[("u.interactions", 0)] == 3  # consumed, nothing applied


def test_a_batch_read_twice_is_applied_once(setup: Any) -> None:
    core, feed, _, _ = setup
    core.apply(feed.records([item("a", 0)]))
    batch = feed.records([click("u1", "a", 1), click("u2", "a", 2)])
    core.apply(batch)
    assert core.apply(batch) == []  # a re-read after a crash, or a duplicate fetch
    assert core.model_events == 2 and core.evaluator.events == 2
    overlap = feed.records([click("u2", "a", 2), click("u3", "a", 3)], start=1)
    core.apply(overlap)
    assert core.model_events == 3


def test_a_partition_that_restarts_below_the_applied_offset_is_applied_again(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Kafka answers a fetch past a partition's end (topic recreated, retention) with
    OFFSET_OUT_OF_RANGE and the consumer resets to the start: the core then sees records below
    its applied offset with a high-water mark below it too. They are new records, not a
    re-read: applied, logged and counted (before: skipped, silently)."""
    core, feed, registry, _ = setup
    core.apply(feed.records([item("a", 0)], highwater=1))
    core.apply(feed.records([click(f"u{i}", "a", 1 + i) for i in range(5)], highwater=5))
    assert core.model_events == 5
    with caplog.at_level("WARNING", logger="streams.worker"):
        core.apply(feed.records([click("v1", "a", 10), click("v2", "a", 11)], start=0, highwater=2))
    assert core.model_events == 7 and core.offsets[("u.interactions", 0)] == 2
    labels = {"topic": "u.interactions"}
    assert registry.get_sample_value("coldstream_offset_resets_total", labels) == 1
    assert "ends at offset 2 but 5 were applied" in caplog.text
    # a plain re-read (high-water at or past the applied offset) is still skipped
    core.apply(feed.records([click("v2", "a", 11)], start=1, highwater=2))
    assert core.model_events == 7


BACKLOG = {("u.interactions", 0)}  # the interactions partition has more to read


def test_items_wait_for_the_interaction_stream_to_reach_them(setup: Any) -> None:
    core, feed, _, _ = setup
    core.sources = lambda: BACKLOG
    core.apply(feed.records([item("a", 0), item("b", 100)]))
    assert len(core.catalog) == 0  # nothing has happened yet in event time
    core.apply(feed.records([click("u1", "a", 50)]))
    assert core.catalog.ids == ["a"]  # b is announced at 100: it does not exist at 50
    core.apply(feed.records([click("u1", "b", 150)]))
    assert core.catalog.ids == ["a", "b"] and core.model_events == 2


def test_an_interaction_waits_for_its_item_and_keeps_time_order(setup: Any) -> None:
    core, feed, _, _ = setup
    core.apply(feed.records([click("u1", "a", 10), click("u2", "b", 20), click("u3", "a", 30)]))
    assert core.model_events == 0 and sum(len(v) for v in core.parked.values()) == 3
    order: list[int] = []
    learn = core.evaluator.interaction

    def spy(user_id: str, index: int, value: float, ts: int, *, rank: bool = True) -> None:
        order.append(ts - T0)
        learn(user_id, index, value, ts, rank=rank)

    core.evaluator.interaction = spy  # type: ignore[method-assign]
    core.apply(feed.records([item("a", 5), item("b", 5)]))
    assert order == [10, 20, 30]  # by time, not grouped by item
    assert core.model_events == 3 and not core.parked


def test_parked_interactions_of_an_unknown_item_are_applied_unranked(setup: Any) -> None:
    core, feed, _, clock = setup
    core.apply(feed.records([click("u1", "ghost", 10)], highwater=1))
    core.tick()
    assert core.model_events == 0
    clock.now += 3.0
    core.tick()
    assert core.model_events == 1 and core.evaluator.unannounced == 1


def test_items_wait_while_interactions_have_a_backlog(setup: Any) -> None:
    core, feed, _, clock = setup
    backlog = set(BACKLOG)
    core.sources = lambda: backlog
    core.apply(feed.records([click("u1", "x", 1)]))
    core.apply(feed.records([item("new", 10_000)]))
    clock.now += 3.0
    core.tick()
    assert "new" not in core.catalog  # a backlog is still being read: wait for it
    backlog.clear()  # now at the end
    clock.now += 3.0
    core.tick()
    assert "new" in core.catalog  # servable although no interaction reached its time


def test_checkpoint_round_trip(setup: Any, tmp_path: Path) -> None:
    core, feed, _, clock = setup
    core.sources = lambda: BACKLOG  # so that "z" is still waiting at the checkpoint
    core.apply(feed.records([item("a", 0), item("b", 1), item("z", 10_000)]))
    core.apply(feed.records([click("u1", "a", 5), click("u2", "b", 6), click("u3", "q", 7)]))
    core.checkpoint(tmp_path)
    other = WorkerCore(
        Settings.load(topic_prefix="u"),
        role="all",
        teacher=HashingTeacher(32),
        metrics=WorkerMetrics.create(CollectorRegistry()),
        clock=clock,
    )
    assert other.restore(tmp_path)
    assert other.offsets == core.offsets and other.model_events == core.model_events == 2
    assert other.catalog.ids == core.catalog.ids
    assert [w.key for w in other.waiting] == ["z"] and list(other.parked) == ["q"]
    for name, model in core.models.items():
        assert (other.models[name].score_all("u1") == model.score_all("u1")).all()


def test_drift_detectors_see_a_collapse_in_hits(setup: Any) -> None:
    core, _, registry, _ = setup
    for _ in range(2000):
        core.drift.ranked("student", True, 1.0)
    for _ in range(300):
        core.drift.ranked("student", False, 1.0)
    detections = registry.get_sample_value(
        "coldstream_drift_detections_total", {"model": "student", "detector": "adwin"}
    )
    assert detections is not None and detections >= 1
    assert core.drift_log and core.drift_log[0][0] == "student"


def test_with_a_watermark_events_go_out_in_event_time_order_across_topics(setup: Any) -> None:
    core, feed, _, _ = setup
    lagging = {("u.interactions", 0), ("u.items", 0), ("u.users", 0)}
    core.sources = lambda: set(lagging)
    order: list[tuple[str, int]] = []
    ev = core.evaluator
    learn, observe_user = ev.interaction, ev.user

    def spy_learn(user_id: str, index: int, value: float, ts: int, *, rank: bool = True) -> None:
        order.append(("interaction", ts - T0))
        learn(user_id, index, value, ts, rank=rank)

    def spy_user(user_id: str, embedding: Any) -> None:
        order.append(("user", 0))
        observe_user(user_id, embedding)

    ev.interaction = spy_learn  # type: ignore[method-assign]
    ev.user = spy_user  # type: ignore[method-assign]
    # interactions arrive first: nothing may be applied before items and users have reported
    core.apply(feed.records([click("u1", "a", 10), click("u1", "b", 20)]))
    assert core.model_events == 0 and core.watermark() == float("-inf")
    core.apply(feed.records([item("a", 0), item("b", 15)]))
    assert core.model_events == 0  # users have not reported yet
    lagging.discard(("u.items", 0))
    core.apply(feed.records([User("u1", T0 + 0, "likes tents")]))
    lagging.clear()  # every partition is at its end
    core.tick()
    # the profile (t=0) before both interactions, each interaction after its item
    assert order == [("user", 0), ("interaction", 10), ("interaction", 20)]
    assert core.catalog.ids == ["a", "b"] and core.evaluator.unannounced == 0


def test_users_idle_longer_than_the_ttl_are_forgotten() -> None:
    settings = Settings.load(topic_prefix="u", user_ttl_hours=1.0)
    core = WorkerCore(
        settings,
        role="student",
        teacher=HashingTeacher(32),
        metrics=WorkerMetrics.create(CollectorRegistry()),
    )
    student = core.models["student"]
    assert isinstance(student, Student)
    assert student.cfg.user_ttl_ms == core.evaluator.user_ttl_ms == 3_600_000
    feed = Feed(settings)
    core.apply(feed.records([item("i0", 0), item("i1", 0)]))
    hour = 3_600_000
    # users two hours apart, each twice (the id table admits a user at the second event), for
    # enough events that the student (every 100 steps) and the evaluator sweep
    clicks = [click(f"u{j}", f"i{k}", 2 * hour * j + k) for j in range(6500) for k in (0, 1)]
    core.apply(feed.records(clicks))
    core.flush_models()
    # what is left: users within the ttl, and those since each structure's last sweep
    assert "u0" not in core.evaluator.seen and len(core.evaluator.seen) <= _EXPIRE_EVERY // 2
    assert "u0" not in student.state and student.users.get("u0") == -1
    assert len(student.state) <= 100 * student.cfg.batch_size // 2
    assert len(student.users) <= 100 * student.cfg.batch_size // 2
    with pytest.raises(ValueError, match="greater than 0"):
        Settings.load(user_ttl_hours=0)


class _GatedTeacher(HashingTeacher):
    """Encodes only once ``gate`` is set (a slow teacher, on the worker's teacher thread)."""

    def __init__(self) -> None:
        super().__init__(32)
        self.gate = threading.Event()

    def encode(self, texts: Any) -> Any:
        assert threading.current_thread() is not threading.main_thread()
        assert self.gate.wait(10)
        return super().encode(texts)


def test_the_teacher_encodes_off_the_learning_path() -> None:
    settings = Settings.load(topic_prefix="u")
    clock = Clock()
    teacher = _GatedTeacher()
    core = WorkerCore(
        settings,
        role="student",
        teacher=teacher,
        metrics=WorkerMetrics.create(CollectorRegistry()),
        clock=clock,
        encode_async=True,
        encode_hold_s=1.0,
    )
    feed = Feed(settings)
    teacher.gate.set()
    core.apply(feed.records([item("old", 0)]))
    core.flush()  # waits for the encoding
    assert core.catalog.ids == ["old"]
    teacher.gate.clear()
    core.apply(feed.records([item("new", 10)]))  # returns at once: encoding in the background
    core.apply(feed.records([click("u1", "old", 20), click("u2", "new", 30)]))
    assert core.model_events == 0  # newer than an item being encoded: held, for a while
    clock.now += 1.5
    core.tick()
    assert core.model_events == 1  # the hold is over: learning goes on without the new item
    clock.now += 5.0
    core.tick()
    assert core.model_events == 1 and core.evaluator.unannounced == 0  # its click waits for it
    released = core.released  # what the app watches to snapshot between batches
    teacher.gate.set()
    core.flush()
    assert core.catalog.ids == ["old", "new"] and core.model_events == 2
    assert core.released == released + 2  # the item, then its click
    assert core.evaluator.unannounced == 0  # ranked, not applied as an unknown item
    core.close()


def test_a_dead_letter_the_producer_refuses_is_counted_and_logged(
    setup: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Dead letters used to be counted as sent and then dropped silently when the producer
    refused them (over its size limit); a refusal, at send or at delivery, is now counted in
    ``coldstream_dead_letters_failed_total`` and logged with the message's size."""
    import asyncio

    from streams.app import WorkerApp
    from streams.worker import DeadLetter

    core, _, registry, _ = setup
    app = WorkerApp(core.settings, core, checkpoint_dir=tmp_path / "ckpt")
    refused = DeadLetter(None, b"x" * 2_000_000, "too_large")
    later = DeadLetter(None, b'{"reason": "not_json"}', "not_json")
    delivered = DeadLetter(None, b'{"reason": "not_json"}', "not_json")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []

        async def send(*, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
            if len(value) > 1_000_000:
                raise ValueError("MessageSizeTooLargeError: the message is 2000000 bytes")
            fut: asyncio.Future[Any] = loop.create_future()
            futures.append(fut)
            return fut

        app.dlq.send = send  # type: ignore[method-assign]
        for d in (refused, later, delivered):
            await app._dead_letter(d)
        futures[0].set_exception(ConnectionError("broker went away"))
        futures[1].set_result(None)
        await asyncio.sleep(0)  # let the done callbacks run

    with caplog.at_level("ERROR", logger="streams.app"):
        asyncio.run(scenario())
    assert registry.get_sample_value("coldstream_dead_letters_failed_total") == 2.0
    text = caplog.text
    assert "2000000-byte dead letter (too_large)" in text and "MessageSizeTooLarge" in text
    assert "broker went away" in text


def test_a_long_release_moves_the_learned_gauge_as_it_goes(
    setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events held back by a lagging partition are released at once when it catches up; the
    gauge the demo and the dashboard read moves every PROGRESS_EVERY of them meanwhile."""
    from streams.ordering import PROGRESS_EVERY

    core, feed, _, _ = setup
    core.apply(feed.records([item("a", 0)]))
    lagging = {("u.items", 1)}  # has a backlog and has delivered nothing yet
    core.sources = lambda: lagging  # a backlog: nothing passes the watermark yet
    n = 2 * PROGRESS_EVERY + 100
    core.apply(feed.records([click(f"u{j}", "a", 10 + j) for j in range(n)]))
    assert core.model_events == 0
    seen: list[float] = []
    monkeypatch.setattr(core.metrics.model_events, "set", seen.append)
    lagging.clear()
    core.tick()
    assert core.model_events == n
    assert seen == [PROGRESS_EVERY, 2 * PROGRESS_EVERY, n]
