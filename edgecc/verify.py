"""Numeric comparison of model outputs: metrics, tolerances, reports and per-layer bisection."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

from edgecc.errors import UsageError
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = [
    "Tolerance",
    "TOLERANCE_PRESETS",
    "OutputMetrics",
    "VerificationReport",
    "LayerComparison",
    "PerLayerReport",
    "Runnable",
    "compute_metrics",
    "compare_samples",
    "run_samples",
    "per_layer",
]


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria. `atol + rtol * range(reference)` bounds max abs error; cosine has a floor.

    A field set to None is not checked.
    """

    atol: float | None = 1e-6
    rtol: float | None = 1e-4
    min_cosine: float | None = None

    def with_overrides(self, *, atol: float | None = None, rtol: float | None = None, min_cosine: float | None = None) -> "Tolerance":
        """A copy with the given (non-None) fields replaced."""
        return Tolerance(
            atol=self.atol if atol is None else atol,
            rtol=self.rtol if rtol is None else rtol,
            min_cosine=self.min_cosine if min_cosine is None else min_cosine,
        )


#: default tolerances by precision (DESIGN.md: fp32 bit-close, fp16 cosine >= 0.9999, int8 cosine >= 0.99)
TOLERANCE_PRESETS: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-6, rtol=1e-4, min_cosine=None),
    "fp16": Tolerance(atol=None, rtol=None, min_cosine=0.9999),
    "int8": Tolerance(atol=None, rtol=None, min_cosine=0.99),
}


@dataclass
class OutputMetrics:
    """Error metrics of one output over all samples, and whether it passed."""

    name: str
    shape: tuple[int, ...]
    reference_dtype: str
    candidate_dtype: str
    max_abs: float
    mean_abs: float
    rel_l2: float
    cosine: float
    sqnr_db: float
    reference_range: float
    top1: float | None = None
    top5: float | None = None
    passed: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (infinities as strings)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = str(value)
        data["shape"] = list(self.shape)
        return data


@dataclass
class VerificationReport:
    """Per-output metrics of a candidate against a reference, with the verdict."""

    reference: str
    candidate: str
    samples: int
    tolerance: Tolerance
    outputs: list[OutputMetrics] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every output passed."""
        return all(o.passed for o in self.outputs)

    def failures(self) -> list[OutputMetrics]:
        """Outputs outside tolerance."""
        return [o for o in self.outputs if not o.passed]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready report."""
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "samples": self.samples,
            "passed": self.passed,
            "tolerance": asdict(self.tolerance),
            "outputs": [o.to_dict() for o in self.outputs],
            "notes": list(self.notes),
        }


class Runnable(Protocol):
    """Anything that can be fed named arrays and returns named arrays (ONNX session, original framework)."""

    name: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: Mapping[str, "np.ndarray"]) -> dict[str, "np.ndarray"]: ...


def _topk(reference: "np.ndarray", candidate: "np.ndarray") -> tuple[float | None, float | None]:
    """Top-1: argmax agrees; top-5: the reference's argmax is in the candidate's top 5 (rows of [N, C])."""
    import numpy as np

    if reference.ndim < 1 or reference.dtype.kind != "f" or reference.shape[-1] < 2:
        return None, None
    if reference.ndim > 2 and any(d != 1 for d in reference.shape[1:-1]):
        return None, None
    ref = reference.reshape(-1, reference.shape[-1])
    cand = candidate.reshape(-1, candidate.shape[-1]).astype(np.float64)
    ref_top = ref.argmax(axis=1)
    top1 = float(np.mean(ref_top == cand.argmax(axis=1)))
    if ref.shape[1] < 5:
        return top1, None
    top5_sets = np.argsort(-cand, axis=1, kind="stable")[:, :5]
    top5 = float(np.mean([r in row for r, row in zip(ref_top, top5_sets)]))
    return top1, top5


