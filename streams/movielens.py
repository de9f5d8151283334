"""The MovieLens layouts, read as format ``movielens`` by :func:`streams.datasets.open_dataset`.

A MovieLens directory holds one of three layouts, told apart by its files (:func:`layout_of`):

- ``csv`` (ml-latest, ml-latest-small, ml-20m, ml-25m): ``ratings.csv``
  (``userId,movieId,rating,timestamp``) and ``movies.csv`` (``movieId,title,genres``, genres
  ``|``-separated), each with a header row;
- ``100k`` (ml-100k): ``u.data`` (``user id<TAB>item id<TAB>rating<TAB>timestamp``), ``u.item``
  (``movie id|title|release date|video release date|IMDb URL|`` then one 0/1 flag a genre) and
  optionally ``u.genre`` (``name|index`` lines; without it the 19 standard genres);
- ``dat`` (ml-1m, ml-10m): ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and
  ``movies.dat`` (``MovieID::Title::Genres``, genres ``|``-separated), no header.

Timestamps are epoch seconds. Every layout reads the same way: ratings are explicit feedback;
genres become tags (but "unknown" and "(no genres listed)"), the year in a title becomes
``attributes.year`` (and u.item's release date ``attributes.release_date``); each movie is
announced by an item event at the time of its first rating, ordered before it, and movies nobody
rated are not announced. A rating of a movie the movies file lacks is an invalid row
(``unknown_item``), and so is a line that does not split into its layout's fields
(``bad_row``). Text is UTF-8, falling back to Latin-1 line by line (ml-100k's and ml-1m's titles
are Latin-1, ml-10m's UTF-8).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "ratings.dat").write_text("1::260::4.5::100\\n1::7::3::90\\n")
>>> _ = (d / "movies.dat").write_text("260::Star Wars: Episode IV (1977)::Action|Sci-Fi\\n")
>>> from streams.datasets import open_dataset
>>> ds = open_dataset(d)
>>> layout_of(d), [(r.kind, r.ts) for r in ds.records()], ds.bad[0].invalid.reason
('dat', [('item', 100000), ('interaction', 100000)], 'movie 7: not in movies.dat')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

from core.records import Interaction, Invalid, Item, Record
from streams.datasets import _csv_rows, _Reader
from streams.exceptions import DatasetError
from streams.validation import parse_obj

__all__ = ["EXPECTED", "GENRES_100K", "LAYOUTS", "Layout", "layout_of", "read_movielens"]

Layout = Literal["csv", "100k", "dat"]
#: each layout's (ratings file, movies file), in the order a directory is tried
LAYOUTS: Final[dict[Layout, tuple[str, str]]] = {
    "csv": ("ratings.csv", "movies.csv"),
    "dat": ("ratings.dat", "movies.dat"),
    "100k": ("u.data", "u.item"),
}
#: the files of a MovieLens directory, as error messages name them
EXPECTED: Final = "ratings.csv + movies.csv, u.data + u.item or ratings.dat + movies.dat"
#: ml-100k's genres, in the order of u.item's flags, when there is no u.genre
GENRES_100K: Final = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_NO_GENRES = "(no genres listed)"
_RATING_FIELDS = "user id, movie id, rating, timestamp"

#: a movie as read: its item fields but ``ts``, its line number and its raw text
Movie = tuple[dict[str, Any], int, str]
#: a ratings line as read: line number, raw text, and the fields or why there are none
Row = tuple[int, str, Mapping[str, Any] | Invalid]


def layout_of(path: Path, *, movies: bool = True) -> Layout | None:
    """The layout of MovieLens directory ``path``, or None if it holds none.

    With ``movies=False`` the ratings file alone decides (so a missing movies file can be
    named in the error rather than the whole directory refused).
    """
    for layout, (ratings_file, movies_file) in LAYOUTS.items():
        if (path / ratings_file).is_file() and (not movies or (path / movies_file).is_file()):
            return layout
    return None


def read_movielens(path: Path, reader: _Reader) -> None:
    """Add the ratings and announced movies of MovieLens directory ``path`` to ``reader``."""
    # a complete layout first; else the one whose ratings file is there, to name what is missing
    layout = (layout_of(path) or layout_of(path, movies=False)) if path.is_dir() else None
    if layout is None:
        raise DatasetError(f"movielens format needs a directory with {EXPECTED}: {path}")
    ratings_name, movies_name = LAYOUTS[layout]
    if not (path / movies_name).is_file():
        raise DatasetError(f"missing file {path / movies_name}")
    rows: Iterable[Row]
    if layout == "csv":
        movies = _movies_csv(path / movies_name)
        rows = _ratings_csv(path / ratings_name)
    elif layout == "100k":
        movies = _movies_100k(path / movies_name, _genres_100k(path / "u.genre"), reader)
        rows = _split_ratings(path / ratings_name, "\t", "tabs")
    else:
        movies = _movies_dat(path / movies_name, reader)
        rows = _split_ratings(path / ratings_name, "::", "'::'")
    _rate(reader, rows, movies, ratings_name, movies_name)
    # A movie is announced at the first rating read; move each announcement to the movie's
    # earliest rating time, in case the file is not in time order.
    _announce_at_first_rating(reader)


def _movie(item_id: Any, title: str, genres: Iterable[str], **attributes: str) -> dict[str, Any]:
    """The item fields of a movie: genres become tags, the year in the title an attribute."""
    year = _YEAR.search(title)
    attrs: dict[str, Any] = {"year": int(year.group(1))} if year else {}
    attrs.update((k, v) for k, v in attributes.items() if v)
    return {
        "item_id": item_id,
        "title": title,
        "tags": [g for g in genres if g and g != _NO_GENRES],
        "attributes": attrs,
    }


def _rate(
    reader: _Reader,
    rows: Iterable[Row],
    movies: Mapping[str, Movie],
    ratings_name: str,
    movies_name: str,
) -> None:
    """Validate the ratings, announcing each movie at its first one (or refusing the rating)."""
    announced: dict[str, Invalid | None] = {}  # item id -> None, or why it can't be announced
    limits = reader.limits
    for line, raw, obj in rows:
        rec: Record | Invalid = (
            obj if isinstance(obj, Invalid) else parse_obj("interaction", obj, limits=limits)
        )
        if isinstance(rec, Interaction):
            if rec.item_id not in announced:
                movie = movies.get(rec.item_id)
                announced[rec.item_id] = _announce(reader, movie, rec, movies_name)
            why = announced[rec.item_id]
            if why is not None:
                rec = Invalid("unknown_item", f"movie {rec.item_id}: {why.reason}")
        reader.add(rec, "interaction", ratings_name, line, raw)


def _announce(
    reader: _Reader, movie: Movie | None, first: Interaction, movies_name: str
) -> Invalid | None:
    if movie is None:
        return Invalid("unknown_item", f"not in {movies_name}")
    obj, line, raw = movie
    item = parse_obj("item", {**obj, "ts": first.ts}, limits=reader.limits)
    reader.add(item, "item", movies_name, line, raw)
    return item if isinstance(item, Invalid) else None


def _announce_at_first_rating(reader: _Reader) -> None:
    first: dict[str, int] = {}
    for ts, _, rec in reader.keyed:
        if isinstance(rec, Interaction):
            prev = first.get(rec.item_id)
            if prev is None or ts < prev:
                first[rec.item_id] = ts
    fixed = []
    for ts, order, rec in reader.keyed:
        if isinstance(rec, Item) and rec.item_id in first and first[rec.item_id] != ts:
            ts = first[rec.item_id]
            rec = Item(rec.item_id, rec.title, ts, rec.text, rec.tags, rec.attributes)
        fixed.append((ts, order, rec))
    reader.keyed = fixed


# -- the csv layout


def _movies_csv(file: Path) -> dict[str, Movie]:
    movies: dict[str, Movie] = {}
    for line, raw, row in _csv_rows(file, need=("movieId", "title")):
        assert row is not None
        title = (row.get("title") or "").strip()
        obj = _movie(row.get("movieId"), title, (row.get("genres") or "").split("|"))
        movies[str(row.get("movieId"))] = (obj, line, raw)
    return movies


def _ratings_csv(file: Path) -> Iterator[Row]:
    for line, raw, row in _csv_rows(file, need=("userId", "movieId", "rating", "timestamp")):
        assert row is not None
        obj = {
            "user_id": row.get("userId"),
            "item_id": row.get("movieId"),
            "value": row.get("rating"),
            "event": "rating",
            "ts": row.get("timestamp"),
        }
        yield line, raw, obj


# -- the 100k and dat layouts: no header, one record a line, fields split by a separator


def _lines(file: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line; UTF-8, else Latin-1 for that line."""
    with file.open("rb") as fh:
        for n, data in enumerate(fh, 1):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
            text = text.rstrip("\r\n")
            if text and not text.isspace():
                yield n, text


