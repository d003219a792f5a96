"""End-to-end tests of the `edgecc` command line itself: help, version, exit codes, --json, -q, --debug."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgecc
from tests.conftest import make_conv_onnx, run_installed_edgecc

#: packages `edgecc --help` must never import (DESIGN.md: heavy frameworks are imported lazily)
HEAVY = ("torch", "tensorflow", "onnx", "onnxruntime", "numpy", "tf2onnx", "keras", "onnx_ir", "onnxscript")

_MODULES_PROBE = r"""
import json, sys
argv = json.loads(sys.argv[1])
report = sys.argv[2]
from edgecc.cli import main
code = None
try:
    main(argv)
except SystemExit as exc:
    code = exc.code
with open(report, "w") as handle:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, handle)
"""


def _modules_after(argv: list[str], tmp_path: Path) -> tuple[int | None, list[str], str]:
    """Run edgecc's main with `argv` in a fresh interpreter; return its exit code, sys.modules and stdout."""
    report = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", _MODULES_PROBE, json.dumps(argv), str(report)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    return data["exit"], data["modules"], proc.stdout


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgecc: error:")]


def _perturbed_copy(src: Path, dst: Path, name: str = "fc.b", delta: float = 1.0) -> Path:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name == name:
            array = numpy_helper.to_array(tensor).copy()
            array.flat[0] += delta
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(array, name))
            break
    else:
        raise AssertionError(f"no initializer {name}")
    onnx.save(model, str(dst))
    return dst


# --- help, version, unknown command -------------------------------------------------------------


def test_help_lists_the_commands():
    result = run_installed_edgecc("--help")
    assert result.returncode == 0, result.stderr
    for name in ("convert", "inspect", "verify"):
        assert any(line.strip().startswith(name) for line in result.stdout.splitlines()), result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["convert", "inspect", "verify"])