def compute_metrics(name: str, reference: "np.ndarray", candidate: "np.ndarray", tolerance: Tolerance) -> OutputMetrics:
    """All DESIGN.md metrics of one output and the pass/fail verdict under `tolerance`."""
    import numpy as np

    reference = np.asarray(reference)
    candidate = np.asarray(candidate)
    ref_dtype, cand_dtype = str(reference.dtype), str(candidate.dtype)
    if reference.shape != candidate.shape:
        nan = float("nan")
        return OutputMetrics(name, tuple(reference.shape), ref_dtype, cand_dtype, nan, nan, nan, nan, nan, nan,
                             passed=False, reason=f"shape {candidate.shape} differs from reference {reference.shape}")
    if reference.dtype.kind in "OSU" or candidate.dtype.kind in "OSU":
        equal = bool(np.array_equal(reference, candidate))
        return OutputMetrics(name, tuple(reference.shape), ref_dtype, cand_dtype, 0.0 if equal else float("inf"),
                             0.0, 0.0, 1.0, float("inf"), 0.0, passed=equal, reason="" if equal else "values differ")
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    ref_nan, cand_nan = ~np.isfinite(ref), ~np.isfinite(cand)
    reason = ""
    if not np.array_equal(ref_nan, cand_nan) or not np.array_equal(ref[ref_nan], cand[cand_nan], equal_nan=True):
        reason = "NaN/Inf positions or values differ"
    finite = ~(ref_nan | cand_nan)
    r, c = ref[finite], cand[finite]
    diff = np.abs(r - c)
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    ref_norm = float(np.linalg.norm(r))
    err_norm = float(np.linalg.norm(r - c))
    rel_l2 = err_norm / ref_norm if ref_norm > 0 else (0.0 if err_norm == 0 else float("inf"))
    cand_norm = float(np.linalg.norm(c))
    if ref_norm > 0 and cand_norm > 0:
        cosine = float(np.dot(r, c) / (ref_norm * cand_norm))
    else:
        cosine = 1.0 if err_norm == 0 else 0.0
    sqnr = float("inf") if err_norm == 0 else (20 * math.log10(ref_norm / err_norm) if ref_norm > 0 else float("-inf"))
    ref_range = float(r.max() - r.min()) if r.size else 0.0
    top1, top5 = _topk(reference, candidate) if not reason else (None, None)
    metrics = OutputMetrics(name, tuple(reference.shape), ref_dtype, cand_dtype, max_abs, mean_abs, rel_l2, cosine,
                            sqnr, ref_range, top1, top5)
    if not reason and (tolerance.atol is not None or tolerance.rtol is not None):
        bound = (tolerance.atol or 0.0) + (tolerance.rtol or 0.0) * ref_range
        if max_abs > bound:
            reason = f"max abs error {max_abs:.3g} > {bound:.3g} (atol {tolerance.atol} + rtol {tolerance.rtol} x range {ref_range:.3g})"
    if not reason and tolerance.min_cosine is not None and cosine < tolerance.min_cosine:
        reason = f"cosine {cosine:.6f} < {tolerance.min_cosine}"
    metrics.passed = not reason
    metrics.reason = reason
    return metrics


def _stack(samples: Sequence[Mapping[str, "np.ndarray"]], name: str) -> "np.ndarray":
    import numpy as np

    arrays = [np.asarray(s[name]) for s in samples]
    if len(arrays) == 1:
        return arrays[0]
    if all(a.shape == arrays[0].shape for a in arrays):
        return np.stack(arrays)
    if all(a.ndim >= 1 and a.shape[1:] == arrays[0].shape[1:] for a in arrays):
        return np.concatenate(arrays)  # samples of different batch sizes
    return np.concatenate([a.ravel() for a in arrays])


def _pair_outputs(reference: Runnable, candidate: Runnable) -> tuple[list[tuple[str, str]], list[str]]:
    ref_names = [o.name for o in reference.outputs]
    cand_names = [o.name for o in candidate.outputs]
    notes: list[str] = []
    if set(ref_names) <= set(cand_names):
        return [(n, n) for n in ref_names], notes
    if len(ref_names) == len(cand_names):
        notes.append("output names differ; outputs compared by position")
        return list(zip(ref_names, cand_names)), notes
    raise UsageError(
        f"{candidate.name} has outputs {', '.join(cand_names)}, {reference.name} has {', '.join(ref_names)}: cannot pair them",
        hint="compare models with the same outputs, or cut one with `edgecc convert --output`",
    )


