"""`edgecc compile` end to end: optimise, place by cost, emit every partition with its device, verify, write the bundle."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.data import DataOptions
from edgecc.pipeline.result import CompileResult

if TYPE_CHECKING:
    import onnx

    from edgecc.data import SampleSet
    from edgecc.inputs import InputSpec
    from edgecc.targets.api import Target
    from edgecc.verify import Tolerance

__all__ = ["CompileOptions", "CompileResult", "compile_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompileOptions:
    """What `edgecc compile` was asked for."""

    precision: str | None = None
    partitioner: str = "optimal"
    max_partitions: int | None = None
    level: int = 2
    keep_initializer_inputs: bool = False  # the pre-placement passes keep initializers listed as inputs overridable
    min_offload: float | None = None  # the least share of MACs the target must run (edgecc.pipeline.offload), or None
    samples: int = 4  # random samples when no calibration data is given (and the count of `--calibration random`)
    seed: int = 0
    tolerance: Tolerance | None = None  # None: the precision's default (edgecc.verify.tolerance_for)
    vendor_compile: bool = True  # run the target's vendor compiler (e.g. Vela) where it has one
    vendor_options: Mapping[str, str] = field(default_factory=dict)  # passed through to the vendor compiler
    data: DataOptions | None = None  # how --calibration values are read (None: defaults, random count `samples`)
    repair_budget: int = 8  # accuracy repair: most layers an integer bundle that misses its tolerance keeps on the CPU

    def data_options(self) -> DataOptions:
        """The DataOptions of --calibration values."""
        import dataclasses

        base = self.data or DataOptions(option="--calibration", finite=True)
        return dataclasses.replace(base, random_count=self.samples, seed=self.seed)


def _samples(model: onnx.ModelProto, calibration: Any, options: CompileOptions) -> SampleSet:
    """The bound calibration/verification samples: the user's, or `options.samples` random ones."""
    from edgecc.data import samples_or_random
    from edgecc.onnxutil import graph_inputs

    return samples_or_random(calibration, graph_inputs(model), options.data_options())