def _split_ratings(file: Path, sep: str, sep_name: str) -> Iterator[Row]:
    for line, raw in _lines(file):
        parts = raw.split(sep)
        if len(parts) != 4:
            why = f"expected 4 fields separated by {sep_name} ({_RATING_FIELDS}), got {len(parts)}"
            yield line, raw, Invalid("bad_row", why)
            continue
        user, item, rating, ts = parts
        yield (
            line,
            raw,
            {"user_id": user, "item_id": item, "value": rating, "event": "rating", "ts": ts},
        )


def _genres_100k(file: Path) -> tuple[str, ...]:
    """The genre names of u.genre by index; the standard ones when there is no such file."""
    if not file.is_file():
        return GENRES_100K
    advice = f"fix it, or remove it to use the {len(GENRES_100K)} standard genres"
    names: dict[int, str] = {}
    for line, raw in _lines(file):
        name, sep, index = raw.rpartition("|")
        if not sep or not name.strip() or not index.strip().isdigit():
            raise DatasetError(f"{file}:{line}: expected 'genre name|index', got {raw!r}: {advice}")
        names[int(index)] = name.strip()
    if sorted(names) != list(range(len(names))) or not names:
        raise DatasetError(f"{file}: genre indexes must be 0, 1, 2, ... without gaps: {advice}")
    return tuple(names[i] for i in range(len(names)))


