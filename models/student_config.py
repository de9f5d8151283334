"""The student's hyper-parameters (:class:`StudentConfig`): one default for every data set."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CACHES", "ITEM_ARRAYS", "MAX_WIDTH", "NEW_USER_COLUMNS", "RECENT", "StudentConfig"]

#: floats per served item row, at most (docs/design.md: one low-dimensional scoring space)
MAX_WIDTH = 128
#: latest interactions kept for the short replay horizon of a boost (the most it can ask for)
RECENT = 4096
#: the student's per-item arrays (one row per catalog item), as its state saves them
ITEM_ARRAYS = ("emb", "emb_acc", "bias", "bias_acc", "n", "cv", "cb", "dv", "cr", "cbr", "tp")
#: its per-item serving caches (derived from the arrays and the weights; saved with them)
CACHES = ("_v", "_g", "_b", "_cn", "_fn")
#: the served row's last column: the new-user freshness term (a query's flag "no history")
NEW_USER_COLUMNS = 1


@dataclass(frozen=True)
class StudentConfig:
    """Hyper-parameters of the student (one default for every data set)."""

    dim: int = 64  # id/content part of a row, of the query, of the id tables
    teacher_rank: int = 32  # teacher part of a row: principal directions of the teacher space
    hidden: int = 128  # content tower
    history: int = 20  # recent interactions a query attends to
    batch_size: int = 128  # fresh interactions per training step
    replay_per_batch: int = 128
    replay_size: int = 20_000
    negatives: int = 1024  # uniformly sampled catalog items per step (besides in-batch ones)
    lr_dense: float = 3e-3  # Adam, towers
    lr_sparse: float = 0.15  # Adagrad, item id rows
    lr_user: float = 0.1  # Adagrad, user id rows
    # the parameters only a user's first event trains (u0, the query of a user with no history,
    # and the new-user freshness weights) learn at this multiple of lr_dense: too rarely
    # trained for the dense rate (README, "The learning core")
    lr_new_user: float = 10.0
    blend: float = 1.0  # interactions at which id and content weigh the same
    distill: bool = True
    distill_min_count: int = 5  # an item is warm (a distillation target) from this count
    distill_weight: float = 1.0
    # a brand-new item is served, and its id row starts, this share of the way (1: all the way)
    # from the cold head's direction to the distilled one, with the cold head's length
    distill_mix: float = 0.75
    sequence: bool = True  # False: the history window as an order-free mean (ablation)
    content: bool = True  # False: no teacher at all (ablation)
    user_min_count: int = 2  # frequency filter of the user id table
    user_ttl_ms: int | None = None  # idle expiry of user state (event time)
    max_users: int = 1_000_000  # bound on user rows and user state
    refresh_items: int = 256  # cached content rows recomputed per step besides the batch's
    fresh_scales: tuple[float, ...] = (200.0, 2_000.0, 20_000.0)  # in interactions learned
    basis_until: int = 4_096  # the teacher basis is refitted as the catalog doubles up to this
    # the co-occurrence term (models.cooc): weight 0 switches it off (ablation)
    cooc_weight: float = 4.0  # boost = weight * log(1 + s(window, i))
    cooc_alpha: float = 0.75  # s normalises by n_i ** alpha * n_j ** (1 - alpha)
    cooc_window: int = 10  # the user's latest interactions that co-occur and score (<= history)
    cooc_top: int = 256  # boosted items per query, at most
    cooc_impute: int = 20  # cold items get the mean boost of this many leading warm items
    cooc_learn_every: int = 16  # boost weights per count bucket learn from every n-th event
    cooc_neighbours: int = 500  # kept per item (its most frequent), bounding memory and work

    def __post_init__(self) -> None:
        if self.dim < 1 or self.teacher_rank < 0 or self.history < 1 or self.batch_size < 1:
            raise ValueError("dim, history and batch_size must be >= 1, teacher_rank >= 0")
        if self.cooc_weight < 0 or not 0.0 <= self.cooc_alpha <= 1.0 or self.cooc_top < 1:
            raise ValueError("cooc_weight >= 0, 0 <= cooc_alpha <= 1 and cooc_top >= 1")
        if self.lr_new_user <= 0:
            raise ValueError("lr_new_user must be > 0")
        if not 0.0 <= self.distill_mix <= 1.0:
            raise ValueError("distill_mix must be in [0, 1]")
        if self.cooc_learn_every < 0:
            raise ValueError("cooc_learn_every >= 0 (0 keeps the boost weights fixed at 1)")
        if self.cooc_window < 1 or self.cooc_impute < 0 or self.cooc_neighbours < 1:
            raise ValueError("cooc_window >= 1, cooc_impute >= 0 and cooc_neighbours >= 1")
        if self.dim + self.teacher_rank + NEW_USER_COLUMNS > MAX_WIDTH:
            raise ValueError(
                f"dim + teacher_rank + {NEW_USER_COLUMNS} is "
                f"{self.dim + self.teacher_rank + NEW_USER_COLUMNS}: a served item row holds at "
                f"most {MAX_WIDTH} floats"
            )

    @property
    def width(self) -> int:
        """Floats per served item row (and per query): the id/content part, the teacher part,
        the new-user column."""
        return self.dim + (self.teacher_rank if self.content else 0) + NEW_USER_COLUMNS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
