"""Numeric comparison of model outputs: one metric set, one tolerance policy, one report, per-layer bisection.

Every check in edgecc goes through here: a frontend against its framework, a pass against its input, the
quantisation report, a bundle against its float model, a TFLite or Arm NN artifact against onnxruntime.

- `tolerance_for(precision, dtype)` is the one place default pass criteria are decided (DESIGN.md): fp32
  bit-close (max abs <= atol + rtol x scale, scale = max(range, max |reference|), so that a 1-element or constant
  output is judged against its magnitude, not against a zero range), fp16 cosine >= 0.9999, int8 cosine >= 0.99,
  and outputs compared in quantisation steps (integer outputs, or float outputs of a quantised tensor with a
  known step) within 1 step on >= 99.9 % of the elements and within 2 steps everywhere.
- `compare_outputs(reference, candidate, tolerance)` compares named outputs over samples (stacked).
- `compare_samples(reference, candidate, feeds, tolerance)` runs two `Runnable`s first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Protocol, Union

from edgecc.errors import UsageError
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = [
    "INTEGER_DTYPES",
    "METRICS_ONLY",
    "Tolerance",
    "TOLERANCE_PRESETS",
    "OutputMetrics",
    "VerificationReport",
    "LayerComparison",
    "PerLayerReport",
    "Runnable",
    "compare_outputs",
    "compare_samples",
    "compute_metrics",
    "emulated_int8_tolerance",
    "per_layer",
    "run_samples",
    "stack_samples",
    "tolerance_for",
]

#: dtypes whose values are quantisation steps themselves (compared in steps of 1)
INTEGER_DTYPES = frozenset({"int8", "uint8", "int16", "uint16", "int4", "uint4"})


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria of one output; a field set to None is not checked.

    `atol + rtol * scale` bounds the max abs error, where scale = max(range, max |reference|) of the reference;
    `min_cosine` is a floor on cosine similarity. For an output compared in quantisation steps (one with a step),
    `max_steps` and `min_within_one_step` are checked instead of atol/rtol.
    """

    atol: float | None = 1e-6
    rtol: float | None = 1e-4
    min_cosine: float | None = None
    max_steps: int | None = None
    min_within_one_step: float | None = None

    def with_overrides(
        self, *, atol: float | None = None, rtol: float | None = None, min_cosine: float | None = None
    ) -> "Tolerance":
        """A copy with the given (non-None) fields replaced (the --atol/--rtol/--min-cosine options)."""
        return Tolerance(
            atol=self.atol if atol is None else atol,
            rtol=self.rtol if rtol is None else rtol,
            min_cosine=self.min_cosine if min_cosine is None else min_cosine,
            max_steps=self.max_steps,
            min_within_one_step=self.min_within_one_step,
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (unchecked criteria left out)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not None or f.name in ("atol", "rtol", "min_cosine")
        }


#: no criterion at all: metrics only (quantisation reports, benchmarks)
METRICS_ONLY = Tolerance(atol=None, rtol=None, min_cosine=None)

#: default tolerances by precision (DESIGN.md: fp32 bit-close, fp16 cosine >= 0.9999, int8 cosine >= 0.99) and for
#: values compared in quantisation steps ("steps": two integer implementations of the same quantised graph), and an
#: integer implementation against onnxruntime's float emulation of the same QDQ graph (its reference int8 kernels:
#: rounding differences of one step propagate and grow through later layers, so no bound on the largest difference;
#: "emulated_steps" for outputs with a quantisation step, "emulated" for float outputs computed from int8 tensors)
TOLERANCE_PRESETS: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-6, rtol=1e-4, min_cosine=None),
    "fp16": Tolerance(atol=None, rtol=None, min_cosine=0.9999),
    "int8": Tolerance(atol=None, rtol=None, min_cosine=0.99),
    "steps": Tolerance(atol=None, rtol=None, min_cosine=None, max_steps=2, min_within_one_step=0.999),
    "emulated_steps": Tolerance(atol=None, rtol=None, min_cosine=None, min_within_one_step=0.99),
    "emulated": Tolerance(atol=None, rtol=None, min_cosine=0.9999),
    "emulated_integer": Tolerance(atol=None, rtol=0.04, min_cosine=None),
}
TOLERANCE_PRESETS["deep_integer"] = TOLERANCE_PRESETS["emulated_integer"]  # the same bound, named for the report

