"""Helpers for the Caffe frontend tests: write a prototxt + caffemodel, convert, compare every layer with OpenCV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from edgecc.converters.caffe import convert, layer_reference
from edgecc.converters.caffe.writer import write_caffemodel
from edgecc.converters.options import ConvertOptions
from edgecc.onnxutil import with_outputs
from edgecc.ortrun import OrtRunner
from edgecc.verify import TOLERANCE_PRESETS, compute_metrics

TOLERANCE = TOLERANCE_PRESETS["fp32"]


def write_net(
    tmp_path: Path, prototxt: str, blobs: Mapping[str, tuple[str, Sequence[np.ndarray]]] = {}, name: str = "net"
) -> tuple[Path, Path]:
    """Write `name`.prototxt and `name`.caffemodel (blobs: layer name -> (type, arrays))."""
    proto = tmp_path / f"{name}.prototxt"
    proto.write_text(prototxt)
    model = write_caffemodel(tmp_path / f"{name}.caffemodel", [(layer, kind, arrays) for layer, (kind, arrays) in blobs.items()])
    return proto, model


def run_onnx(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], tensors: Sequence[str]) -> dict[str, np.ndarray]:
    """Every named tensor of the converted model under onnxruntime."""
    runner = OrtRunner(with_outputs(model, list(tensors)), name="converted", optimize=False)
    return runner.run(dict(feeds), list(tensors))


def compare_with_opencv(
    paths: Sequence[Path],
    feeds: Mapping[str, np.ndarray],
    *,
    options: ConvertOptions | None = None,
    tensors: Sequence[str] | None = None,
) -> dict[str, float]:
    """Convert, run ONNX and OpenCV on the same feeds, assert every layer output matches; return max abs errors."""
    options = options or ConvertOptions(framework="caffe")
    sources = tuple(str(p) for p in paths)
    model = convert(sources, options)
    onnx.checker.check_model(model, full_check=True)
    reference = layer_reference(sources, options, tensors)
    names = [o.name for o in reference.outputs]
    expected = reference.run(feeds)
    got = run_onnx(model, feeds, names)
    errors: dict[str, float] = {}
    assert names, "nothing to compare"
    for name in names:
        ref, cand = np.asarray(expected[name]), np.asarray(got[name])
        assert ref.shape == cand.shape, f"{name}: OpenCV shape {ref.shape}, ONNX shape {cand.shape}"
        metrics = compute_metrics(name, ref, cand, TOLERANCE)
        assert metrics.passed, f"{name}: max abs {metrics.max_abs} (OpenCV range {np.ptp(ref) if ref.size else 0})"
        errors[name] = float(metrics.max_abs)
    return errors


def rand(*shape: int, seed: int = 0, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Deterministic uniform float32 data."""
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


def converted_outputs(
    paths: Sequence[Path], feeds: Mapping[str, np.ndarray], tensors: Sequence[str], options: ConvertOptions | None = None
) -> dict[str, np.ndarray]:
    """Convert and run the named tensors under onnxruntime (for layers checked against a numpy oracle)."""
    model = convert(tuple(str(p) for p in paths), options or ConvertOptions(framework="caffe"))
    onnx.checker.check_model(model, full_check=True)
    return run_onnx(model, feeds, tensors)
