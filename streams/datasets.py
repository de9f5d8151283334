"""Datasets on disk, read as one event-time-ordered stream of records.

Formats (``fmt``):

- ``jsonl``: a directory with ``interactions.jsonl`` and optionally ``items.jsonl`` and
  ``users.jsonl`` (what ``coldstream generate`` writes), or a single ``.jsonl`` file of
  interactions. One JSON object a line, in the fields of DESIGN.md (or a field map).
- ``csv``: the same three files as ``.csv`` with a header row (a single ``.csv`` file is read as
  interactions). Lists such as ``tags`` are written ``a|b``; empty cells count as missing.
- ``movielens``: the MovieLens csv layout, ``ratings.csv`` (userId,movieId,rating,timestamp in
  epoch seconds) and ``movies.csv`` (movieId,title,genres). Genres become tags, the year in the
  title becomes ``attributes.year``, and each movie is announced by an item event just before its
  first rating (same time, ordered before it). Movies nobody rated are not announced.

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
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from streams.exceptions import DatasetError
from streams.records import (
    FieldMap,
    Interaction,
    Invalid,
    Item,
    Limits,
    Record,
)
from streams.validation import parse, parse_obj

__all__ = ["FORMATS", "KIND_ORDER", "BadRow", "Dataset", "detect_format", "open_dataset"]

Format = Literal["jsonl", "csv", "movielens"]
FORMATS: tuple[str, ...] = ("auto", "jsonl", "csv", "movielens")
#: items before users before interactions at equal event times
KIND_ORDER = {"item": 0, "user": 1, "interaction": 2}
_FILES = {"interaction": "interactions", "item": "items", "user": "users"}
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_NO_GENRES = "(no genres listed)"


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
    if path.is_dir():
        if (path / "ratings.csv").is_file() and (path / "movies.csv").is_file():
            return "movielens"
        if (path / "interactions.jsonl").is_file():
            return "jsonl"
        if (path / "interactions.csv").is_file():
            return "csv"
        raise DatasetError(
            f"cannot tell the format of {path}: expected interactions.jsonl (jsonl), "
            "interactions.csv (csv) or ratings.csv + movies.csv (movielens); "
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
        raise DatasetError(f"unknown format {fmt!r}: use auto, jsonl, csv or movielens")
    kind_fmt: Format = detect_format(path) if fmt == "auto" else fmt  # type: ignore[assignment]
    reader = _Reader(fields or FieldMap(), limits or Limits())
    if kind_fmt == "movielens":
        if not path.is_dir():
            raise DatasetError(f"movielens format needs a directory with ratings.csv: {path}")
        reader.movielens(path)
        fb = feedback or "explicit"
    else:
        reader.tables(path, kind_fmt)
        fb = feedback or _meta_feedback(path) or "implicit"
    events = [r for _, _, r in sorted(reader.keyed, key=lambda t: (t[0], t[1]))]
    return Dataset(path=path, format=kind_fmt, feedback=fb, events=events, bad=reader.bad)


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

    def movielens(self, path: Path) -> None:
        movies: dict[str, tuple[dict[str, Any], int, str]] = {}
        for line, raw, row in _csv_rows(path / "movies.csv", need=("movieId", "title")):
            assert row is not None
            title = (row.get("title") or "").strip()
            genres = [g for g in (row.get("genres") or "").split("|") if g and g != _NO_GENRES]
            year = _YEAR.search(title)
            obj = {
                "item_id": row.get("movieId"),
                "title": title,
                "tags": genres,
                "attributes": {"year": int(year.group(1))} if year else {},
            }
            movies[str(row.get("movieId"))] = (obj, line, raw)
        announced: dict[str, Invalid | None] = {}  # item id -> None, or why it can't be announced
        need = ("userId", "movieId", "rating", "timestamp")
        for line, raw, row in _csv_rows(path / "ratings.csv", need=need):
            assert row is not None
            obj = {
                "user_id": row.get("userId"),
                "item_id": row.get("movieId"),
                "value": row.get("rating"),
                "event": "rating",
                "ts": row.get("timestamp"),
            }
            rec: Record | Invalid = parse_obj("interaction", obj, limits=self.limits)
            if isinstance(rec, Interaction):
                if rec.item_id not in announced:
                    announced[rec.item_id] = self._announce(movies.get(rec.item_id), rec)
                why = announced[rec.item_id]
                if why is not None:
                    rec = Invalid("unknown_item", f"movieId {rec.item_id}: {why.reason}")
            self.add(rec, "interaction", "ratings.csv", line, raw)
        # A movie is announced at the first rating read; move each announcement to the movie's
        # earliest rating time, in case the file is not in time order.
        self._announce_at_first_rating()

    def _announce(
        self, movie: tuple[dict[str, Any], int, str] | None, first: Interaction
    ) -> Invalid | None:
        if movie is None:
            return Invalid("unknown_item", "not in movies.csv")
        obj, line, raw = movie
        item = parse_obj("item", {**obj, "ts": first.ts}, limits=self.limits)
        self.add(item, "item", "movies.csv", line, raw)
        return item if isinstance(item, Invalid) else None

    def _announce_at_first_rating(self) -> None:
        first: dict[str, int] = {}
        for ts, _, rec in self.keyed:
            if isinstance(rec, Interaction):
                prev = first.get(rec.item_id)
                if prev is None or ts < prev:
                    first[rec.item_id] = ts
        fixed = []
        for ts, order, rec in self.keyed:
            if isinstance(rec, Item) and rec.item_id in first and first[rec.item_id] != ts:
                ts = first[rec.item_id]
                rec = Item(rec.item_id, rec.title, ts, rec.text, rec.tags, rec.attributes)
            fixed.append((ts, order, rec))
        self.keyed = fixed


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
