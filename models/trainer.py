"""The online student: learns from micro-batches of interactions and scores the catalog.

Each training step takes the last ``batch_size`` positives plus ``replay_per_batch`` replayed
ones and minimises a sampled softmax over in-batch items and ``negatives`` uniformly sampled
catalog items, with the logQ correction for how often each candidate gets sampled. Dense
tower weights use Adam; id rows use sparse Adagrad on the rows touched. With ``distill`` on,
the content tower is also taught, for warm items, to reproduce the id side: their id
embedding and bias (embedding alignment) and the softmax the id side gives the batch users
over the warm candidates (ranking alignment, in the spirit of ALDI, SIGIR 2023). That is what
lets a brand-new item, served from content alone, be ranked like similar warm items.
(``content_loss`` also lets the interaction loss reach the content tower through the blended
item vectors; off, the tower learns from distillation alone, as in ALDI.)

User ids go through an :class:`~models.idtable.IdTable` (frequency filter, expiry, bounded);
their history and profile live in a bounded LRU. Everything is deterministic for a seed and
:meth:`Student.state_dict` round-trips all of it (weights, optimizer, tables, buffers).

After a drift detection :meth:`Student.boost` makes it learn faster for a while: both learning
rates scaled up, and replay drawn from the latest positives only, since the whole-history
reservoir keeps teaching the tastes that just went away (:mod:`models.monitor` decides when).
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict, deque
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from models.baselines import grow
from models.catalog import Catalog
from models.idtable import IdTable
from models.protocol import is_positive
from models.replay import ReplayBuffer
from models.student import StudentConfig, Towers, blend_weight, content_np, user_np

__all__ = ["Student"]

F32 = npt.NDArray[np.float32]
#: latest positives kept for the short replay horizon of a boost (the most a boost can ask for)
RECENT = 4096


class _UserState:
    __slots__ = ("hist", "last", "profile")

    def __init__(self) -> None:
        self.hist: list[int] = []
        self.profile: F32 | None = None
        self.last = 0  # event time of the user's latest event, for expiry


class Student:
    """The two-tower student behind the Recommender protocol (``name`` tells the variants apart)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        config: StudentConfig | None = None,
        threshold: float | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        self.cfg = cfg = config or StudentConfig()
        self.name = name or ("student" if cfg.distill else "student_no_distill")
        self.catalog, self.threshold, self.seed = catalog, threshold, seed
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.towers = Towers(catalog.dim, cfg)
        self.opt = torch.optim.Adam(self.towers.parameters(), lr=cfg.lr_dense)
        self.gen = torch.Generator().manual_seed(seed)
        self.users = IdTable(
            cfg.dim,
            min_count=cfg.user_min_count,
            ttl=cfg.user_ttl_ms,
            max_rows=cfg.max_users,
            seed=seed,
        )
        self.state: OrderedDict[str, _UserState] = OrderedDict()
        self.replay = ReplayBuffer(cfg.replay_size, cfg.history, seed=seed + 1)
        self.recent: deque[tuple[str, int, list[int]]] = deque(maxlen=RECENT)
        self.last_loss = float("nan")  # the latest step's loss on its fresh rows (see _step)
        self.boosted = (1.0, 0, 0)  # (learning-rate factor, steps left, replay horizon)
        d = cfg.dim
        # per catalog row: id embedding and bias, Adagrad state, positives, has an id row
        self.item_emb = np.zeros((0, d), dtype=np.float32)
        self.item_acc = np.zeros((0, d + 1), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
        self.item_n = np.zeros(0, dtype=np.float32)
        self.has_id = np.zeros(0, dtype=bool)
        self.known = np.zeros(0, dtype=bool)
        # inference caches: content vectors/bias and the blended item matrix
        self.c_vec = np.zeros((0, d), dtype=np.float32)
        self.c_bias = np.zeros(0, dtype=np.float32)
        # freshness: clock of arrival, decayed positive counts scaled by 2 ** ((t - base) / s)
        self.born = np.zeros(0, dtype=np.float64)
        self.heat = np.zeros((0, len(cfg.fresh_scales)), dtype=np.float64)
        self.heat_base = 0
        self._scales = np.asarray(cfg.fresh_scales, dtype=np.float64)
        self.pending: list[tuple[str, int, list[int]]] = []
        self.steps = self.learned = 0
        self.now = 0
        self.pretrained: dict[str, tuple[F32, float, float]] = {}
        self._w = self.towers.numpy_weights()
        self._refresh_at = 0
        self._m = np.zeros((0, cfg.dim + catalog.dim), dtype=np.float32)
        self._b = np.zeros(0, dtype=np.float32)

    # ---- protocol -----------------------------------------------------------------------
    def observe_item(self, index: int) -> None:
        n = index + 1
        self.item_emb, self.item_acc = grow(self.item_emb, n), grow(self.item_acc, n)
        self.item_bias, self.item_n = grow(self.item_bias, n), grow(self.item_n, n)
        self.has_id, self.c_vec, self.c_bias = (
            grow(self.has_id, n),
            grow(self.c_vec, n),
            grow(self.c_bias, n),
        )
        if index >= self.born.shape[0] or not self.known[index]:
            self.born, self.heat, self.known = (
                grow(self.born, n),
                grow(self.heat, n),
                grow(self.known, n),
            )
            self.born[index], self.known[index] = self.learned, True
        vec, bias = content_np(self._w, self.catalog.embeddings[index : index + 1])
        self.c_vec[index], self.c_bias[index] = vec[0], bias[0]
        pre = self.pretrained.get(self.catalog.ids[index])
        if pre is not None and not self.has_id[index]:
            self.item_emb[index], self.item_bias[index], self.item_n[index] = pre
            self.has_id[index] = True
        self._serve(np.array([index]))

    def observe_user(self, user_id: str, embedding: F32 | None) -> None:
        if embedding is not None:
            self._user(user_id).profile = np.asarray(embedding, dtype=np.float32)

    def learn_one(self, user_id: str, index: int, value: float, ts: int) -> None:
        self.now = max(self.now, ts)
        if not is_positive(value, self.threshold):
            return
        st = self._user(user_id)
        hist = list(st.hist)
        self.pending.append((user_id, index, hist))
        self.replay.add(user_id, index, hist)
        self.recent.append((user_id, index, hist))
        st.hist.append(index)
        if len(st.hist) > self.cfg.history:
            del st.hist[0]
        self.users.lookup(user_id, ts)
        if not self.has_id[index]:  # the id side starts where the content side stands
            self.has_id[index] = True
            self.item_emb[index], self.item_bias[index] = self.c_vec[index], self.c_bias[index]
        self.item_n[index] += 1
        self.learned += 1
        # no serving refresh here: the new id row starts equal to its content row, and heat and
        # weights change at the next step anyway (refreshed in flush)
        if len(self.pending) >= self.cfg.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self._step(batch)
        # heat counts the batch only now, so training saw each item as it was before its events
        # (a positive's own event must not make it look hot to itself)
        self._heat(np.fromiter((b[1] for b in batch), np.int64, len(batch)))
        self._serve()  # with the new weights and heat
        if self.cfg.user_ttl_ms is not None and self.steps % 100 == 0:
            cutoff = self.now - self.cfg.user_ttl_ms
            while self.state and next(iter(self.state.values())).last < cutoff:
                self.state.popitem(last=False)  # least recently seen first
            self.users.expire(self.now)

    def _heat(self, items: npt.NDArray[np.int64]) -> None:
        """Count positives of ``items`` (the latest ``len(items)`` learned, in order) in the
        decayed counts: each adds ``2 ** ((clock - heat_base) / s)``, rebased before overflow."""
        clocks = np.arange(self.learned - len(items) + 1, self.learned + 1, dtype=np.int64)
        limit = 8 * self._scales[0]
        j = 0
        while j < len(items):
            if clocks[j] - self.heat_base > limit:  # rebase at this clock
                self.heat *= 2.0 ** (-(clocks[j] - self.heat_base) / self._scales)
                self.heat_base = int(clocks[j])
            end = int(np.searchsorted(clocks, self.heat_base + limit, side="right"))
            gain = 2.0 ** ((clocks[j:end, None] - self.heat_base) / self._scales)
            np.add.at(self.heat, items[j:end], gain)  # in order, repeats included
            j = end

    def score_all(self, user_id: str) -> F32:
        n = len(self.catalog)
        return self._m[:n] @ self.query(user_id) + self._b[:n]

    def query(self, user_id: str) -> F32:
        """The user's side of the serving product: ``[u, s_h * h_u + s_p * p_u]``."""
        x = self._features([self.state.get(user_id)])[0]
        dt = self.catalog.dim
        q = self._w["sim"][0] * x[dt : 2 * dt] + self._w["sim"][1] * x[:dt]
        return np.concatenate([self._user_vector(user_id, x), q])

    def queries(self, user_ids: list[str | None]) -> F32:
        """:meth:`query` for many users at once (``None``: a user the student never saw)."""
        x = self._features([None if u is None else self.state.get(u) for u in user_ids])
        dt = self.catalog.dim
        w = self._w
        h = np.maximum(x @ w["user_in.weight"].T + w["user_in.bias"], 0.0)
        u = h @ w["user_out.weight"].T + w["user_out.bias"]
        rows = np.array([-1 if k is None else self.users.get(k) for k in user_ids], dtype=np.int64)
        known = rows >= 0
        if known.any():
            u[known] += self.users.weight[torch.from_numpy(rows[known])].numpy()
        q = w["sim"][0] * x[:, dt : 2 * dt] + w["sim"][1] * x[:, :dt]
        return np.concatenate([u, q], axis=1).astype(np.float32)

    def serving_rows(self) -> tuple[F32, F32]:
        """The serving item matrix ``[blended vector, teacher embedding]`` and bias, one row per
        catalog item: :meth:`score_all` is ``rows @ query + bias``."""
        n = len(self.catalog)
        return self._m[:n], self._b[:n]

    def _serve(self, rows: npt.NDArray[np.int64] | None = None) -> None:
        """Recompute serving rows ``[blended vector, teacher embedding]`` and their bias
        (blended bias + freshness), so a request is one matrix-vector product."""
        n = len(self.catalog)
        self._m, self._b = grow(self._m, n), grow(self._b, n)
        d = self.cfg.dim
        if rows is None:  # every row: slices, no fancy-index copies; teacher part is unchanged
            idx: Any = slice(0, n)
        else:
            idx = rows
            self._m[idx, d:] = self.catalog.embeddings[idx]
        a = blend_weight(self.item_n[idx], self.has_id[idx], self.cfg.blend)
        self._m[idx, :d] = a[:, None] * self.item_emb[idx] + (1 - a)[:, None] * self.c_vec[idx]
        fresh = self.fresh_features(idx) @ self._w["fresh.weight"][0]
        self._b[idx] = a * self.item_bias[idx] + (1 - a) * self.c_bias[idx] + fresh

    def fresh_features(self, rows: npt.NDArray[np.int64], clock: int | None = None) -> F32:
        """``[exp(-age / s) for s] + [log1p(decayed positives, half-life s) for s]``."""
        clock = self.learned if clock is None else clock
        age = np.maximum(clock - self.born[rows], 0.0)[:, None] / self._scales
        heat = self.heat[rows] * 2.0 ** (-(clock - self.heat_base) / self._scales)
        return np.concatenate([np.exp(-age), np.log1p(heat)], axis=1).astype(np.float32)

    def user_vector(self, user_id: str) -> F32:
        """``u``: the user tower over profile and history, plus the id embedding if admitted."""
        return self._user_vector(user_id, self._features([self.state.get(user_id)])[0])

    def _user_vector(self, user_id: str, x: F32) -> F32:
        u = user_np(self._w, x)
        row = self.users.get(user_id)
        return u + self.users.weight[row].numpy() if row >= 0 else u

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

    def _features(
        self, states: list[_UserState | None], hists: npt.NDArray[np.int64] | None = None
    ) -> F32:
        """User tower inputs: [profile, mean history embedding, has_profile, has_history].

        ``hists``: one row of catalog indices per state, ``-1`` where empty (default: each
        state's own history)."""
        emb = self.catalog.embeddings
        dt = emb.shape[1]
        x = np.zeros((len(states), 2 * dt + 2), dtype=np.float32)
        for r, st in enumerate(states):
            if st is not None and st.profile is not None:
                x[r, :dt] = st.profile
                x[r, -2] = 1.0
        if hists is None:
            width = max([self.cfg.history, 1] + [len(st.hist) for st in states if st is not None])
            hists = np.full((len(states), width), -1, dtype=np.int64)
            for r, st in enumerate(states):
                if st is not None and st.hist:
                    hists[r, : len(st.hist)] = st.hist
        mask = hists >= 0
        n = mask.sum(1)
        has = np.flatnonzero(n)
        if len(has):  # each row's mean embedding, summed in history order, a column at a time
            total = np.zeros((len(states), dt), dtype=np.float32)
            for j in range(hists.shape[1]):
                rows = np.flatnonzero(mask[:, j])
                if len(rows):
                    total[rows] += emb[hists[rows, j]]
            x[has, dt : 2 * dt] = total[has] / n[has, None].astype(np.float32)
            x[has, -1] = 1.0
        return x

    def _step(self, batch: list[tuple[str, int, list[int]]]) -> None:
        cfg = self.cfg
        factor, left, horizon = self.boosted
        r_users, r_items, r_hist = (
            self._recent_sample(cfg.replay_per_batch, horizon, len(batch))
            if left and horizon
            else self.replay.sample(cfg.replay_per_batch)
        )
        users = [b[0] for b in batch] + r_users
        hist = np.full((len(users), cfg.history), -1, dtype=np.int64)
        for r, b in enumerate(batch):
            hist[r, : len(b[2])] = b[2]
        hist[len(batch) :] = r_hist
        items = torch.from_numpy(np.concatenate([[b[1] for b in batch], r_items]).astype(np.int64))
        n_cat = len(self.catalog)
        neg = torch.randint(0, n_cat, (cfg.negatives,), generator=self.gen)
        cand, inv = torch.unique(torch.cat([items, neg]), return_inverse=True)
        tgt = inv[: len(users)]
        ci = cand.numpy()

        t = torch.from_numpy(self.catalog.embeddings[ci])
        c_vec, c_bias = self.towers.content(t)
        a = torch.from_numpy(blend_weight(self.item_n[ci], self.has_id[ci], cfg.blend))
        e = torch.from_numpy(self.item_emb[ci]).requires_grad_()
        eb = torch.from_numpy(self.item_bias[ci]).requires_grad_()
        # content_loss off (as in ALDI): only distillation teaches the content tower
        cv, cb = (c_vec, c_bias) if cfg.content_loss else (c_vec.detach(), c_bias.detach())
        v = a[:, None] * e + (1 - a)[:, None] * cv
        bias = a * eb + (1 - a) * cb

        x = torch.from_numpy(self._features([self.state.get(u) for u in users], hist))
        rows = torch.tensor([self.users.get(u) for u in users], dtype=torch.int64)
        known = rows >= 0
        urows, uinv = torch.unique(rows[known], return_inverse=True)
        ue = self.users.weight[urows].clone().requires_grad_()
        u = self.towers.user(x)
        u = u.index_put((known.nonzero().flatten(),), ue[uinv], accumulate=True)

        # logQ: expected share of each candidate in the sample (in-batch by popularity + uniform)
        pop = self.item_n[ci] + 1.0
        q = len(users) * pop / (self.item_n[:n_cat].sum() + n_cat) + cfg.negatives / n_cat
        clock = self.learned - len(batch)  # features as they were when the batch began
        fresh = self.fresh_features(ci, clock)
        # replayed rows happened long ago: how fresh an item is *now* says nothing about them
        now_rows = (torch.arange(len(users)) < len(batch)).float()
        f = self.towers.fresh(torch.from_numpy(fresh)).squeeze(-1)
        logq = torch.from_numpy(np.log(q).astype(np.float32))
        dt = t.shape[1]
        sim = self.towers.sim[0] * (x[:, dt : 2 * dt] @ t.T) + self.towers.sim[1] * (
            x[:, :dt] @ t.T
        )
        logits = u @ v.T + bias + sim + now_rows[:, None] * f[None, :] - logq
        loss = F.cross_entropy(logits, tgt)
        if cfg.distill:
            warm = torch.from_numpy(self.has_id[ci] & (self.item_n[ci] >= cfg.distill_min_count))
            if int(warm.sum()) > 1:
                ew, bw = e[warm].detach(), eb[warm].detach()
                cw, cbw = c_vec[warm], c_bias[warm]
                loss = loss + cfg.distill_emb * (
                    ((cw - ew) ** 2).sum(1).mean() + ((cbw - bw) ** 2).mean()
                )
                ud = u.detach()
                p_id = F.softmax(ud @ ew.T + bw, dim=1)
                logp_c = F.log_softmax(ud @ cw.T + cbw, dim=1)
                loss = loss + cfg.distill_rank * F.kl_div(logp_c, p_id, reduction="batchmean")
        # the fresh rows' loss before learning them, over that of a uniform guess among the
        # candidates (a growing catalog must not read as drift): a drift signal
        fresh_loss = F.cross_entropy(logits[: len(batch)].detach(), tgt[: len(batch)])
        self.last_loss = float(fresh_loss) - math.log(len(ci))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self._adagrad(ci, e.grad, eb.grad)
            if ue.grad is not None and len(urows):
                self.users.adagrad_(urows, ue.grad, cfg.lr_sparse * self._lr_factor())
        self.steps += 1
        if left:
            self.boosted = (factor, left - 1, horizon)
            if left == 1:
                self._set_lr(1.0)
        self._w = self.towers.numpy_weights()
        self._refresh()

    def _adagrad(
        self, rows: npt.NDArray[np.int64], g_emb: torch.Tensor | None, g_bias: torch.Tensor | None
    ) -> None:
        if g_emb is None or g_bias is None:
            return
        g = np.concatenate([g_emb.numpy(), g_bias.numpy()[:, None]], axis=1)
        acc = self.item_acc[rows] + g * g
        self.item_acc[rows] = acc
        step = self.cfg.lr_sparse * self._lr_factor() * g / (np.sqrt(acc) + 1e-8)
        self.item_emb[rows] -= step[:, :-1]
        self.item_bias[rows] -= step[:, -1]

    def _refresh(self) -> None:
        """Recompute cached content vectors (all of them, or a rolling slice of a big catalog)."""
        n = len(self.catalog)
        lo, hi = (
            (0, n)
            if n <= self.cfg.refresh_items
            else (self._refresh_at, min(n, self._refresh_at + self.cfg.refresh_items))
        )
        self._refresh_at = 0 if hi >= n else hi
        vec, bias = content_np(self._w, self.catalog.embeddings[lo:hi])
        self.c_vec[lo:hi], self.c_bias[lo:hi] = vec, bias

    # ---- drift adaptation -----------------------------------------------------------------
    def boost(self, factor: float, steps: int, horizon: int = 0) -> None:
        """For the next ``steps`` training steps: both learning rates times ``factor``, and,
        if ``horizon``, replay drawn from the latest ``horizon`` positives (at most
        :data:`RECENT`) instead of the whole-history reservoir. A new boost replaces one that
        is running."""
        if factor <= 0 or steps < 0 or not 0 <= horizon <= RECENT:
            raise ValueError(
                f"boost needs factor > 0, steps >= 0 and 0 <= horizon <= {RECENT}; got "
                f"factor={factor}, steps={steps}, horizon={horizon}"
            )
        self.boosted = (float(factor), int(steps), int(horizon))
        self._set_lr(factor if steps else 1.0)

    def _lr_factor(self) -> float:
        factor, left, _ = self.boosted
        return factor if left else 1.0

    def _set_lr(self, factor: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.cfg.lr_dense * factor

    def _recent_sample(
        self, n: int, horizon: int, skip: int
    ) -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Like :meth:`ReplayBuffer.sample`, from the ``horizon`` positives before the latest
        ``skip`` (the batch being trained, which needs no replay)."""
        end = len(self.recent) - skip
        start = max(0, end - horizon)
        n = min(n, end - start)
        picks = (torch.randperm(end - start, generator=self.gen)[:n] + start).tolist()
        hist = np.full((n, self.cfg.history), -1, dtype=np.int64)
        users, items = [], np.zeros(n, dtype=np.int64)
        for r, j in enumerate(picks):
            user, items[r], h = self.recent[j]
            users.append(user)
            hist[r, : len(h)] = h
        return users, items, hist

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        arrays = (
            "item_emb",
            "item_acc",
            "item_bias",
            "item_n",
            "has_id",
            "c_vec",
            "c_bias",
            "born",
            "heat",
            "known",
            "_m",
            "_b",
        )
        return {
            "config": self.cfg.to_dict(),
            "name": self.name,
            "seed": self.seed,
            "towers": {k: v.clone() for k, v in self.towers.state_dict().items()},
            "opt": copy.deepcopy(self.opt.state_dict()),  # else it shares the moment tensors
            "gen": self.gen.get_state(),
            "users": self.users.state_dict(),
            "user_state": [(k, list(s.hist), s.profile, s.last) for k, s in self.state.items()],
            "replay": self.replay.state_dict(),
            "recent": [(u, i, list(h)) for u, i, h in self.recent],
            "boost": (*self.boosted, self.last_loss),
            "arrays": {k: getattr(self, k).copy() for k in arrays},
            "pending": [(u, i, list(h)) for u, i, h in self.pending],
            "counters": (self.steps, self.learned, self.now, self._refresh_at, self.heat_base),
            "item_ids": list(self.catalog.ids),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.towers.load_state_dict(state["towers"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.users.load_state_dict(state["users"])
        self.load_user_state(state["user_state"])
        self.replay.load_state_dict(state["replay"])
        self.recent = deque(((u, i, list(h)) for u, i, h in state.get("recent", ())), RECENT)
        *boosted, self.last_loss = state.get("boost", (1.0, 0, 0, float("nan")))
        self.boosted = (float(boosted[0]), int(boosted[1]), int(boosted[2]))
        for k, v in state["arrays"].items():
            setattr(self, k, v.copy())
        self.pending = [(u, i, list(h)) for u, i, h in state["pending"]]
        self.steps, self.learned, self.now, self._refresh_at, self.heat_base = state["counters"]
        self._w = self.towers.numpy_weights()

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
            self.c_vec[:n], self.c_bias[:n] = content_np(self._w, self.catalog.embeddings)
            self._serve()
