"""Run a bundle partition by partition: `edgecc.runtime.load(path).run(feeds)`.

Each partition gets one session from its device's target (`Target.runner`: onnxruntime in the
partition's precision, which emulates the device's numerics here); tensors are passed between
partitions in CPU memory, converted to the dtype the consumer declares.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import UsageError
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np

    from edgecc.verify import Tolerance, VerificationReport

__all__ = ["BenchmarkReport", "BundleRunner", "load"]


def _info(entry: Mapping[str, Any]) -> TensorInfo:
    shape = entry["shape"]
    return TensorInfo(entry["name"], tuple(shape) if shape is not None else None, entry["dtype"])


@dataclass
class BenchmarkReport:
    """Latency percentiles per partition and in total (milliseconds), and bytes moved between partitions."""

    runs: int
    partitions: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, float] = field(default_factory=dict)
    bytes_between_partitions: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "runs": self.runs,
            "partitions": self.partitions,
            "total_ms": self.total,
            "bytes_between_partitions": self.bytes_between_partitions,
        }


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(values) * 1e3
    return {
        "p50": round(float(np.percentile(arr, 50)), 4),
        "p90": round(float(np.percentile(arr, 90)), 4),
        "p99": round(float(np.percentile(arr, 99)), 4),
        "mean": round(float(arr.mean()), 4),
    }


class BundleRunner:
    """A loaded bundle (or a plain ONNX model as one CPU partition)."""

    def __init__(self, path: str | Path, *, specs: Sequence[Any] = ()) -> None:
        self.name = str(path)
        self.bundle = None
        self.manifest: dict[str, Any] | None = None
        if str(path).endswith(".onnx") and Path(path).is_file():
            self._load_onnx(path, specs)
        else:
            self._load_bundle(path)

    def _load_onnx(self, path: str | Path, specs: Sequence[Any]) -> None:
        from edgecc.onnxutil import apply_input_specs, load_onnx
        from edgecc.ortrun import OrtRunner

        runner = OrtRunner(apply_input_specs(load_onnx(path), specs, path=path), name=str(path))
        self.inputs, self.outputs = runner.inputs, runner.outputs
        self.partitions = [
            {
                "name": "p0",
                "device": "cpu",
                "precision": "fp32",
                "inputs": [i.name for i in self.inputs],
                "outputs": [o.name for o in self.outputs],
                "dtypes": {i.name: i.dtype for i in self.inputs},
            }
        ]
        self.sessions = [runner]

    def _load_bundle(self, path: str | Path) -> None:
        from edgecc.bundle import open_bundle
        from edgecc.targets import get_target

        self.bundle = open_bundle(path)
        manifest = self.bundle.manifest
        self.manifest = manifest
        self.inputs = [_info(e) for e in manifest["inputs"]]
        self.outputs = [_info(e) for e in manifest["outputs"]]
        self.partitions = []
        self.sessions = []
        for part in manifest["partitions"]:
            try:
                target = get_target(part["device"])
            except UsageError:
                from edgecc.errors import MissingDependencyError

                raise MissingDependencyError(
                    f"edgecc target plug-in '{part['device']}'", feature=f"running partition {part['index']}"
                ) from None
            self.sessions.append(
                target.runner(self.bundle.file(part["artifact"]), name=f"{self.name}:{part['name']}({part['device']})")
            )
            self.partitions.append(
                {
                    "name": part["name"],
                    "device": part["device"],
                    "precision": part["precision"],
                    "inputs": [e["name"] for e in part["inputs"]],
                    "outputs": [e["name"] for e in part["outputs"]],
                    "dtypes": {e["name"]: e["dtype"] for e in part["inputs"]},
                }
            )

    def _feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import numpy as np

        expected = [i.name for i in self.inputs]
        unknown = [k for k in feeds if k not in expected]
        missing = [k for k in expected if k not in feeds]
        if unknown or missing:
            raise UsageError(
                f"inputs do not match {self.name}: "
                + (f"unknown {', '.join(unknown)}; " if unknown else "")
                + (f"missing {', '.join(missing)}" if missing else ""),
                hint=f"the bundle takes {', '.join(i.name + ':' + i.shape_text() for i in self.inputs)}",
            )
        return {k: np.asarray(v) for k, v in feeds.items()}

    def run(
        self, feeds: Mapping[str, np.ndarray], *, timings: list[float] | None = None, moved: list[int] | None = None
    ) -> dict[str, np.ndarray]:
        """Execute every partition in order; returns the model's outputs by name."""
        env = self._feeds(feeds)
        graph_inputs = set(env)
        for index, (part, session) in enumerate(zip(self.partitions, self.sessions)):
            local = {}
            for name in part["inputs"]:
                value = env[name]
                want = part["dtypes"].get(name)
                if want and str(value.dtype) != want:
                    value = value.astype(want)
                local[name] = value
                if moved is not None and name not in graph_inputs:
                    moved[0] += value.nbytes
            start = time.perf_counter()
            env.update(session.run(local))
            if timings is not None:
                timings[index] += time.perf_counter() - start
        return {o.name: env[o.name] for o in self.outputs}

    def benchmark(self, feeds: Mapping[str, np.ndarray], runs: int, *, warmup: int = 2) -> BenchmarkReport:
        """Run `runs` times (after `warmup`) and report per-partition and total latency percentiles."""
        for _ in range(warmup):
            self.run(feeds)
        per_part: list[list[float]] = [[] for _ in self.partitions]
        totals = []
        moved = [0]
        for _ in range(runs):
            timings = [0.0] * len(self.partitions)
            start = time.perf_counter()
            self.run(feeds, timings=timings, moved=moved)
            totals.append(time.perf_counter() - start)
            for index, value in enumerate(timings):
                per_part[index].append(value)
        report = BenchmarkReport(runs, total=_percentiles(totals), bytes_between_partitions=moved[0] // max(1, runs))
        for part, values in zip(self.partitions, per_part):
            report.partitions.append(
                {"name": part["name"], "device": part["device"], "precision": part["precision"], **_percentiles(values)}
            )
        return report

    def verify(
        self, expected: Sequence[Mapping[str, np.ndarray]], feeds: Sequence[Mapping[str, np.ndarray]], tolerance: Tolerance
    ) -> VerificationReport:
        """Compare this bundle's outputs on `feeds` with `expected` (the float model's)."""
        from edgecc.verify import compare_outputs

        return compare_outputs(
            list(expected),
            [self.run(feed) for feed in feeds],
            tolerance,
            names=[o.name for o in self.outputs],
            reference_name="float model",
            candidate_name=self.name,
        )

    def reference(self) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
        """The bundle's stored sample inputs and expected outputs ([], [] for a plain model)."""
        if self.bundle is None or self.manifest is None:
            return [], []
        from edgecc.bundle import read_reference

        return read_reference(self.bundle.root, self.manifest)

    def close(self) -> None:
        """Release the extraction directory of an archive bundle."""
        if self.bundle is not None:
            self.bundle.close()


def load(path: str | Path, *, specs: Sequence[Any] = ()) -> BundleRunner:
    """Load a bundle directory, a `.edgecc` archive, or an `.onnx` model, ready to `run(feeds)`."""
    return BundleRunner(path, specs=specs)
