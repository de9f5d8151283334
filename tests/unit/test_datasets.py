from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from core.records import FieldMap, Interaction, Item, Record, User
from streams.datasets import detect_format, open_dataset
from streams.exceptions import DatasetError
from streams.movielens import GENRES_100K, layout_of
from tests.movielens import write_movielens


def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def test_jsonl_directory_is_merged_in_time_order(tmp_path: Path) -> None:
    _jsonl(
        tmp_path / "interactions.jsonl",
        [
            {"user_id": "u1", "item_id": "i2", "ts": 3000},
            {"user_id": "u1", "item_id": "i1", "ts": 2000},  # out of order in the file
        ],
    )
    _jsonl(
        tmp_path / "items.jsonl",
        [
            {
                "item_id": "i1",
                "title": "One",
                "ts": 2000,
            },  # same time as its first use: comes first
            {"item_id": "i2", "title": "Two", "ts": 2500},
        ],
    )
    _jsonl(tmp_path / "users.jsonl", [{"user_id": "u1", "text": "hi", "ts": 1000}])
    (tmp_path / "interactions.jsonl").open("ab").write(b"not json\n\n")
    ds = open_dataset(tmp_path)
    assert ds.format == "jsonl" and ds.feedback == "implicit"
    assert [(r.kind, r.ts) for r in ds.records()] == [
        ("user", 1_000_000),
        ("item", 2_000_000),
        ("interaction", 2_000_000),
        ("item", 2_500_000),
        ("interaction", 3_000_000),
    ]
    assert len(ds.bad) == 1 and ds.bad[0].line == 3 and ds.bad[0].invalid.code == "not_json"
    assert ds.counts() == {"interaction": 2, "item": 2, "user": 1}


def test_generated_meta_sets_feedback(tmp_path: Path) -> None:
    _jsonl(tmp_path / "interactions.jsonl", [{"user_id": "u", "item_id": "i", "value": 4, "ts": 5}])
    (tmp_path / "meta.json").write_bytes(orjson.dumps({"config": {"feedback": "explicit"}}))
    assert open_dataset(tmp_path).feedback == "explicit"


def test_csv_with_field_map(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text(
        "userId,productId,rating,when\nu1,p1,5,2024-01-02T00:00:00Z\nu2,,3,2024-01-01T00:00:00Z\n"
    )
    (tmp_path / "items.csv").write_text("item_id,title,tags,ts\np1,Kettle,kitchen|tea,1704067200\n")
    fm = FieldMap.from_mapping(
        {
            "user_id": "userId",
            "interaction.item_id": "productId",
            "value": "rating",
            "interaction.ts": "when",
        }
    )
    ds = open_dataset(tmp_path, "csv", fields=fm)
    recs = list(ds.records())
    assert recs[0] == Item("p1", "Kettle", 1_704_067_200_000, "", ("kitchen", "tea"), {})
    assert recs[1] == Interaction("u1", "p1", 1_704_153_600_000, 5.0)
    assert len(ds.bad) == 1 and "item_id" in ds.bad[0].invalid.reason  # empty cell = missing


def test_movielens_layout(tmp_path: Path) -> None:
    ds = open_dataset(write_movielens(tmp_path / "ml"))
    assert ds.format == "movielens" and ds.feedback == "explicit"
    recs = list(ds.records())
    ts = [r.ts for r in recs]
    assert ts == sorted(ts)
    first_rating: dict[str, int] = {}
    announced: dict[str, int] = {}
    for pos, rec in enumerate(recs):
        if isinstance(rec, Item):
            announced[rec.item_id] = pos
        elif isinstance(rec, Interaction):
            first_rating.setdefault(rec.item_id, pos)
    # every rated movie is announced, once, just before its first rating, at the same time
    assert set(announced) == set(first_rating) == {"1", "2", "3", "4"}
    for item_id, pos in first_rating.items():
        assert announced[item_id] == pos - 1
        assert recs[pos - 1].ts == recs[pos].ts
    heat = recs[announced["4"]]
    assert isinstance(heat, Item)
    assert heat.tags == ("Action", "Crime", "Thriller") and heat.attributes == {"year": 1995}
    assert not any(isinstance(r, User) for r in recs)
    codes = sorted(b.invalid.code for b in ds.bad)
    assert codes == ["bad_type", "unknown_item"]  # rating "oops", movie 99 not in movies.csv


def test_format_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="--format"):
        detect_format(tmp_path)
    with pytest.raises(DatasetError, match="use auto, jsonl, csv or movielens"):
        open_dataset(tmp_path, "xls")
    (tmp_path / "ratings.csv").write_text("user,movie\n1,2\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(DatasetError, match="lacks column"):
        open_dataset(tmp_path)


# -- the other MovieLens layouts: ml-100k (u.data, u.item, u.genre) and ml-1m/10m (.dat).
# Made-up rows only: MovieLens' license forbids redistributing its files.

_GENRE_FILE = "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n"  # trailing blank


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in GENRES_100K)


def _u_item_line(movie: int, title: str, date: str, *genres: str) -> str:
    return f"{movie}|{title}|{date}||http://us.imdb.com/M/title-exact?x|{_flags(*genres)}\n"


