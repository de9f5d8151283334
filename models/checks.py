"""The contract every model of the registry keeps, as a library (in the spirit of river's
``checks``): run them on a model of your own before comparing it.

    >>> from models.checks import check_model
    >>> check_model("popularity")  # raises AssertionError naming the broken promise

Each check builds fresh models by name from :mod:`models.registry` on a small stream with
four topics (users keep to one topic; items of a topic have similar teacher vectors) and
asserts one promise of :class:`~models.protocol.Recommender`:

- :func:`check_learn_then_rank`: after learning, a user's top items are mostly of their topic;
- :func:`check_scores_every_item`: one finite score per catalog item, and ``rank`` skips
  excluded items;
- :func:`check_state_round_trip`: ``state_dict`` written to a real file and read back into a
  model built with another seed scores the same, now and after learning more;
- :func:`check_same_seed_same_scores`: two models with one seed learn the same;
- :func:`check_catalog_grows`: items announced after learning began are scored at once;
- :func:`check_below_threshold`: interactions below the positive threshold are taken
  without error and leave scores finite;
- :func:`check_inputs_unchanged`: learning and observing leave the caller's arrays alone.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.catalog import Catalog
from models.protocol import Recommender, rank
from models.registry import MODEL_NAMES, build_models
from models.student import StudentConfig

__all__ = [
    "CHECKS",
    "TINY",
    "Stream",
    "check_below_threshold",
    "check_catalog_grows",
    "check_inputs_unchanged",
    "check_learn_then_rank",
    "check_model",
    "check_same_seed_same_scores",
    "check_scores_every_item",
    "check_state_round_trip",
    "feed",
    "fresh_models",
    "tiny_stream",
]

#: a student small enough for a stream of a few hundred events
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
    emb: npt.NDArray[np.float32]  # (items, dim) unit rows
    topic: npt.NDArray[np.int64]  # item -> topic
    user_topic: npt.NDArray[np.int64]
    events: list[tuple[str, int]]  # (user id, item index)


def tiny_stream(
    users: int = 30, items: int = 40, events: int = 400, dim: int = 16, seed: int = 0
) -> Stream:
    """Four topics; each user interacts only with items of their topic."""
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
    stream: Stream,
    names: tuple[str, ...] = MODEL_NAMES,
    seed: int = 0,
    *,
    items: int | None = None,
    threshold: float | None = None,
) -> tuple[Catalog, dict[str, Recommender]]:
    """Models by name on one catalog holding the stream's first ``items`` items (all)."""
    cat = Catalog(stream.emb.shape[1])
    models = build_models(list(names), cat, threshold=threshold, seed=seed, config=TINY)
    for i, vec in enumerate(stream.emb[:items]):
        idx = cat.add(f"i{i}", vec)
        for m in models.values():
            m.observe_item(idx)
    return cat, models


def feed(
    model: Recommender, events: list[tuple[str, int]], t0: int = 0, value: float = 1.0
) -> None:
    for j, (user, item) in enumerate(events):
        model.learn_one(user, item, value, t0 + j)


_STREAM = tiny_stream()


def _one(name: str, seed: int = 0) -> Recommender:
    return fresh_models(_STREAM, (name,), seed=seed)[1][name]


def check_learn_then_rank(name: str) -> None:
    model = _one(name)
    for epoch in range(3):
        feed(model, _STREAM.events, t0=epoch * 1000)
    model.flush()
    hits = 0
    for u in range(10):
        top = rank(model, f"u{u}", k=5)
        assert len(top) == len(set(top)) == 5, f"{name}: rank gave {top}, not 5 distinct items"
        hits += sum(_STREAM.topic[i] == _STREAM.user_topic[u] for i in top)
    # 4 topics: a model that learned nothing personal gets about a quarter right
    floor = 0.2 if name == "popularity" else 0.6
    assert hits / 50 >= floor, f"{name}: {hits}/50 top items of the user's topic"


