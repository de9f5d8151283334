"""The contract suite of :mod:`models.checks` over every model of the registry."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from models.checks import CHECKS
from models.protocol import Recommender
from models.registry import MODEL_NAMES
from tests.unit.models_support import (
    fresh_models,
    one_thread,  # noqa: F401 (autouse fixture)
    tiny_stream,
)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_contract(name: str, check: Callable[[str], None]) -> None:
    check(name)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_is_a_recommender(name: str) -> None:
    model = fresh_models(tiny_stream(), (name,))[1][name]
    assert isinstance(model, Recommender)


def test_a_broken_model_fails_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks can fail: a popularity model that forgets its state on load is caught."""
    from models.baselines import Popularity
    from models.checks import check_state_round_trip

    monkeypatch.setattr(Popularity, "load_state_dict", lambda self, state: None)
    with pytest.raises(AssertionError, match="round trip"):
        check_state_round_trip("popularity")


def test_package_exports_every_public_name() -> None:
    import models

    assert sorted(models.__all__) == sorted(models._EXPORTS)
    for name in models.__all__:
        assert getattr(models, name) is not None
