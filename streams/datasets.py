"""Datasets on disk, read as one event-time-ordered stream of records.

Formats (``fmt``):

- ``jsonl``: a directory with ``interactions.jsonl`` and optionally ``items.jsonl`` and
  ``users.jsonl`` (what ``coldstream generate`` writes), or a single ``.jsonl`` file of
  interactions. One JSON object a line, in the fields of docs/design.md (or a field map).
- ``csv``: the same three files as ``.csv`` with a header row (a single ``.csv`` file is read as
  interactions). Lists such as ``tags`` are written ``a|b``; empty cells count as missing.
- ``movielens``: a MovieLens directory, in any of its three layouts (:mod:`streams.movielens`):
  ``ratings.csv`` + ``movies.csv`` (ml-latest, ml-20m, ml-25m; with a header row), ``u.data`` +
  ``u.item`` (+ ``u.genre``) (ml-100k; tab- and ``|``-separated) or ``ratings.dat`` +
  ``movies.dat`` (ml-1m, ml-10m; ``::``-separated). Ratings are explicit feedback with times in
  epoch seconds. Genres become tags, the year in the title becomes ``attributes.year``, and each
  movie is announced by an item event just before its first rating (same time, ordered before
  it). Movies nobody rated are not announced; ratings of movies the movies file lacks are
  invalid rows (``unknown_item``).

Order: records are sorted by event time; at equal times items come first, then users, then
interactions, each in file order. So an item event always precedes the first interaction with
it when its time is not later. Invalid rows are kept aside in :attr:`Dataset.bad` (with file,
line and the raw text) instead of stopping the read.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> header = "userId,movieId,rating,timestamp\\n"
>>> _ = (d / "ratings.csv").write_text(header + "1,10,4.5,100\\n2,10,x,90\\n")
>>> _ = (d / "movies.csv").write_text("movieId,title,genres\\n10,Heat (1995),Action|Crime\\n")
>>> ds = open_dataset(d)
>>> [(r.kind, r.ts) for r in ds.records()], ds.format, ds.feedback, ds.bad[0].invalid.code
([('item', 100000), ('interaction', 100000)], 'movielens', 'explicit', 'bad_type')
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from core.records import FieldMap, Invalid, Limits, Record
from streams.exceptions import DatasetError
from streams.validation import parse, parse_obj

__all__ = [
    "FORMATS",
    "FORMAT_CHOICES",
    "FORMAT_HELP",
    "KIND_ORDER",
    "BadRow",
    "Dataset",
    "detect_format",
    "open_dataset",
]

Format = Literal["jsonl", "csv", "movielens"]
FORMATS: tuple[str, ...] = ("auto", "jsonl", "csv", "movielens")
#: the accepted formats, as ``--format``'s help and the errors about it say them
FORMAT_CHOICES = "auto, jsonl, csv or movielens"
FORMAT_HELP = f"{FORMAT_CHOICES} (MovieLens: a directory with ratings.csv, u.data or ratings.dat)"
#: items before users before interactions at equal event times
KIND_ORDER = {"item": 0, "user": 1, "interaction": 2}
_FILES = {"interaction": "interactions", "item": "items", "user": "users"}


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that failed validation: where it was, why, and its text (nothing is lost)."""

    kind: str
    source: str
    line: int
    invalid: Invalid
    raw: str


@dataclass
class Dataset:
    """A dataset read into memory and sorted by event time."""

    path: Path
    format: Format
    feedback: Literal["explicit", "implicit"]
    events: list[Record] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    def records(self) -> Iterator[Record]:
        """The valid records in event-time order."""
        return iter(self.events)

    def counts(self) -> dict[str, int]:
        out = {"interaction": 0, "item": 0, "user": 0}
        for r in self.events:
            out[r.kind] += 1
        return out

    def __len__(self) -> int:
        return len(self.events)


def detect_format(path: Path) -> Format:
    """Tell the format of ``path`` from the files it holds; a clear error if it can't."""
    from streams.movielens import EXPECTED, layout_of

    if path.is_dir():
        if layout_of(path) is not None:
            return "movielens"
        if (path / "interactions.jsonl").is_file():
            return "jsonl"
        if (path / "interactions.csv").is_file():
            return "csv"
        raise DatasetError(
            f"cannot tell the format of {path}: expected interactions.jsonl (jsonl), "
            f"interactions.csv (csv) or {EXPECTED} (movielens); "
            "or pass --format jsonl, csv or movielens"
        )
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.suffix == ".csv":
        return "csv"
    raise DatasetError(
        f"cannot tell the format of {path}: use a .jsonl or .csv file, a directory, "
        "or pass --format jsonl, csv or movielens"
    )


