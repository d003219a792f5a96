"""Helpers for the pass tests: build small ONNX graphs, run passes, compare with onnxruntime on the original."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgecc.passes import PassContext
from edgecc.passes.manager import OptimizeReport, run_passes

F = TensorProto.FLOAT
RTOL = 1e-5  # max abs error allowed, relative to the range of the reference output


def const(name: str, array: object, dtype: type = np.float32) -> onnx.TensorProto:
    """An initializer from an array-like."""
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)


def rand(shape: Sequence[int], seed: int = 0, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[tuple[str, Sequence[int | str] | None]] | Sequence[onnx.ValueInfoProto],
    outputs: Sequence[tuple[str, Sequence[int | str] | None]] | Sequence[onnx.ValueInfoProto],
    initializers: Iterable[onnx.TensorProto] = (),
    *,
    opset: int = 17,
    ir_version: int = 8,
    check: bool = True,
) -> onnx.ModelProto:
    """A checked float model; inputs/outputs as (name, shape) pairs (shape None = unknown) or ValueInfoProtos."""

    def info(item: object) -> onnx.ValueInfoProto:
        if isinstance(item, onnx.ValueInfoProto):
            return item
        name, shape = item  # type: ignore[misc]
        return helper.make_tensor_value_info(name, F, shape)

    graph = helper.make_graph(
        list(nodes), "g", [info(i) for i in inputs], [info(o) for o in outputs], initializer=list(initializers)
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def ops(model: onnx.ModelProto) -> dict[str, int]:
    """Op histogram."""
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def feeds_for(model: onnx.ModelProto, seed: int = 0, shapes: dict[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Random inputs for every graph input that is not an initializer (dynamic dims become 2)."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        if shapes and value.name in shapes:
            shape = list(shapes[value.name])
        else:
            shape = [d.dim_value if d.HasField("dim_value") else 2 for d in value.type.tensor_type.shape.dim]
        elem = value.type.tensor_type.elem_type
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        feeds[value.name] = rng.uniform(-2.0, 2.0, size=shape).astype(dtype)
    return feeds


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run with onnxruntime's CPU provider, graph optimisations off (so onnxruntime does not rewrite either)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_same_outputs(
    original: onnx.ModelProto,
    optimized: onnx.ModelProto,
    *,
    seeds: Sequence[int] = (0, 1),
    rtol: float = RTOL,
    shapes: dict[str, Sequence[int]] | None = None,
) -> None:
    """Outputs of `optimized` equal those of `original` (onnxruntime) within rtol x range, same names, shapes, dtypes."""
    assert [o.name for o in optimized.graph.output] == [o.name for o in original.graph.output]
    assert [i.name for i in optimized.graph.input if i.name not in {t.name for t in optimized.graph.initializer}] == [
        i.name for i in original.graph.input if i.name not in {t.name for t in original.graph.initializer}
    ]
    for seed in seeds:
        feeds = feeds_for(original, seed, shapes)
        expected = ort_run(original, feeds)
        actual = ort_run(optimized, feeds)
        for name, e, a in zip((o.name for o in original.graph.output), expected, actual):
            assert a.shape == e.shape, f"{name}: shape {a.shape} != {e.shape}"
            assert a.dtype == e.dtype, f"{name}: dtype {a.dtype} != {e.dtype}"
            finite = np.isfinite(e)
            np.testing.assert_array_equal(np.isfinite(a), finite, err_msg=f"{name}: inf/nan positions differ")
            if not finite.any():
                continue
            e64, a64 = e.astype(np.float64), a.astype(np.float64)
            span = float(e64[finite].max() - e64[finite].min())
            bound = rtol * max(span, 1e-6)
            err = float(np.abs(e64[finite] - a64[finite]).max())
            assert err <= bound, f"{name}: max abs error {err:.3g} > {bound:.3g} (rtol {rtol} x range {span:.3g})"


def optimize(
    model: onnx.ModelProto, names: Sequence[str], *, opset: int | None = None, max_iterations: int = 4, **context: object
) -> tuple[onnx.ModelProto, OptimizeReport]:
    """Run passes on a copy; the result must pass the ONNX checker; the input must be left as it was."""
    before = model.SerializeToString()
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    result, report = run_passes(copy, list(names), context=PassContext(opset=opset, **context), max_iterations=max_iterations)
    assert copy.SerializeToString() == before, "run_passes modified its input model"
    onnx.checker.check_model(result, full_check=True)
    return result, report


def check_rewrite(
    model: onnx.ModelProto,
    names: str | Sequence[str],
    expected_ops: dict[str, int],
    *,
    opset: int | None = None,
    shapes: dict[str, Sequence[int]] | None = None,
    rtol: float = RTOL,
    ignore: Sequence[str] = (),
) -> onnx.ModelProto:
    """Run passes, assert the op histogram afterwards (without the `ignore` ops) and that the outputs did not change."""
    names = [names] if isinstance(names, str) else list(names)
    result, _ = optimize(model, names, opset=opset)
    assert {k: v for k, v in ops(result).items() if k not in ignore} == expected_ops, (
        f"ops after {names}: {ops(result)} (before: {ops(model)})"
    )
    assert_same_outputs(model, result, shapes=shapes, rtol=rtol)
    return result


def check_unchanged(
    model: onnx.ModelProto,
    names: str | Sequence[str],
    *,
    opset: int | None = None,
    shapes: dict[str, Sequence[int]] | None = None,
) -> onnx.ModelProto:
    """Run passes, assert the op histogram did not change and the outputs are equal."""
    return check_rewrite(model, names, ops(model), opset=opset, shapes=shapes)


def node(op: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: object) -> onnx.NodeProto:
    """A named node (name = first output)."""
    return helper.make_node(op, list(inputs), list(outputs), name=f"{op.lower()}_{outputs[0]}", **attrs)
