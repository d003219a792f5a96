"""The installed `edgecc` console script end to end, one run per command family: most CLI tests call the same entry
function in-process (tests/conftest.py `run_edgecc`), so these prove that the script users run is wired to it, that
the exit codes come back through a real process, and that nothing but the one JSON document reaches stdout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_conv_onnx, run_installed_edgecc


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("entry") / "cnn.onnx"
    make_conv_onnx(path, batch=1)
    return path


def _ok(*args: str | Path) -> dict:
    result = run_installed_edgecc(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_optimize_passes_and_quantize(model: Path, tmp_path: Path) -> None:
    assert _ok("optimize", model, "-O3", "-o", tmp_path / "opt.onnx")["ok"] is True
    assert any(p["name"] == "fold-batchnorm" for p in _ok("passes")["passes"])
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(size=(8, 3, 16, 16)).astype(np.float32))
    document = _ok("quantize", model, "--calibration", f"x={tmp_path / 'cal.npy'}", "-o", tmp_path / "q.onnx")
    assert document["ok"] is True and (tmp_path / "q.onnx").is_file()


def test_compile_run_bench_and_targets(model: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "cnn.edgecc"
    assert _ok("compile", model, "--target", "hisilicon-npu", "-o", bundle)["ok"] is True
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 16, 16), np.float32))
    assert _ok("run", bundle, "--data", f"x={tmp_path / 'x.npy'}", "-o", tmp_path / "out.npz")["ok"] is True
    assert _ok("bench", bundle, "--repeats", "3", "--runs", "2", "--warmup", "1")["ok"] is True
    assert any(t["name"] == "ethos-u55-128" for t in _ok("targets")["targets"])


def test_a_failure_exits_with_its_code_through_the_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    result = run_installed_edgecc("inspect", bad, "--json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["ok"] is False
    assert "Traceback" not in result.stderr