def open_dataset(
    source: str | Path,
    fmt: str = "auto",
    *,
    fields: FieldMap | None = None,
    limits: Limits | None = None,
    feedback: Literal["explicit", "implicit"] | None = None,
) -> Dataset:
    """Read ``source`` whole and sort it by event time.

    ``feedback`` defaults to ``explicit`` for MovieLens and to what a generated dataset's
    ``meta.json`` says, else ``implicit``.
    """
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}: use {FORMAT_CHOICES}")
    kind_fmt: Format = detect_format(path) if fmt == "auto" else fmt  # type: ignore[assignment]
    reader = _Reader(fields or FieldMap(), limits or Limits())
    with _gc_paused():  # millions of new, acyclic records: collections would only rescan them
        if kind_fmt == "movielens":
            from streams.movielens import read_movielens  # it builds on this module's _Reader

            read_movielens(path, reader)
            fb = feedback or "explicit"
        else:
            reader.tables(path, kind_fmt)
            fb = feedback or _meta_feedback(path) or "implicit"
        events = [r for _, _, r in sorted(reader.keyed, key=lambda t: (t[0], t[1]))]
    return Dataset(path=path, format=kind_fmt, feedback=fb, events=events, bad=reader.bad)


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _meta_feedback(path: Path) -> Literal["explicit", "implicit"] | None:
    meta = path / "meta.json" if path.is_dir() else None
    if meta is None or not meta.is_file():
        return None
    try:
        value = orjson.loads(meta.read_bytes()).get("config", {}).get("feedback")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if value in ("explicit", "implicit") else None


class _Reader:
    def __init__(self, fields: FieldMap, limits: Limits) -> None:
        self.fields = fields
        self.limits = limits
        self.keyed: list[tuple[int, int, Record]] = []  # (ts, kind order, record); sort is stable
        self.bad: list[BadRow] = []

    def add(self, rec: Record | Invalid, kind: str, source: str, line: int, raw: str) -> None:
        if isinstance(rec, Invalid):
            self.bad.append(BadRow(kind, source, line, rec, raw))
        else:
            self.keyed.append((rec.ts, KIND_ORDER[rec.kind], rec))

    def tables(self, path: Path, fmt: Format) -> None:
        ext = "jsonl" if fmt == "jsonl" else "csv"
        if path.is_file():
            files = {"interaction": path}
        else:
            files = {k: path / f"{stem}.{ext}" for k, stem in _FILES.items()}
            files = {k: p for k, p in files.items() if p.is_file()}
            if "interaction" not in files:
                raise DatasetError(f"{path} has no interactions.{ext}")
        for kind, file in files.items():
            rows = _jsonl_rows(file) if ext == "jsonl" else _csv_rows(file)
            for line, raw, obj in rows:
                if obj is None:
                    rec = parse(kind, raw, fields=self.fields, limits=self.limits)
                else:
                    rec = parse_obj(kind, obj, fields=self.fields, limits=self.limits)
                self.add(rec, kind, file.name, line, raw)


def _jsonl_rows(file: Path) -> Iterator[tuple[int, str, Any]]:
    """(line number, raw text, None): parsing happens in ``records.parse`` so errors are uniform."""
    with file.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            text = line.rstrip(b"\r\n")
            yield n, text.decode("utf-8", errors="replace"), None


def _csv_rows(
    file: Path, need: Iterable[str] = ()
) -> Iterator[tuple[int, str, Mapping[str, Any] | None]]:
    if not file.is_file():
        raise DatasetError(f"missing file {file}")
    with file.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in need if c not in header]
        if missing:
            raise DatasetError(
                f"{file} lacks column(s) {', '.join(missing)}; its header is {', '.join(header)}"
            )
        for row in reader:
            raw = ",".join("" if v is None else str(v) for v in row.values())
            clean = {k: (None if v == "" else v) for k, v in row.items() if k is not None}
            yield reader.line_num, raw, clean
