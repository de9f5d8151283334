"""The one event order every offline comparison uses: ``evaluate`` on a file, ``replay`` on
topics.

Events are sorted by event time; at equal times items come first, then users, then
interactions (as :mod:`streams.datasets` reads a file, so an item event precedes the first
interaction with it when its time is not later); at equal time and kind, by key (the record's
Kafka message key: item id for items, user id for users and interactions); and the sort is
stable, so records with the same time, kind and key keep the order they came in.

Why the key: a dataset file and the topics it was loaded into hold the same events, but a file
has one order and a topic has one order *per partition*. Two events of the same time and kind
with different keys usually sit in different partitions, and nothing in Kafka says which was
written first, so "file order" cannot be recovered from the topics. The key can, and records
with the same key share a partition (``coldstream load`` keys every message), whose offset
order is the order they were written in, i.e. the file's order. So this order is the same
whether the events come from the file or from the topics, and so are the metrics.

>>> from core.records import Interaction, Item
>>> recs = [Interaction("u2", "b", 5), Interaction("u1", "b", 5), Item("b", "B", 5),
...         Interaction("u1", "a", 5), Item("a", "A", 9)]
>>> [f"{r.kind[:5]} {r.key} {r.ts}" for r in in_event_order(recs)]
['item b 5', 'inter u1 5', 'inter u1 5', 'inter u2 5', 'item a 9']
>>> [r.item_id for r in in_event_order(recs) if r.key == "u1"]  # same key: order kept
['b', 'a']
"""

from __future__ import annotations

from collections.abc import Iterable

from core.records import Record
from streams.datasets import KIND_ORDER  # one definition of items < users < interactions

__all__ = ["KIND_ORDER", "event_key", "in_event_order"]


def event_key(rec: Record) -> tuple[int, int, str]:
    """``(event time, kind order, key)``: the sort key of :func:`in_event_order`."""
    return rec.ts, KIND_ORDER[rec.kind], rec.key


def in_event_order(records: Iterable[Record]) -> list[Record]:
    """A new list of ``records`` in the canonical event order (a stable sort by
    :func:`event_key`). Give it records of one key in their source order (file order, or
    offset order within a partition) and the result does not depend on anything else."""
    return sorted(records, key=event_key)
