"""``coldstream evaluate`` end to end on a MovieLens-layout directory, and its bad arguments."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from coldstream.commands import evaluate, pretrain
from exporters.report import SLICE_ORDER
from models.registry import MODEL_NAMES

app = typer.Typer()
app.command("evaluate")(evaluate)
app.command("pretrain")(pretrain)
runner = CliRunner()


def _plain(text: str) -> str:
    """The output without rich's box drawing and line wrapping."""
    return " ".join(text.replace("│", " ").split())


MOVIES = [
    "Toy Story (1995)",
    "Heat (1995)",
    "Alien (1979)",
    "Amelie (2001)",
    "Up (2009)",
    "Se7en (1995)",
    "Brazil (1985)",
    "Fargo (1996)",
]
GENRES = [
    "Animation|Comedy",
    "Crime|Thriller",
    "Horror|Sci-Fi",
    "Comedy|Romance",
    "Animation",
    "Crime|Mystery",
    "Sci-Fi|Comedy",
    "Crime|Drama",
]


@pytest.fixture
def movielens(tmp_path: Path) -> Path:
    d = tmp_path / "ml"
    d.mkdir()
    rows = ["movieId,title,genres"] + [
        f'{i + 1},"{t}",{g}' for i, (t, g) in enumerate(zip(MOVIES, GENRES, strict=True))
    ]
    (d / "movies.csv").write_text("\n".join(rows) + "\n")
    ratings = ["userId,movieId,rating,timestamp"]
    t = 964_980_000
    for u in range(1, 13):  # sorted by user, not by time, as real MovieLens files are
        for j in range(6):
            movie = (u * 3 + j * (1 + u % 3)) % 8 + 1
            ratings.append(
                f"{u},{movie},{[3.0, 4.0, 4.5, 5.0, 2.5][(u + j) % 5]},{t + 97 * j + 13 * u}"
            )
    ratings.append("3,1,not-a-rating,964990000")
    (d / "ratings.csv").write_text("\n".join(ratings) + "\n")
    return d


def test_evaluate_movielens_end_to_end(movielens: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = runner.invoke(
        app, ["evaluate", str(movielens), "--teacher", "hashing", "--k", "3", "--report", str(out)]
    )
    assert res.exit_code == 0, res.output
    rep = orjson.loads((out / "report.json").read_bytes())
    assert set(rep) == {"k", "events", "evaluated", "models"} and rep["k"] == 3
    assert rep["events"] == 72  # the unparsable rating is skipped
    assert set(rep["models"]) == set(MODEL_NAMES)
    for m in rep["models"].values():
        assert set(m) == {"recall", "ndcg", "mrr", "learn_events_per_s"}
        assert list(m["recall"]) == list(SLICE_ORDER)
        assert all(0.0 <= v <= 1.0 for v in m["recall"].values())
    # ratings >= 4.0 are the positives; each movie's first rating is an item with 0 before it
    assert 0 < rep["evaluated"]["all"] < 72 and rep["evaluated"]["0"] >= 1
    for name in ("report.md", "recall_over_time.png", "recall_by_slice.png", "ndcg_by_slice.png"):
        assert (out / name).stat().st_size > 0
    assert "Recall@3" in (out / "report.md").read_text()
    assert "student" in res.output


def test_pretrain_then_init(movielens: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "student.ckpt"
    res = runner.invoke(app, ["pretrain", str(movielens), str(ckpt), "--teacher", "hashing"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(movielens),
            "--teacher",
            "hashing",
            "--models",
            "student",
            "--init",
            str(ckpt),
            "--report",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "student,x"], "unknown model 'x': use student, student_no_distill,"),
        (["--format", "xls"], "unknown format 'xls': use auto, jsonl, csv or movielens"),
        (["--k", "0"], "--k"),
        (["--init", "/nonexistent.ckpt"], "coldstream pretrain"),
    ],
)
def test_bad_arguments_exit_2_with_advice(movielens: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["evaluate", str(movielens), "--teacher", "hashing", *args])
    assert res.exit_code == 2
    assert message in _plain(res.output)


def test_missing_source(tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in _plain(res.output)


def test_evaluate_reads_the_ml100k_layout(tmp_path: Path) -> None:
    """A u.data + u.item directory (made-up rows) is found by --format auto."""
    d = tmp_path / "ml-100k"
    d.mkdir()
    flags = "|".join(["0"] * 19)
    (d / "u.item").write_bytes(
        "".join(f"{i + 1}|{t}|01-Jan-1995||http://x|{flags}\n" for i, t in enumerate(MOVIES))
        .replace("Amelie", "Amélie")
        .encode("latin-1")
    )
    ratings = [
        f"{u}\t{(u * 3 + j) % 8 + 1}\t{1 + (u + j) % 5}\t{964_980_000 + 97 * j + 13 * u}"
        for u in range(1, 7)
        for j in range(4)
    ]
    ratings.append("6\t99\t4\t964990000")  # a movie u.item lacks: skipped
    (d / "u.data").write_text("\n".join(ratings) + "\n")
    out = tmp_path / "report"
    res = runner.invoke(app, ["evaluate", str(d), "--models", "popularity", "--report", str(out)])
    assert res.exit_code == 0, res.output
    assert orjson.loads((out / "report.json").read_bytes())["events"] == 24


def test_models_side_by_side_give_the_same_report(tmp_path: Path) -> None:
    from streams.synthetic import SyntheticConfig, generate, write_jsonl

    data = tmp_path / "d"
    write_jsonl(generate(SyntheticConfig(users=80, items=60, events=1500, seed=4)), data)
    reports = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        res = runner.invoke(
            app,
            ["evaluate", str(data), "--teacher", "hashing", "--jobs", jobs, "--report", str(out)],
        )
        assert res.exit_code == 0, res.output
        rep = orjson.loads((out / "report.json").read_bytes())
        for m in rep["models"].values():
            del m["learn_events_per_s"]  # wall-clock
        reports[jobs] = (rep, orjson.loads((out / "timeline.json").read_bytes()))
        assert f"- processes: {jobs}\n" in (out / "report.md").read_text()
    assert reports["1"] == reports["2"]
    assert list(reports["2"][0]["models"]) == list(MODEL_NAMES)  # the asked order, merged
