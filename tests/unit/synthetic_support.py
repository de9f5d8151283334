"""What the generator's tests share: a small configuration, a cached generate, and measures of
a stream (categories, an item's own words, total-variation distance)."""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

from core.records import Item
from streams._vocab import DESCRIPTION_TEMPLATES, TITLE_TEMPLATES
from streams.synthetic import SyntheticConfig, SyntheticDataset, generate

SMALL = SyntheticConfig(users=300, items=200, events=4000, seed=3)


@cache
def gen(config: SyntheticConfig) -> SyntheticDataset:
    return generate(config)


def categories(ds: SyntheticDataset) -> dict[str, str]:
    return {it.item_id: str(it.attributes["category"]) for it in ds.items}


TEMPLATE_WORDS = set(
    re.findall(
        r"[a-z]+",
        (" ".join(TITLE_TEMPLATES + DESCRIPTION_TEMPLATES) + " ideal for fans of the").lower(),
    )
)


def item_words(it: Item) -> set[str]:
    """The words of an item's title, text and tags, less those of the shared templates."""
    text = f"{it.title} {it.text} {' '.join(it.tags)}".lower()
    return set(re.findall(r"[a-z]+", text)) - TEMPLATE_WORDS


def tv_distance(a: Counter[str], b: Counter[str]) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b))