def _movies_100k(file: Path, genres: tuple[str, ...], reader: _Reader) -> dict[str, Movie]:
    n = len(genres)
    movies: dict[str, Movie] = {}
    for line, raw in _lines(file):
        parts = raw.split("|")
        if len(parts) < n + 5:
            why = (
                f"expected {n + 5} fields separated by '|' (movie id, title, release date, video "
                f"release date, IMDb URL and {n} genre flags), got {len(parts)}"
            )
            reader.add(Invalid("bad_row", why), "item", file.name, line, raw)
            continue
        flags = [f.strip() for f in parts[-n:]]
        if any(f not in ("0", "1") for f in flags):
            why = f"the last {n} fields are genre flags and must be 0 or 1"
            reader.add(Invalid("bad_row", why), "item", file.name, line, raw)
            continue
        end = len(parts) - n - 3  # a title holding '|' spans several fields
        title = "|".join(parts[1:end]).strip()
        tags = [g for g, f in zip(genres, flags, strict=True) if f == "1" and g != "unknown"]
        item_id = parts[0].strip()
        movies[item_id] = (_movie(item_id, title, tags, release_date=parts[end].strip()), line, raw)
    return movies


def _movies_dat(file: Path, reader: _Reader) -> dict[str, Movie]:
    movies: dict[str, Movie] = {}
    for line, raw in _lines(file):
        item_id, _, rest = raw.partition("::")
        title, sep, genres = rest.rpartition("::")  # a title may hold ':' (even end with it)
        if not sep:
            why = "expected 3 fields separated by '::' (movie id, title, genres)"
            reader.add(Invalid("bad_row", why), "item", file.name, line, raw)
            continue
        item_id = item_id.strip()
        movies[item_id] = (_movie(item_id, title.strip(), genres.strip().split("|")), line, raw)
    return movies
