"""A student trained on a small generated stream (hashing teacher: fast), for snapshot tests."""

from __future__ import annotations

from models.catalog import Catalog
from models.teacher import load_teacher
from models.trainer import Student
from streams.datasets import KIND_ORDER as ORDER
from streams.records import Interaction, Item
from streams.synthetic import SyntheticConfig, generate


def trained_student(
    events: int = 3000, items: int = 200, users: int = 200, seed: int = 3, until: float = 1.0
) -> tuple[Student, list[Item], list[Interaction]]:
    """A student after ``until`` (a share) of a generated stream; also the stream's items and
    interactions, so a test can go on from where the student stopped."""
    ds = generate(SyntheticConfig(users=users, items=items, events=events, seed=seed))
    teacher = load_teacher("hashing")
    emb = teacher.embed_records([*ds.items, *ds.users])
    records = sorted([*ds.items, *ds.users, *ds.interactions], key=lambda r: (r.ts, ORDER[r.kind]))
    stop = records[int(len(records) * until) - 1].ts if until < 1.0 else None
    cat = Catalog(teacher.dim)
    student = Student(cat, threshold=None, seed=0)
    for rec in records:
        if stop is not None and rec.ts > stop:
            break
        if rec.kind == "item":
            student.observe_item(cat.add(rec.key, emb.get(("item", rec.key)), rec.ts))
        elif rec.kind == "user":
            student.observe_user(rec.key, emb.get(("user", rec.key)))
        else:
            assert isinstance(rec, Interaction)
            idx = cat.get(rec.item_id)
            if idx is None:
                idx = cat.add(rec.item_id, None)
                student.observe_item(idx)
            student.learn_one(rec.user_id, idx, rec.value, rec.ts)
    student.flush()
    return student, ds.items, ds.interactions
