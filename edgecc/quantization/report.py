"""The quantisation report: per-output agreement with the float model, per-layer SQNR, sizes, settings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edgecc.verify import OutputMetrics

__all__ = ["LayerSqnr", "QuantReport", "layer_sqnr", "output_metrics", "quantized_tensor_names"]


@dataclass
class LayerSqnr:
    """SQNR (dB) of one node's output activation, float run vs quantised run, and the drop across the node."""

    node: str
    op_type: str
    tensor: str
    sqnr_db: float
    drop_db: float
    quantized: bool

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        for key in ("sqnr_db", "drop_db"):
            if not math.isfinite(data[key]):
                data[key] = str(data[key])
        return data


@dataclass
class QuantReport:
    """Everything `edgecc quantize` measured and decided."""

    mode: str
    scheme: str
    settings: dict[str, Any] = field(default_factory=dict)
    calibration: str = ""
    calibration_samples: int = 0
    evaluation_samples: int = 0
    outputs: list[OutputMetrics] = field(default_factory=list)
    layers: list[LayerSqnr] = field(default_factory=list)
    size_before: int = 0
    size_after: int = 0
    float_layers: list[str] = field(default_factory=list)  # returned to float by --accuracy-goal
    excluded: list[str] = field(default_factory=list)
    equalized_pairs: list[tuple[str, str]] = field(default_factory=list)
    bias_corrected: list[str] = field(default_factory=list)
    goal: dict[str, Any] | None = None
    io_quantization: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        return self.size_after / self.size_before if self.size_before else float("nan")

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "scheme": self.scheme,
            "settings": dict(self.settings),
            "calibration": self.calibration,
            "calibration_samples": self.calibration_samples,
            "evaluation_samples": self.evaluation_samples,
            "outputs": [o.to_dict() for o in self.outputs],
            "layers": [layer.to_dict() for layer in self.layers],
            "size_before": self.size_before,
            "size_after": self.size_after,
            "size_ratio": round(self.size_ratio, 4) if self.size_before else None,
            "float_layers": list(self.float_layers),
            "excluded": list(self.excluded),
            "equalized_pairs": [list(p) for p in self.equalized_pairs],
            "bias_corrected": list(self.bias_corrected),
            "goal": self.goal,
            "io_quantization": self.io_quantization,
            "notes": list(self.notes),
        }


def quantized_tensor_names(model: onnx.ModelProto) -> dict[str, str]:
    """float tensor name -> the tensor of the quantised model that carries its (dequantised) value."""
    producers_q = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    dq_of = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    mapping: dict[str, str] = {}
    for name, q in producers_q.items():
        if q in dq_of:
            mapping[name] = dq_of[q]
    return mapping


def output_metrics(
    reference: Sequence[Mapping[str, np.ndarray]], candidate: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]
) -> list[OutputMetrics]:
    """compute_metrics (no tolerance) per output over all samples stacked."""
    import numpy as np

    from edgecc.verify import METRICS_ONLY, compute_metrics

    tolerance = METRICS_ONLY
    metrics = []
    for name in names:
        ref = np.concatenate(
            [
                np.asarray(r[name]).reshape(1, *np.asarray(r[name]).shape)
                if np.asarray(r[name]).ndim == 0
                else np.asarray(r[name])
                for r in reference
            ]
        )
        cand = np.concatenate(
            [
                np.asarray(c[name]).reshape(1, *np.asarray(c[name]).shape)
                if np.asarray(c[name]).ndim == 0
                else np.asarray(c[name])
                for c in candidate
            ]
        )
        metrics.append(
            compute_metrics(
                name, ref, cand.astype(ref.dtype) if cand.dtype != ref.dtype and cand.dtype.kind == "f" else cand, tolerance
            )
        )
    return metrics


def _sqnr(ref: np.ndarray, cand: np.ndarray) -> float:
    import numpy as np

    ref = ref.astype(np.float64).ravel()
    cand = cand.astype(np.float64).ravel()
    err = float(np.linalg.norm(ref - cand))
    norm = float(np.linalg.norm(ref))
    if err == 0:
        return float("inf")
    if norm == 0:
        return float("-inf")
    return 20 * math.log10(norm / err)


def layer_sqnr(
    float_model: onnx.ModelProto,
    quant_model: onnx.ModelProto,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    quantized_nodes: set[str] | None = None,
) -> list[LayerSqnr]:
    """Per node of the float model: SQNR of its output in the quantised run, and the SQNR drop across the node."""
    import numpy as np

    from edgecc.onnxutil import with_outputs
    from edgecc.ortrun import OrtRunner
    from edgecc.quantization.calibrate import float_activations

    mapping = quantized_tensor_names(quant_model)
    quant_names = {o for n in quant_model.graph.node for o in n.output} | {i.name for i in quant_model.graph.input}
    floats = float_activations(float_model)
    pairs = {name: mapping.get(name, name) for name in floats if mapping.get(name, name) in quant_names}
    if not pairs or not feeds:
        return []
    float_runner = OrtRunner(with_outputs(float_model, list(pairs)), name="float model", optimize=False)
    quant_runner = OrtRunner(
        with_outputs(quant_model, list(dict.fromkeys(pairs.values()))), name="quantised model", optimize=False
    )
    refs: dict[str, list[np.ndarray]] = {n: [] for n in pairs}
    cands: dict[str, list[np.ndarray]] = {n: [] for n in pairs}
    quant_inputs = {i.name for i in quant_runner.inputs}
    for feed in feeds:
        r = float_runner.run(feed, list(pairs))
        c = quant_runner.run({k: v for k, v in feed.items() if k in quant_inputs}, list(dict.fromkeys(pairs.values())))
        for name, qname in pairs.items():
            refs[name].append(np.asarray(r[name]).ravel())
            cands[name].append(np.asarray(c[qname]).ravel())
    sqnr = {name: _sqnr(np.concatenate(refs[name]), np.concatenate(cands[name]).astype(np.float64)) for name in pairs}
    producer = {o: node for node in float_model.graph.node for o in node.output}
    weight_ops = {"Conv", "Gemm", "MatMul", "ConvTranspose"}

    def before(tensor: str, depth: int = 0) -> float:
        """SQNR arriving at `tensor`: its own, or (when the quantiser fused it away) the worst input of its producer."""
        if tensor in sqnr:
            return sqnr[tensor]
        node = producer.get(tensor)
        if node is None or depth > 8:
            return float("inf")
        return min((before(i, depth + 1) for i in node.input if i), default=float("inf"))

    def owner(node: onnx.NodeProto) -> onnx.NodeProto:
        """The weight node a fused activation belongs to (Conv -> Relu with the Conv output gone)."""
        current, depth = node, 0
        while current.op_type not in weight_ops and current.input and current.input[0] not in sqnr and depth < 4:
            parent = producer.get(current.input[0])
            if parent is None:
                break
            current, depth = parent, depth + 1
        return current

    layers: list[LayerSqnr] = []
    for node in float_model.graph.node:
        outs = [o for o in node.output if o in sqnr]
        if not outs:
            continue
        head = owner(node)
        ins = [before(i) for i in head.input if i]
        start = min(ins) if ins else float("inf")
        after = sqnr[outs[0]]
        if not math.isfinite(after):
            drop = 0.0
        elif not math.isfinite(start):
            drop = 100.0 - after  # exact inputs: all the error is this node's
        else:
            drop = start - after
        name = head.name or head.output[0]
        op_type = head.op_type if head is node else f"{head.op_type}+{node.op_type}"
        layers.append(LayerSqnr(name, op_type, outs[0], after, drop, quantized_nodes is None or name in quantized_nodes))
    return layers
