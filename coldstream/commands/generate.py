"""``coldstream generate OUT``: a synthetic, time-ordered dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coldstream.console import out, progress_bar
from coldstream.options import (
    check_feedback,
)

__all__ = ["generate"]


def generate(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="directory to write")],
    users: Annotated[int, typer.Option(min=1, help="number of users")] = 2000,
    items: Annotated[int, typer.Option(min=1, help="number of items")] = 1000,
    events: Annotated[int, typer.Option(min=1, help="number of interactions")] = 100_000,
    seed: Annotated[int, typer.Option(help="random seed; same seed, same files")] = 0,
    topics: Annotated[int, typer.Option(min=2, help="latent topics of the catalog")] = 16,
    feedback: Annotated[
        str, typer.Option(help="implicit (clicks, value 1) or explicit (ratings 1-5)")
    ] = "implicit",
    drift_at: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="fraction of the stream where preferences shift"),
    ] = None,
    initial_item_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="items that exist at the start")
    ] = 0.3,
    new_user_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="users who first appear mid-stream")
    ] = 0.2,
) -> None:
    """Write a synthetic, time-ordered dataset: items.jsonl, users.jsonl, interactions.jsonl."""
    from streams.synthetic import SyntheticConfig, write_jsonl
    from streams.synthetic import generate as make

    check_feedback(feedback)
    if drift_at is not None and not 0.0 < drift_at < 1.0:
        raise typer.BadParameter(
            "give a fraction strictly between 0 and 1", param_hint="--drift-at"
        )
    try:
        config = SyntheticConfig(
            users=users,
            items=items,
            events=events,
            seed=seed,
            topics=topics,
            feedback=feedback,  # type: ignore[arg-type]
            drift_at=drift_at,
            initial_item_fraction=initial_item_fraction,
            new_user_fraction=new_user_fraction,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    start = time.perf_counter()
    with progress_bar("generating", events) as advance:
        dataset = make(config, progress=advance)
    paths = write_jsonl(dataset, out_dir)
    took = time.perf_counter() - start
    table = Table(title=f"wrote {out_dir} in {took:.1f} s", show_header=True)
    table.add_column("file")
    table.add_column("records", justify="right")
    table.add_row(str(paths["items"]), f"{len(dataset.items):,}")
    table.add_row(str(paths["users"]), f"{len(dataset.users):,}")
    table.add_row(str(paths["interactions"]), f"{len(dataset.interactions):,}")
    out.print(table)
