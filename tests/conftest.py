"""Shared test helpers: run the installed `edgecc` entry point, build small real models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


@dataclass
class Result:
    """Outcome of one `edgecc` run."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def edgecc_executable() -> str:
    """The console script installed beside the running Python (the venv's `edgecc`)."""
    candidate = Path(sys.executable).with_name("edgecc")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("edgecc")
    assert found, "the edgecc entry point is not installed (run `make install`)"
    return found


def run_edgecc(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300) -> Result:
    """Run `edgecc ARGS...` as a user would and capture its output."""
    full_env = dict(os.environ)
    full_env.pop("EDGECC_DEBUG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [edgecc_executable(), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def edgecc():
    """The `run_edgecc` helper as a fixture."""
    return run_edgecc


def make_conv_onnx(path: Path | None = None, *, opset: int = 17, batch: int | str = "N", seed: int = 0):
    """A small real ONNX CNN (Conv+Relu+MaxPool+GlobalAveragePool+Gemm) with a dynamic batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv.w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv.b")
    fw = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "fc.w")
    fb = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc.b")
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("MaxPool", ["relu"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])],
        initializer=[w, b, fw, fb],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


@pytest.fixture
def conv_onnx(tmp_path: Path) -> Path:
    """Path of a small ONNX CNN with a dynamic batch dimension."""
    path = tmp_path / "cnn.onnx"
    make_conv_onnx(path)
    return path
