"""Helpers for the MXNet frontend tests: fixture paths, conversion, onnxruntime runs, comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "mxnet"
CASES: list[str] = json.loads((FIXTURES / "cases.json").read_text())


def files(case: str) -> tuple[Path, Path]:
    """(symbol, params) of a fixture case."""
    return FIXTURES / f"{case}-symbol.json", FIXTURES / f"{case}-0000.params"


def reference(case: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, MXNet outputs) saved by the generator."""
    with np.load(FIXTURES / f"{case}.npz") as ref:
        inputs = {k[4:]: ref[k] for k in ref.files if k.startswith("in__")}
        outputs = {k[5:]: ref[k] for k in ref.files if k.startswith("out__")}
    return inputs, outputs


def run_onnx(model: bytes | str | Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run with onnxruntime (graph optimisations off, so every node runs as converted)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """DESIGN.md fp32 tolerance: max abs error <= 1e-4 of the reference's range."""
    assert got.shape == want.shape, f"{what}: shape {got.shape}, MXNet gave {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, MXNet gave {want.dtype}"
    if want.size == 0:
        return
    span = max(float(want.max()) - float(want.min()), 1e-6)
    err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
    assert err <= 1e-4 * span, f"{what}: max abs error {err:.3g} over range {span:.3g}"
