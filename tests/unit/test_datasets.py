from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.datasets import detect_format, open_dataset
from streams.exceptions import DatasetError
from streams.records import FieldMap, Interaction, Item, User
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