#: integer compute layers (weights, elementwise arithmetic, pooling) after which two integer implementations of one
#: quantised graph no longer agree step for step: each rounds ties and fixed-point products its own way, one-step
#: flips appear after a few layers and grow with depth (MobileNetV2, TFLite interpreter vs onnxruntime's fused kernels:
#: first 1-step flips at the 5th quantised tensor, first 2-step ones at the 16th, 8 steps by the 26th; every tensor
#: before agrees exactly). Past it, integer outputs are judged by the "deep_integer" preset (max abs error <= 4 % of
#: the scale, as "emulated_integer"); a wrong weight channel still fails (12.5 % on the test CNN)
DEEP_INTEGER_LAYERS = 8

#: a deep integer output that misses "deep_integer" still passes when its SQNR against the float partition is within
#: this many dB of the reference's (both integer implementations equally accurate; a wrong weight channel loses far more)
DEEP_SQNR_MARGIN_DB = 3.0

_PRECISION_PRESET = {
    "fp32": "fp32",
    "float32": "fp32",
    "fp16": "fp16",
    "float16": "fp16",
    "bf16": "fp16",
    "int8": "int8",
    "uint8": "int8",
    "int16": "int8",
    "int4": "int8",
}


def emulated_int8_tolerance(tolerance: Tolerance) -> Tolerance:
    """The criteria against an integer implementation when onnxruntime ran the quantised candidate with its reference
    int8 kernels (`edgecc.ortint8`: a float emulation of the QDQ graph on CPUs whose fused kernels saturate).

    Outputs held in quantisation steps are judged by the "emulated_integer" preset instead: max abs error <= 4 % of
    the output's scale (max(range, max |reference|), as for fp32), widened like any such bound by a reference's own
    spread. The emulation rounds once per layer where the integer kernels round differently, and one-step differences
    grow through the layers, so a steps bound fails correct conversions (full-int8 Keras MobileNet, V2, V3Small: 4-5
    steps off, 1.8-2.3 % of the scale), while a wrong weight channel still fails (12.5 % on the test CNN). A cosine
    would not do: integer codes carry their zero point, which hides a permutation of a softmax's classes. Other
    criteria are returned as they are.
    """
    if tolerance.max_steps is None and tolerance.min_within_one_step is None:
        return tolerance
    return TOLERANCE_PRESETS["emulated_integer"]


def tolerance_for(precision: str, dtype: str = "float32") -> Tolerance:
    """The default criteria for an output of `dtype` produced at `precision` (against a float or same-precision reference).

    Integer outputs (`INTEGER_DTYPES`, e.g. the int8 output of a quantised TFLite model) and outputs whose
    `dtype` is given as a quantised type are compared in quantisation steps; other outputs by the precision's
    preset. An unknown precision is a usage error (exit 2).
    """
    if dtype in INTEGER_DTYPES:
        return TOLERANCE_PRESETS["steps"]
    try:
        return TOLERANCE_PRESETS[_PRECISION_PRESET[precision]]
    except KeyError:
        raise UsageError(
            f"unknown precision '{precision}'", hint=f"choose one of {', '.join(sorted(set(_PRECISION_PRESET)))}"
        ) from None


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
    #: quantisation-step metrics (only for outputs compared in steps)
    step: float | None = None
    max_steps: int | None = None
    within_one_step: float | None = None
    steps_histogram: dict[str, int] | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (infinities as strings; step metrics only where measured)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = str(value)
        data["shape"] = list(self.shape)
        if self.step is None:
            for key in ("step", "max_steps", "within_one_step", "steps_histogram"):
                data.pop(key)
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
            "tolerance": self.tolerance.to_dict(),
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


