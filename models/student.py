"""The online student: a two-tower recommender in one low-dimensional scoring space.

Item ``i`` with ``n`` interactions so far is served as one row of ``dim + teacher_rank + 1``
floats (97 by default, at most 128) and a bias:

    row_i  = [a * e_i + (1 - a) * c_i,  g(n) * P t_i,  w_new . fresh_i],   a = n / (n + blend)
    bias_i = a * beta_i + (1 - a) * cb_i + w . fresh_i

``t_i`` is the teacher embedding; ``c_i``/``cb_i`` the cold head of the content tower while
``n = 0``, its residual head from the first interaction on (each head learns only from its
items: serving brand-new items alone, and correcting id rows, are different jobs);
``e_i``/``beta_i`` the item's id row (sparse Adagrad), which starts at the item's first
interaction three quarters of the way to the direction of the *distilled* head (trained to
predict warm items' vectors from text), with the cold head's length and bias, and takes over
from content (a brand-new item is served that start vector; the cold head learns without the
turn);
``P`` the top ``teacher_rank`` principal directions of the catalog's teacher embeddings
(refitted each time the catalog doubles, up to ``basis_until`` items, then fixed), so the
teacher enters through a projection; ``g(n)`` a learned weight per log2 bucket of ``n`` (the
teacher channel's hand-over); ``fresh_i`` the item's age and decayed recent interactions
(:mod:`models.freshness`), under weights ``w`` for every query and ``w_new`` added for a query
with no history (:mod:`models.student_optim` says why ``u0`` and ``w_new`` learn faster).

A user's query is ``[q_u, P x_u, new_u]``:

    q_u = sum_k att_k row_{h_k}[:dim] + e_u + W p_u      (u0 instead of the sum if no history)
    x_u = sim_h * sum_k att_k t_{h_k} + sim_p * p_u
    new_u = 1 if the user has no history, else 0

over their last ``history`` interactions ``h_0`` (most recent), ``h_1``, ...: attention by
position (learned), over the same item vectors the targets use (item-to-item, the signal of
sessions); ``e_u`` the user's id row once the id table admits them; ``p_u`` their profile
text's teacher embedding. Score: ``row_i . query_u + bias_i``, plus the co-occurrence term
(:mod:`models.cooc`), each boost weighted per count bucket of its item (weights learned from
every ``cooc_learn_every``-th event); a snapshot serves exactly that.

Learning: every interaction (a rating of any value says the user consumed the item; the
positive threshold only decides what is evaluated) joins a micro-batch; each step adds
``replay_per_batch`` replayed ones and minimises a sampled softmax over in-batch items and
``negatives`` uniform catalog items with the logQ correction, counts as they were when the
batch began (an event must not see itself). Distillation: the distilled head learns to
reproduce warm items' vectors (the collaborative side teaching the content side, as ALDI,
SIGIR 2023, does with a separate cold model). Ablations (:mod:`models.registry`): no
distillation, no sequence, no content (no teacher at all), no co-occurrence term.

User ids go through an :class:`~models.idtable.IdTable` (frequency filter, expiry, bounded);
histories and profiles live in a bounded LRU. Deterministic for a seed; :meth:`state_dict`
round-trips it all. :meth:`Student.boost` makes it learn faster after a drift detection.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from models import student_queries as _queries
from models import student_state as _state
from models.baselines import grow
from models.catalog import Catalog
from models.cooc import Cooccurrence, combine
from models.freshness import Freshness
from models.idtable import IdTable
from models.replay import ReplayBuffer
from models.student_config import CACHES, ITEM_ARRAYS, MAX_WIDTH, RECENT, StudentConfig
from models.student_optim import load_towers, param_groups
from models.towers import Towers, bucket, content_np, toward
from models.training import replay_rows, train_step

__all__ = ["MAX_WIDTH", "RECENT", "Student", "StudentConfig"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
_BASIS_START = 16  # catalog size of the first teacher basis
_ID_INIT_STD = 0.1  # without content, id vectors start random (all-zero rows would never move)


class _UserState:
    __slots__ = ("hist", "last", "profile")

    def __init__(self) -> None:
        self.hist: list[int] = []  # catalog rows, oldest first, at most ``history``
        self.profile: F32 | None = None
        self.last = 0  # event time of the user's latest event, for expiry


class Student:
    """The student behind the Recommender protocol (``name`` tells the variants apart)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        config: StudentConfig | None = None,
        threshold: float | None = None,
        seed: int = 0,
        name: str = "student",
    ) -> None:
        self.cfg = cfg = config or StudentConfig()
        self.name, self.catalog, self.threshold, self.seed = name, catalog, threshold, seed
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.towers = Towers(catalog.dim, cfg)
        self.opt = torch.optim.Adam(param_groups(self.towers, cfg), lr=cfg.lr_dense, fused=True)
        self.gen = torch.Generator().manual_seed(seed)
        self._rng = np.random.default_rng(seed + 2)
        self.users = IdTable(
            cfg.dim, min_count=cfg.user_min_count, ttl=cfg.user_ttl_ms, max_rows=cfg.max_users
        )
        self.state: OrderedDict[str, _UserState] = OrderedDict()
        self.replay = ReplayBuffer(cfg.replay_size, cfg.history, seed=seed + 1)
        self.recent: deque[tuple[str, int, list[int]]] = deque(maxlen=RECENT)
        self.fresh = Freshness(cfg.fresh_scales)
        self.cooc = Cooccurrence(cfg.cooc_alpha, neighbours=cfg.cooc_neighbours)
        d, r = cfg.dim, cfg.teacher_rank
        # per catalog row: id vector and bias with Adagrad state, interactions learned, cached
        # cold head (cv, cb), distilled head (dv), residual head (cr, cbr), teacher projection
        self.emb, self.emb_acc = np.zeros((0, d), np.float32), np.zeros((0, d), np.float32)
        self.bias, self.bias_acc = np.zeros(0, np.float32), np.zeros(0, np.float32)
        self.n = np.zeros(0, np.float32)
        self.cv, self.cb = np.zeros((0, d), np.float32), np.zeros(0, np.float32)
        self.dv = np.zeros((0, d), np.float32)
        self.cr, self.cbr = np.zeros((0, d), np.float32), np.zeros(0, np.float32)
        self.tp = np.zeros((0, r), np.float32)
        # serving caches: blended vectors (also the history rows of queries), teacher gate, bias
        self._v = np.zeros((0, d), np.float32)
        self._cn = np.zeros((0, d), np.float32)  # brand-new items' served vectors (new_rows)
        self._g, self._b = np.zeros(0, np.float32), np.zeros(0, np.float32)
        self._fn = np.zeros(0, np.float32)  # the new-user freshness term (the rows' last column)
        self.pending: list[tuple[str, int, list[int]]] = []
        # boosts of sampled pending events (by position) and of the batch being trained
        self._boosts: dict[int, tuple[I64, F32]] = {}
        self._batch_boosts: dict[int, tuple[I64, F32]] = {}
        self.steps = self.learned = self.now = 0
        self.basis_n = 0  # catalog size the teacher basis was fitted on
        self._refresh_at = 0
        self.last_loss = float("nan")  # the latest step's loss on its fresh rows (drift signal)
        self.boosted = (1.0, 0, 0)  # (learning-rate factor, steps left, replay horizon)
        self.pretrained: dict[str, tuple[F32, float, float]] = {}  # item id -> (row, bias, n)
        # several ranks (models.distributed): (item, window) since the last point; batch start
        self.journal: list[tuple[int, list[int]]] | None = None
        self.batch_began: tuple[F32, int] | None = None
        self._w = self.towers.numpy_weights()

    # ---- protocol -----------------------------------------------------------------------
    def observe_item(self, index: int) -> None:
        size = index + 1
        for name in (*ITEM_ARRAYS, *CACHES):
            setattr(self, name, grow(getattr(self, name), size))
        self.fresh.observe(index, self.learned)
        self.cooc.observe_item(index)
        n_cat = len(self.catalog)
        if (
            self.cfg.content
            and _BASIS_START <= n_cat <= self.cfg.basis_until
            and (n_cat >= 2 * self.basis_n)
        ):
            self._fit_basis()
        rows = np.array([index])
        self._cache_content(rows)
        pre = self.pretrained.get(self.catalog.ids[index])
        if pre is not None and self.n[index] == 0:
            self.emb[index], self.bias[index], self.n[index] = pre
        self._serve(rows)

    def observe_user(self, user_id: str, embedding: F32 | None) -> None:
        if embedding is not None:
            self._user(user_id).profile = np.asarray(embedding, dtype=np.float32)

    def learn_one(self, user_id: str, index: int, value: float, ts: int) -> None:
        """Learn one interaction, whatever its value (see the module docstring)."""
        self.now = max(self.now, ts)
        st = self._user(user_id)
        hist = st.hist[::-1]  # most recent first
        if self.journal is not None:  # other ranks' events counted later must not count
            if not self.pending:
                self.batch_began = (self.n.copy(), self.learned)
            self.journal.append((index, st.hist[-self.cfg.cooc_window :]))
        self.pending.append((user_id, index, hist))
        self.replay.add(user_id, index, hist)
        self.recent.append((user_id, index, hist))
        every = self.cfg.cooc_learn_every
        if self.cfg.cooc_weight and every and self.learned % every == 0:
            # this event's boosts before it joins the memory: the step learns the weights on them
            self._boosts[len(self.pending) - 1] = _queries.cooc_boost(self, user_id, weighted=False)
        if self.cfg.cooc_weight:
            self.cooc.add(index, st.hist[-self.cfg.cooc_window :])
        st.hist.append(index)
        if len(st.hist) > self.cfg.history:
            del st.hist[0]
        self.users.lookup(user_id, ts)
        if self.n[index] == 0:
            self._start_id(index)
        self.n[index] += 1
        self.learned += 1
        if len(self.pending) >= self.cfg.batch_size:
            self.flush()

    def _start_id(self, index: int) -> None:
        """An item's first interaction: its id row starts as the vector it was served with
        while brand-new (:meth:`new_rows`), its bias at the cold head's. Warm items' length
        and bias are popularity they earned; all the way to the distilled direction, brand-new
        items lost (README, "The learning core")."""
        if not self.cfg.content:
            self.emb[index] = self._rng.normal(0.0, _ID_INIT_STD, self.cfg.dim)
        else:
            self.emb[index] = self.new_rows(np.array([index]))[0]
        self.bias[index] = self.cb[index]

    def new_rows(self, idx: Any) -> F32:
        """Brand-new items' vectors: the cold head's length, the direction ``distill_mix`` of
        the way from the cold head's to the distilled head's (without distillation: the cold
        head's), as its id row starts. Cached with the heads (:meth:`turn`)."""
        return self._cn[idx]

    def turn(self, rows: Any) -> None:
        """Recompute :meth:`new_rows` of ``rows`` from the cached heads."""
        cold = self.cv[rows]
        if self.cfg.distill and self.cfg.content:
            dist = torch.from_numpy(self.dv[rows])
            cold = toward(torch.from_numpy(cold), dist, self.cfg.distill_mix).numpy()
        self._cn[rows] = cold

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self._batch_boosts, self._boosts = self._boosts, {}
        self._step(batch)
        # freshness counts the batch only now: training saw each item as before its events
        self.fresh.count(np.fromiter((b[1] for b in batch), np.int64, len(batch)), self.learned)
        self._serve()
        if self.cfg.user_ttl_ms is not None and self.steps % 100 == 0:
            cutoff = self.now - self.cfg.user_ttl_ms
            while self.state and next(iter(self.state.values())).last < cutoff:
                self.state.popitem(last=False)  # least recently seen first
            self.users.expire(self.now)

    def score_all(self, user_id: str) -> F32:
        n = len(self.catalog)
        q = self.query(user_id)
        d = self.cfg.dim
        out = self._v[:n] @ q[:d] + self._b[:n] + q[-1] * self._fn[:n]
        if self.cfg.content:
            out += self._g[:n] * (self.tp[:n] @ q[d:-1])
        if not self.cfg.cooc_weight:
            return out.astype(np.float32)
        idx, boost = self.cooc_boost(user_id)
        return combine(out, idx, boost, self.cooc.n[:n] == 0, self.cfg.cooc_impute)

    def cooc_boost(self, user_id: str) -> tuple[I64, F32]:
        """The co-occurrence term's boosted items and weighted boosts (as a snapshot's)."""
        return _queries.cooc_boost(self, user_id)

    # ---- serving --------------------------------------------------------------------------
    def query(self, user_id: str) -> F32:
        """The user's side of the serving product (:attr:`StudentConfig.width` floats)."""
        return _queries.query(self, user_id)

    def queries(self, user_ids: list[str | None]) -> F32:
        """:meth:`query` for many users at once (``None``: a user the student never saw)."""
        return _queries.queries(self, user_ids)

    def serving_rows(self) -> tuple[F32, F32]:
        """The served item matrix and bias: :meth:`score_all` is ``rows @ query + bias``."""
        return _queries.serving_rows(self)

    def _serve(self, rows: I64 | None = None) -> None:
        """Recompute the serving caches of ``rows`` (all rows: after a step)."""
        n = len(self.catalog)
        idx: Any = slice(0, n) if rows is None else rows
        a = self._alpha(self.n[idx])
        content, content_b = self.content_share(idx, self.n[idx])
        self._v[idx] = a[:, None] * self.emb[idx] + (1 - a)[:, None] * content
        self._g[idx] = self._w["gate"][bucket(self.n[idx])]
        feats = self.fresh.features(idx, self.learned)
        self._fn[idx] = feats @ self._w["fresh_new.weight"][0]
        self._b[idx] = a * self.bias[idx] + (1 - a) * content_b + feats @ self._w["fresh.weight"][0]

    def content_share(self, idx: Any, n: npt.NDArray[np.floating]) -> tuple[F32, F32]:
        """The cached content vectors and biases of rows ``idx`` with interaction counts ``n``:
        :meth:`new_rows` (and the cold head's bias) for brand-new items, the residual head's
        for the others."""
        new = n == 0
        vec = np.where(new[:, None], self.new_rows(idx), self.cr[idx])
        return vec, np.where(new, self.cb[idx], self.cbr[idx])

    def _alpha(self, n: npt.NDArray[np.floating]) -> F32:
        return (n / (n + self.cfg.blend)).astype(np.float32)

    def _cache_content(self, rows: Any) -> None:
        """Recompute the cached heads (and teacher projection) of ``rows``."""
        if not self.cfg.content:
            return
        t = self.catalog.embeddings[rows]
        heads = content_np(self._w, t)
        self.cv[rows], self.cb[rows], self.dv[rows], self.cr[rows], self.cbr[rows] = heads
        self.turn(rows)
        self.tp[rows] = t @ self._w["proj"].T

    def _fit_basis(self) -> None:
        """The teacher basis: top principal directions (uncentred) of the catalog's embeddings."""
        emb = self.catalog.embeddings
        _, _, vt = np.linalg.svd(emb, full_matrices=False)
        basis = np.zeros_like(self._w["proj"])
        k = min(len(basis), len(vt))
        basis[:k] = vt[:k]
        with torch.no_grad():
            self.towers.proj.copy_(torch.from_numpy(basis))
        self._w["proj"] = basis
        self.basis_n = len(emb)
        self.tp[: len(emb)] = emb @ basis.T

    # ---- training -----------------------------------------------------------------------
    def _user(self, user_id: str) -> _UserState:
        st = self.state.get(user_id)
        if st is None:
            st = self.state[user_id] = _UserState()
            if len(self.state) > self.cfg.max_users:
                self.state.popitem(last=False)
        else:
            self.state.move_to_end(user_id)
        st.last = self.now
        return st

    def _step(self, batch: list[tuple[str, int, list[int]]]) -> None:
        train_step(self, batch)
        self.steps += 1
        factor, left, horizon = self.boosted
        if left:
            self.boosted = (factor, left - 1, horizon)
            if left == 1:
                self._set_lr(1.0)
        self._w = self.towers.numpy_weights()
        n = len(self.catalog)
        lo = self._refresh_at
        hi = min(n, lo + self.cfg.refresh_items)
        self._refresh_at = 0 if hi >= n else hi
        # the batch's items (their id side just started from the heads) and a rolling slice
        touched = np.fromiter((b[1] for b in batch), np.int64, len(batch))
        self._cache_content(np.union1d(np.arange(lo, hi), touched))

    def boost_weights(self) -> F32 | None:
        """The boost weight per count bucket (None: fixed at 1)."""
        return None if (log := self._w.get("cooc_log")) is None else np.exp(log).astype(np.float32)

    # ---- drift adaptation -----------------------------------------------------------------
    def boost(self, factor: float, steps: int, horizon: int = 0) -> None:
        """For the next ``steps`` training steps: both learning rates times ``factor``, and, if
        ``horizon``, replay drawn from the latest ``horizon`` interactions (at most
        :data:`RECENT`), not the whole-history reservoir. A new boost replaces a running one."""
        if factor <= 0 or steps < 0 or not 0 <= horizon <= RECENT:
            raise ValueError(
                f"boost needs factor > 0, steps >= 0 and 0 <= horizon <= {RECENT}; got "
                f"factor={factor}, steps={steps}, horizon={horizon}"
            )
        self.boosted = (float(factor), int(steps), int(horizon))
        self._set_lr(factor if steps else 1.0)

    def lr_factor(self) -> float:
        return self.boosted[0] if self.boosted[1] else 1.0

    def _set_lr(self, factor: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.cfg.lr_dense * factor * group["rate"]

    def replay_rows(self, skip: int) -> tuple[list[str], I64, I64]:
        """Replayed interactions for a step (:func:`models.training.replay_rows`)."""
        return replay_rows(self, skip)

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return _state.state_dict(self)

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        _state.load_state_dict(self, saved)

    def load_towers(self, towers: dict[str, torch.Tensor], opt: dict[str, Any]) -> bool:
        """Dense weights and Adam's state (:func:`models.student_optim.load_towers`)."""
        return load_towers(self, towers, opt)

    def load_user_state(self, entries: list[tuple[str, list[int], F32 | None, int]]) -> None:
        self.state = OrderedDict()
        for key, hist, profile, last in entries:
            st = self.state[key] = _UserState()
            st.hist, st.profile, st.last = list(hist), profile, last

    def sync_weights(self) -> None:
        """Copy tower weights out for serving and recompute every cached row (after a load)."""
        self._w = self.towers.numpy_weights()
        n = len(self.catalog)
        if n:
            if self.cfg.content:
                self.tp[:n] = self.catalog.embeddings @ self._w["proj"].T
            self._cache_content(slice(0, n))
            self._serve()
