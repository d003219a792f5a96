"""`edgecc bench` end to end: pick inputs and the float reference, compile MODEL for each target, bench every bundle."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from edgecc.pipeline.benchmark import BenchSettings
    from edgecc.pipeline.regression import CompareReport, Thresholds

#: a context manager factory shown while a long step runs (the CLI passes `Ui.status`; no-op by default)
Status = Callable[[str], AbstractContextManager[Any]]

__all__ = ["bench_command", "is_bundle", "bench_document"]


def is_bundle(path: str) -> bool:
    """True for a `.edgecc` archive or a bundle directory."""
    return path.endswith(".edgecc") or (Path(path).is_dir() and (Path(path) / "manifest.json").is_file())


def bench_document(model: str, records: list[dict[str, Any]], settings: BenchSettings, inputs_from: str) -> dict[str, Any]:
    """An `edgecc.bench` result document: records plus machine, package versions and settings."""
    from edgecc import __version__
    from edgecc.pipeline.benchmark import machine_info, package_versions
    from edgecc.pipeline.documents import stamp

    return stamp(
        "edgecc.bench",
        {
            "model": model,
            "edgecc_version": __version__,
            "machine": machine_info(),
            "packages": package_versions(),
            "settings": settings.to_dict(),
            "inputs_from": inputs_from,
            "records": records,
        },
    )


def _feeds(
    inputs: Sequence[Any], data: Sequence[str], eval_path: str | None, samples: int, seed: int
) -> tuple[list[dict[str, np.ndarray]], np.ndarray | None, str]:
    from edgecc.data import DataOptions, read_evaluation, samples_or_random

    if eval_path and data:
        raise UsageError("give --data or --eval, not both")
    if eval_path:
        feeds, labels = read_evaluation(eval_path, inputs)
        return feeds, labels, f"{len(feeds)} samples of {eval_path}" + (" with labels" if labels is not None else "")
    loaded = samples_or_random(data, inputs, DataOptions(option="--data", random_count=samples, seed=seed))
    described = f"{loaded.description} from --data" if data else f"{samples} random samples (seed {seed})"
    return loaded.feeds, None, described


def _bench_bundle_file(
    model: str,
    *,
    data: Sequence[str],
    eval_path: str | None,
    label_output: str | None,
    reference_path: str | None,
    settings: BenchSettings,
    samples: int,
    seed: int,
) -> tuple[list[dict[str, Any]], str]:
    from edgecc.ortrun import OrtRunner
    from edgecc.pipeline.benchmark import bench_bundle
    from edgecc.runtime import load

    runner = load(model)
    try:
        inputs = runner.inputs
        stored_inputs, stored_outputs = runner.reference()
    finally:
        runner.close()
    labels = None
    if data or eval_path or not stored_inputs:
        feeds, labels, source = _feeds(inputs, data, eval_path, samples, seed)
        reference = None
        if reference_path:
            from edgecc.onnxutil import load_onnx

            float_runner = OrtRunner(load_onnx(reference_path), name=reference_path)
            reference = [float_runner.run(feed) for feed in feeds]
    else:
        if reference_path:
            raise UsageError("--reference needs --data or --eval (without them the bundle's stored reference outputs are used)")
        feeds, reference, source = stored_inputs, stored_outputs, "the bundle's reference inputs and float outputs"
    record = bench_bundle(model, feeds=feeds, reference=reference, settings=settings, labels=labels, label_output=label_output)
    return [record], source


def bench_command(
    model: str,
    *,
    targets: Sequence[str],
    data: Sequence[str],
    eval_path: str | None,
    label_output: str | None,
    calibration: Sequence[str],
    reference_path: str | None,
    input_specs: Sequence[str],
    settings: BenchSettings,
    samples: int,
    seed: int,
    baseline_path: str | None,
    thresholds: Thresholds,
    status: Status = nullcontext,
) -> tuple[dict[str, Any], CompareReport | None]:
    """Bench MODEL (ONNX, compiled per target) or a bundle; the result document and, with a baseline, the comparison."""
    from edgecc.pipeline.benchmark import bench_bundle
    from edgecc.pipeline.documents import read_document

    baseline = read_document(baseline_path, ("edgecc.bench",)) if baseline_path else None
    if is_bundle(model):
        if targets:
            raise UsageError(
                f"{model} is a compiled bundle; --target applies to an ONNX model", hint="bench the bundle without --target"
            )
        if calibration or input_specs:
            raise UsageError("--calibration and --input apply to an ONNX model, not to a bundle")
        records, source = _bench_bundle_file(
            model,
            data=data,
            eval_path=eval_path,
            label_output=label_output,
            reference_path=reference_path,
            settings=settings,
            samples=samples,
            seed=seed,
        )
    else:
        if reference_path:
            raise UsageError("--reference applies to a bundle; an ONNX model is its own float reference")
        records, source = _bench_model(
            model,
            targets=targets or ("cpu",),
            data=data,
            eval_path=eval_path,
            label_output=label_output,
            calibration=calibration,
            input_specs=input_specs,
            settings=settings,
            samples=samples,
            seed=seed,
            status=status,
            bench=bench_bundle,
        )
    document = bench_document(model, records, settings, source)
    report = None
    if baseline is not None:
        from edgecc.pipeline.regression import compare_entries

        def entries(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
            return {r["target"]: {"status": "ok", "record": r} for r in doc["records"]}

        report = compare_entries(entries(baseline), entries(document), thresholds)
    return document, report


def _bench_model(
    model: str,
    *,
    targets: Sequence[str],
    data: Sequence[str],
    eval_path: str | None,
    label_output: str | None,
    calibration: Sequence[str],
    input_specs: Sequence[str],
    settings: BenchSettings,
    samples: int,
    seed: int,
    status: Status,
    bench: Any,
) -> tuple[list[dict[str, Any]], str]:
    from edgecc.converters import detect_frontend
    from edgecc.inputs import parse_input_specs
    from edgecc.onnxutil import apply_input_specs, load_onnx
    from edgecc.ortrun import OrtRunner
    from edgecc.pipeline.compile import CompileOptions, compile_model
    from edgecc.targets import get_target

    if not Path(model).exists():
        raise UsageError(f"model '{model}' does not exist", hint="check the path")
    if Path(model).is_file() and detect_frontend([model], None).name != "onnx":
        raise UsageError(
            f"{model} is not an ONNX model or an edgecc bundle", hint=f"convert it first: edgecc convert {model} -o model.onnx"
        )
    chosen = [get_target(name) for name in targets]  # unknown names fail before any work
    specs = parse_input_specs(input_specs)
    source = apply_input_specs(load_onnx(model), specs, path=model)
    float_runner = OrtRunner(source, name=model)
    feeds, labels, described = _feeds(float_runner.inputs, data, eval_path, samples, seed)
    reference = [float_runner.run(feed) for feed in feeds]
    calibration_data = calibration or feeds
    records = []
    for target in chosen:
        with tempfile.TemporaryDirectory(prefix="edgecc-bench-") as tmp:
            bundle = str(Path(tmp) / f"{target.name}.edgecc")
            with status(f"compiling {model} for {target.name}"):
                compile_model(
                    source,
                    target,
                    bundle,
                    options=CompileOptions(samples=min(samples, 8), seed=seed),
                    path=model,
                    specs=specs,
                    calibration=calibration_data,
                )
            with status(f"benchmarking on {target.name}"):
                records.append(
                    bench(bundle, feeds=feeds, reference=reference, settings=settings, labels=labels, label_output=label_output)
                )
    return records, described
