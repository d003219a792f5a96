"""The onnx backend node tests (from the onnx 1.22 wheel, which still ships them) through edgecc's -O3 passes.

`make install` extracts them into build/onnx-node-tests. Every case that
onnxruntime passes before optimisation must still pass after it.
Full run with counts: `.venv/bin/python -m tests.passes.onnx_backend_suite`.
"""

from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
NODE_TESTS = REPO / "build" / "onnx-node-tests"
WHEEL_PREFIX = "onnx/backend/test/data/node/"


def extract_node_tests(wheel: Path, target: Path = NODE_TESTS) -> None:
    """Extract the node test cases of an onnx wheel into `target`, refusing entries that would land outside it."""
    root = target.resolve()
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.startswith(WHEEL_PREFIX) or info.is_dir():
                continue
            destination = (root / info.filename[len(WHEEL_PREFIX) :]).resolve()
            if root not in destination.parents:
                raise ValueError(f"unsafe entry {info.filename!r} in {wheel}")
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(archive.read(info))


def fetch(target: Path = NODE_TESTS) -> None:
    """Download the onnx 1.22 wheel from the package index (pip) and extract its node tests into `target`."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", tmp, "onnx==1.22.0"],
            check=True,
        )
        (wheel,) = Path(tmp).glob("onnx-1.22.0-*.whl")
        extract_node_tests(wheel, target)
    (target / ".complete").write_text("onnx 1.22.0\n")


def _read_tensor(path: Path) -> np.ndarray | None:
    import onnx
    from onnx import numpy_helper

    tensor = onnx.TensorProto()
    try:
        tensor.ParseFromString(path.read_bytes())
    except Exception:  # noqa: BLE001 -- a file protobuf cannot parse is not a plain tensor case
        return None
    if not tensor.dims and not tensor.raw_data and not tensor.float_data and not tensor.int64_data and not tensor.int32_data:
        return None  # a sequence/optional/map value saved under a tensor name: not a plain tensor case
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # noqa: BLE001 -- numpy_helper.to_array has no single error type: not a plain tensor case
        return None


def _matches(got: list[np.ndarray], expected: list[np.ndarray]) -> bool:
    if len(got) != len(expected):
        return False
    for value, want in zip(got, expected):
        value = np.asarray(value)
        if value.shape != want.shape:
            return False
        if want.dtype.kind in "fc":
            if not np.allclose(value.astype(np.float64), want.astype(np.float64), rtol=1e-3, atol=1e-7, equal_nan=True):
                return False
        elif not np.array_equal(value, want):
            return False
    return True


@dataclass
class SuiteResult:
    """Counts of the run and the names of the cases that regressed."""

    cases: int = 0
    not_plain_tensors: int = 0
    onnxruntime_fails_before: int = 0
    passed_before: int = 0
    passed_after: int = 0
    regressions: list[str] = field(default_factory=list)
    optimizer_errors: list[str] = field(default_factory=list)


def _run(model, feeds):  # noqa: ANN001, ANN202
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_suite(every: int = 1, level: int = 3) -> SuiteResult:
    """Run every `every`-th case before and after the -O`level` pipeline."""
    import onnx

    from edgecc.passes import LEVELS
    from edgecc.passes.manager import run_passes

    result = SuiteResult()
    cases = sorted(p for p in NODE_TESTS.iterdir() if (p / "model.onnx").exists())
    for case in cases[::every]:
        result.cases += 1
        data = case / "test_data_set_0"
        model = onnx.load(str(case / "model.onnx"))
        names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        inputs = [_read_tensor(p) for p in sorted(data.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))]
        outputs = [_read_tensor(p) for p in sorted(data.glob("output_*.pb"), key=lambda p: int(p.stem.split("_")[1]))]
        if any(a is None for a in inputs + outputs) or len(inputs) != len(names):
            result.not_plain_tensors += 1
            continue
        feeds = dict(zip(names, inputs))
        try:
            before_ok = _matches(_run(model, feeds), outputs)
        except Exception:  # noqa: BLE001 -- onnxruntime raises its own types: the case fails before optimisation
            result.onnxruntime_fails_before += 1
            continue
        if not before_ok:
            result.onnxruntime_fails_before += 1
            continue
        result.passed_before += 1
        try:
            optimized, _ = run_passes(model, LEVELS[level])
        except Exception as exc:  # noqa: BLE001 -- any optimiser error is what the suite records
            result.optimizer_errors.append(f"{case.name}: {type(exc).__name__}: {exc}")
            continue
        try:
            after_ok = _matches(_run(optimized, feeds), outputs)
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own types: recorded as a regression
            after_ok = False
            result.regressions.append(f"{case.name}: onnxruntime cannot run the optimised model: {str(exc)[:120]}")
            continue
        if after_ok:
            result.passed_after += 1
        else:
            result.regressions.append(f"{case.name}: outputs differ after -O{level}")
    return result


def main() -> int:
    """`--fetch`: install the test data; otherwise print the counts of a full run."""
    if "--fetch" in sys.argv:
        if not (NODE_TESTS / ".complete").exists():
            fetch()
        return 0
    result = run_suite(every=1)
    print(
        f"onnx node test cases: {result.cases}; plain-tensor cases onnxruntime passes before optimisation: {result.passed_before}"
    )
    print(f"still passing after edgecc -O3: {result.passed_after}/{result.passed_before}")
    for line in result.optimizer_errors + result.regressions:
        print("  REGRESSION", line)
    return 0 if result.passed_after == result.passed_before else 1


if __name__ == "__main__":
    sys.exit(main())