def _prepare(
    model: onnx.ModelProto, precision: str, options: CompileOptions, path: str
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The model as placement needs it, and the record of what was done (the manifest's `preparation`): raised to the
    quantisation opset when an integer precision is asked for and the model is below it, then the `options.level`
    passes (BatchNorm folding and cleanup, initializers listed as inputs taken as constants unless kept)."""
    from edgecc.onnxutil import name_unnamed_nodes
    from edgecc.passes import PassContext, pipeline_for, run_passes
    from edgecc.quantization.core import QUANTIZATION_OPSET, raise_to_quantization_opset

    record: dict[str, Any] = {"level": options.level, "keep_initializer_inputs": options.keep_initializer_inputs}
    if precision in ("int8", "int16"):
        model, raised_from = raise_to_quantization_opset(model, path)
        if raised_from is not None:
            record["opset"] = {"from": raised_from, "to": QUANTIZATION_OPSET, "why": "per-channel int8 Q/DQ needs opset 13"}
    record["nodes_before"] = len(model.graph.node)
    if options.level > 0:
        context = PassContext(keep_initializer_inputs=options.keep_initializer_inputs)
        model, report = run_passes(model, pipeline_for(options.level), context=context)
        record["passes"] = list(report.pipeline)
        record["rewrites"] = {p.name: p.rewrites for p in report.passes if p.rewrites}
    else:
        record["passes"], record["rewrites"] = [], {}
    record["nodes_after"] = len(model.graph.node)
    return name_unnamed_nodes(model), record


class _MissedTolerance(Exception):
    """An attempt's bundle was written and verified and missed the tolerance (accuracy repair may try again)."""

    def __init__(self, error: Exception, verification: Any) -> None:
        super().__init__(str(error))
        self.error, self.verification = error, verification


def _worst_cosine(verification: Any) -> float | None:
    values = [float(o.cosine) for o in verification.outputs if o.cosine is not None]
    return min(values) if values else None


def _bundle_tolerance(options: CompileOptions, precisions: Sequence[str], precision: str) -> Tolerance:
    from edgecc.verify import tolerance_for

    if options.tolerance is not None:
        return options.tolerance
    return tolerance_for("fp32" if all(p == "fp32" for p in precisions) else precision)


def compile_model(
    source: onnx.ModelProto,
    target: Target,
    out_path: str,
    *,
    options: CompileOptions,
    path: str,
    specs: Sequence[InputSpec] = (),
    calibration: Any = (),
    archive: bool = False,
    on_plan: Callable[[CompileResult], None] | None = None,
) -> CompileResult:
    """The whole compile step; writes the bundle at `out_path` only when verification passes.

    `calibration`: DATA values (`edgecc.data` grammar), a SampleSet or bound feeds; empty: random samples. An integer
    bundle of a float model that misses its tolerance is repaired: its most harmful layers stay on the CPU in float,
    one more per attempt, up to `options.repair_budget` (`_repair`).
    """
    import functools

    from edgecc.onnxutil import apply_input_specs, infer_shapes
    from edgecc.targets.plan import precision_of, require_calibration, require_static, sink_constant_nodes
    from edgecc.targets.precision import is_quantized

    precision = precision_of(target, options.precision)
    model = apply_input_specs(source, specs, path=path)
    require_static(model, target, path)
    samples = _samples(model, calibration, options)
    require_calibration(model, target, precision, samples.feeds if calibration else [], path)
    reference_model = model
    model, preparation = _prepare(model, precision, options, path)
    model = infer_shapes(sink_constant_nodes(model))
    attempt = functools.partial(
        _compile_placed,
        model,
        reference_model,
        source,
        target,
        precision,
        options,
        path,
        out_path,
        samples.feeds,
        archive,
        on_plan,
    )
    try:
        return attempt(preparation, (), None)
    except _MissedTolerance as missed:
        repairable = precision in ("int8", "int16") and options.repair_budget > 0 and not is_quantized(model)
        if not repairable:
            raise missed.error from None
        return _repair(model, target, precision, options, samples.feeds, preparation, attempt, missed)


def _repair(
    model: onnx.ModelProto,
    target: Target,
    precision: str,
    options: CompileOptions,
    feeds: Sequence[Mapping[str, Any]],
    preparation: Mapping[str, Any],
    attempt: Callable[..., CompileResult],
    missed: _MissedTolerance,
) -> CompileResult:
    """Accuracy repair of an integer bundle that missed its cosine tolerance: the layers to keep on the CPU in float are
    chosen as `quantize --accuracy-goal` chooses them (the most harmful by per-layer SQNR drop, one at a time, on the
    whole model quantised with the target's scheme, up to `options.repair_budget`, stopping when it stops converging),
    then one more bundle is placed with them on the CPU and verified. The manifest's `accuracy_repair` records it;
    raises NumericsError (exit 5) when the goal cannot be met."""
    from edgecc.errors import NumericsError
    from edgecc.quantization import QuantOptions, quantize_model

    goal = missed.verification.tolerance.min_cosine if missed.verification.tolerance is not None else None
    if goal is None:
        raise missed.error from None
    search = QuantOptions(
        mode="static",
        method="minmax",
        holdout=0.0,
        per_layer_report=False,
        optimize=False,
        accelerator_partition=True,
        accuracy_goal=goal,
        goal_metric="cosine",
        repair_budget=options.repair_budget,
    )
    _, report = quantize_model(model, target.scheme_for(precision), list(feeds), search, name=model.graph.name)
    types = {n.name: n.op_type for n in model.graph.node}
    drops = report.goal.get("drops_db", {})
    kept = [{"node": n, "op_type": types.get(n, ""), "drop_db": round(drops.get(n, 0.0), 3)} for n in report.float_layers]
    attempts = [{"kept": 0, "passed": False, "cosine": _worst_cosine(missed.verification), "how": "bundle"}]
    attempts += [
        {"kept": len(h["float_layers"]), "passed": h["value"] >= goal, "cosine": h["value"], "how": "emulated"}
        for h in report.goal["history"][1:]
    ]
    record = {"kept_on_cpu": kept, "attempts": attempts, "budget": options.repair_budget, "met": False}

    def failure(message: str, verification: Any) -> NumericsError:
        return NumericsError(
            f"{message}, after accuracy repair kept {len(kept)} layer(s) on the CPU in float (budget "
            f"{options.repair_budget}{', stopped: not converging' if report.goal.get('stalled') else ''})",
            report={**verification.to_dict(), "accuracy_repair": record},
            hint="give real --calibration data, a higher --precision, looser tolerances, or a larger --repair-budget",
        )

    if not kept or not report.goal["met"]:
        raise failure(missed.error.message, missed.verification) from None
    keep = [(k["node"], f"kept in float by accuracy repair (int8 SQNR drop {k['drop_db']:.1f} dB)") for k in kept]
    log.info("accuracy repair: keeping %s on the CPU", ", ".join(k["node"] for k in kept))
    try:
        return attempt(preparation, keep, {**record, "met": True})
    except _MissedTolerance as again:
        record["attempts"].append(
            {"kept": len(kept), "passed": False, "cosine": _worst_cosine(again.verification), "how": "bundle"}
        )
        raise failure(again.error.message, again.verification) from None


def _compile_placed(
    model: onnx.ModelProto,
    reference_model: onnx.ModelProto,
    source: onnx.ModelProto,
    target: Target,
    precision: str,
    options: CompileOptions,
    path: str,
    out_path: str,
    feeds: Sequence[Mapping[str, Any]],
    archive: bool,
    on_plan: Callable[[CompileResult], None] | None,
    preparation: Mapping[str, Any],
    keep_on_cpu: Sequence[tuple[str, str]],
    repair: Mapping[str, Any] | None,
) -> CompileResult:
    """One attempt: place the prepared `model` (the `keep_on_cpu` (node, reason) pairs on the CPU), emit every
    partition, verify the bundle against the float model and write it; raises _MissedTolerance when it misses the
    tolerance (nothing written). `repair`: the accuracy repair record stored in the manifest when this attempt passes."""
    from edgecc import bundle as bundle_io
    from edgecc.errors import NumericsError
    from edgecc.ortrun import OrtRunner
    from edgecc.pipeline.manifest import make_manifest
    from edgecc.pipeline.offload import check_offload
    from edgecc.runtime import load as load_bundle
    from edgecc.targets import get_target
    from edgecc.targets.api import EmitOptions
    from edgecc.targets.plan import boundary_values, extract_partition, partitions_of, plan_model

    graph, support, problem, plan, scores = plan_model(
        model,
        target,
        precision=precision,
        partitioner=options.partitioner,
        max_partitions=options.max_partitions,
        keep_on_cpu=dict(keep_on_cpu),
    )
    parts = partitions_of(graph, problem, plan, target, precision, {i.name for i in model.graph.initializer})
    boundary = sorted({t for p in parts for t in p.inputs})
    values = boundary_values(model, boundary, feeds)
    out = Path(out_path)
    result = CompileResult(target, precision, plan, scores, parts, support, graph, preparation=dict(preparation))
    if on_plan is not None:
        on_plan(result)
    with bundle_io.staging(out, archive=archive) as stage:
        (stage / "partitions").mkdir()
        artifacts: list[list[Path]] = []
        vendor: list[dict[str, Any]] = []
        for part in parts:
            sub = extract_partition(model, part.extract or part.nodes, part.inputs, part.outputs, f"p{part.index}_{part.device}")
            device_target = target if part.device == target.name else get_target(part.device)
            part_feeds = [{k: v[k] for k in part.inputs} for v in values]
            cal = part_feeds if part.precision in ("int8", "int16") else []
            emit_options = EmitOptions(
                vendor_compile=options.vendor_compile, vendor_options=dict(options.vendor_options), feeds=part_feeds
            )
            emitted = device_target.emit(
                sub, part.precision, stage / "partitions", f"p{part.index}_{part.device}", cal, emit_options
            )
            artifacts.append(emitted.files)
            vendor.append(emitted.info)
        manifest = make_manifest(result, source=source, source_path=path, stage=stage, artifacts=artifacts, vendor=vendor)
        check_offload(manifest["offload"], options.min_offload)
        float_runner = OrtRunner(reference_model, name="float model")
        reference = [float_runner.run(feed) for feed in feeds]
        bundle_io.write_reference(
            stage, feeds, reference, [i.name for i in float_runner.inputs], [o.name for o in float_runner.outputs]
        )
        bundle_io.write_manifest(stage, manifest)
        tolerance = _bundle_tolerance(options, [p.precision for p in parts], precision)
        bundle = load_bundle(stage)
        try:
            verification = bundle.verify(reference, feeds, tolerance)
        finally:
            bundle.close()
        verification.reference = f"{Path(path).name} (float, onnxruntime)"
        verification.candidate = f"{out.name} ({target.name} bundle)"
        manifest["verification"] = verification.to_dict()
        if repair is not None:
            attempts = [
                *repair["attempts"],
                {"kept": len(keep_on_cpu), "passed": True, "cosine": _worst_cosine(verification), "how": "bundle"},
            ]
            manifest["accuracy_repair"] = {**repair, "attempts": attempts}
        bundle_io.write_manifest(stage, manifest)
        result.manifest = manifest
        if not verification.passed:
            failed = ", ".join(o.name for o in verification.failures())
            error = NumericsError(
                f"the {target.name} bundle differs from the float model beyond {precision} tolerance on output(s) {failed}",
                report=verification,
                hint="give real --calibration data, a higher --precision, looser tolerances, or a larger --repair-budget",
            )
            raise _MissedTolerance(error, verification)
    return result
