"""The stages of a zoo run, executed in worker processes (local pool or Ray).

Model job (once per model): convert (verified against the original framework where it runs here) -> optimise
(verified against the converted model). Pair job (per model x target): quantise (whole model, the target's scheme)
-> compile (partitioned, verified bundle) -> verify (bundle vs float model on the evaluation data) -> bench.
Each job returns a JSON-ready dict; a failing stage stops its job and is recorded with its exit code and message.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecc.zoo.config import ModelSpec

__all__ = ["model_job", "pair_job", "init_worker", "failure_of", "model_file", "pair_dir"]


def model_file(out_dir: str | Path, model: str) -> Path:
    """Where a model's optimised float ONNX is kept."""
    return Path(out_dir) / "models" / model / "model.onnx"


def pair_dir(out_dir: str | Path, model: str, target: str) -> Path:
    """The artifact folder of one pair."""
    return Path(out_dir) / "pairs" / f"{model}@{target}"


_EXIT_HOOKED: list[bool] = []


def init_worker(log_path: str | None, threads: int | None = None) -> None:
    """Worker start: stdout and stderr go to a per-worker log file (keeps the driver's terminal and --json stdout clean);
    with `threads`, the math libraries (OpenMP, MKL, torch, TensorFlow) use that many threads, so workers share the cores."""
    if threads:
        for name in (
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS",
            "EDGECC_ORT_THREADS",
        ):
            os.environ.setdefault(name, str(threads))
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{log_path}.{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    import atexit
    import logging

    logging.getLogger("edgecc").setLevel(logging.WARNING)
    if not _EXIT_HOOKED:  # Ray calls this once per task in the same worker process
        _EXIT_HOOKED.append(True)
        atexit.register(_exit_without_teardown)


def _exit_without_teardown() -> None:
    """Worker exit: run multiprocessing's own exit handlers, then skip the seconds-long interpreter teardown of
    TensorFlow/torch (every result has been handed back by then)."""
    from multiprocessing import util

    util._exit_function()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def failure_of(stage: str, exc: BaseException) -> dict[str, Any]:
    """A stage failure as recorded in result documents: stage, exit code, kind, one-line message."""
    from edgecc.errors import EXIT_INTERNAL, EdgeccError

    if isinstance(exc, EdgeccError):
        return {"stage": stage, "exit_code": exc.exit_code, "kind": exc.kind, "message": exc.one_line()}
    return {
        "stage": stage,
        "exit_code": EXIT_INTERNAL,
        "kind": "internal",
        "message": f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}",
    }


class _Stages:
    """Runs named stages in order, timing each, stopping at the first failure."""

    def __init__(self) -> None:
        self.record: list[dict[str, Any]] = []
        self.failure: dict[str, Any] | None = None

    def run(self, name: str, func: Callable[[], Any]) -> Any:
        if self.failure is not None:
            return None
        start = time.perf_counter()
        try:
            value = func()
        except Exception as exc:  # noqa: BLE001 -- every failure is recorded and the zoo continues
            self.record.append({"stage": name, "status": "failed", "seconds": round(time.perf_counter() - start, 4)})
            self.failure = failure_of(name, exc)
            return None
        self.record.append({"stage": name, "status": "ok", "seconds": round(time.perf_counter() - start, 4)})
        return value

    def skip(self, name: str, why: str) -> None:
        if self.failure is None:
            self.record.append({"stage": name, "status": "skipped", "seconds": 0.0, "why": why})


def _convert(spec: ModelSpec, seed: int) -> tuple[Any, dict[str, Any]]:
    from edgecc.converters.options import ConvertOptions
    from edgecc.errors import NumericsError
    from edgecc.inputs import parse_input_specs
    from edgecc.pipeline.convert import convert, verify_conversion

    options = ConvertOptions(
        framework=spec.framework,
        opset=spec.opset,
        inputs=parse_input_specs(spec.inputs),
        outputs=spec.outputs,
        random_weights=spec.random_weights,
        epoch=spec.epoch,
        signature=spec.signature,
        dequantize=spec.dequantize,
        nchw_inputs=spec.nchw_inputs,
    )
    conversion = convert(list(spec.files), options)
    info: dict[str, Any] = {"frontend": conversion.frontend.name, "verified_against": None}
    if spec.verify:
        report = verify_conversion(conversion, seed=seed)
        if report is not None:
            info["verified_against"] = report.reference
            info["cosine_min"] = min(float(o.cosine) for o in report.outputs) if report.outputs else None
            if not report.passed:
                raise NumericsError(
                    f"model '{spec.name}': converted model differs from {report.reference} on output(s) "
                    + ", ".join(o.name for o in report.failures()),
                    report=report,
                )
    return conversion.model, info