def _non_finite_reason(ref: "np.ndarray", cand: "np.ndarray") -> str:
    """Why the NaN/Inf values of the two arrays disagree ("" when they agree, and always "" when there are none)."""
    import numpy as np

    ref_bad, cand_bad = ~np.isfinite(ref), ~np.isfinite(cand)
    ref_count, cand_count = int(ref_bad.sum()), int(cand_bad.sum())
    if ref_count == 0 and cand_count == 0:
        return ""
    if np.array_equal(ref_bad, cand_bad) and np.array_equal(ref[ref_bad], cand[cand_bad], equal_nan=True):
        return ""
    return f"NaN/Inf differ: the reference has {ref_count} non-finite value(s), the candidate {cand_count}" + (
        " at other positions or of other values" if ref_count == cand_count else ""
    )


def _step_metrics(diff: "np.ndarray", step: float, max_steps: int | None) -> tuple[int, float, dict[str, int], int]:
    """Max error in steps, the fraction within one step, the 0/1/2/>2 histogram and how many exceed `max_steps`."""
    import numpy as np

    counts = np.rint(diff / step).astype(np.int64)
    hist = {
        "0": int((counts == 0).sum()),
        "1": int((counts == 1).sum()),
        "2": int((counts == 2).sum()),
        ">2": int((counts > 2).sum()),
    }
    within = (hist["0"] + hist["1"]) / max(diff.size, 1)
    beyond = int((counts > max_steps).sum()) if max_steps is not None else 0
    return int(counts.max(initial=0)), within, hist, beyond


def compute_metrics(
    name: str, reference: "np.ndarray", candidate: "np.ndarray", tolerance: Tolerance, *, step: float | None = None
) -> OutputMetrics:
    """All DESIGN.md metrics of one output and the verdict under `tolerance`.

    `step`: the quantisation step of the output (its scale); integer outputs default to a step of 1. With a step,
    the step metrics are reported and `tolerance.max_steps`/`min_within_one_step` replace atol/rtol.
    """
    import numpy as np

    reference = np.asarray(reference)
    candidate = np.asarray(candidate)
    ref_dtype, cand_dtype = str(reference.dtype), str(candidate.dtype)
    if reference.shape != candidate.shape:
        nan = float("nan")
        return OutputMetrics(
            name,
            tuple(reference.shape),
            ref_dtype,
            cand_dtype,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            passed=False,
            reason=f"shape {candidate.shape} differs from reference {reference.shape}",
        )
    if reference.dtype.kind in "OSU" or candidate.dtype.kind in "OSU":
        equal = bool(np.array_equal(reference, candidate))
        return OutputMetrics(
            name,
            tuple(reference.shape),
            ref_dtype,
            cand_dtype,
            0.0 if equal else float("inf"),
            0.0,
            0.0,
            1.0,
            float("inf"),
            0.0,
            passed=equal,
            reason="" if equal else "values differ",
        )
    if step is None and ref_dtype in INTEGER_DTYPES and cand_dtype in INTEGER_DTYPES:
        step = 1.0
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    reason = _non_finite_reason(ref, cand)
    finite = np.isfinite(ref) & np.isfinite(cand)
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
    scale = max(ref_range, float(np.abs(r).max())) if r.size else 0.0
    top1, top5 = _topk(reference, candidate) if not reason else (None, None)
    metrics = OutputMetrics(
        name, tuple(reference.shape), ref_dtype, cand_dtype, max_abs, mean_abs, rel_l2, cosine, sqnr, ref_range, top1, top5
    )
    stepped = bool(step) and (tolerance.max_steps is not None or tolerance.min_within_one_step is not None)
    beyond = 0
    if step:
        metrics.step = float(step)
        metrics.max_steps, metrics.within_one_step, metrics.steps_histogram, beyond = _step_metrics(
            diff, float(step), tolerance.max_steps
        )
    if not reason and stepped:
        if beyond:
            reason = (
                f"{beyond} element(s) more than {tolerance.max_steps} quantisation step(s) off "
                f"(max {metrics.max_steps}, step {step:.3g})"
            )
        elif tolerance.min_within_one_step is not None and metrics.within_one_step < tolerance.min_within_one_step:
            reason = (
                f"{metrics.within_one_step:.2%} of the elements within 1 quantisation step (step {step:.3g}), "
                f"needs {tolerance.min_within_one_step:.1%}"
            )
    elif not reason and (tolerance.atol is not None or tolerance.rtol is not None):
        bound = (tolerance.atol or 0.0) + (tolerance.rtol or 0.0) * scale
        if max_abs > bound:
            reason = (
                f"max abs error {max_abs:.3g} > {bound:.3g} (atol {tolerance.atol} + rtol {tolerance.rtol} x scale {scale:.3g})"
            )
    if not reason and tolerance.min_cosine is not None and cosine < tolerance.min_cosine:
        reason = f"cosine {cosine:.6f} < {tolerance.min_cosine}"
    metrics.passed = not reason
    metrics.reason = reason
    return metrics


