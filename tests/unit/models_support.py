"""Shared helpers of the model tests: a tiny topic-structured stream and a driver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from core.threads import torch_threads
from models.catalog import Catalog
from models.protocol import Recommender
from models.registry import MODEL_NAMES, build_models
from models.student import StudentConfig

TINY = StudentConfig(
    dim=8,
    teacher_rank=4,
    hidden=16,
    batch_size=16,
    negatives=16,
    replay_size=64,
    replay_per_batch=4,
    history=5,
    refresh_items=1000,
)


@dataclass
class Stream:
    emb: np.ndarray  # (items, dim) unit rows
    topic: np.ndarray  # item -> topic
    user_topic: np.ndarray
    events: list[tuple[str, int]]  # (user id, item index)


def tiny_stream(
    users: int = 30, items: int = 40, events: int = 400, dim: int = 16, seed: int = 0
) -> Stream:
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((4, dim))
    topic = rng.integers(0, 4, items)
    emb = topics[topic] + 0.3 * rng.standard_normal((items, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    user_topic = rng.integers(0, 4, users)
    ev = []
    for _ in range(events):
        u = int(rng.integers(0, users))
        pool = np.flatnonzero(topic == user_topic[u])
        ev.append((f"u{u}", int(rng.choice(pool))))
    return Stream(emb.astype(np.float32), topic, user_topic, ev)


def fresh_models(
    stream: Stream, names: tuple[str, ...] = MODEL_NAMES, seed: int = 0
) -> tuple[Catalog, dict[str, Recommender]]:
    cat = Catalog(stream.emb.shape[1])
    models = build_models(list(names), cat, threshold=None, seed=seed, config=TINY)
    for i, vec in enumerate(stream.emb):
        idx = cat.add(f"i{i}", vec)
        for m in models.values():
            m.observe_item(idx)
    return cat, models


def feed(model: Recommender, events: list[tuple[str, int]], t0: int = 0) -> None:
    for j, (user, item) in enumerate(events):
        model.learn_one(user, item, 1.0, t0 + j)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """The student's matrices are tiny: one torch thread is faster and immune to a busy CPU."""
    with torch_threads(1):
        yield
