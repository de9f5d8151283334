"""ONNX snapshots: parity with the student, the atomic versioned store, hashes and signatures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from exporters.snapshot import SnapshotExporter, newest_event_ts, serving_tables
from models.cooc import combine
from models.student import Student
from serving.scorer import Scorer
from snapshotlib.exceptions import SnapshotError
from snapshotlib.store import SnapshotStore, open_snapshot
from snapshotlib.tables import LATEST, Snapshot
from tests.snapshot_support import trained_student

K = 50


@pytest.fixture(scope="module")
def student() -> Student:
    return trained_student()[0]


def _write(store: SnapshotStore, student: Student, k: int = K) -> Snapshot:
    return store.write(
        serving_tables(student),
        k_max=k,
        events_seen=student.learned,
        newest_event_ts=newest_event_ts(student),
        offsets={("t.interactions", 0): 123},
    )


def test_onnx_scores_match_torch_and_the_student(student: Student, tmp_path: Path) -> None:
    snap = SnapshotStore(tmp_path).open(_write(SnapshotStore(tmp_path), student).path.name)
    t = snap.tables
    scorer = Scorer(snap, provider="cpu")
    rows = list(range(len(t.user_ids) + 1))  # every user, then the cold row
    # the scorer's co-occurrence boosts, from the snapshot's copy of the memory, are the
    # student's own, to the bit, and most users have some
    for r, user in enumerate(t.user_ids):
        for got, want in zip(scorer.boosts(r), student.cooc_boost(user), strict=True):
            np.testing.assert_array_equal(got, want)
    assert sum(len(scorer.boosts(r)[0]) > 0 for r in rows) > len(rows) // 2
    boost_rows, boost = scorer.boost_inputs(rows)
    sess = ort.InferenceSession(snap.model, providers=["CPUExecutionProvider"])
    feeds = {"query": t.queries, "boost_rows": boost_rows, "boost": boost}
    onnx_scores, onnx_idx = sess.run(None, feeds)
    # torch and numpy, same tables: the dense product, then the co-occurrence term
    impute = snap.manifest["dims"]["cooc"]["impute"]
    with torch.no_grad():
        dense = (torch.tensor(t.queries) @ torch.tensor(t.items).T + torch.tensor(t.bias)).numpy()
        full = np.stack([combine(dense[r], *scorer.boosts(r), t.cold, impute) for r in rows])
        torch_scores, torch_idx = torch.topk(torch.tensor(full), K, dim=1)
    scale = float(np.abs(torch_scores.numpy()).max())
    assert np.abs(onnx_scores - torch_scores.numpy()).max() <= 1e-4 * scale
    assert (onnx_idx == torch_idx.numpy()).mean() > 0.999  # ties may swap, nothing else
    # and it is what the student itself ranks: score_all for every user in the snapshot
    ref = np.stack([student.score_all(u) for u in t.user_ids])
    ref_top = np.argsort(-ref, axis=1, kind="stable")[:, :K]
    assert (onnx_idx[:-1] == ref_top).mean() > 0.999
    got = np.take_along_axis(ref, onnx_idx[:-1], axis=1)
    assert np.abs(got - onnx_scores[:-1]).max() <= 1e-4 * np.abs(ref).max()
    # the cold row is the student's answer for a user it never saw
    cold = student.score_all("nobody-ever")
    assert np.allclose(np.sort(cold)[::-1][:K], onnx_scores[-1], rtol=1e-4, atol=1e-5)


def test_manifest_names_everything(student: Student, tmp_path: Path) -> None:
    snap = _write(SnapshotStore(tmp_path), student)
    m = json.loads((snap.path / "manifest.json").read_text())
    assert m["version"] == 1 and m["events_seen"] == student.learned
    assert m["newest_event_ts"] == newest_event_ts(student) > 0
    assert m["offsets"] == [{"topic": "t.interactions", "partition": 0, "offset": 123}]
    assert m["dims"]["items"] == len(student.catalog) and m["dims"]["k_max"] == K
    assert m["opset"] >= 17 and "signature" not in m
    assert set(m["files"]) == {
        "model.onnx",
        "items.json",
        "users.json",
        "users.npy",
        "history.npy",
        "cooc_indptr.npy",
        "cooc_rows.npy",
        "cooc_counts.npy",
        "cooc_n.npy",
    }
    assert m["dims"]["cooc"]["pairs"] > 0 and m["dims"]["rows"] > m["dims"]["items"]
    weights = student.boost_weights()
    assert weights is not None  # learned boost weights travel to serve, float32-exact
    assert np.array_equal(np.asarray(m["dims"]["cooc"]["bucket_weights"], np.float32), weights)


def test_versions_latest_and_pruning(student: Student, tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    assert store.latest() is None
    with pytest.raises(SnapshotError, match="no snapshot"):
        store.open()
    for _ in range(4):
        _write(store, student)
    assert store.versions() == [3, 4] and store.latest() == "00000004"
    assert store.open().version == 4
    assert not list(tmp_path.glob(".*-*")), "no temporary directory left behind"
    # a restarted exporter continues the numbering
    assert _write(SnapshotStore(tmp_path, keep=2), student).version == 5


def test_tampered_model_or_manifest_is_refused(student: Student, tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, key=b"secret")
    snap = _write(store, student)
    path = snap.path
    assert open_snapshot(path, key=b"secret").version == 1
    with pytest.raises(SnapshotError, match="signature"):
        open_snapshot(path, key=b"wrong key")

    model = tmp_path / "model-copy"
    shutil.copytree(path, model)
    blob = bytearray((model / "model.onnx").read_bytes())
    blob[-10] ^= 0xFF
    (model / "model.onnx").write_bytes(bytes(blob))
    with pytest.raises(SnapshotError, match="sha256"):
        open_snapshot(model, key=b"secret")

    edited = tmp_path / "manifest-copy"
    shutil.copytree(path, edited)
    m = json.loads((edited / "manifest.json").read_text())
    m["files"]["model.onnx"] = "0" * 64
    (edited / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SnapshotError, match="signature"):
        open_snapshot(edited, key=b"secret")
    del m["signature"]
    (edited / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SnapshotError, match="unsigned"):
        open_snapshot(edited, key=b"secret")
    with pytest.raises(SnapshotError, match="sha256"):  # without a key the hashes still count
        open_snapshot(edited)


def test_scorer_answers_skip_history_and_know_cold_users(student: Student, tmp_path: Path) -> None:
    snap = SnapshotStore(tmp_path).open(_write(SnapshotStore(tmp_path), student).path.name)
    scorer = Scorer(snap, provider="cpu")
    assert scorer.provider == "CPUExecutionProvider"
    user = next(u for u in snap.tables.user_ids if student.state.get(u) and student.state[u].hist)
    known, cold = scorer.recommend([user, "never-seen"], 20)
    assert known.known and not cold.known
    assert len(known.items) == len(cold.items) == 20
    seen = {student.catalog.ids[i] for i in student.state[user].hist}
    assert not seen & {i for i, _ in known.items}
    scores = [s for _, s in known.items]
    assert scores == sorted(scores, reverse=True)
    # /score agrees with the ranking, and unknown items score None
    ids = [i for i, _ in known.items[:3]]
    got = scorer.score(user, [*ids, "no-such-item"])
    assert got[-1] is None
    assert np.allclose(got[:3], scores[:3], rtol=1e-4)
    similar = scorer.similar(ids[0], 5)
    assert similar is not None and len(similar) == 5 and ids[0] not in {i for i, _ in similar}
    assert scorer.similar("no-such-item", 5) is None


def test_cuda_is_asked_for_full_float32(
    student: Student, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ORT's CUDA provider uses TF32 by default; on an H100 that changed top-20 orders against
    the CPU. The scorer asks for CUDA with TF32 off (and reads back what it got)."""
    import serving.scorer as scorer_module

    snap = SnapshotStore(tmp_path).open(_write(SnapshotStore(tmp_path), student).path.name)
    asked: list[object] = []
    real = ort.InferenceSession

    def session(model: object, sess_options: object = None, providers: object = None) -> object:
        asked.append(providers)
        return real(model, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(scorer_module, "available_providers", lambda: ["CUDAExecutionProvider"])
    monkeypatch.setattr(scorer_module.ort, "InferenceSession", session)
    scorer = Scorer(snap, provider="auto")
    assert asked[0] == [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    assert scorer.provider == "CPUExecutionProvider"  # read back, not assumed


def test_small_catalog_is_padded_not_recompiled(tmp_path: Path) -> None:
    student = trained_student(events=300, items=30, users=20)[0]
    snap = SnapshotStore(tmp_path).open(_write(SnapshotStore(tmp_path), student, k=100).path.name)
    rec = Scorer(snap, provider="cpu").recommend(["never-seen"], 100)[0]
    assert len(rec.items) == len(student.catalog)  # every real item, no padding row


def test_teacher_rank_narrows_the_matrix(student: Student) -> None:
    exact = serving_tables(student)
    narrow = serving_tables(student, teacher_rank=8)
    assert narrow.width == student.cfg.dim + 8 + 1 < exact.width  # + the new-user column
    np.testing.assert_array_equal(narrow.items[:, -1], exact.items[:, -1])
    ref = exact.queries @ exact.items.T + exact.bias
    approx = narrow.queries @ narrow.items.T + narrow.bias
    top_ref = np.argsort(-ref, axis=1)[:, :20]
    top_approx = np.argsort(-approx, axis=1)[:, :20]
    overlap = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(top_ref, top_approx, strict=True)])
    assert overlap > 0.5  # approximate, not arbitrary (measured numbers: README)


