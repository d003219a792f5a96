"""Measurement core of `edgecc bench` and the zoo.

Latency: onnxruntime runs of a bundle (or ONNX model) on this host (one intra-op thread by default), timed in many
short repeats whose medians are the samples the regression test compares (alone, or interleaved A/B with a baseline
bundle in the same run); accelerator latency from the target's cost model (the bundle manifest's `estimates`) or a
vendor estimator (a partition's `vendor.estimates`, e.g. Vela's), always labelled estimated. Memory: VmHWM of the
measuring process (reset before loading), model size on disk. Accuracy: cosine, SQNR and top-1 agreement against the
float reference, or top-1 accuracy when labels are given.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BenchSettings",
    "COUNT_BOUNDS",
    "MEASURED",
    "ESTIMATED",
    "machine_info",
    "package_versions",
    "reset_peak",
    "peak_rss",
    "current_rss",
    "path_bytes",
    "measure_latency",
    "measure_interleaved",
    "estimated_latency",
    "vendor_latency_us",
    "accuracy",
    "robust_noise",
    "bench_bundle",
]

MEASURED = "measured: onnxruntime on this host's CPU (accelerator partitions emulated in their precision)"
ESTIMATED = "estimated"

#: the packages whose versions a result document records (read from metadata, nothing imported)
PACKAGES = ("edgecc", "numpy", "onnx", "onnxruntime", "torch", "tensorflow", "tf2onnx", "ethos-u-vela", "ray")


#: inclusive bounds of the benchmark counts, for `edgecc bench` options and zoo files alike (README "Safety")
COUNT_BOUNDS: dict[str, tuple[int, int]] = {
    "runs": (1, 100_000),
    "repeats": (1, 1000),
    "warmup": (0, 10_000),
    "samples": (1, 10_000),
    "threads": (0, 1024),
}


@dataclass(frozen=True)
class BenchSettings:
    """How latency is measured: `repeats` blocks of `runs` timed runs after `warmup` untimed ones, with `threads`
    onnxruntime intra-op threads per session (0: onnxruntime's default, every core: unstable on a loaded machine)."""

    runs: int = 10
    repeats: int = 30
    warmup: int = 3
    threads: int = 1

    def __post_init__(self) -> None:
        for key in ("runs", "repeats", "warmup", "threads"):
            low, high = COUNT_BOUNDS[key]
            value = getattr(self, key)
            if not low <= value <= high:
                raise UsageError(f"bench setting {key} must be {low}..{high}, got {value}")

    def to_dict(self) -> dict[str, int]:
        """JSON-ready."""
        return asdict(self)


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, OS and Python of this host."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def package_versions() -> dict[str, str | None]:
    """Versions of edgecc and the packages that shape its numbers (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def _status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            return next((int(line.split()[1]) * 1024 for line in handle if line.startswith(key + ":")), None)
    except OSError:
        return None


def current_rss() -> int | None:
    """Resident set size of this process in bytes (None where /proc is missing)."""
    return _status("VmRSS")


def peak_rss() -> int | None:
    """Peak resident set size (VmHWM) of this process in bytes."""
    return _status("VmHWM")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS, so that earlier work does not count; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def path_bytes(path: str | Path) -> int:
    """Size on disk of a file, or of every file under a directory."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def robust_noise(values: Sequence[float]) -> float:
    """Run-to-run noise of repeated measurements: 1.4826 x the median absolute deviation (a robust sigma)."""
    import numpy as np

    if len(values) < 2:
        return 0.0
    arr = np.asarray(values, dtype=np.float64)
    return float(1.4826 * np.median(np.abs(arr - np.median(arr))))


def _block(runner: Any, feed: Mapping[str, np.ndarray], runs: int, per_part: list[list[float]]) -> list[float]:
    """`runs` timed runs of `runner` (seconds each); per-partition timings are appended to `per_part`."""
    block = []
    for _ in range(runs):
        timings = [0.0] * len(per_part)
        start = time.perf_counter()
        runner.run(feed, timings=timings)
        block.append(time.perf_counter() - start)
        for index, value in enumerate(timings):
            per_part[index].append(value)
    return block


def _summary(runner: Any, settings: BenchSettings, blocks: list[list[float]], per_part: list[list[float]]) -> dict[str, Any]:
    import numpy as np

    ms = np.concatenate([np.asarray(b) for b in blocks]) * 1e3
    repeat_p50 = [float(np.median(b)) * 1e3 for b in blocks]
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    mean = float(ms.mean())
    return {
        "source": MEASURED,
        "runs": settings.runs,
        "repeats": settings.repeats,
        "warmup": settings.warmup,
        "threads": settings.threads,
        "p50_ms": round(p50, 5),
        "p90_ms": round(p90, 5),
        "p99_ms": round(p99, 5),
        "mean_ms": round(mean, 5),
        "min_ms": round(float(ms.min()), 5),
        "throughput_per_s": round(1e3 / mean, 3) if mean > 0 else None,
        "repeat_p50_ms": [round(v, 6) for v in repeat_p50],
        "median_of_repeats_ms": round(float(np.median(repeat_p50)), 6),
        "noise_ms": round(robust_noise(repeat_p50), 6),
        "timer_resolution_ms": time.get_clock_info("perf_counter").resolution * 1e3,
        "interleaved": None,
        "partitions": [
            {
                "name": p["name"],
                "device": p["device"],
                "precision": p["precision"],
                "p50_ms": round(float(np.median(values)) * 1e3, 5) if values else None,
            }
            for p, values in zip(runner.partitions, per_part)
        ],
    }


def measure_latency(runner: Any, feed: Mapping[str, np.ndarray], settings: BenchSettings) -> dict[str, Any]:
    """Time `runner.run(feed)` (a `BundleRunner`) in `repeats` blocks of `runs`: pooled p50/p90/p99/mean,
    throughput, per-repeat medians (the samples `regression` tests) and their spread, per partition p50."""
    for _ in range(settings.warmup):
        runner.run(feed)
    per_part: list[list[float]] = [[] for _ in runner.partitions]
    blocks = [_block(runner, feed, settings.runs, per_part) for _ in range(settings.repeats)]
    return _summary(runner, settings, blocks, per_part)


def measure_interleaved(
    baseline: Any,
    current: Any,
    feeds: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
    settings: BenchSettings,
    *,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Interleaved A/B measurement of two runners in one run: `repeats` rounds, each one block of `runs` of both in a
    seeded random order, so that both see the same load; the two measurements share an `interleaved.session`, which
    makes `regression` pair them round by round."""
    import uuid

    import numpy as np

    runners = (baseline, current)
    for runner, feed in zip(runners, feeds):
        for _ in range(settings.warmup):
            runner.run(feed)
    per_part: tuple[list[list[float]], ...] = tuple([[] for _ in r.partitions] for r in runners)
    blocks: tuple[list[list[float]], list[list[float]]] = ([], [])
    order = np.random.default_rng(seed)
    for _ in range(settings.repeats):
        for side in order.permutation(2):
            blocks[side].append(_block(runners[side], feeds[side], settings.runs, per_part[side]))
    session = uuid.uuid4().hex
    results = []
    for side, role in enumerate(("baseline", "current")):
        summary = _summary(runners[side], settings, blocks[side], per_part[side])
        summary["interleaved"] = {"session": session, "role": role, "rounds": settings.repeats, "order_seed": seed}
        results.append(summary)
    return results[0], results[1]


def vendor_latency_us(estimates: Mapping[str, Any]) -> float | None:
    """Latency in microseconds from a vendor estimator's figures (time, inferences/s, or cycles and clock); None if absent."""

    def number(*keys: str) -> float | None:
        for key in keys:
            value = estimates.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value):
                return float(value)
        return None

    for keys, scale in (
        (("latency_us", "inference_time_us", "time_us"), 1.0),
        (("latency_ms", "inference_time_ms", "time_ms"), 1e3),
        (("latency_s", "inference_time_s", "inference_time", "time_s"), 1e6),
    ):
        value = number(*keys)
        if value is not None:
            return value * scale
    rate = number("inferences_per_second", "inferences_per_s", "inference_per_second", "fps")
    if rate is not None:
        return 1e6 / rate
    cycles, clock = number("cycles", "total_cycles", "npu_cycles"), number("clock_hz", "core_clock_hz", "clock")
    if cycles is not None and clock is not None:
        return cycles / clock * 1e6
    return None


def estimated_latency(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle's estimated latency (cost model, with vendor figures replacing their partitions'
    estimates) and speed-up vs all-CPU."""
    estimates = manifest.get("estimates") or {}
    strategy = estimates.get("partitioner", "optimal")
    chosen = estimates.get(strategy) or {}
    total_us = chosen.get("total_us")
    cpu_us = (estimates.get("all-cpu") or {}).get("total_us")
    source = "cost model"
    vendor_parts = []
    for part in manifest.get("partitions", []):
        vendor = part.get("vendor") or {}
        vendor_est = vendor.get("estimates") if isinstance(vendor, Mapping) else None
        us = vendor_latency_us(vendor_est) if isinstance(vendor_est, Mapping) else None
        if us is not None:
            vendor_parts.append(
                {
                    "partition": part["name"],
                    "device": part["device"],
                    "vendor_us": round(us, 3),
                    "cost_model_us": part.get("estimated_us"),
                }
            )
            if total_us is not None:
                total_us = total_us - float(part.get("estimated_us") or 0.0) + us
    if vendor_parts:
        source = "vendor estimator for " + ", ".join(p["partition"] for p in vendor_parts) + " + cost model for the rest"
    target = manifest.get("target", {})
    result: dict[str, Any] = {
        "source": f"{ESTIMATED}: {source} of {target.get('name', '?')}",
        "target": target.get("name"),
        "precision": target.get("precision"),
        "partitioner": strategy,
        "latency_ms": round(total_us / 1e3, 6) if total_us is not None else None,
        "throughput_per_s": round(1e6 / total_us, 3) if total_us else None,
        "cpu_latency_ms": round(cpu_us / 1e3, 6) if cpu_us is not None else None,
        "speedup_vs_cpu": round(cpu_us / total_us, 4) if cpu_us and total_us else None,
        "partitions": [
            {"name": p["name"], "device": p["device"], "precision": p["precision"], "estimated_us": p.get("estimated_us")}
            for p in manifest.get("partitions", [])
        ],
    }
    if vendor_parts:
        result["vendor"] = vendor_parts
    return result


def _value(number: float) -> float | str:
    return number if math.isfinite(number) else str(number)


def accuracy(
    reference: Sequence[Mapping[str, np.ndarray]],
    candidate: Sequence[Mapping[str, np.ndarray]],
    names: Sequence[str],
    *,
    labels: np.ndarray | None = None,
    label_output: str | None = None,
    reference_name: str = "float model",
) -> dict[str, Any]:
    """Per-output cosine/SQNR/top-1 agreement with the float reference, their worst values, and top-1 accuracy with labels."""
    import numpy as np

    from edgecc.verify import METRICS_ONLY, compare_outputs, stack_samples

    outputs = []
    for m in compare_outputs(list(reference), list(candidate), METRICS_ONLY, names=names).outputs:
        outputs.append(
            {
                "name": m.name,
                "cosine": _value(m.cosine),
                "sqnr_db": _value(m.sqnr_db),
                "max_abs": _value(m.max_abs),
                "top1_agreement": m.top1,
                "top5_agreement": m.top5,
            }
        )
    cosines = [float(o["cosine"]) for o in outputs]
    sqnrs = [float(o["sqnr_db"]) for o in outputs]
    top1 = [o["top1_agreement"] for o in outputs if o["top1_agreement"] is not None]
    result: dict[str, Any] = {
        "reference": reference_name,
        "samples": len(candidate),
        "outputs": outputs,
        "cosine_min": _value(min(cosines)) if cosines else None,
        "sqnr_db_min": _value(min(sqnrs)) if sqnrs else None,
        "top1_agreement": min(top1) if top1 else None,
        "task": None,
    }
    if labels is not None:
        output = label_output or names[0]
        if output not in names:
            raise UsageError(f"label output '{output}' is not a model output ({', '.join(names)})")

        def top1_accuracy(results: Sequence[Mapping[str, np.ndarray]]) -> float:
            scores = stack_samples(list(results), output)
            scores = scores.reshape(len(labels), -1)
            return float(np.mean(scores.argmax(axis=1) == labels.reshape(-1)))

        result["task"] = {
            "metric": "top1_accuracy",
            "output": output,
            "labels": int(len(labels)),
            "value": top1_accuracy(candidate),
            "reference_value": top1_accuracy(reference),
        }
    return result


def bench_bundle(
    bundle: str | Path,
    *,
    feeds: Sequence[Mapping[str, np.ndarray]],
    reference: Sequence[Mapping[str, np.ndarray]] | None,
    settings: BenchSettings,
    labels: np.ndarray | None = None,
    label_output: str | None = None,
    reference_name: str = "float model (onnxruntime)",
) -> dict[str, Any]:
    """One bench record of a bundle (or ONNX model): measured and estimated latency, memory, size, accuracy."""
    from edgecc.ortrun import ort_threads
    from edgecc.runtime import load

    reset = reset_peak()
    before = current_rss()
    with ort_threads(settings.threads):
        runner = load(bundle)
    try:
        names = [o.name for o in runner.outputs]
        outputs = [runner.run(feed) for feed in feeds]
        measured = measure_latency(runner, feeds[0], settings)
        peak = peak_rss()
        manifest = runner.manifest
    finally:
        runner.close()
    if reference is not None:
        scores = accuracy(reference, outputs, names, labels=labels, label_output=label_output, reference_name=reference_name)
    elif labels is not None:
        scores = accuracy(
            outputs, outputs, names, labels=labels, label_output=label_output, reference_name="itself (labels only)"
        )
    else:
        scores = None
    target = (manifest or {}).get("target", {"name": "onnxruntime", "precision": "fp32"})
    return {
        "target": target.get("name"),
        "precision": target.get("precision"),
        "offload": (manifest or {}).get("offload"),
        "latency": {"measured": measured, "estimated": estimated_latency(manifest) if manifest else None},
        "memory": {
            "peak_rss_bytes": peak,
            "rss_before_load_bytes": before,
            "peak_increase_bytes": (peak - before) if peak is not None and before is not None else None,
            "peak_reset": reset,
            "bundle_bytes": path_bytes(bundle),
            "artifact_bytes": sum(f["bytes"] for p in manifest["partitions"] for f in p["files"])
            if manifest
            else path_bytes(bundle),
        },
        "accuracy": scores,
        "verification_passed": (manifest.get("verification") or {}).get("passed") if manifest else None,
    }
