"""One training step of the student (:class:`models.student.Student`), kept apart from the
model's state and serving so each file has one job.

The step takes the fresh micro-batch plus replayed interactions, builds the candidates
(in-batch targets and uniform negatives), and minimises the sampled softmax of
``query . row + bias`` with the logQ correction, exactly the product the student serves (see
:mod:`models.student` for the formulas). The freshness term applies to the fresh rows only:
how fresh an item is now says nothing about a replayed event. With distillation on, the
distilled head also learns to reproduce the warm candidates' vectors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from models.towers import bucket

if TYPE_CHECKING:
    from models.student import Student

__all__ = ["adagrad", "replay_rows", "train_step"]

I64 = npt.NDArray[np.int64]


def _attention(pos: torch.Tensor, valid: torch.Tensor, ordered: bool) -> torch.Tensor:
    """Softmax over the valid history positions (by learned position logits, or uniform);
    all zero for an empty history."""
    logits = pos.expand_as(valid) if ordered else torch.zeros(valid.shape)
    att = torch.softmax(logits.masked_fill(~valid, -1e9), dim=1)
    return att * valid


def replay_rows(s: Student, skip: int) -> tuple[list[str], I64, I64]:
    """Replayed interactions for a step: from the reservoir, or during a boost with a
    horizon from the latest ``horizon`` before the ``skip`` being trained."""
    n = s.cfg.replay_per_batch
    _, left, horizon = s.boosted
    if not (left and horizon):
        return s.replay.sample(n)
    end = len(s.recent) - skip
    start = max(0, end - horizon)
    n = min(n, end - start)
    picks = (torch.randperm(end - start, generator=s.gen)[:n] + start).tolist()
    hist = np.full((n, s.cfg.history), -1, dtype=np.int64)
    users, items = [], np.zeros(n, dtype=np.int64)
    for r, j in enumerate(picks):
        user, items[r], h = s.recent[j]
        users.append(user)
        hist[r, : len(h)] = h
    return users, items, hist


def train_step(s: Student, batch: list[tuple[str, int, list[int]]]) -> None:
    cfg, towers, emb = s.cfg, s.towers, s.catalog.embeddings
    r_users, r_items, r_hist = replay_rows(s, len(batch))
    users = [b[0] for b in batch] + list(r_users)
    rows_n, fresh_n = len(users), len(batch)
    hist = np.full((rows_n, cfg.history), -1, dtype=np.int64)
    for r, b in enumerate(batch):
        hist[r, : len(b[2])] = b[2]
    hist[fresh_n:] = r_hist
    batch_items = np.fromiter((b[1] for b in batch), np.int64, fresh_n)
    items = np.concatenate([batch_items, r_items]).astype(np.int64)
    n_cat = len(s.catalog)
    counts = s.n[:n_cat].copy()  # as they were when the batch began
    np.subtract.at(counts, batch_items, 1.0)
    clock = s.learned - fresh_n
    if s.batch_began is not None:  # other ranks' events counted since (models.distributed)
        n0, clock = s.batch_began
        k = min(len(n0), n_cat)
        counts[:k] = n0[:k]

    neg = torch.randint(0, n_cat, (cfg.negatives,), generator=s.gen).numpy()
    cand, inv = np.unique(np.concatenate([items, neg]), return_inverse=True)
    tgt = torch.from_numpy(inv[:rows_n])
    valid = hist >= 0
    rows = np.union1d(cand, hist[valid])  # every id row the step touches, once
    cpos = torch.from_numpy(np.searchsorted(rows, cand))
    hpos = torch.from_numpy(np.searchsorted(rows, np.where(valid, hist, rows[0])))

    e = torch.from_numpy(s.emb[rows]).requires_grad_()
    eb = torch.from_numpy(s.bias[rows]).requires_grad_()
    a = torch.from_numpy(s._alpha(counts[rows]))
    if cfg.content:
        cv, cb, hidden = towers.content(torch.from_numpy(emb[cand]))
    else:
        cv, cb, hidden = torch.zeros(len(cand), cfg.dim), torch.zeros(len(cand)), None
    if hidden is not None:  # brand-new items: the cold head; the others: the residual head
        # the cold head learns on its own, never through the turn towards the distilled
        # direction that serving adds: through it, it learned to cancel the turn
        # (README, "The learning core")
        new = torch.from_numpy(counts[cand] == 0)
        rv, rb = towers.residual(hidden)
        cv, cb = torch.where(new[:, None], cv, rv), torch.where(new, cb, rb)
    ac = a[cpos]
    v = ac[:, None] * e[cpos] + (1 - ac)[:, None] * cv
    bias = ac * eb[cpos] + (1 - ac) * cb

    # queries: attention over the history's item vectors (cached heads: no gradient)
    cached, _ = s.content_share(rows, counts[rows])
    ctx = a[:, None] * e + (1 - a)[:, None] * torch.from_numpy(cached)
    valid_t = torch.from_numpy(valid)
    att = _attention(towers.pos, valid_t, cfg.sequence)
    q = torch.bmm(att[:, None, :], ctx[hpos]).squeeze(1)
    no_hist = (~valid_t.any(1)).float()
    q = q + no_hist[:, None] * towers.u0
    profiles = np.zeros((rows_n, emb.shape[1]), dtype=np.float32)
    has_profile = np.zeros(rows_n, dtype=np.float32)
    for r, u in enumerate(users):
        st = s.state.get(u)
        if st is not None and st.profile is not None:
            profiles[r], has_profile[r] = st.profile, 1.0
    prof, has_p = torch.from_numpy(profiles), torch.from_numpy(has_profile)[:, None]
    if cfg.content and has_profile.any():
        q = q + has_p * towers.profile(prof)
    urows = np.array([s.users.get(u) for u in users], dtype=np.int64)
    known = urows >= 0
    uniq, uinv = np.unique(urows[known], return_inverse=True)
    ue = s.users.weight[torch.from_numpy(uniq)].clone().requires_grad_()
    if len(uniq):
        q = q.index_put((torch.from_numpy(np.flatnonzero(known)),), ue[uinv], accumulate=True)

    cand_bucket = torch.from_numpy(bucket(counts[cand]))  # gate and boost weights per bucket
    if cfg.content:  # the teacher channel, gated per count bucket on the item side
        tp = torch.from_numpy(s.tp)
        hist_tp = tp[torch.from_numpy(np.maximum(hist, 0))]
        tx = towers.sim[0] * torch.bmm(att[:, None, :], hist_tp).squeeze(1)
        tx = tx + towers.sim[1] * has_p * (prof @ towers.proj.T)
        gate = towers.gate[cand_bucket]
        # one product over the whole served row: [q, tx] . [v, gate * P t]
        rows_c = torch.cat([v, tp[torch.from_numpy(cand)] * gate[:, None]], 1)
        logits = torch.addmm(bias, torch.cat([q, tx], 1), rows_c.T)
    else:
        logits = torch.addmm(bias, q, v.T)
    feats = s.fresh.features(cand, clock)  # as the batch began
    now_rows = (torch.arange(rows_n) < fresh_n).float()
    ft = torch.from_numpy(feats)  # and for a query with no history, its weights added
    fresh = towers.fresh(ft).squeeze(-1) + no_hist[:, None] * towers.fresh_new(ft).squeeze(-1)
    logits = logits + now_rows[:, None] * fresh
    # logQ: each candidate's expected share of the sample (in-batch by popularity + uniform)
    pop = counts[cand] + 1.0
    share = rows_n * pop / (counts.sum() + n_cat) + cfg.negatives / n_cat
    logits = logits - torch.from_numpy(np.log(share).astype(np.float32))

    loss = F.cross_entropy(logits, tgt)
    if s._batch_boosts:  # the boost weights: the sampled fresh rows' boosts vs dense scores
        rows_b = sorted(s._batch_boosts)  # positions in the fresh batch
        bm = np.zeros((len(rows_b), len(cand)), dtype=np.float32)
        for k, r in enumerate(rows_b):
            bi, bb = s._batch_boosts[r]
            pos = np.searchsorted(cand, bi)
            ok = pos < len(cand)
            ok[ok] = cand[pos[ok]] == bi[ok]
            bm[k, pos[ok]] = bb[ok]
        wc = torch.exp(towers.cooc_log[cand_bucket])
        comb = logits[rows_b].detach() + torch.from_numpy(bm) * wc
        loss = loss + F.cross_entropy(comb, tgt[rows_b])
    if cfg.distill and hidden is not None:
        warm = torch.from_numpy(counts[cand] >= cfg.distill_min_count)
        if bool(warm.any()):
            predicted = towers.distilled(hidden[warm].detach())
            loss = loss + cfg.distill_weight * ((predicted - v[warm].detach()) ** 2).sum(1).mean()
    # the fresh rows' loss before learning them, over that of a uniform guess among the
    # candidates (a growing catalog must not read as drift): the drift monitor's loss signal
    fresh_loss = F.cross_entropy(logits[:fresh_n].detach(), tgt[:fresh_n])
    s.last_loss = float(fresh_loss) - math.log(len(cand))
    s.opt.zero_grad()
    loss.backward()
    s.opt.step()
    with torch.no_grad():
        adagrad(s, rows, e.grad, eb.grad)
        if ue.grad is not None and len(uniq):
            s.users.adagrad_(torch.from_numpy(uniq), ue.grad, cfg.lr_user * s.lr_factor())


def adagrad(s: Student, rows: I64, g_emb: torch.Tensor | None, g_bias: torch.Tensor | None) -> None:
    """Sparse Adagrad on the id rows ``rows`` (unique) with their summed gradients."""
    lr = s.cfg.lr_sparse * s.lr_factor()
    if g_emb is not None:
        g = g_emb.numpy()
        acc = s.emb_acc[rows] + g * g
        s.emb_acc[rows] = acc
        s.emb[rows] -= lr * g / (np.sqrt(acc) + 1e-8)
    if g_bias is not None:
        gb = g_bias.numpy()
        accb = s.bias_acc[rows] + gb * gb
        s.bias_acc[rows] = accb
        s.bias[rows] -= lr * gb / (np.sqrt(accb) + 1e-8)