def test_exporter_records_metrics_and_announces(student: Student, tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from exporters.metrics import WorkerMetrics

    reg = CollectorRegistry()
    exporter = SnapshotExporter(
        SnapshotStore(tmp_path), k_max=K, metrics=WorkerMetrics.create(reg), teacher="hashing"
    )
    snap = exporter.export(student)
    msg = json.loads(exporter.announcement(snap))
    assert msg["version"] == 1 and msg["dir"] == "00000001"
    assert reg.get_sample_value("coldstream_snapshot_version") == 1.0
    assert reg.get_sample_value("coldstream_snapshot_export_seconds_count") == 1.0
    assert (tmp_path / LATEST).read_text() == "00000001"


@pytest.mark.parametrize("colds", [[], [3], [3, 7, 11]])
def test_the_graph_computes_the_cooccurrence_term_like_numpy(colds: list[int]) -> None:
    from snapshotlib.graph import padded_rows, scoring_model

    n, width, k, impute = 40, 8, 10, 5
    rng = np.random.default_rng(len(colds))
    items = rng.standard_normal((n, width)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    cold = np.zeros(n, dtype=np.bool_)
    cold[colds] = True
    sess = ort.InferenceSession(
        scoring_model(items, bias, k, cold=cold, impute=impute).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    pad = padded_rows(n, k, impute) - 1
    queries = rng.standard_normal((3, width)).astype(np.float32)
    warm = np.flatnonzero(~cold)
    boosts = [rng.choice(warm, m, replace=False) for m in (0, 4, 9)]  # ragged, padded below
    rows = np.full((3, 9), pad, dtype=np.int64)
    vals = np.zeros((3, 9), dtype=np.float32)
    for j, b in enumerate(boosts):
        rows[j, : len(b)] = b
        vals[j, : len(b)] = rng.uniform(0.5, 6.0, len(b))
    scores, idx = sess.run(None, {"query": queries, "boost_rows": rows, "boost": vals})
    for j, b in enumerate(boosts):
        want = combine(
            items @ queries[j] + bias, rows[j, : len(b)], vals[j, : len(b)], cold, impute
        )
        top = np.argsort(-want, kind="stable")[:k]
        assert idx[j].tolist() == top.tolist()
        np.testing.assert_allclose(scores[j], want[top], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xfe\x00garbage", b"../00000001", b"12 13", b"\xd9\xa3"],  # last: Arabic 3
)
def test_a_damaged_latest_is_a_clear_error_and_the_writer_repairs_it(
    student: Student, tmp_path: Path, garbage: bytes
) -> None:
    store = SnapshotStore(tmp_path)
    _write(store, student)
    (tmp_path / LATEST).write_bytes(garbage)
    with pytest.raises(SnapshotError, match="not a version name") as info:
        store.latest()
    assert info.value.reason == "latest"
    with pytest.raises(SnapshotError, match="not a version name"):
        store.open()
    # the next export numbers on from the directories and points LATEST at itself again
    assert _write(store, student).version == 2
    assert store.latest() == "00000002" and store.open().version == 2
    (tmp_path / LATEST).write_bytes(b"  \n")
    assert store.latest() is None  # empty: as before the first snapshot
