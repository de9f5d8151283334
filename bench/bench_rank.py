"""Benchmark: what ``COLDSTREAM_SNAPSHOT_TEACHER_RANK`` costs in answer quality.

A student learns a generated stream with the real MiniLM teacher; its serving tables are then
taken exactly and with the teacher term through ``r`` principal directions. For every user in
the snapshot: the share of the exact top-20 that the rank-``r`` top-20 keeps, and the largest
score error relative to the largest exact score. The width of the served matrix (what one
request reads, per item) is printed beside it.

Run: ``python -m bench.bench_rank`` (``--events 30000 --ranks 8,16,32,64``, ``--json FILE``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import show
from exporters.snapshot import serving_tables
from models.catalog import Catalog
from models.evaluation import Prequential, run_prequential
from models.student import Student
from models.teacher import load_teacher
from streams.order import in_event_order
from streams.synthetic import SyntheticConfig, generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=30_000)
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--ranks", default="4,8,16")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ds = generate(
        SyntheticConfig(users=args.users, items=args.items, events=args.events, seed=args.seed)
    )
    teacher = load_teacher(None)
    emb = teacher.embed_records([*ds.items, *ds.users])
    cat = Catalog(teacher.dim)
    student = Student(cat, threshold=None, seed=0)
    learner = Prequential({"student": student}, cat, every=10**12)  # learn all, rank none
    run_prequential(in_event_order([*ds.items, *ds.users, *ds.interactions]), learner, emb)
    student.flush()
    exact = serving_tables(student)
    ref = exact.queries[:-1] @ exact.items.T + exact.bias
    top_ref = np.argsort(-ref, axis=1)[:, :20]
    results: dict[str, Any] = {
        "items": len(cat),
        "users": len(exact.user_ids),
        "exact width": exact.width,
    }
    for r in (int(x) for x in args.ranks.split(",")):
        t = serving_tables(student, teacher_rank=r)
        approx = t.queries[:-1] @ t.items.T + t.bias
        top = np.argsort(-approx, axis=1)[:, :20]
        keep = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(top_ref, top, strict=True)])
        results[f"rank {r:>3} width"] = t.width
        results[f"rank {r:>3} top-20 kept"] = float(keep)
        results[f"rank {r:>3} max score error"] = float(
            np.abs(approx - ref).max() / np.abs(ref).max()
        )
    show(results, args.json)


if __name__ == "__main__":
    main()
