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
) -> tuple[list[dict[str, Any]], str, dict[str, np.ndarray]]:
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
    return [record], source, feeds[0]


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
    ab_path: str | None = None,
    status: Status = nullcontext,
) -> tuple[dict[str, Any], CompareReport | None]:
    """Bench MODEL (ONNX, compiled per target) or a bundle; the result document and, with a baseline, the comparison.

    With `ab_path` (a model or bundle of the same kind as MODEL), that baseline is benched too and both are re-measured
    interleaved in this run; the comparison's latency verdict uses those paired samples (its accuracy: the
    `baseline_path` document when given, else the baseline's fresh record)."""
    from edgecc.pipeline.documents import read_document

    baseline = read_document(baseline_path, ("edgecc.bench",)) if baseline_path else None
    if ab_path is not None and is_bundle(ab_path) != is_bundle(model):
        raise UsageError(f"--ab {ab_path} and {model} must both be ONNX models or both bundles")
    options = dict(
        targets=targets,
        data=data,
        eval_path=eval_path,
        label_output=label_output,
        calibration=calibration,
        reference_path=reference_path,
        input_specs=input_specs,
        settings=settings,
        samples=samples,
        seed=seed,
        status=status,
    )
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-") as tmp:
        records, source, bundles, feed = _bench_any(model, workdir=Path(tmp) / "current", **options)
        if ab_path is not None:
            ab_records, _, ab_bundles, _ = _bench_any(ab_path, workdir=Path(tmp) / "baseline", **options)
            records, ab_records = _interleave(ab_records, ab_bundles, records, bundles, feed, settings, status)
            if baseline is None:
                baseline = bench_document(ab_path, ab_records, settings, source)
            else:
                measured = {r["target"]: r["latency"]["measured"] for r in ab_records}
                baseline = {**baseline, "records": [_remeasured(r, measured) for r in baseline["records"]]}
    document = bench_document(model, records, settings, source)
    report = None
    if baseline is not None:
        from edgecc.pipeline.regression import compare_entries

        def entries(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
            return {r["target"]: {"status": "ok", "record": r} for r in doc["records"]}

        report = compare_entries(entries(baseline), entries(document), thresholds)
    return document, report


def _remeasured(record: Mapping[str, Any], measured: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    from edgecc.pipeline.abtest import with_measured

    return with_measured(record, measured[record["target"]]) if record.get("target") in measured else dict(record)


def _interleave(
    base_records: list[dict[str, Any]],
    base_bundles: list[str],
    records: list[dict[str, Any]],
    bundles: list[str],
    feed: Mapping[str, np.ndarray],
    settings: BenchSettings,
    status: Status,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both record lists with their measured latency replaced by an interleaved A/B measurement per target."""
    from edgecc.pipeline.abtest import ab_measure, with_measured

    new_base, new_cur = [], []
    for base_record, base_bundle, record, bundle in zip(base_records, base_bundles, records, bundles):
        with status(f"interleaved A/B measurement on {record['target']}"):
            measured_b, measured_c = ab_measure(base_bundle, bundle, settings, feed=feed)
        new_base.append(with_measured(base_record, measured_b))
        new_cur.append(with_measured(record, measured_c))
    return new_cur, new_base


def _bench_any(
    model: str,
    *,
    workdir: Path,
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
    status: Status,
) -> tuple[list[dict[str, Any]], str, list[str], dict[str, np.ndarray]]:
    """Records, input description, the benched bundles and the measured feed, for a bundle or an ONNX model."""
    from edgecc.pipeline.benchmark import bench_bundle

    if is_bundle(model):
        if targets:
            raise UsageError(
                f"{model} is a compiled bundle; --target applies to an ONNX model", hint="bench the bundle without --target"
            )
        if calibration or input_specs:
            raise UsageError("--calibration and --input apply to an ONNX model, not to a bundle")
        records, source, feed = _bench_bundle_file(
            model,
            data=data,
            eval_path=eval_path,
            label_output=label_output,
            reference_path=reference_path,
            settings=settings,
            samples=samples,
            seed=seed,
        )
        return records, source, [model], feed
    if reference_path:
        raise UsageError("--reference applies to a bundle; an ONNX model is its own float reference")
    workdir.mkdir(parents=True, exist_ok=True)
    return _bench_model(
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
        workdir=workdir,
    )


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
    workdir: str | Path,
) -> tuple[list[dict[str, Any]], str, list[str], dict[str, np.ndarray]]:
    """Records, where the inputs came from, the bundles (one per target, in `workdir`) and the measured feed."""
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
    records, bundles = [], []
    for target in chosen:
        bundle = str(Path(workdir) / f"{target.name}.edgecc")
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
        with status(f"benchmarking {model} on {target.name}"):
            records.append(
                bench(bundle, feeds=feeds, reference=reference, settings=settings, labels=labels, label_output=label_output)
            )
        bundles.append(bundle)
    return records, described, bundles, feeds[0]
