"""``coldstream evaluate SOURCE``: prequential comparison of the models on a dataset, and
``coldstream pretrain SOURCE OUT``: a student checkpoint trained offline for ``--init``.

No Kafka involved: the dataset is read in event-time order (streams.datasets), the teacher
encodes every item and user text once, then each model ranks each positive interaction
before learning from it (models.evaluation). Results go to a rich table on stdout and to
``report.json``, ``report.md`` and PNG plots under ``--report``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from coldstream.console import err, out, progress_bar
from coldstream.errors import ColdstreamError
from coldstream.threads import limit_threads
from exporters.report import SLICE_ORDER, write_report
from models.catalog import Catalog
from models.evaluation import Prequential, run_prequential
from models.exceptions import TeacherError, UnknownModelError
from models.registry import build_models, parse_models
from models.teacher import load_teacher
from streams.datasets import FORMATS, open_dataset
from streams.records import Interaction, Item, Record, User

__all__ = ["evaluate", "pretrain"]

_NEEDS_TEACHER = {"student", "student_no_distill", "content"}


def _check_source(source: Path, fmt: str) -> None:
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"unknown format {fmt!r}: use auto, jsonl, csv or movielens", param_hint="--format"
        )
    if not source.exists():
        raise typer.BadParameter(
            f"{source} does not exist: give a jsonl directory (coldstream generate), a csv file "
            "or a MovieLens directory (ratings.csv + movies.csv)",
            param_hint="SOURCE",
        )


def _load(source: Path, fmt: str) -> tuple[list[Record], str]:
    try:
        ds = open_dataset(source, fmt)
    except ColdstreamError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    if ds.bad:
        err.print(
            f"[yellow]skipped {len(ds.bad)} invalid rows[/] (first: {ds.bad[0].invalid.reason})"
        )
    return list(ds.records()), ds.feedback


def _embed(records: list[Record], teacher: str | None) -> tuple[dict[tuple[str, str], Any], int]:
    if teacher is None:
        from coldstream.settings import Settings

        teacher = Settings.load().teacher_model
    try:
        enc = load_teacher(teacher)
    except TeacherError as exc:
        raise typer.BadParameter(str(exc), param_hint="--teacher") from exc
    texts: list[Item | User] = [r for r in records if isinstance(r, Item | User)]
    with progress_bar(f"teacher ({enc.name})", len(texts)) as advance:
        return enc.embed_records(texts, progress=advance), enc.dim


def evaluate(
    source: Annotated[Path, typer.Argument(help="dataset: jsonl dir, csv file or MovieLens dir")],
    format: Annotated[str, typer.Option("--format", help="auto, jsonl, csv or movielens")] = "auto",
    models: Annotated[str, typer.Option(help="comma-separated models to compare")] = (
        "student,student_no_distill,river,popularity,content"
    ),
    k: Annotated[int, typer.Option("--k", min=1, help="cut-off of Recall@K and NDCG@K")] = 20,
    report: Annotated[
        Path, typer.Option(help="directory for report.json, report.md, plots")
    ] = Path("reports/evaluate"),
    every: Annotated[int, typer.Option(min=1, help="evaluate every Nth positive (all learn)")] = 1,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="teacher model dir or name; 'hashing' for a fast toy encoder "
            "[env: COLDSTREAM_TEACHER_MODEL; default: packaged all-MiniLM-L6-v2]"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of every model")] = 0,
    init: Annotated[
        Path | None, typer.Option(help="start the students from this checkpoint")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="positive if value >= this [default: 4.0 for ratings, every event for implicit]"
        ),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            min=1, help="evaluated events per point of the over-time plot [default: 1/50 of them]"
        ),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(min=1, help="torch threads (1 is fastest for the student's small matrices)"),
    ] = 1,
) -> None:
    """Prequential comparison of the models on a dataset: rank, then learn, event by event."""
    try:
        names = parse_models(models)
    except UnknownModelError as exc:
        raise typer.BadParameter(str(exc), param_hint="--models") from exc
    _check_source(source, format)
    if init is not None and not init.is_file():
        raise typer.BadParameter(
            f"{init} is not a file: make one with coldstream pretrain", param_hint="--init"
        )
    with limit_threads(threads):
        _evaluate(source, format, names, k, report, every, teacher, seed, init, threshold, window)


def _evaluate(
    source: Path,
    format: str,
    names: list[str],
    k: int,
    report: Path,
    every: int,
    teacher: str | None,
    seed: int,
    init: Path | None,
    threshold: float | None,
    window: int | None,
) -> None:
    start = time.perf_counter()
    records, feedback = _load(source, format)
    if threshold is None and feedback == "explicit":
        threshold = 4.0
    if _NEEDS_TEACHER & set(names):
        embeddings, dim = _embed(records, teacher)
    else:
        embeddings, dim = {}, 1
    catalog = Catalog(dim)
    try:
        built = build_models(names, catalog, threshold=threshold, seed=seed, init=init)
    except ColdstreamError as exc:
        raise typer.BadParameter(str(exc), param_hint="--init") from exc
    positives = sum(
        1
        for r in records
        if isinstance(r, Interaction) and (threshold is None or r.value >= threshold)
    )
    win = window or max(1, positives // every // 50)
    ev = Prequential(built, catalog, k=k, threshold=threshold, every=every, window=win)
    with progress_bar("evaluating", len(records)) as advance:
        result = run_prequential(records, ev, embeddings, progress=advance)
    took = time.perf_counter() - start
    facts = {
        "source": str(source),
        "feedback": feedback,
        "positive threshold": "every event" if threshold is None else threshold,
        "interactions": result.events,
        "items": len(catalog),
        "every": every,
        "seed": seed,
        "repeats not evaluated": result.skipped_repeats,
        "interactions on unannounced items": result.unannounced,
        "seconds": round(took, 1),
    }
    paths = write_report(result.report(), report, timeline=result.timeline, facts=facts)
    for table in _tables(result.report()):
        out.print(table)
    speeds = ", ".join(
        f"{name} {_short(m['learn_events_per_s'])}" for name, m in result.metrics.items()
    )
    out.print(f"learning throughput (interactions/s): {speeds}")
    out.print(
        f"{result.events:,} interactions, {result.evaluated['all']:,} evaluated in "
        f"{took:,.1f} s; report: {paths['markdown']}"
    )


def _tables(rep: dict[str, Any]) -> list[Table]:
    """Recall@K and NDCG@K, models x slices (compact enough for an 80-column terminal)."""
    k, tables = rep["k"], []
    for metric, label in (("recall", f"Recall@{k}"), ("ndcg", f"NDCG@{k}")):
        table = Table(title=label, box=box.SIMPLE_HEAD, padding=(0, 1))
        table.add_column("model", no_wrap=True)
        for s in SLICE_ORDER:
            table.add_column(s, justify="right", no_wrap=True, min_width=5)
        for name, m in rep["models"].items():
            cells = [f"{m[metric][s]:.3f}" for s in SLICE_ORDER]
            table.add_row(name, *cells)
        if metric == "ndcg":
            counts = (f"[dim]{rep['evaluated'][s]:,}[/]" for s in SLICE_ORDER)
            table.add_row("[dim]evaluated[/]", *counts)
        tables.append(table)
    return tables


def _short(x: float) -> str:
    return f"{x / 1e6:.1f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def pretrain(
    source: Annotated[Path, typer.Argument(help="history: jsonl dir, csv file or MovieLens dir")],
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="checkpoint file to write")],
    format: Annotated[str, typer.Option("--format", help="auto, jsonl, csv or movielens")] = "auto",
    teacher: Annotated[str | None, typer.Option(help="teacher model dir or name")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="passes over the history")] = 1,
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    threshold: Annotated[float | None, typer.Option(help="positive if value >= this")] = None,
) -> None:
    """Train a student offline on history; start live students from it with --init."""
    from models.student import StudentConfig
    from models.transfer import pretrain as run_pretrain

    _check_source(source, format)
    records, feedback = _load(source, format)
    if threshold is None and feedback == "explicit":
        threshold = 4.0
    embeddings, dim = _embed(records, teacher)
    with progress_bar("pretraining", len(records) * epochs) as advance:
        path = run_pretrain(
            records,
            out_path,
            embeddings,
            teacher_dim=dim,
            threshold=threshold,
            config=StudentConfig(),
            seed=seed,
            epochs=epochs,
            progress=advance,
        )
    out.print(f"checkpoint: {path} ({path.stat().st_size / 1e6:.1f} MB)")
