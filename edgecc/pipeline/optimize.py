"""`edgecc optimize` end to end: run a pass pipeline and prove with onnxruntime that the outputs did not change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgecc.errors import NumericsError

if TYPE_CHECKING:
    import onnx

    from edgecc.passes import OptimizeReport
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
    data: Any = (),
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    min_cosine: float | None = None,
    name: str = "<model>",
    keep_initializer_inputs: bool = False,
) -> tuple["onnx.ModelProto", "OptimizeReport", "VerificationReport | None"]:
    """Run the passes; unless `verify` is off, compare with the input under onnxruntime (exit 5 on drift).

    `keep_initializer_inputs`: initializers also listed as graph inputs stay overridable inputs (else constants).
    `data`: DATA values (`edgecc.data` grammar) or feeds for the check; none: one random sample.
    """
    from edgecc.data import DataOptions, samples_or_random
    from edgecc.ortrun import OrtRunner
    from edgecc.passes import PassContext, run_passes
    from edgecc.verify import compare_samples, tolerance_for

    context = PassContext(opset=opset, keep_initializer_inputs=keep_initializer_inputs)
    optimized, report = run_passes(model, names, context=context, max_iterations=max_iterations)
    stamp_passes(optimized, names)
    if not verify:
        return optimized, report, None
    reference = OrtRunner(model, name=f"input {name}")
    candidate = OrtRunner(optimized, name="optimised model")
    samples = samples_or_random(data, reference.inputs, DataOptions(option="--data", seed=seed, random_count=1))
    feeds = samples.feeds
    tolerance = tolerance_for("fp32").with_overrides(atol=atol, rtol=rtol, min_cosine=min_cosine)
    verification = compare_samples(reference, candidate, feeds, tolerance)
    if samples.random:
        verification.notes.insert(0, f"random inputs (seed {seed})")
    if not verification.passed:
        failed = ", ".join(o.name for o in verification.failures())
        raise NumericsError(
            f"the optimised model differs from {name} beyond tolerance on output(s) {failed}; nothing written",
            report=verification,
            hint="find the pass with --passes -NAME, and report it as a bug",
        )
    return optimized, report, verification
