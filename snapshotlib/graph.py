"""The snapshot's scoring graph: torch's ONNX export of the student's product and its
co-occurrence term, written once per shape and filled with each snapshot's tables."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from snapshotlib.tables import OPSET

if TYPE_CHECKING:
    import onnx

__all__ = ["padded_rows", "scoring_model"]

F32 = npt.NDArray[np.float32]
_PAD_BIAS = np.float32(-3.0e38)  # padding rows never reach a top-K over real items


_templates: dict[tuple[int, int, int], bytes] = {}
_templates_lock = threading.Lock()


def _template(width: int, k: int, impute: int) -> onnx.ModelProto:
    """torch's export of the scoring graph with the item tables as inputs (cached)."""
    import onnx

    key = (width, k, impute)
    with _templates_lock:
        blob = _templates.get(key)
        if blob is None:
            blob = _templates[key] = _export_template(*key).SerializeToString()
    model = onnx.ModelProto()
    model.ParseFromString(blob)
    return model


def _export_template(width: int, k: int, impute: int) -> onnx.ModelProto:
    import logging
    import warnings

    import torch

    class ScoringGraph(torch.nn.Module):
        """:func:`models.cooc.combine` over the dense product, then the top ``k``: few passes
        over the (batch, rows) scores, the rest touches only the boosted and cold items."""

        def forward(
            self,
            query: torch.Tensor,
            boost_rows: torch.Tensor,
            boost: torch.Tensor,
            items: torch.Tensor,
            bias: torch.Tensor,
            penalty: torch.Tensor,
            cold_rows: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            # one Gemm (transB): faster in ONNX Runtime than MatMul over a transposed copy
            dense = torch.nn.functional.linear(query, items, bias)
            # the leading warm items (penalty: -inf on cold and padding rows) and their boosts
            leaders = torch.topk(dense + penalty, impute, dim=1).indices
            hit = leaders.unsqueeze(2) == boost_rows.unsqueeze(1)
            imputed = ((hit * boost.unsqueeze(1)).sum(dim=(1, 2)) / impute).unsqueeze(1)
            # boosted items get their boost, cold items the imputed one: one scatter
            cold = cold_rows.unsqueeze(0).expand(query.shape[0], -1)
            rows = torch.cat([boost_rows, cold], dim=1)
            add = torch.cat([boost, imputed.expand(-1, cold.shape[1])], dim=1)
            scores = dense.scatter(1, rows, dense.gather(1, rows) + add)
            return torch.topk(scores, k, dim=1)

    n = max(2 * k, 2 * impute, 8)
    example = (
        torch.zeros(2, width),
        torch.zeros(2, 3, dtype=torch.int64),
        torch.zeros(2, 3),
        torch.zeros(n, width),
        torch.zeros(n),
        torch.zeros(n),
        torch.arange(3, dtype=torch.int64),
    )
    batch, rows = torch.export.Dim("batch"), torch.export.Dim("rows", min=max(k, impute))
    boosted, colds = torch.export.Dim("boosted"), torch.export.Dim("cold")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                ScoringGraph(),
                example,
                dynamo=True,
                input_names=[
                    "query",
                    "boost_rows",
                    "boost",
                    "items",
                    "bias",
                    "penalty",
                    "cold_rows",
                ],
                output_names=["scores", "indices"],
                dynamic_shapes={
                    "query": {0: batch},
                    "boost_rows": {0: batch, 1: boosted},
                    "boost": {0: batch, 1: boosted},
                    "items": {0: rows},
                    "bias": {0: rows},
                    "penalty": {0: rows},
                    "cold_rows": {0: colds},
                },
                opset_version=OPSET,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    assert program is not None
    return program.model_proto


def padded_rows(n: int, k_max: int, impute: int) -> int:
    """Rows of a snapshot's item matrix: the catalog, padded to at least ``k_max`` and
    ``impute`` rows, plus one padding row that absent boosts point at."""
    return max(n, k_max, impute) + 1


def scoring_model(
    items: F32, bias: F32, k_max: int, *, cold: npt.NDArray[np.bool_] | None = None, impute: int = 0
) -> onnx.ModelProto:
    """The self-contained scoring graph for ``items`` (n, width), ``bias`` (n,) and the
    co-occurrence term's ``cold`` items and ``impute``: inputs ``query`` (batch, width),
    ``boost_rows`` (batch, m) and ``boost`` (batch, m) (each query's boosted items; unused
    slots point at the last row with boost 0), outputs ``scores`` and ``indices`` (batch,
    k_max); rows past the catalog score ``-3e38``."""
    from onnx import numpy_helper

    n, width = items.shape
    impute = max(impute, 1)
    rows = padded_rows(n, k_max, impute)
    padded_items = np.zeros((rows, width), dtype=np.float32)
    padded_items[:n] = items
    padded = np.full(rows, _PAD_BIAS, dtype=np.float32)
    padded[:n] = bias
    penalty = np.full(rows, -np.inf, dtype=np.float32)  # padding never leads the imputation
    penalty[:n] = 0.0 if cold is None else np.where(cold, -np.inf, 0.0)
    # the cold items, and the last padding row so the list is never empty (ONNX Runtime's
    # Expand does not take an empty dimension); that row stays at -3e38 whatever it is given
    cold_rows = np.append(np.flatnonzero(np.zeros(n) if cold is None else cold), rows - 1)
    model = _template(width, k_max, impute)
    graph = model.graph
    weights: dict[str, npt.NDArray[Any]] = {
        "items": padded_items,
        "bias": padded,
        "penalty": penalty,
        "cold_rows": cold_rows.astype(np.int64),
    }
    keep = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(keep)
    for name, arr in weights.items():
        graph.initializer.append(numpy_helper.from_array(arr, name))
    model.doc_string = "coldstream student: query rows and boosts -> top-K catalog items"
    return model