def run_samples(runnable: Runnable, feeds: Sequence[Mapping[str, "np.ndarray"]]) -> list[dict[str, "np.ndarray"]]:
    """Run every sample through `runnable`."""
    return [runnable.run(feed) for feed in feeds]


def compare_samples(
    reference: Runnable,
    candidate: Runnable,
    feeds: Sequence[Mapping[str, "np.ndarray"]],
    tolerance: Tolerance,
) -> VerificationReport:
    """Run both on the same feeds and compare every output."""
    import numpy as np

    pairs, notes = _pair_outputs(reference, candidate)
    ref_results = run_samples(reference, feeds)
    cand_results = run_samples(candidate, feeds)
    report = VerificationReport(reference.name, candidate.name, len(feeds), tolerance, notes=notes)
    for ref_name, cand_name in pairs:
        mismatch = next(
            (i for i, (r, c) in enumerate(zip(ref_results, cand_results)) if np.shape(r[ref_name]) != np.shape(c[cand_name])), None
        )
        if mismatch is not None:
            shape_ref, shape_cand = np.shape(ref_results[mismatch][ref_name]), np.shape(cand_results[mismatch][cand_name])
            report.outputs.append(compute_metrics(cand_name, np.zeros(shape_ref), np.zeros(shape_cand), tolerance))
            continue
        ref_value = _stack(ref_results, ref_name)
        cand_value = _stack(cand_results, cand_name)
        report.outputs.append(compute_metrics(cand_name, ref_value, cand_value, tolerance))
    return report


@dataclass
class LayerComparison:
    """Metrics of one intermediate tensor both models share by name."""

    tensor: str
    node: str
    op_type: str
    metrics: OutputMetrics


@dataclass
class PerLayerReport:
    """Every shared tensor in the reference's graph order, and the first that diverges."""

    layers: list[LayerComparison]
    first_divergence: LayerComparison | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready report."""
        def one(layer: LayerComparison) -> dict[str, object]:
            return {"tensor": layer.tensor, "node": layer.node, "op_type": layer.op_type, **layer.metrics.to_dict()}

        return {
            "shared_tensors": len(self.layers),
            "first_divergence": one(self.first_divergence) if self.first_divergence else None,
            "layers": [one(layer) for layer in self.layers],
        }


def per_layer(
    reference_model: "onnx.ModelProto",
    candidate_model: "onnx.ModelProto",
    feeds: Sequence[Mapping[str, "np.ndarray"]],
    tolerance: Tolerance,
    *,
    reference_name: str = "A",
    candidate_name: str = "B",
) -> PerLayerReport:
    """Compare every intermediate tensor the two ONNX graphs share by name, in the reference's order."""
    from edgecc.onnxutil import infer_shapes, with_outputs
    from edgecc.ortrun import OrtRunner

    producers = {out: node for node in reference_model.graph.node for out in node.output if out}
    candidate_tensors = {out for node in candidate_model.graph.node for out in node.output if out}
    shared = [name for name in producers if name in candidate_tensors]
    if not shared:
        return PerLayerReport([], None)
    ref_runner = OrtRunner(with_outputs(infer_shapes(reference_model), shared), name=reference_name, optimize=False)
    cand_runner = OrtRunner(with_outputs(infer_shapes(candidate_model), shared), name=candidate_name, optimize=False)
    ref_results = [ref_runner.run(feed, shared) for feed in feeds]
    cand_results = [cand_runner.run(feed, shared) for feed in feeds]
    layers: list[LayerComparison] = []
    first: LayerComparison | None = None
    for name in shared:
        metrics = compute_metrics(name, _stack(ref_results, name), _stack(cand_results, name), tolerance)
        node = producers[name]
        layer = LayerComparison(name, node.name, node.op_type, metrics)
        layers.append(layer)
        if first is None and not metrics.passed:
            first = layer
    return PerLayerReport(layers, first)
