"""One contract suite over every model (as river's ``checks``): learn then rank, state round
trip, same seed gives the same scores."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from models.protocol import Recommender, rank
from models.registry import MODEL_NAMES
from tests.unit.models_support import (
    feed,
    fresh_models,
    one_thread,  # noqa: F401 (autouse fixture)
    tiny_stream,
)

STREAM = tiny_stream()


@pytest.fixture(params=MODEL_NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _one(name: str, seed: int = 0) -> Recommender:
    return fresh_models(STREAM, (name,), seed=seed)[1][name]


def test_is_a_recommender(name: str) -> None:
    assert isinstance(_one(name), Recommender)


def test_learn_then_rank_prefers_the_users_topic(name: str) -> None:
    model = _one(name)
    for epoch in range(3):
        feed(model, STREAM.events, t0=epoch * 1000)
    model.flush()
    hits = 0
    for u in range(10):
        user = f"u{u}"
        top = rank(model, user, k=5)
        assert len(top) == len(set(top)) == 5
        hits += sum(STREAM.topic[i] == STREAM.user_topic[u] for i in top)
    # 4 topics: a model that learned nothing personal gets about a quarter right
    floor = 0.2 if name == "popularity" else 0.6
    assert hits / 50 >= floor


def test_rank_excludes_and_scores_every_item(name: str) -> None:
    model = _one(name)
    feed(model, STREAM.events[:100])
    scores = np.asarray(model.score_all("u1"))
    assert scores.shape == (len(STREAM.emb),) and np.isfinite(scores).all()
    top = rank(model, "u1", k=len(STREAM.emb), exclude=[0, 1, 2])
    assert set(top) == set(range(3, len(STREAM.emb)))


def test_state_round_trip(name: str) -> None:
    model = _one(name)
    feed(model, STREAM.events[:150])
    state = copy.deepcopy(model.state_dict())
    twin = _one(name, seed=123)  # another seed: everything that matters must come from state
    twin.load_state_dict(state)
    for user in ("u1", "u2", "nobody"):
        np.testing.assert_array_equal(model.score_all(user), twin.score_all(user))
    feed(model, STREAM.events[150:300], t0=150)
    feed(twin, STREAM.events[150:300], t0=150)
    model.flush()
    twin.flush()
    np.testing.assert_allclose(model.score_all("u3"), twin.score_all("u3"), rtol=1e-6, atol=1e-6)


def test_same_seed_same_scores(name: str) -> None:
    a, b = _one(name), _one(name)
    feed(a, STREAM.events)
    feed(b, STREAM.events)
    a.flush()
    b.flush()
    np.testing.assert_array_equal(a.score_all("u4"), b.score_all("u4"))


def test_package_exports_every_public_name() -> None:
    import models

    assert sorted(models.__all__) == sorted(models._EXPORTS)
    for name in models.__all__:
        assert getattr(models, name) is not None
