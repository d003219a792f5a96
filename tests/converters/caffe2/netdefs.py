"""Build Caffe2 NetDefs for tests (with edgecc's schema, whose field numbers the real model files confirm) and run them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgecc.converters.caffe2 import schema
from edgecc.converters.options import ConvertOptions
from edgecc.inputs import InputSpec
from edgecc.pipeline.convert import convert


def arg(name: str, value: Any) -> Any:
    """An Argument: int -> i, float -> f, str/bytes -> s, list of ints/floats -> ints/floats."""
    a = schema.Argument(name=name)
    if isinstance(value, (bool, int, np.integer)):
        a.i = int(value)
    elif isinstance(value, (float, np.floating)):
        a.f = float(value)
    elif isinstance(value, str):
        a.s = value.encode()
    elif isinstance(value, bytes):
        a.s = value
    elif all(isinstance(v, (int, np.integer)) for v in value):
        a.ints.extend(int(v) for v in value)
    else:
        a.floats.extend(float(v) for v in value)
    return a


def op(type_: str, inputs: Sequence[str], outputs: Sequence[str], name: str = "", **args: Any) -> Any:
    """An OperatorDef."""
    o = schema.OperatorDef(type=type_, name=name)
    o.input.extend(inputs)
    o.output.extend(outputs)
    for key, value in args.items():
        o.arg.append(arg(key, value))
    return o


def fill(name: str, value: np.ndarray) -> Any:
    """The GivenTensor*Fill that recreates `value`."""
    value = np.asarray(value)
    shape = list(value.shape)
    if value.dtype == np.float32:
        return op("GivenTensorFill", [], [name], shape=shape, values=[float(v) for v in value.reshape(-1)] or [0.0][:0])
    if value.dtype == np.int32:
        return op("GivenTensorIntFill", [], [name], shape=shape, values=[int(v) for v in value.reshape(-1)])
    if value.dtype == np.int64:
        return op("GivenTensorInt64Fill", [], [name], shape=shape, values=[int(v) for v in value.reshape(-1)])
    if value.dtype == np.bool_:
        return op("GivenTensorBoolFill", [], [name], shape=shape, values=[int(v) for v in value.reshape(-1)])
    raise TypeError(value.dtype)


def net(ops: Sequence[Any], inputs: Sequence[str] = (), outputs: Sequence[str] = (), name: str = "test") -> Any:
    """A NetDef."""
    n = schema.NetDef(name=name)
    n.op.extend(ops)
    n.external_input.extend(inputs)
    n.external_output.extend(outputs)
    return n


def write_pair(
    directory: Path,
    ops: Sequence[Any],
    weights: Mapping[str, np.ndarray],
    inputs: Sequence[str],
    outputs: Sequence[str],
    *,
    init_ops: Sequence[Any] = (),
) -> tuple[Path, Path]:
    """predict_net.pb and init_net.pb in `directory`."""
    init = net([fill(k, v) for k, v in weights.items()] + list(init_ops), outputs=list(weights), name="init")
    if not init.op:
        init.op.append(fill("__unused", np.zeros(1, np.float32)))
    predict = net(ops, list(inputs) + list(weights), outputs, name="predict")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "predict_net.pb").write_bytes(predict.SerializeToString())
    (directory / "init_net.pb").write_bytes(init.SerializeToString())
    return directory / "predict_net.pb", directory / "init_net.pb"


def run_net(
    directory: Path,
    ops: Sequence[Any],
    weights: Mapping[str, np.ndarray],
    feeds: Mapping[str, np.ndarray],
    outputs: Sequence[str],
    *,
    init_ops: Sequence[Any] = (),
    **options: Any,
) -> dict[str, np.ndarray]:
    """Convert the net in-process with the real pipeline, run the ONNX model with onnxruntime."""
    predict, init = write_pair(directory, ops, weights, list(feeds), outputs, init_ops=init_ops)
    specs = tuple(InputSpec(k, tuple(v.shape), str(v.dtype)) for k, v in feeds.items())
    conversion = convert([str(predict), str(init)], ConvertOptions(inputs=specs, **options))
    session = ort.InferenceSession(conversion.model.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    values = session.run(list(outputs), {k: v for k, v in feeds.items() if k in wanted})
    run_net.last_model = conversion.model  # type: ignore[attr-defined]
    return dict(zip(outputs, values))


def assert_close(got: np.ndarray, want: np.ndarray, rel: float = 1e-4) -> None:
    """max abs error <= rel x the reference's range (the project's fp32 tolerance)."""
    assert got.shape == want.shape, (got.shape, want.shape)
    span = max(float(np.max(want) - np.min(want)), 1e-6)
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if want.size else 0.0
    assert err <= rel * span + 1e-6, f"max abs error {err} > {rel} x range {span}"
