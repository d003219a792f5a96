"""Convert through the frontend's library API and compare with the original framework, as the pipeline does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecc.converters import tensorflow as frontend
from edgecc.converters.options import ConvertOptions
from edgecc.data import random_feeds
from edgecc.onnxutil import check_model, infer_shapes
from edgecc.opset import convert_opset
from edgecc.ortrun import OrtRunner
from edgecc.verify import TOLERANCE_PRESETS, Tolerance, VerificationReport, compare_samples

__all__ = ["Converted", "TFOptions", "convert_and_verify", "qdq_scales"]


@dataclass(frozen=True)
class TFOptions(ConvertOptions):
    """ConvertOptions plus the TensorFlow fields the frontend reads with getattr (requested for ConvertOptions)."""

    signature: str | None = None
    dequantize: bool = False
    nchw_inputs: tuple[str, ...] = ()


@dataclass
class Converted:
    model: object
    runner: OrtRunner
    report: VerificationReport


def convert_and_verify(
    path: Path | str,
    options: ConvertOptions | None = None,
    *,
    feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
    tolerance: Tolerance | None = None,
) -> Converted:
    """frontend.convert -> opset 17 -> shapes -> checker -> onnxruntime vs frontend.reference on the same feeds."""
    options = options or TFOptions()
    paths = [str(path)]
    model = frontend.convert(paths, options)
    model = infer_shapes(convert_opset(model, 17, path=paths[0]))
    check_model(model, path=paths[0])
    runner = OrtRunner(model, name="converted ONNX")
    reference = frontend.reference(paths, options)
    if tolerance is None:
        tolerance = frontend.default_tolerance(paths, options) or TOLERANCE_PRESETS["fp32"]
    report = compare_samples(reference, runner, list(feeds or random_feeds(runner.inputs, seed=0, count=2)), tolerance)
    return Converted(model, runner, report)


def qdq_scales(model) -> list[np.ndarray]:
    """The scale initializers of every QuantizeLinear/DequantizeLinear node."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consts = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node if n.op_type == "Constant" and n.attribute
    }
    values = {**consts, **inits}
    return [
        np.atleast_1d(values[n.input[1]])
        for n in model.graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[1] in values
    ]
