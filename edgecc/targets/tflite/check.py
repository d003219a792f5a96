"""`compare_with_onnx`: the TFLite interpreter and onnxruntime on the same ONNX partition and the same feeds.

The criteria are edgecc.verify's: float artifacts by the fp32 preset, quantised outputs in quantisation steps of
each output's scale (>= 99.9 % of the elements within 1 step, every element within 2; the 0/1/2/>2 histogram is
reported). Where onnxruntime runs int8 with its reference kernels (`edgecc.ortint8`: a CPU whose fused kernels
saturate and whose graph cannot be run unsigned), the reference is a float emulation of the QDQ graph, not an integer
implementation: the outputs of a quantised partition are then held to the "emulated_steps" preset (>= 99 % of the
elements within one step, no bound on the largest difference) or, float outputs, to "emulated" (cosine >= 0.9999).
`agreement_report` turns that verification into the JSON entry the manifest stores (Arm NN uses it too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edgecc.targets.tflite.emit import TfliteArtifact

__all__ = ["agreement_report", "compare_with_onnx", "integer_layers"]


def agreement_report(
    candidate: Sequence[Mapping[str, np.ndarray]],
    reference: Sequence[Mapping[str, np.ndarray]],
    steps: Mapping[str, float | None],
    *,
    reference_kernels: str = "fused",
    quantized: bool | None = None,
    integer_layers: int = 0,
    float_outputs: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Per-output agreement of two runs of the same partition over the same samples (`steps`: output -> step, None: float;
    `reference_kernels`: how onnxruntime ran int8, `OrtRunner.int8_kernels`; `quantized`: whether the partition computes
    in integers, by default whether an output has a step; `integer_layers`: its integer compute layers, beyond
    `DEEP_INTEGER_LAYERS` of which a stepped output that misses the steps rule may pass the "deep_integer" preset;
    `float_outputs`: the float partition's outputs on the same samples, against which a stepped output that still
    fails passes when the candidate is as accurate as the reference, within `DEEP_SQNR_MARGIN_DB`)."""
    from edgecc.verify import (
        DEEP_INTEGER_LAYERS,
        DEEP_SQNR_MARGIN_DB,
        METRICS_ONLY,
        TOLERANCE_PRESETS,
        compare_outputs,
        tolerance_for,
    )

    quantized = any(steps.values()) if quantized is None else quantized
    emulated = reference_kernels == "reference" and quantized
    deep = quantized and integer_layers > DEEP_INTEGER_LAYERS
    tolerances = {
        name: (TOLERANCE_PRESETS["emulated_steps" if step else "emulated"] if emulated else None)
        or (tolerance_for("int8", "int8") if step else tolerance_for("fp32"))
        for name, step in steps.items()
    }
    report = compare_outputs(list(reference), list(candidate), tolerances, names=list(steps), steps=steps)
    outputs = [_entry(metrics) for metrics in report.outputs]

    def failing() -> list[str]:
        return [e["name"] for e in outputs if not e["passed"] and e["kind"] == "int8"]

    if deep and not emulated and failing():  # rounding drift through many layers: within 4 % of the scale
        names = failing()
        drift = TOLERANCE_PRESETS["deep_integer"]
        rejudged = compare_outputs(list(reference), list(candidate), {n: drift for n in names}, names=names, steps=steps)
        for metrics in rejudged.outputs:
            if metrics.passed:
                index = next(i for i, e in enumerate(outputs) if e["name"] == metrics.name)
                outputs[index] = {**_entry(metrics), "reason": f"within 4 % of the scale after {integer_layers} integer layers"}
    if quantized and float_outputs is not None and failing():  # as accurate against the float partition as the reference
        names = failing()
        against_float = {
            side: {m.name: m.sqnr_db for m in compare_outputs(list(float_outputs), list(run), METRICS_ONLY, names=names).outputs}
            for side, run in (("candidate", candidate), ("reference", reference))
        }
        for entry in outputs:
            if entry["name"] not in names:
                continue
            ours, theirs = against_float["candidate"][entry["name"]], against_float["reference"][entry["name"]]
            entry["float_sqnr_db"] = {"candidate": ours, "reference": theirs}
            if ours >= theirs - DEEP_SQNR_MARGIN_DB:
                entry["passed"] = True
                entry["reason"] = (
                    f"{entry['reason']}, but as close to the float partition as the reference "
                    f"(SQNR {ours:.1f} dB vs {theirs:.1f} dB, {integer_layers} integer layers)"
                )
    passed = all(e["passed"] for e in outputs)
    result = {"passed": passed, "outputs": outputs, "reference_int8_kernels": reference_kernels}
    if deep:
        result["integer_layers"] = integer_layers
    return result


