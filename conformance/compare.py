"""The harness's own comparison of outputs with the original runtime's references (independent of edgecc.verify).

One rule per kind of result, stated as thresholds on two numbers per output over all samples:
cosine similarity of the flattened outputs, and the largest absolute difference relative to the reference's
largest magnitude. NaN or inf where the reference is finite, a shape that differs, or a missing output is
always wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Rule", "RULES", "rule_for", "compare"]


@dataclass(frozen=True)
class Rule:
    """Match when every output has cosine >= min_cosine and max|diff| <= max_relative * max(|reference|)."""

    name: str
    min_cosine: float
    max_relative: float


RULES = {
    "float": Rule("float", 0.9999, 1e-3),  # convert, optimize, fp32 compile vs a float reference
    "fp16": Rule("fp16", 0.999, 3e-2),
    "int8": Rule("int8", 0.95, float("inf")),  # quantised vs a float reference: cosine is the measure
    "integer": Rule("integer", 0.99, float("inf")),  # a model that was int8 already vs its int8 reference
}


def rule_for(precision: str, reference_dtype: np.dtype) -> Rule:
    """The rule for results of `precision` (fp32, fp16, int8, int16) against a reference of this dtype."""
    if np.issubdtype(reference_dtype, np.integer):
        return RULES["integer"]
    if precision in ("int8", "uint8", "int16"):
        return RULES["int8"]
    return RULES["fp16"] if precision == "fp16" else RULES["float"]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def compare(
    references: list[np.ndarray], outputs: list[np.ndarray], precision: str, *, spread: list[float] | None = None
) -> dict:
    """Compare outputs (in reference order, sample axis first) with references: {'match', 'cosine', 'max_rel', 'why'}.

    `spread`: per output, the largest difference between the original runtime's own kernel sets (XNNPACK vs TFLite's
    builtin kernels) on the same samples; a difference up to twice that is not held against edgecc, since the
    reference itself is not more precise."""
    if len(outputs) < len(references):
        return {"match": False, "why": f"{len(outputs)} output(s), the reference has {len(references)}"}
    worst_cos, worst_rel, why = 1.0, 0.0, None
    for index, (ref, out) in enumerate(zip(references, outputs)):
        out = np.asarray(out)
        if out.shape != ref.shape and out.size == ref.size:
            out = out.reshape(ref.shape)  # e.g. a kept or dropped unit axis
        if out.shape != ref.shape:
            return {"match": False, "why": f"output {index}: shape {list(out.shape)}, reference {list(ref.shape)}"}
        rule = rule_for(precision, ref.dtype)
        r, o = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        finite = np.isfinite(r)
        if not np.isfinite(o[finite]).all():
            return {"match": False, "why": f"output {index}: NaN or inf where the reference is finite"}
        r, o = r[finite], o[finite]
        cosine = _cosine(r, o)
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        rel = float(np.max(np.abs(r - o))) / scale if scale > 0 else float(np.max(np.abs(o), initial=0.0))
        worst_cos, worst_rel = min(worst_cos, cosine), max(worst_rel, rel)
        allowed = rule.max_relative
        if spread and index < len(spread) and scale > 0:
            allowed = max(allowed, 2.0 * spread[index] / scale)
        if why is None and (cosine < rule.min_cosine or rel > allowed):
            widened = f", widened to {allowed:.2e} by the reference's own spread" if allowed > rule.max_relative else ""
            why = f"output {index}: cosine {cosine:.6f}, max|diff|/max|ref| {rel:.2e} ({rule.name} rule{widened})"
    return {"match": why is None, "cosine": round(worst_cos, 6), "max_rel": float(f"{worst_rel:.3e}"), "why": why}