def stack_samples(samples: Sequence[Mapping[str, "np.ndarray"]], name: str) -> "np.ndarray":
    """The values of output `name` over all samples as one array (stacked; concatenated when batch sizes differ)."""
    import numpy as np

    arrays = [np.asarray(s[name]) for s in samples]
    if len(arrays) == 1:
        return arrays[0]
    if all(a.shape == arrays[0].shape for a in arrays):
        return np.stack(arrays)
    if all(a.ndim >= 1 and a.shape[1:] == arrays[0].shape[1:] for a in arrays):
        return np.concatenate(arrays)  # samples of different batch sizes
    return np.concatenate([a.ravel() for a in arrays])


Outputs = Union[Mapping[str, "np.ndarray"], Sequence[Mapping[str, "np.ndarray"]]]


def _as_samples(outputs: Outputs) -> list[Mapping[str, "np.ndarray"]]:
    return [outputs] if isinstance(outputs, Mapping) else list(outputs)


def compare_outputs(
    reference: Outputs,
    candidate: Outputs,
    tolerance: Tolerance | Mapping[str, Tolerance],
    *,
    names: Sequence[str] | Sequence[tuple[str, str]] | None = None,
    steps: Mapping[str, float | None] | None = None,
    reference_name: str = "reference",
    candidate_name: str = "candidate",
) -> VerificationReport:
    """Compare outputs of two runs over the same samples (a dict of name -> array, or one dict per sample).

    `names`: the outputs to compare (default: every reference output), or (reference, candidate) name pairs;
    `tolerance`: one for all outputs or one per (candidate) output name; `steps`: the quantisation step of outputs
    compared in steps (None entries: not stepped).
    """
    import numpy as np

    ref_samples, cand_samples = _as_samples(reference), _as_samples(candidate)
    if len(ref_samples) != len(cand_samples):
        raise ValueError(f"{len(ref_samples)} reference samples but {len(cand_samples)} candidate samples")
    if names is None:
        pairs = [(n, n) for n in (ref_samples[0] if ref_samples else {})]
    else:
        pairs = [p if isinstance(p, tuple) else (p, p) for p in names]
    default = tolerance if isinstance(tolerance, Tolerance) else TOLERANCE_PRESETS["fp32"]
    report = VerificationReport(reference_name, candidate_name, len(ref_samples), default)
    for ref_name, cand_name in pairs:
        criteria = tolerance if isinstance(tolerance, Tolerance) else tolerance.get(cand_name, default)
        step = (steps or {}).get(cand_name)
        mismatch = next(
            (i for i, (r, c) in enumerate(zip(ref_samples, cand_samples)) if np.shape(r[ref_name]) != np.shape(c[cand_name])),
            None,
        )
        if mismatch is not None:
            shape_ref, shape_cand = np.shape(ref_samples[mismatch][ref_name]), np.shape(cand_samples[mismatch][cand_name])
            report.outputs.append(compute_metrics(cand_name, np.zeros(shape_ref), np.zeros(shape_cand), criteria))
            continue
        report.outputs.append(
            compute_metrics(
                cand_name, stack_samples(ref_samples, ref_name), stack_samples(cand_samples, cand_name), criteria, step=step
            )
        )
    return report


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


