"""`compare_with_onnx`: the TFLite interpreter and onnxruntime on the same ONNX partition and the same feeds.

float artifacts pass when max |tflite - onnx| <= 1e-4 x the output's range (max(|range|, 1)); int8 artifacts are
measured in quantisation steps of each output's scale and pass when >= 99.9 % of the elements are within 1 step
and every element within 2 steps (the histogram of 0, 1, 2, >2 steps is reported).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edgecc.targets.tflite.emit import TfliteArtifact

__all__ = ["FLOAT_RTOL", "compare_with_onnx", "compare_outputs"]

FLOAT_RTOL = 1e-4
WITHIN_ONE = 0.999


def compare_outputs(tflite: Sequence[Mapping[str, np.ndarray]], onnx: Sequence[Mapping[str, np.ndarray]],
                    steps: Mapping[str, float | None]) -> dict[str, Any]:
    """Per-output agreement of two runs over the same samples (see the module docstring for the rule)."""
    import numpy as np

    outputs = []
    for name, step in steps.items():
        got = np.concatenate([np.asarray(r[name], dtype=np.float64).ravel() for r in tflite])
        ref = np.concatenate([np.asarray(r[name], dtype=np.float64).ravel() for r in onnx])
        diff = np.abs(got - ref)
        entry: dict[str, Any] = {"name": name, "elements": int(ref.size), "max_abs": float(diff.max(initial=0.0)),
                                 "mean_abs": float(diff.mean()) if diff.size else 0.0}
        if step:
            # int8: the error in quantisation steps of the output's scale
            counts = np.rint(diff / step).astype(np.int64)
            hist = [int((counts == 0).sum()), int((counts == 1).sum()), int((counts == 2).sum()), int((counts > 2).sum())]
            within = (hist[0] + hist[1]) / max(ref.size, 1)
            entry.update(kind="int8", step=float(step), steps_histogram={"0": hist[0], "1": hist[1], "2": hist[2], ">2": hist[3]},
                         max_steps=int(counts.max(initial=0)), within_one_step=within,
                         passed=bool(within >= WITHIN_ONE and hist[3] == 0))
        else:
            span = float(ref.max() - ref.min()) if ref.size else 0.0
            limit = FLOAT_RTOL * max(span, float(np.abs(ref).max(initial=0.0)), 1.0)
            entry.update(kind="float", tolerance=limit, passed=bool(entry["max_abs"] <= limit))
        outputs.append(entry)
    return {"passed": all(o["passed"] for o in outputs), "outputs": outputs}


def compare_with_onnx(tflite: TfliteArtifact | bytes, onnx_model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
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
                zero = entry["zero_point"] + {("int8", "uint8"): 128, ("uint8", "int8"): -128}.get((entry["dtype"], info.dtype), 0)
                iinfo = np.iinfo(info.dtype)
                array = np.clip(np.round(array / entry["scale"]) + zero, iinfo.min, iinfo.max).astype(info.dtype)
                inputs[info.name] = array
            ort_inputs[info.name] = array
        got.append(runner.run(inputs, names))
        ref.append(ort.run(ort_inputs, names))
    report = compare_outputs(got, ref, steps)
    report.update(samples=len(feeds), reference="onnxruntime CPU on the same ONNX partition", candidate="TFLite interpreter (ai_edge_litert)")
    return report
