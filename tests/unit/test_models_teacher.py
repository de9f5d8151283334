"""The real packaged all-MiniLM-L6-v2, loaded offline once per session."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from core.records import Item, User
from models.exceptions import TeacherError
from models.teacher import SentenceTeacher, default_model_path, load_teacher, text_of


@pytest.fixture(scope="session")
def minilm() -> Iterator[SentenceTeacher]:
    mp = pytest.MonkeyPatch()
    # any attempt to reach the hub would fail loudly instead of hanging
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    teacher = load_teacher(None)
    assert isinstance(teacher, SentenceTeacher)
    yield teacher
    mp.undo()


def test_default_model_is_packaged_minilm(minilm: SentenceTeacher) -> None:
    assert (default_model_path() / "model.safetensors").is_file()
    assert minilm.dim == 384 and minilm.name == "all-MiniLM-L6-v2"


def test_embeddings_are_unit_length_and_meaningful(minilm: SentenceTeacher) -> None:
    v = minilm.encode(
        ["a telescope for stargazing", "astronomy and the night sky", "a pasta recipe"]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_embed_records_caches_by_id_and_text(minilm: SentenceTeacher) -> None:
    calls: list[int] = []
    real = minilm.encode
    minilm.encode = lambda texts: (calls.append(len(texts)), real(texts))[1]  # type: ignore[method-assign]
    try:
        recs = [Item("x1", "Jazz club night", 0), User("u9", 0, text="Loves bebop"), User("u10", 0)]
        first = minilm.embed_records(recs)
        again = minilm.embed_records(recs)
        changed = minilm.embed_records([Item("x1", "Gardening tools", 1)])
    finally:
        del minilm.encode  # back to the class method
    assert set(first) == {("item", "x1"), ("user", "u9")}  # a user without text has no vector
    assert calls == [2, 1]  # cached the second time; re-encoded when the text changed
    np.testing.assert_array_equal(first[("item", "x1")], again[("item", "x1")])
    assert not np.allclose(first[("item", "x1")], changed[("item", "x1")])


def test_text_recipe() -> None:
    item = Item(
        "i", "Dune.", 0, text="Spice.", tags=("sf", "classic"), attributes={"b": [1, 2], "a": "x"}
    )
    assert text_of(item) == "Dune. Spice. Tags: sf, classic. a: x; b: 1, 2"
    assert text_of(User("u", 0)) == ""


def test_a_missing_model_fails_with_advice(tmp_path: object) -> None:
    with pytest.raises(TeacherError, match="offline"):
        load_teacher("/nonexistent/model-dir-for-coldstream-test")


def test_hashing_teacher_is_selectable() -> None:
    t = load_teacher("hashing:16")
    assert t.dim == 16 and t.encode(["x y"]).shape == (1, 16)