#: ONNX ops that compute (round) in integers when quantised; data movement (Reshape, Transpose, Concat) does not
_INTEGER_LAYER_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "AveragePool",
        "GlobalAveragePool",
        "ReduceMean",
        "Sigmoid",
        "Tanh",
        "HardSwish",
        "HardSigmoid",
        "LeakyRelu",
        "PRelu",
        "Softmax",
        "Resize",
        "Erf",
        "Gelu",
    }
)


def integer_layers(model: onnx.ModelProto) -> int:
    """How many nodes of a QDQ partition compute (and so round) in integers: the depth criterion of `agreement_report`."""
    return sum(1 for node in model.graph.node if node.op_type in _INTEGER_LAYER_OPS)


def _entry(metrics: Any) -> dict[str, Any]:
    """One output's JSON entry from its OutputMetrics."""
    return {
        "name": metrics.name,
        "kind": "int8" if metrics.step else "float",
        "elements": int(_elements(metrics.shape)),
        **{k: v for k, v in metrics.to_dict().items() if k not in ("name", "shape")},
    }


def _elements(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def compare_with_onnx(
    tflite: TfliteArtifact | bytes,
    onnx_model: onnx.ModelProto,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    float_model: onnx.ModelProto | None = None,
) -> dict[str, Any]:
    """Run the TFLite interpreter and onnxruntime on `onnx_model` with the same `feeds`; JSON-ready report with `passed`.

    `float_model`: the float partition `onnx_model` was quantised from (the accuracy anchor of deep integer partitions,
    see `agreement_report`)."""
    import numpy as np

    from edgecc.ortrun import OrtRunner
    from edgecc.targets.tflite.runner import TfliteRunner

    data = tflite if isinstance(tflite, (bytes, bytearray)) else tflite.data
    runner = TfliteRunner(data, name="TFLite artifact")
    ort = OrtRunner(onnx_model, name="ONNX partition")
    names = [o.name for o in runner.outputs]
    steps: dict[str, float | None] = {}
    for entry in runner.meta["outputs"]:
        steps[entry["name"]] = entry.get("step") if runner.meta.get("quantized") else None
        if entry["onnx_dtype"] in ("int8", "uint8"):
            steps[entry["name"]] = 1.0  # integer outputs: compare the integers themselves
    got, ref = [], []
    for feed in feeds:
        inputs = {i.name: np.asarray(feed[i.name]) for i in runner.inputs}
        ort_inputs = {}
        for info in ort.inputs:
            array = inputs[info.name]
            if info.dtype in ("int8", "uint8") and array.dtype.kind == "f":
                entry = next(e for e in runner.meta["inputs"] if e["name"] == info.name)
                zero = entry["zero_point"] + {("int8", "uint8"): 128, ("uint8", "int8"): -128}.get(
                    (entry["dtype"], info.dtype), 0
                )
                iinfo = np.iinfo(info.dtype)
                array = np.clip(np.round(array / entry["scale"]) + zero, iinfo.min, iinfo.max).astype(info.dtype)
                inputs[info.name] = array
            ort_inputs[info.name] = array
        got.append(runner.run(inputs, names))
        ref.append(ort.run(ort_inputs, names))
    floats = None
    if float_model is not None:
        float_runner = OrtRunner(float_model, name="float partition")
        floats = [float_runner.run({i.name: np.asarray(feed[i.name]) for i in float_runner.inputs}, names) for feed in feeds]
    report = agreement_report(
        got,
        ref,
        steps,
        reference_kernels=ort.int8_kernels,
        quantized=bool(runner.meta.get("quantized")),
        integer_layers=integer_layers(onnx_model),
        float_outputs=floats,
    )
    report.update(
        samples=len(feeds),
        reference="onnxruntime CPU on the same ONNX partition",
        candidate="TFLite interpreter (ai_edge_litert)",
    )
    return report