def _spread_tolerance(
    reference: Runnable, pairs: Sequence[tuple[str, str]], tolerance: Tolerance | Mapping[str, Tolerance]
) -> tuple[Tolerance | Mapping[str, Tolerance], list[str]]:
    """Widen the criteria by the reference's own spread, for references that measure one.

    A reference whose framework gives different valid answers on the same input (TFLite's XNNPACK delegate
    against its builtin kernels) offers `spread() -> {output: max abs difference between the two}` after its
    runs; an output's atol grows by twice that (the candidate may sit on the far side of either) and an
    integer output's max_steps by the spread (in steps) rounded up. A reference that also offers
    `spread_within_one() -> {output: fraction of elements its kernels agree on within one step}` lowers an integer
    output's `min_within_one_step` to that fraction: the candidate may disagree with the reference as often as the
    reference disagrees with itself. Outputs without spread keep their criteria.
    """
    spread_of = getattr(reference, "spread", None)
    spread = spread_of() if callable(spread_of) else {}
    if not spread:
        return tolerance, []
    agreement_of = getattr(reference, "spread_within_one", None)
    agreement = agreement_of() if callable(agreement_of) else {}
    per_output: dict[str, Tolerance] = {}
    notes = []
    for ref_name, cand_name in pairs:
        base = tolerance if isinstance(tolerance, Tolerance) else tolerance.get(cand_name, TOLERANCE_PRESETS["fp32"])
        amount = float(spread.get(ref_name, 0.0))
        if amount <= 0 or not math.isfinite(amount):
            per_output[cand_name] = base
            continue
        widened = base
        if base.max_steps is not None:  # compare_samples steps integer outputs only: the spread is in steps
            within = base.min_within_one_step
            if within is not None and ref_name in agreement:
                within = min(within, float(agreement[ref_name]))
            widened = Tolerance(base.atol, base.rtol, base.min_cosine, base.max_steps + math.ceil(amount), within)
        elif base.atol is not None or base.rtol is not None:
            widened = base.with_overrides(atol=(base.atol or 0.0) + 2 * amount)
        per_output[cand_name] = widened
        if widened == base:  # criteria without a bound to widen (e.g. cosine only)
            continue
        agreed = (
            f", agree within one step on {widened.min_within_one_step:.1%}"
            if widened.min_within_one_step is not None and widened.min_within_one_step != base.min_within_one_step
            else ""
        )
        notes.append(
            f"{ref_name}: the reference's kernels disagree by up to {amount:.3g}{agreed}; tolerance widened by it"
        )
    return per_output, notes


def compare_samples(
    reference: Runnable,
    candidate: Runnable,
    feeds: Sequence[Mapping[str, "np.ndarray"]],
    tolerance: Tolerance | Mapping[str, Tolerance],
) -> VerificationReport:
    """Run both on the same feeds and compare every output (paired by name, else by position).

    A reference with a measured `spread()` widens the criteria of the outputs it covers (`_spread_tolerance`).
    """
    pairs, notes = _pair_outputs(reference, candidate)
    expected = run_samples(reference, feeds)
    criteria, spread_notes = _spread_tolerance(reference, pairs, tolerance)
    report = compare_outputs(
        expected,
        run_samples(candidate, feeds),
        criteria,
        names=pairs,
        reference_name=reference.name,
        candidate_name=candidate.name,
    )
    if isinstance(tolerance, Tolerance):
        report.tolerance = tolerance  # the base criteria; widened outputs are named in the notes
    report.notes = notes + spread_notes + report.notes
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
    report = compare_outputs(ref_results, cand_results, tolerance, names=shared)
    layers: list[LayerComparison] = []
    first: LayerComparison | None = None
    for name, metrics in zip(shared, report.outputs):
        node = producers[name]
        layer = LayerComparison(name, node.name, node.op_type, metrics)
        layers.append(layer)
        if first is None and not metrics.passed:
            first = layer
    return PerLayerReport(layers, first)