def test_subcommand_help_exits_zero(command):
    result = run_installed_edgecc(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"edgecc {command}" in result.stdout
    assert "--json" in result.stdout


@pytest.mark.parametrize(
    "argv, loaded",
    [
        (["--help"], "edgecc.cli"),
        (["convert", "--help"], "edgecc.commands.convert"),
        (["inspect", "--help"], "edgecc.commands.inspect"),
        (["verify", "--help"], "edgecc.commands.verify"),
        (["--version"], "edgecc.cli"),
    ],
)
def test_help_imports_no_heavy_framework(argv, loaded, tmp_path):
    code, modules, stdout = _modules_after(argv, tmp_path)
    assert code == 0
    assert stdout.strip(), "help/version printed nothing"
    # the probe really saw edgecc's modules (guards against an empty or stale module list)
    assert loaded in modules and "click" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"`edgecc {' '.join(argv)}` imported {heavy}"


def test_help_imports_nothing_heavy_according_to_importtime():
    """The same property seen through `python -X importtime` on the real entry point."""
    code = "import sys; sys.argv=['edgecc','--help']; from edgecc.cli import main; main()"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            imported.append(line.rsplit("|", 1)[1].strip())
    assert "edgecc.cli" in imported and "click" in imported
    heavy = sorted({m for m in imported if m.split(".")[0] in HEAVY})
    assert heavy == []


def test_version_matches_package():
    result = run_installed_edgecc("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"edgecc {edgecc.__version__}"


def test_unknown_command_is_usage_error():
    result = run_installed_edgecc("frobnicate")
    assert result.returncode == 2
    assert "frobnicate" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_option_is_usage_error(conv_onnx):
    result = run_installed_edgecc("inspect", conv_onnx, "--no-such-option")
    assert result.returncode == 2
    assert "--no-such-option" in result.stderr
    assert "Traceback" not in result.stderr


# --- --json ---------------------------------------------------------------------------------------


def test_json_inspect_success_is_one_document(conv_onnx):
    result = run_installed_edgecc("inspect", conv_onnx, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)  # the whole of stdout is exactly one document
    assert doc["ok"] is True and doc["command"] == "inspect"
    assert result.stderr == ""


def test_json_verify_success_is_one_document(conv_onnx):
    result = run_installed_edgecc("verify", conv_onnx, conv_onnx, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["command"] == "verify"
    assert doc["passed"] is True


def test_json_convert_success_is_one_document(conv_onnx, tmp_path):
    out = tmp_path / "out.onnx"
    result = run_installed_edgecc("convert", conv_onnx, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["command"] == "convert"
    assert Path(doc["output"]) == out and out.is_file()
    assert doc["verification"]["passed"] is True


def test_json_invalid_input_error_document(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a model")
    result = run_installed_edgecc("inspect", bad, "--json")
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["error"]["exit_code"] == 3
    assert "bad.onnx" in doc["error"]["message"] or doc["error"]["path"].endswith("bad.onnx")


def test_json_usage_error_from_edgecc(conv_onnx):
    result = run_installed_edgecc("inspect", conv_onnx, "--framework", "no-such-framework", "--json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["error"]["exit_code"] == 2


def test_json_usage_error_from_option_parsing(conv_onnx):
    """A missing required option is a failing command too: --json still owes one JSON document."""
    result = run_installed_edgecc("convert", conv_onnx, "--json")  # no -o
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["error"]["exit_code"] == 2


def test_json_numerics_failure_document(conv_onnx, tmp_path):
    """verify outside tolerance: one document, ok=false, and the error with its exit code like every other failure."""
    candidate = _perturbed_copy(conv_onnx, tmp_path / "perturbed.onnx")
    result = run_installed_edgecc("verify", conv_onnx, candidate, "--json")
    assert result.returncode == 5
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["error"]["exit_code"] == 5


# --- tracebacks -------------------------------------------------------------------------------------


def test_no_traceback_without_debug(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    result = run_installed_edgecc("inspect", bad)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == _error_lines(result.stderr)
    assert len(_error_lines(result.stderr)) == 1


def test_traceback_with_debug(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    result = run_installed_edgecc("inspect", bad, "--debug")
    assert result.returncode == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert len(_error_lines(result.stderr)) == 1
    assert result.stderr.strip().splitlines()[-1].startswith("edgecc: error:")


def test_traceback_with_debug_environment(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"")
    result = run_installed_edgecc("inspect", bad, env={"EDGECC_DEBUG": "1"})
    assert result.returncode == 3
    assert "Traceback (most recent call last)" in result.stderr


def test_numerics_failure_has_no_traceback(conv_onnx, tmp_path):
    candidate = _perturbed_copy(conv_onnx, tmp_path / "perturbed.onnx")
    result = run_installed_edgecc("verify", conv_onnx, candidate)
    assert result.returncode == 5
    assert "Traceback" not in result.stderr
    assert len(_error_lines(result.stderr)) == 1


# --- -q ---------------------------------------------------------------------------------------------


def test_quiet_suppresses_inspect_tables(conv_onnx):
    loud = run_installed_edgecc("inspect", conv_onnx)
    assert loud.returncode == 0
    assert "Conv" in loud.stderr  # the tables are there without -q
    quiet = run_installed_edgecc("inspect", conv_onnx, "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert quiet.stdout == ""


def test_quiet_suppresses_verify_table(conv_onnx, tmp_path):
    loud = run_installed_edgecc("verify", conv_onnx, conv_onnx)
    assert loud.returncode == 0
    assert "logits" in loud.stderr
    quiet = run_installed_edgecc("verify", conv_onnx, conv_onnx, "--quiet")
    assert quiet.returncode == 0
    assert quiet.stderr == "" and quiet.stdout == ""


def test_quiet_failure_prints_only_the_error(conv_onnx, tmp_path):
    candidate = _perturbed_copy(conv_onnx, tmp_path / "perturbed.onnx")
    result = run_installed_edgecc("verify", conv_onnx, candidate, "-q")
    assert result.returncode == 5
    assert result.stderr.strip().splitlines() == _error_lines(result.stderr)
    assert len(_error_lines(result.stderr)) == 1


def test_quiet_convert_writes_silently(conv_onnx, tmp_path):
    out = tmp_path / "out.onnx"
    result = run_installed_edgecc("convert", conv_onnx, "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""
    import onnx

    onnx.checker.check_model(onnx.load(str(out)))


def test_python_dash_m_runs_the_same_cli():
    proc = subprocess.run([sys.executable, "-m", "edgecc", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"edgecc {edgecc.__version__}"


def test_convert_is_deterministic(tmp_path):
    model = make_conv_onnx(tmp_path / "m.onnx")
    assert model is not None
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    assert run_installed_edgecc("convert", tmp_path / "m.onnx", "-o", a, "-q").returncode == 0
    assert run_installed_edgecc("convert", tmp_path / "m.onnx", "-o", b, "-q").returncode == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("command", ["convert", "verify", "optimize", "quantize", "compile", "run", "bench"])
def test_negative_seed_is_a_usage_error(command, conv_onnx, tmp_path):
    """numpy refuses negative seeds: `--seed -1` was an internal error (ValueError, exit 1) once data was made."""
    out = tmp_path / "out.bin"
    args = {
        "convert": ("convert", conv_onnx, "-o", out),
        "verify": ("verify", conv_onnx, conv_onnx),
        "optimize": ("optimize", conv_onnx, "-o", out),
        "quantize": ("quantize", conv_onnx, "-o", out, "--calibration", "random"),
        "compile": ("compile", conv_onnx, "--target", "cpu", "-o", out),
        "run": ("run", conv_onnx),
        "bench": ("bench", conv_onnx),
    }[command]
    result = run_installed_edgecc(*args, "--seed", "-1")
    assert result.returncode == 2, result.stderr
    assert "--seed" in result.stderr and "0<=x<=4294967295" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(("option", "value"), [("--repeats", "2147483647"), ("--runs", "0"), ("--warmup", "10001")])
def test_bench_counts_are_bounded(option, value, conv_onnx):
    result = run_installed_edgecc("bench", conv_onnx, option, value, timeout=60)
    assert result.returncode == 2 and option in result.stderr and "not in the range" in result.stderr


def test_bench_settings_bounds_hold_for_library_callers():
    from edgecc.errors import UsageError
    from edgecc.pipeline.benchmark import BenchSettings

    with pytest.raises(UsageError, match="repeats must be 1..1000, got 2147483647"):
        BenchSettings(repeats=2147483647)
    assert BenchSettings(runs=100_000, repeats=1000, warmup=0).runs == 100_000
