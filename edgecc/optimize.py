"""Optimise a model with a pass pipeline and prove that its outputs did not change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgecc.errors import NumericsError

if TYPE_CHECKING:
    import onnx

    from edgecc.passes.manager import OptimizeReport
    from edgecc.verify import VerificationReport

__all__ = ["optimize_and_verify", "stamp_passes"]


def stamp_passes(model: "onnx.ModelProto", names: Sequence[str]) -> None:
    """Record the passes run in the model's metadata (`edgecc.passes`)."""
    props = {p.key: p.value for p in model.metadata_props}
    props["edgecc.passes"] = ",".join(names)
    del model.metadata_props[:]
    for key in sorted(props):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, props[key]


def optimize_and_verify(
    model: "onnx.ModelProto",
    names: Sequence[str],
    *,
    opset: int | None = None,
    max_iterations: int = 4,
    verify: bool = True,
    data_args: Sequence[str] = (),
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    min_cosine: float | None = None,
    name: str = "<model>",
) -> tuple["onnx.ModelProto", "OptimizeReport", "VerificationReport | None"]:
    """Run the passes; unless `verify` is off, compare with the input under onnxruntime (exit 5 on drift)."""
    from edgecc.inputs import load_data_args, match_samples, random_feeds
    from edgecc.ortrun import OrtRunner
    from edgecc.passes import PassContext
    from edgecc.passes.manager import run_passes
    from edgecc.verify import TOLERANCE_PRESETS, compare_samples

    optimized, report = run_passes(model, names, context=PassContext(opset=opset), max_iterations=max_iterations)
    stamp_passes(optimized, names)
    if not verify:
        return optimized, report, None
    reference = OrtRunner(model, name=f"input {name}")
    candidate = OrtRunner(optimized, name="optimised model")
    samples = load_data_args(data_args)
    feeds = match_samples(samples, reference.inputs) if samples else random_feeds(reference.inputs, seed=seed)
    tolerance = TOLERANCE_PRESETS["fp32"].with_overrides(atol=atol, rtol=rtol, min_cosine=min_cosine)
    verification = compare_samples(reference, candidate, feeds, tolerance)
    if not samples:
        verification.notes.insert(0, f"random inputs (seed {seed})")
    if not verification.passed:
        failed = ", ".join(o.name for o in verification.failures())
        raise NumericsError(
            f"the optimised model differs from {name} beyond tolerance on output(s) {failed}; nothing written",
            report=verification,
            hint="find the pass with --passes -NAME, and report it as a bug",
        )
    return optimized, report, verification
