"""A student trained on a small generated stream (hashing teacher: fast), for snapshot tests."""

from __future__ import annotations

from core.records import Interaction, Item
from models.catalog import Catalog
from models.evaluation import Prequential, run_prequential
from models.student import Student
from models.teacher import load_teacher
from streams.order import in_event_order
from streams.synthetic import SyntheticConfig, generate

NO_RANKING = 10**12  # Prequential(every=...): learn every event, rank none


def trained_student(
    events: int = 3000, items: int = 200, users: int = 200, seed: int = 3, until: float = 1.0
) -> tuple[Student, list[Item], list[Interaction]]:
    """A student after ``until`` (a share) of a generated stream; also the stream's items and
    interactions, so a test can go on from where the student stopped."""
    ds = generate(SyntheticConfig(users=users, items=items, events=events, seed=seed))
    teacher = load_teacher("hashing")
    records = in_event_order([*ds.items, *ds.users, *ds.interactions])
    records = records[: int(len(records) * until)]
    cat = Catalog(teacher.dim)
    student = Student(cat, threshold=None, seed=0)
    learner = Prequential({"student": student}, cat, every=NO_RANKING)
    run_prequential(records, learner, teacher.embed_records([*ds.items, *ds.users]))
    student.flush()
    return student, ds.items, ds.interactions