def check_scores_every_item(name: str) -> None:
    model = _one(name)
    feed(model, _STREAM.events[:100])
    n = len(_STREAM.emb)
    scores = np.asarray(model.score_all("u1"))
    assert scores.shape == (n,), f"{name}: {scores.shape} scores for {n} items"
    assert np.isfinite(scores).all(), f"{name}: a score is not finite"
    top = rank(model, "u1", k=n, exclude=[0, 1, 2])
    assert set(top) == set(range(3, n)), f"{name}: rank did not skip the excluded items"


def check_state_round_trip(name: str) -> None:
    """Through a real file, read as the worker reads its checkpoints."""
    import torch

    import core.pickles

    model = _one(name)
    feed(model, _STREAM.events[:150])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.pt"
        torch.save(copy.deepcopy(model.state_dict()), path)
        state = torch.load(path, map_location="cpu", weights_only=False, pickle_module=core.pickles)
    twin = _one(name, seed=123)  # another seed: everything that matters must come from state
    twin.load_state_dict(state)
    for user in ("u1", "u2", "nobody"):
        a, b = model.score_all(user), twin.score_all(user)
        assert np.array_equal(a, b), f"{name}: scores for {user} differ after the round trip"
    feed(model, _STREAM.events[150:300], t0=150)
    feed(twin, _STREAM.events[150:300], t0=150)
    model.flush()
    twin.flush()
    a, b = model.score_all("u3"), twin.score_all("u3")
    assert np.allclose(a, b, rtol=1e-6, atol=1e-6), f"{name}: learning diverged after the load"


def check_same_seed_same_scores(name: str) -> None:
    a, b = _one(name), _one(name)
    feed(a, _STREAM.events)
    feed(b, _STREAM.events)
    a.flush()
    b.flush()
    assert np.array_equal(a.score_all("u4"), b.score_all("u4")), f"{name}: same seed, other scores"


def check_catalog_grows(name: str) -> None:
    """Half the items exist when learning starts; the rest are announced in the middle."""
    n = len(_STREAM.emb)
    cat, models = fresh_models(_STREAM, (name,), items=n // 2)
    model = models[name]
    early = [(u, i) for u, i in _STREAM.events if i < n // 2]
    feed(model, early[:100])
    for i in range(n // 2, n):
        model.observe_item(cat.add(f"i{i}", _STREAM.emb[i]))
    scores = np.asarray(model.score_all("u1"))
    assert scores.shape == (n,), f"{name}: {scores.shape} scores after the catalog grew to {n}"
    assert np.isfinite(scores).all(), f"{name}: a new item's score is not finite"
    feed(model, _STREAM.events[:100], t0=100)  # the new items can be learned
    model.flush()
    assert np.isfinite(np.asarray(model.score_all("u1"))).all()


def check_below_threshold(name: str) -> None:
    """Ratings under the positive threshold (3.0 here) are taken, and nothing breaks."""
    _, models = fresh_models(_STREAM, (name,), threshold=3.0)
    model = models[name]
    feed(model, _STREAM.events[:100], value=1.0)
    feed(model, _STREAM.events[100:200], t0=100, value=5.0)
    model.flush()
    assert np.isfinite(np.asarray(model.score_all("u1"))).all(), f"{name}: non-finite scores"


def check_inputs_unchanged(name: str) -> None:
    """Nothing the caller passes is modified: the catalog's vectors, profile vectors."""
    cat, models = fresh_models(_STREAM, (name,))
    model = models[name]
    before = cat.embeddings.copy()
    profile = _STREAM.emb[0].copy()
    given = profile.copy()
    model.observe_user("u1", given)
    feed(model, _STREAM.events[:200])
    model.flush()
    model.score_all("u1")
    assert np.array_equal(given, profile), f"{name}: observe_user changed the profile vector"
    assert np.array_equal(cat.embeddings, before), f"{name}: learning changed the catalog"


CHECKS: tuple[Callable[[str], None], ...] = (
    check_learn_then_rank,
    check_scores_every_item,
    check_state_round_trip,
    check_same_seed_same_scores,
    check_catalog_grows,
    check_below_threshold,
    check_inputs_unchanged,
)


def check_model(name: str) -> None:
    """Run every check on the registry's model ``name``."""
    for check in CHECKS:
        check(name)
