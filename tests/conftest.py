"""Shared test helpers: run the installed `edgecc` entry point, build small real models."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


#: the fast lane (`make test-fast`, `pytest -m fast`): the tests of modules that spawn no process and name no heavy
#: framework, neither in their own text nor in the `tests.*` helpers and folder conftest.py files they use (the
#: edit-test loop; under a minute). In that lane importing torch or TensorFlow raises, so a test that does fails.
NOT_FAST = re.compile(r"run_edgecc|subprocess|\bedgecc\(|torch|tensorflow|tf2onnx|keras|tflite|SHARED|NODE_TESTS")
HEAVY_FRAMEWORKS = ("torch", "tensorflow")
_HELPER = re.compile(r"^\s*(?:from|import) (tests(?:\.\w+)+)(?: import ([\w, ]+))?", re.MULTILINE)
_FAST: dict[Path, bool] = {}


def _helpers(path: Path) -> list[Path]:
    """The tests.* modules a test module imports, and the conftest.py files of its folders below tests/."""
    found = [folder / "conftest.py" for folder in path.parents if REPO / "tests" in folder.parents]
    for match in _HELPER.finditer(path.read_text()):
        base = REPO.joinpath(*match.group(1).split("."))
        names = [n.strip() for n in (match.group(2) or "").split(",") if n.strip()]
        found += [base.with_suffix(".py"), base / "__init__.py"] + [base / f"{n}.py" for n in names]
    return [p for p in found if p.is_file() and p != REPO / "tests" / "conftest.py"]


def _fast_module(path: Path) -> bool:
    if path not in _FAST:
        _FAST[path] = all(NOT_FAST.search(p.read_text()) is None for p in [path, *_helpers(path)])
    return _FAST[path]


def _fast_lane(config: pytest.Config) -> bool:
    return "fast" in (config.option.markexpr or "")


class _HeavyImportBlocker:
    """A meta-path finder that makes `import torch` / `import tensorflow` raise (not ImportError: no fallback hides it)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] in HEAVY_FRAMEWORKS:
            raise AssertionError(f"'{name}' imported in the fast lane: this test belongs in `make test` only")


def pytest_configure(config: pytest.Config) -> None:
    if _fast_lane(config):
        sys.meta_path.insert(0, _HeavyImportBlocker())


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the fast lane, modules outside it are not even imported (a module-level `import torch` would load torch)."""
    if _fast_lane(config) and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return True if not _fast_module(collection_path) else None
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        excluded = item.get_closest_marker("slow") or item.get_closest_marker("shared")
        if excluded is None and _fast_module(Path(item.path)):
            item.add_marker(pytest.mark.fast)


@dataclass
class Result:
    """Outcome of one `edgecc` run."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def edgecc_executable() -> str:
    """The console script installed beside the running Python (the venv's `edgecc`)."""
    candidate = Path(sys.executable).with_name("edgecc")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("edgecc")
    assert found, "the edgecc entry point is not installed (run `make install`)"
    return found


def run_installed_edgecc(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300
) -> Result:
    """Run the installed `edgecc ARGS...` console script in a new process, as a user would, and capture its output."""
    full_env = dict(os.environ)
    full_env.pop("EDGECC_DEBUG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [edgecc_executable(), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_edgecc(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300) -> Result:
    """`edgecc ARGS...` through the CLI's own entry function (`edgecc.cli.main`) in this process: the same code path as
    the console script, without a new interpreter per call. stdout/stderr, the working directory, os.environ, the
    `edgecc` logger and the warning filters are captured or restored around the call. A run with its own `env`
    goes to a new process (`run_installed_edgecc`), since variables read at import time would not take effect."""
    if env:
        return run_installed_edgecc(*args, cwd=cwd, env=env, timeout=timeout)
    import contextlib
    import io
    import logging
    import warnings

    from edgecc.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    logger = logging.getLogger("edgecc")
    saved_logger = logger.handlers[:], logger.level, logger.propagate
    logger.handlers = []
    os.environ.pop("EDGECC_DEBUG", None)
    code: int | str | None = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        logger.handlers, logger.level, logger.propagate = saved_logger
    if code is None:
        code = 0
    elif not isinstance(code, int):
        err.write(f"{code}\n")
        code = 1
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def edgecc():
    """The `run_edgecc` helper as a fixture."""
    return run_edgecc


def make_conv_onnx(path: Path | None = None, *, opset: int = 17, batch: int | str = "N", seed: int = 0):
    """A small real ONNX CNN (Conv+Relu+MaxPool+GlobalAveragePool+Gemm) with a dynamic batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv.w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv.b")
    fw = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "fc.w")
    fb = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc.b")
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("MaxPool", ["relu"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])],
        initializer=[w, b, fw, fb],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def make_mlp_onnx(path: Path | None = None, *, layers: int = 6, width: int = 512, seed: int = 0):
    """A real ONNX MLP: `layers` MatMul+Relu layers of width x width (batch 1). Twice the layers is twice the work, so
    `layers=2 * n` is a model with its layers duplicated: a real 2x slowdown of `layers=n`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = [
        numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), f"w{i}")
        for i in range(layers)
    ]
    nodes, previous = [], "x"
    for index in range(layers):
        nodes.append(helper.make_node("MatMul", [previous, f"w{index}"], [f"mm{index}"], name=f"mm{index}"))
        nodes.append(helper.make_node("Relu", [f"mm{index}"], [f"relu{index}"], name=f"relu{index}"))
        previous = f"relu{index}"
    nodes.append(helper.make_node("Identity", [previous], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


@pytest.fixture
def cpu_load():
    """Other CPU-heavy work on this machine while the test runs: one busy-loop process per core (killed afterwards)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def conv_onnx(tmp_path: Path) -> Path:
    """Path of a small ONNX CNN with a dynamic batch dimension."""
    path = tmp_path / "cnn.onnx"
    make_conv_onnx(path)
    return path


def assert_clean_failure(result: Result, code: int, *named: str) -> str:
    """Exit `code`, stderr exactly one `edgecc: error:` line naming every `named`, no traceback, nothing on stdout."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, f"exit {result.returncode}, expected {code}: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgecc: error:"), lines[0]
    for name in named:
        assert name in lines[0], f"the error does not name {name}: {lines[0]}"
    assert result.stdout == ""
    return lines[0]


@dataclass
class Scratch:
    """A folder for one run: `files` for its inputs and outputs, `tmp` as its TMPDIR, `cwd` its working directory."""

    root: Path

    def __post_init__(self) -> None:
        for name in ("files", "tmp", "cwd"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    @property
    def files(self) -> Path:
        return self.root / "files"

    def run(self, *args: str | Path, env: dict[str, str] | None = None, timeout: int = 300) -> Result:
        """`edgecc ARGS...` with TMPDIR and the working directory inside the scratch folder."""
        return run_edgecc(*args, cwd=self.root / "cwd", env={"TMPDIR": str(self.root / "tmp"), **(env or {})}, timeout=timeout)

    def snapshot(self) -> dict[str, bytes]:
        """Every regular file under `files` (links not followed) -> its content."""
        return {
            str(p.relative_to(self.files)): p.read_bytes()
            for p in sorted(self.files.rglob("*"))
            if p.is_file() and not p.is_symlink()
        }

    def assert_nothing_left(self) -> None:
        """No temporary file and nothing in the working directory outlives the run."""
        assert not any((self.root / "tmp").iterdir()), list((self.root / "tmp").iterdir())
        assert not any((self.root / "cwd").iterdir()), list((self.root / "cwd").iterdir())


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    """A Scratch folder in tmp_path."""
    return Scratch(tmp_path / "scratch")