U_ITEM = (
    _u_item_line(1, "Toy Story (1995)", "01-Jan-1995", "Animation", "Children's", "Comedy")
    + _u_item_line(2, "Ménage à trois (1986)", "01-Jan-1986", "Comedy", "Romance")
    + _u_item_line(3, "Heat (1995)", "", "Action", "Crime", "Thriller")
    + _u_item_line(4, "Nobody Rated (1990)", "01-Jan-1990", "Drama")
    + _u_item_line(5, "unknown", "", "unknown")
)
# not in time order, as in the real files; movie 99 is not in u.item
U_DATA = (
    "1\t1\t4\t964982703\n"
    "1\t3\t5\t964981247\n"
    "2\t1\t3\t964982000\n"
    "2\t2\t5\t964983815\n"
    "3\t99\t4\t964984100\n"
    "3\t2\t2\t964984000\n"
    "3\t5\t1\t964984300\n"
)


def _append(file: Path, text: str) -> None:
    with file.open("a", encoding="utf-8") as fh:
        fh.write(text)


def _ml100k(directory: Path, *, genre_file: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_text(U_DATA)
    (directory / "u.item").write_bytes(U_ITEM.encode("latin-1"))
    if genre_file:
        (directory / "u.genre").write_text(_GENRE_FILE)
    return directory


def _ml1m(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ratings.dat").write_text(U_DATA.replace("\t", "::"))
    (directory / "movies.dat").write_bytes(
        b"1::Toy Story (1995)::Animation|Children's|Comedy\n"
        + "2::Ménage à trois (1986)::Comedy|Romance\n".encode("latin-1")  # as in ml-1m
        + b"3::Heat (1995)::Action|Crime|Thriller\n"
        + b"4::Nobody Rated (1990)::Drama\n"
        + b"5::unknown::(no genres listed)\n"
    )
    return directory


def _assert_announced_just_before_first_rating(recs: list[Record]) -> dict[str, Item]:
    """Every rated movie is announced once, just before its first rating, at its time."""
    assert [r.ts for r in recs] == sorted(r.ts for r in recs)
    announced: dict[str, int] = {}
    first_rating: dict[str, int] = {}
    for pos, rec in enumerate(recs):
        if isinstance(rec, Item):
            assert rec.item_id not in announced
            announced[rec.item_id] = pos
        elif isinstance(rec, Interaction):
            first_rating.setdefault(rec.item_id, pos)
    assert set(announced) == set(first_rating)
    for item_id, pos in first_rating.items():
        assert announced[item_id] == pos - 1 and recs[pos - 1].ts == recs[pos].ts
    return {r.item_id: r for r in recs if isinstance(r, Item)}


@pytest.mark.parametrize(
    ("write", "layout"),
    [(write_movielens, "csv"), (_ml100k, "100k"), (_ml1m, "dat")],
)
def test_auto_detects_each_movielens_layout(
    tmp_path: Path, write: Callable[[Path], Path], layout: str
) -> None:
    d = write(tmp_path / "ml")
    assert detect_format(d) == "movielens" and layout_of(d) == layout
    for fmt in ("auto", "movielens"):
        ds = open_dataset(d, fmt)
        assert ds.format == "movielens" and ds.feedback == "explicit"
        assert ds.counts()["interaction"] > 0


def test_ml100k_layout(tmp_path: Path) -> None:
    d = _ml100k(tmp_path / "ml")
    _append(d / "u.data", "3 2 4 964984200\n\n4\t1\t5\n")  # spaces; 3 fields
    ds = open_dataset(d)
    recs = list(ds.records())
    items = _assert_announced_just_before_first_rating(recs)
    assert set(items) == {"1", "2", "3", "5"}  # 4: nobody rated it; 99: not in u.item
    assert items["1"] == Item(
        "1",
        "Toy Story (1995)",
        964_982_000_000,  # user 2's rating comes first in time, not user 1's in the file
        tags=("Animation", "Children's", "Comedy"),
        attributes={"year": 1995, "release_date": "01-Jan-1995"},
    )
    assert items["2"].title == "Ménage à trois (1986)"  # Latin-1 in u.item
    assert items["2"].tags == ("Comedy", "Romance")
    assert items["3"].attributes == {"year": 1995}  # no release date
    assert items["5"].tags == () and items["5"].attributes == {}  # "unknown" is no tag
    ratings = [r for r in recs if isinstance(r, Interaction)]
    assert len(ratings) == 6 and ratings[0] == Interaction("1", "3", 964_981_247_000, 5.0, "rating")
    bad = [(b.source, b.line, b.invalid.code, b.raw) for b in ds.bad]
    assert bad == [
        ("u.data", 5, "unknown_item", "3\t99\t4\t964984100"),
        ("u.data", 8, "bad_row", "3 2 4 964984200"),
        ("u.data", 10, "bad_row", "4\t1\t5"),
    ]
    assert ds.bad[0].invalid.reason == "movie 99: not in u.item"
    assert "separated by tabs" in ds.bad[1].invalid.reason


def test_ml100k_genres_come_from_u_genre_or_the_standard_list(tmp_path: Path) -> None:
    with_file = open_dataset(_ml100k(tmp_path / "a"))
    without = open_dataset(_ml100k(tmp_path / "b", genre_file=False))
    assert list(with_file.records()) == list(without.records())
    d = _ml100k(tmp_path / "c")
    (d / "u.genre").write_text(_GENRE_FILE.replace("Comedy|5", "Comédie|5"), encoding="utf-8")
    toy = next(r for r in open_dataset(d).records() if isinstance(r, Item) and r.item_id == "1")
    assert toy.tags == ("Animation", "Children's", "Comédie")


def test_ml100k_bad_item_lines_and_files(tmp_path: Path) -> None:
    d = _ml100k(tmp_path / "ml")
    with (d / "u.item").open("ab") as fh:
        fh.write(b"6|Too Short (1990)|01-Jan-1990\n")
        fh.write(_u_item_line(7, "Bad Flag (1990)", "", "Drama").replace("|0\n", "|x\n").encode())
    _append(d / "u.data", "1\t6\t4\t964984000\n")
    ds = open_dataset(d)
    bad = [(b.kind, b.source, b.line, b.invalid.code) for b in ds.bad]
    assert ("item", "u.item", 6, "bad_row") in bad and ("item", "u.item", 7, "bad_row") in bad
    assert ("interaction", "u.data", 8, "unknown_item") in bad  # rates the unreadable movie 6
    (d / "u.genre").write_text("unknown|0\nAction\n")
    with pytest.raises(DatasetError, match=r"u\.genre:2: .*remove it to use the 19 standard"):
        open_dataset(d)
    (d / "u.genre").write_text("unknown|0\nAction|2\n")
    with pytest.raises(DatasetError, match="without gaps"):
        open_dataset(d)
    (d / "u.item").unlink()
    with pytest.raises(DatasetError, match=r"u\.data \+ u\.item"):
        detect_format(d)
    with pytest.raises(DatasetError, match=r"missing file .*u\.item"):
        open_dataset(d, "movielens")


def test_ml1m_dat_layout(tmp_path: Path) -> None:
    d = _ml1m(tmp_path / "ml")
    with (d / "movies.dat").open("ab") as fh:
        fh.write(b"6::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n")
        fh.write("7::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy\n".encode())
        fh.write(b"8::What?:::Drama\n")  # a title ending with ':'
        fh.write(b"9::no genres field\n")
    with (d / "ratings.dat").open("a") as fh:
        fh.write("4::6::3.5::964990000\n4::7::4.5::964990001\n4::8::1::964990002\n")
        fh.write("4::9::2::964990003\n4::6::3::x::1\n")
    ds = open_dataset(d)
    recs = list(ds.records())
    items = _assert_announced_just_before_first_rating(recs)
    assert items["2"].title == "Ménage à trois (1986)"  # a Latin-1 line (ml-1m)
    assert items["7"].title.startswith("Amélie (Fabuleux")  # a UTF-8 line (ml-10m)
    assert items["6"].title == "Star Wars: Episode IV - A New Hope (1977)"
    assert items["6"].tags == ("Action", "Sci-Fi") and items["6"].attributes == {"year": 1977}
    assert items["8"].title == "What?:" and items["8"].tags == ("Drama",)
    assert items["5"].tags == ()
    half = [r for r in recs if isinstance(r, Interaction) and r.item_id == "6"]
    assert [r.value for r in half] == [3.5]  # half stars (ml-10m)
    bad = [(b.kind, b.source, b.line, b.invalid.code) for b in ds.bad]
    assert bad == [
        ("item", "movies.dat", 9, "bad_row"),
        ("interaction", "ratings.dat", 5, "unknown_item"),
        ("interaction", "ratings.dat", 11, "unknown_item"),  # movie 9's line is unreadable
        ("interaction", "ratings.dat", 12, "bad_row"),
    ]
    assert ds.bad[-1].raw == "4::6::3::x::1" and "separated by '::'" in ds.bad[-1].invalid.reason


def test_movielens_layouts_read_alike(tmp_path: Path) -> None:
    """The same ratings in the three layouts: the same ratings and announcements."""
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + U_DATA.replace("\t", ",")
    )
    (tmp_path / "csv" / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Animation\n2,Ménage à trois (1986),Comedy\n"
        "3,Heat (1995),Action\n4,Nobody Rated (1990),Drama\n5,unknown,(no genres listed)\n",
        encoding="utf-8",
    )
    seen = []
    for d in (tmp_path / "csv", _ml100k(tmp_path / "100k"), _ml1m(tmp_path / "dat")):
        recs = list(open_dataset(d).records())
        seen.append(
            [
                (r.kind, r.item_id, r.ts, getattr(r, "user_id", ""), getattr(r, "value", ""))
                for r in recs
                if isinstance(r, Interaction | Item)
            ]
        )
    assert seen[0] == seen[1] == seen[2] and len(seen[0]) == 10  # 6 ratings, 4 movies