def model_job(spec: ModelSpec, out_dir: str, level: int, seed: int) -> dict[str, Any]:
    """Convert and optimise one model; the optimised float model is written to `models/<name>/model.onnx`."""
    start = time.perf_counter()
    stages = _Stages()
    converted = stages.run("convert", lambda: _convert(spec, seed))
    info: dict[str, Any] = {}
    if converted is not None:
        info.update(converted[1])

        def optimize() -> Any:
            from edgecc.onnxutil import save_onnx
            from edgecc.passes import pipeline_for
            from edgecc.pipeline.optimize import optimize_and_verify

            model, report, _ = optimize_and_verify(converted[0], pipeline_for(level), seed=seed, name=spec.name)
            path = model_file(out_dir, spec.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_onnx(model, path)
            info.update({"nodes_before": report.nodes_before, "nodes_after": report.nodes_after, "bytes": path.stat().st_size})

        stages.run("optimize", optimize)
    return {
        "model": spec.name,
        "status": "ok" if stages.failure is None else "failed",
        "failure": stages.failure,
        "stages": stages.record,
        "info": info,
        "job_seconds": round(time.perf_counter() - start, 4),
    }


def _data(spec: ModelSpec, inputs: list[Any], samples: int, seed: int) -> tuple[list[Any], list[Any], Any, str]:
    """Calibration feeds, evaluation feeds, labels, and where the evaluation data came from."""
    from edgecc.data import DataOptions, load_samples, random_feeds, read_evaluation

    labels = None
    if spec.evaluation:
        evaluation, labels = read_evaluation(spec.evaluation, inputs, option="evaluation")
        source = Path(spec.evaluation).name
    if spec.calibration:
        calibration = load_samples(
            spec.calibration, inputs, DataOptions(option="calibration", seed=seed, random_count=samples, finite=True)
        ).feeds
    elif spec.evaluation:
        calibration = evaluation
    else:
        calibration = random_feeds(inputs, seed=seed, count=samples)
    if not spec.evaluation:
        evaluation = random_feeds(inputs, seed=seed + 1, count=samples)
        source = f"{samples} random samples (seed {seed + 1})"
    return calibration, evaluation, labels, source


def _no_quantize(state: dict[str, Any], settings: dict[str, Any]) -> str | None:
    """Why the quantise stage does not apply (None: it does)."""
    if not settings["quantize"]:
        return "quantize = false"
    if state["target"].default_precision not in ("int8", "int16", "fp16"):
        return f"{state['target'].default_precision} target"
    if any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul") for n in state["model"].graph.node
    ):
        return "the model is already quantised (its scales are kept)"
    return None


def pair_job(spec: ModelSpec, target_label: str, target_ref: str, out_dir: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Quantise, compile, verify and bench one (model, target) pair; artifacts go to `pairs/<model>@<target>/`."""
    start = time.perf_counter()
    stages = _Stages()
    state: dict[str, Any] = {}
    folder = pair_dir(out_dir, spec.name, target_label)

    def prepare() -> None:
        from edgecc.onnxutil import graph_inputs, load_onnx
        from edgecc.targets import get_target

        folder.mkdir(parents=True, exist_ok=True)
        state["target"] = get_target(target_ref)
        state["model"] = load_onnx(model_file(out_dir, spec.name))
        state["inputs"] = graph_inputs(state["model"])
        state["calibration"], state["evaluation"], state["labels"], state["source"] = _data(
            spec, state["inputs"], settings["samples"], settings["seed"]
        )

    def quantize() -> dict[str, Any]:
        import dataclasses

        from edgecc.onnxutil import save_onnx
        from edgecc.quantization.core import QuantOptions, quantize_model

        target = state["target"]
        scheme = dataclasses.replace(target.quant_scheme, precision=target.default_precision)
        mode = "fp16" if scheme.precision == "fp16" else "static"
        model, report = quantize_model(
            state["model"], scheme, state["calibration"], QuantOptions(mode=mode, holdout=0.25), name=spec.name
        )
        save_onnx(model, folder / "quantized.onnx")
        cosines = [float(m.cosine) for m in report.outputs]
        return {
            "precision": scheme.precision,
            "mode": report.mode,
            "size_before": report.size_before,
            "size_after": report.size_after,
            "holdout_samples": report.evaluation_samples,
            "cosine_min": min(cosines) if cosines else None,
        }

    def compile_bundle() -> dict[str, Any]:
        from edgecc.pipeline.compile import CompileOptions, compile_model

        result = compile_model(
            state["model"],
            state["target"],
            str(folder / "bundle.edgecc"),
            options=CompileOptions(level=0, seed=settings["seed"]),
            path=str(model_file(out_dir, spec.name)),
            calibration=state["calibration"],
            archive=True,
        )
        return {
            "precision": result.precision,
            "partitions": len(result.partitions),
            "devices": sorted({p.device for p in result.partitions}),
            "verification_passed": result.manifest["verification"]["passed"],
        }

    def verify() -> dict[str, Any]:
        from edgecc.ortrun import OrtRunner
        from edgecc.pipeline.benchmark import accuracy
        from edgecc.runtime import load

        reference_runner = OrtRunner(state["model"], name=spec.name)
        reference = [reference_runner.run(feed) for feed in state["evaluation"]]
        runner = load(folder / "bundle.edgecc")
        try:
            outputs = [runner.run(feed) for feed in state["evaluation"]]
            names = [o.name for o in runner.outputs]
        finally:
            runner.close()
        result = accuracy(
            reference,
            outputs,
            names,
            labels=state["labels"],
            label_output=spec.label_output,
            reference_name="float model (onnxruntime)",
        )
        result["data"] = state["source"]
        return result

    def bench() -> dict[str, Any]:
        from edgecc.pipeline.benchmark import BenchSettings, bench_bundle

        bench_settings = BenchSettings(runs=settings["runs"], repeats=settings["repeats"], warmup=settings["warmup"])
        return bench_bundle(folder / "bundle.edgecc", feeds=state["evaluation"][:1], reference=None, settings=bench_settings)

    stages.run("prepare", prepare)
    quantized = None
    why = _no_quantize(state, settings) if stages.failure is None else None
    if why:
        stages.skip("quantize", why)
    else:
        quantized = stages.run("quantize", quantize)
    compiled = stages.run("compile", compile_bundle)
    scores = stages.run("verify", verify)
    record = stages.run("bench", bench)
    if record is not None:
        record["accuracy"] = scores
        record["quantized_model"] = quantized
        record["compile"] = compiled
    return {
        "model": spec.name,
        "target": target_label,
        "status": "ok" if stages.failure is None else "failed",
        "failure": stages.failure,
        "stages": stages.record,
        "record": record,
        "job_seconds": round(time.perf_counter() - start, 4),
    }
