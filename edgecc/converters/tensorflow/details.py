"""`edgecc inspect` details of a TensorFlow-family source: inputs, outputs, operators, TFLite quantisation."""

from __future__ import annotations

from collections import Counter
from typing import Any

from edgecc.converters.tensorflow import formats
from edgecc.converters.tensorflow.loading import Source
from edgecc.converters.tensorflow.runtime import quiet

__all__ = ["describe_source", "tflite_tensors"]


def _histogram(names: list[str]) -> list[str]:
    return [f"{k} x{v}" for k, v in sorted(Counter(names).items())]


def _quant_text(detail: dict[str, Any]) -> str:
    params = detail.get("quantization_parameters") or {}
    scales = list(params.get("scales", []))
    zeros = list(params.get("zero_points", []))
    if not scales:
        return "float" if detail["dtype"].__name__.startswith("float") else "not quantised"
    if len(scales) == 1:
        return f"scale {scales[0]:.6g}, zero point {int(zeros[0])}"
    return f"per-channel (axis {params.get('quantized_dimension', 0)}), {len(scales)} scales {min(scales):.3g}..{max(scales):.3g}"


def _tensor_text(detail: dict[str, Any]) -> str:
    shape = "x".join(str(int(d)) if d >= 0 else "?" for d in detail.get("shape_signature", detail["shape"]))
    return f"{detail['name']}: {shape or 'scalar'} {detail['dtype'].__name__} ({_quant_text(detail)})"


def tflite_tensors(interpreter: Any) -> list[dict[str, Any]]:
    """Every tensor of a TFLite model with dtype, shape and quantisation parameters."""
    rows = []
    for detail in interpreter.get_tensor_details():
        params = detail.get("quantization_parameters") or {}
        rows.append({
            "name": detail["name"],
            "dtype": detail["dtype"].__name__,
            "shape": [int(d) for d in detail["shape"]],
            "scales": [float(s) for s in params.get("scales", [])],
            "zero_points": [int(z) for z in params.get("zero_points", [])],
            "quantized_dimension": int(params.get("quantized_dimension", 0)),
        })
    return rows


def _describe_tflite(source: Source) -> dict[str, Any]:
    from edgecc.converters.tensorflow.loading import tflite_interpreter

    interpreter = tflite_interpreter(source.path, delegates=False)
    with quiet():
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
    tensors = tflite_tensors(interpreter)
    quantised = [t for t in tensors if t["scales"]]
    per_channel = [t for t in quantised if len(t["scales"]) > 1]
    dtypes = Counter(t["dtype"] for t in quantised)
    return {
        "kind": formats.KIND_NAMES[formats.TFLITE],
        "inputs": [_tensor_text(d) for d in interpreter.get_input_details()],
        "outputs": [_tensor_text(d) for d in interpreter.get_output_details()],
        "operators": _histogram(ops),
        "tensors": len(tensors),
        "quantised tensors": f"{len(quantised)} ({', '.join(f'{k} x{v}' for k, v in sorted(dtypes.items())) or 'none'}), "
                             f"{len(per_channel)} per-channel",
        "quantisation": [f"{t['name']}: {t['dtype']} " + (
            f"scale {t['scales'][0]:.6g} zero point {t['zero_points'][0]}" if len(t["scales"]) == 1
            else f"per-channel axis {t['quantized_dimension']}, {len(t['scales'])} scales") for t in quantised],
    }


def _describe_keras(source: Source) -> dict[str, Any]:
    model = source.model
    return {
        "kind": formats.KIND_NAMES[source.kind],
        "inputs": [f"{i.name}: {i.shape_text()} {i.dtype}" for i in source.inputs],
        "outputs": list(source.outputs),
        "layers": _histogram([type(layer).__name__ for layer in model.layers]),
        "parameters": int(model.count_params()),
    }


def _describe_graph(source: Source, graph_def: Any) -> dict[str, Any]:
    return {
        "kind": formats.KIND_NAMES[source.kind],
        "inputs": [f"{i.name}: {i.shape_text()} {i.dtype}" for i in source.inputs],
        "outputs": list(source.outputs),
        "operators": _histogram([n.op for n in graph_def.node]),
        "nodes": len(graph_def.node),
    }


def describe_source(source: Source) -> dict[str, Any]:
    """A dict of rows for `edgecc inspect`."""
    if source.kind == formats.TFLITE:
        return _describe_tflite(source)
    if source.kind in (formats.KERAS, formats.KERAS_H5) or (source.kind == formats.TFJS and source.extra.get("tfjs_format") == "layers"):
        details = _describe_keras(source)
    elif source.kind == formats.SAVED_MODEL:
        details = {
            "kind": formats.KIND_NAMES[source.kind],
            "signature": source.extra["signature"],
            "signatures": source.extra["signatures"],
            "inputs": [f"{i.name}: {i.shape_text()} {i.dtype}" for i in source.inputs],
            "outputs": list(source.outputs),
        }
    else:
        details = _describe_graph(source, source.model)
    if source.kind == formats.TFJS:
        details["kind"] = f"{formats.KIND_NAMES[formats.TFJS]} ({source.extra['tfjs_format']} model)"
        details["weights"] = source.extra.get("weights_summary", "")
    return details
