"""Events in, report out: the prequential comparison ``coldstream evaluate`` (a dataset) and
``coldstream replay`` (a topic range) share, and the options both take.

:func:`compare` puts the events in the canonical event order (:mod:`streams.order`), has the
teacher encode every item and user text once, builds the models on one catalog, runs
:func:`models.evaluation.run_prequential` with a progress bar, writes ``report.json``,
``report.md``, ``timeline.json`` and the plots (:mod:`exporters.report`) and prints the tables.
The two commands differ only in where the events come from.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from coldstream.commands.groups import Group, merge, run_groups, split
from coldstream.console import out, progress_bar
from core.errors import ColdstreamError
from core.records import Interaction, Item, Record, User
from exporters.report import SLICE_ORDER, write_report
from models.catalog import Catalog
from models.evaluation import EvalResult, Prequential, run_prequential
from models.exceptions import TeacherError, UnknownModelError
from models.registry import DEFAULT_MODELS, NEEDS_TEACHER, build_models, parse_models
from models.teacher import load_teacher
from streams.order import in_event_order

__all__ = [
    "DEFAULT_MODELS",
    "EveryOpt",
    "FeedbackOpt",
    "InitOpt",
    "JobsOpt",
    "KOpt",
    "ModelsOpt",
    "Options",
    "ReportOpt",
    "SeedOpt",
    "TeacherOpt",
    "ThreadsOpt",
    "ThresholdOpt",
    "WindowOpt",
    "compare",
    "embed",
    "options",
    "positive_threshold",
]

ModelsOpt = Annotated[str, typer.Option(help="comma-separated models to compare")]
KOpt = Annotated[int, typer.Option("--k", min=1, help="cut-off of Recall@K and NDCG@K")]
ReportOpt = Annotated[Path, typer.Option(help="directory for report.json, report.md, plots")]
EveryOpt = Annotated[int, typer.Option(min=1, help="evaluate every Nth positive (all learn)")]
TeacherOpt = Annotated[
    str | None,
    typer.Option(
        help="teacher model dir or name; 'hashing' for a fast toy encoder "
        "[env: COLDSTREAM_TEACHER_MODEL; default: packaged all-MiniLM-L6-v2]"
    ),
]
SeedOpt = Annotated[int, typer.Option(help="seed of every model")]
InitOpt = Annotated[Path | None, typer.Option(help="start the students from this checkpoint")]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        help="positive if value >= this [default: 4.0 for ratings, every event for implicit]"
    ),
]
FeedbackOpt = Annotated[
    str,
    typer.Option(
        help="implicit (every event is positive) or explicit (ratings: positive from "
        "--threshold on)"
    ),
]
WindowOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="evaluated events per point of the over-time plot [default: 1/50 of them]"
    ),
]
ThreadsOpt = Annotated[
    int,
    typer.Option(min=1, help="torch threads (1 is fastest for the student's small matrices)"),
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="processes comparing the models side by side, one core each (same report) "
        "[default: one per core]",
    ),
]


@dataclass(frozen=True, slots=True)
class Options:
    """What the comparison is asked to do (the model options of evaluate and replay)."""

    names: list[str]
    k: int = 20
    report: Path = Path("reports/evaluate")
    every: int = 1
    teacher: str | None = None
    seed: int = 0
    init: Path | None = None
    threshold: float | None = None
    window: int | None = None
    adapt: bool = False  # boost a student when drift is detected (models.monitor.Adaptation)
    jobs: int = 1  # processes comparing the models side by side (coldstream.commands.groups)


def options(
    models: str,
    *,
    k: int,
    report: Path,
    every: int,
    teacher: str | None,
    seed: int,
    init: Path | None,
    threshold: float | None,
    window: int | None,
) -> Options:
    """Check the model options the way both commands do; bad ones raise ``BadParameter``."""
    try:
        names = parse_models(models)
    except UnknownModelError as exc:
        raise typer.BadParameter(str(exc), param_hint="--models") from exc
    if init is not None and not init.is_file():
        raise typer.BadParameter(
            f"{init} is not a file: make one with coldstream pretrain", param_hint="--init"
        )
    return Options(names, k, report, every, teacher, seed, init, threshold, window)


def positive_threshold(feedback: str, threshold: float | None) -> float | None:
    """``--threshold`` if given, else 4.0 for explicit feedback (ratings), else None (every
    event is positive)."""
    if threshold is None and feedback == "explicit":
        return 4.0
    return threshold


def embed(records: Sequence[Record], teacher: str | None) -> tuple[dict[tuple[str, str], Any], int]:
    """Encode every item and user text once with the teacher: ``({(kind, id): vector}, dim)``."""
    if teacher is None:
        from core.settings import Settings

        teacher = Settings.load().teacher_model
    try:
        enc = load_teacher(teacher)
    except TeacherError as exc:
        raise typer.BadParameter(str(exc), param_hint="--teacher") from exc
    texts: list[Item | User] = [r for r in records if isinstance(r, Item | User)]
    with progress_bar(f"teacher ({enc.name})", len(texts)) as advance:
        return enc.embed_records(texts, progress=advance), enc.dim


def compare(
    records: Sequence[Record],
    opts: Options,
    *,
    facts: Mapping[str, Any],
    started: float | None = None,
) -> EvalResult:
    """Run the prequential comparison on ``records`` and write and print the report.

    ``facts`` (what was read, from where) head ``report.md``; ``started`` (a
    ``time.perf_counter()``) is when the command began, for the time it reports.
    """
    start = time.perf_counter() if started is None else started
    events = in_event_order(records)
    threshold = opts.threshold
    if NEEDS_TEACHER & set(opts.names):
        embeddings, dim = embed(events, opts.teacher)
    else:
        embeddings, dim = {}, 1
    catalog = Catalog(dim)
    try:
        built = build_models(
            opts.names, catalog, threshold=threshold, seed=opts.seed, init=opts.init
        )
    except ColdstreamError as exc:
        raise typer.BadParameter(str(exc), param_hint="--init") from exc
    positives = sum(
        1
        for r in events
        if isinstance(r, Interaction) and (threshold is None or r.value >= threshold)
    )
    win = opts.window or max(1, positives // opts.every // 50)
    ev = Prequential(built, catalog, k=opts.k, threshold=threshold, every=opts.every, window=win)
    adapted = {}
    if opts.adapt:
        from models.monitor import Adaptation, DriftMonitor

        monitor = DriftMonitor(built, catalog, adapt=Adaptation())
        monitor.attach(ev)
    groups = [] if opts.adapt else split(opts.names, opts.jobs)
    with progress_bar("evaluating", len(events)) as advance:
        if len(groups) > 1:  # each group in a process of its own: the same report, sooner
            jobs = [
                Group(g, dim, threshold, opts.seed, opts.init, opts.k, opts.every, win)
                for g in groups
            ]
            parts = run_groups(jobs, events, embeddings, advance)
            result = merge(parts, opts.names)
        else:
            result = run_prequential(events, ev, embeddings, progress=advance)
    if opts.adapt:
        boosts = ", ".join(f"{d.model} ({d.detector}) at {d.events:,}" for d in monitor.boosts)
        adapted = {"drift boosts (--adapt), at interaction": boosts or "none"}
    took = time.perf_counter() - start
    all_facts = {
        **facts,
        **adapted,
        "positive threshold": "every event" if threshold is None else threshold,
        "interactions": result.events,
        "items": len({r.item_id for r in events if isinstance(r, Item | Interaction)}),
        "processes": max(1, len(groups)),
        "every": opts.every,
        "seed": opts.seed,
        "repeats not evaluated": result.skipped_repeats,
        "interactions on unannounced items": result.unannounced,
        "seconds": round(took, 1),
    }
    paths = write_report(result.report(), opts.report, timeline=result.timeline, facts=all_facts)
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
    return result


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
