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

__all__ = ["agreement_report", "compare_with_onnx"]


def agreement_report(
    candidate: Sequence[Mapping[str, np.ndarray]],
    reference: Sequence[Mapping[str, np.ndarray]],
    steps: Mapping[str, float | None],
    *,
    reference_kernels: str = "fused",
    quantized: bool | None = None,
) -> dict[str, Any]:
    """Per-output agreement of two runs of the same partition over the same samples (`steps`: output -> step, None: float;
    `reference_kernels`: how onnxruntime ran int8, `OrtRunner.int8_kernels`; `quantized`: whether the partition computes
    in integers, by default whether an output has a step)."""
    from edgecc.verify import TOLERANCE_PRESETS, compare_outputs, tolerance_for

    quantized = any(steps.values()) if quantized is None else quantized
    emulated = reference_kernels == "reference" and quantized
    tolerances = {
        name: (TOLERANCE_PRESETS["emulated_steps" if step else "emulated"] if emulated else None)
        or (tolerance_for("int8", "int8") if step else tolerance_for("fp32"))
        for name, step in steps.items()
    }
    report = compare_outputs(list(reference), list(candidate), tolerances, names=list(steps), steps=steps)
    outputs = []
    for metrics in report.outputs:
        entry = {
            "name": metrics.name,
            "kind": "int8" if metrics.step else "float",
            "elements": int(_elements(metrics.shape)),
            **{k: v for k, v in metrics.to_dict().items() if k not in ("name", "shape")},
        }
        outputs.append(entry)
    return {"passed": report.passed, "outputs": outputs, "reference_int8_kernels": reference_kernels}


def _elements(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def compare_with_onnx(
    tflite: TfliteArtifact | bytes, onnx_model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, Any]:
    """Run the TFLite interpreter and onnxruntime on `onnx_model` with the same `feeds`; JSON-ready report with `passed`."""
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
    report = agreement_report(
        got, ref, steps, reference_kernels=ort.int8_kernels, quantized=bool(runner.meta.get("quantized"))
    )
    report.update(
        samples=len(feeds),
        reference="onnxruntime CPU on the same ONNX partition",
        candidate="TFLite interpreter (ai_edge_litert)",
    )
    return report
