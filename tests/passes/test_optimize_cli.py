"""`edgecc optimize` and `edgecc passes` end to end through the installed entry point; `edgecc convert` stamping."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecc.passes import LEVELS, load_passes
from tests.conftest import make_conv_onnx, run_edgecc
from tests.passes.helpers import assert_same_outputs, const, make_model, node, ops
from tests.passes.test_manager import _kitchen_sink


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _verify(reference: Path, candidate: Path) -> dict:
    """`edgecc verify` with max abs <= 1e-5 x range."""
    result = run_edgecc("verify", reference, candidate, "--rtol", "1e-5", "--atol", "0", "--samples", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["passed"] is True
    return report


@pytest.fixture
def sink(tmp_path: Path) -> Path:
    path = tmp_path / "sink.onnx"
    onnx.save(_kitchen_sink(), str(path))
    return path


# --- edgecc passes ------------------------------------------------------------------------------------------------


def test_passes_lists_every_pass_and_level() -> None:
    registry = load_passes()
    text = run_edgecc("passes")
    assert text.returncode == 0, text.stderr
    for name in registry.names():
        assert name in text.stderr  # human output (rich table) goes to stderr; stdout is for --json
    result = run_edgecc("passes", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert data["ok"] is True and data["command"] == "passes"
    assert [row["name"] for row in data["passes"]] == list(registry.names())
    assert data["levels"] == {f"O{k}": list(v) for k, v in LEVELS.items()}
    rows = {row["name"]: row for row in data["passes"]}
    assert rows["fold-batchnorm"]["levels"] == "O2,O3" and rows["fold-batchnorm"]["family"] == "fusion"
    assert rows["eliminate-identity"]["levels"] == "O1,O2,O3"
    assert all(row["description"] for row in data["passes"])


# --- edgecc optimize ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_optimize_levels(sink: Path, tmp_path: Path, level: int) -> None:
    out, report_path = tmp_path / f"o{level}.onnx", tmp_path / f"o{level}.json"
    result = run_edgecc("optimize", sink, f"-O{level}", "--report", report_path, "-o", out)
    assert result.returncode == 0, result.stderr  # never 5 (numerics) on correct passes
    assert out.exists()
    report = json.loads(report_path.read_text())
    assert report["pipeline"] == list(LEVELS[level])
    assert [p["name"] for p in report["passes"]] == list(LEVELS[level])
    assert report["nodes_before"] == len(onnx.load(str(sink)).graph.node)
    assert report["nodes_after"] == len(onnx.load(str(out)).graph.node)
    assert report["ops_after"] == ops(onnx.load(str(out)))
    if level:
        assert report["nodes_after"] < report["nodes_before"]
        assert all(p["runs"] >= 1 for p in report["passes"])
    assert _metadata(out)["edgecc.passes"] == ",".join(LEVELS[level])
    if level == 3:  # `edgecc verify` as the user would run it; in-process onnxruntime for every level
        _verify(sink, out)
    assert_same_outputs(onnx.load(str(sink)), onnx.load(str(out)))


def test_optimize_default_is_o2_and_json(sink: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    result = run_edgecc("optimize", sink, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # one JSON document and nothing else
    assert data["ok"] is True and data["command"] == "optimize" and data["output"] == str(out)
    assert data["report"]["pipeline"] == list(LEVELS[2])
    assert data["verification"]["passed"] is True
    assert data["report"]["ops_after"] == ops(onnx.load(str(out)))
    assert "BatchNormalization" not in data["report"]["ops_after"]


def test_optimize_pass_edits(sink: Path, tmp_path: Path) -> None:
    out, report_path = tmp_path / "out.onnx", tmp_path / "r.json"
    result = run_edgecc(
        "optimize",
        sink,
        "-O1",
        "--passes",
        "fold-batchnorm,-eliminate-common-subexpressions",
        "--passes",
        "+fold-pad",
        "--report",
        report_path,
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    expected = [n for n in LEVELS[1] if n != "eliminate-common-subexpressions"] + ["fold-batchnorm", "fold-pad"]
    assert json.loads(report_path.read_text())["pipeline"] == expected
    after = ops(onnx.load(str(out)))
    assert "BatchNormalization" not in after and "Pad" not in after
    assert after["Relu"] == 3  # the common subexpression stays: CSE was removed from the pipeline
    assert _metadata(out)["edgecc.passes"] == ",".join(expected)
    assert_same_outputs(onnx.load(str(sink)), onnx.load(str(out)))


def test_optimize_no_verify_and_max_iterations(sink: Path, tmp_path: Path) -> None:
    out, report_path = tmp_path / "out.onnx", tmp_path / "r.json"
    result = run_edgecc(
        "optimize", sink, "-O2", "--no-verify", "--max-iterations", "1", "--report", report_path, "-o", out, "--json"
    )
    assert result.returncode == 0, result.stderr
    assert result.json()["verification"] is None
    assert json.loads(report_path.read_text())["iterations"] == 1
    assert_same_outputs(onnx.load(str(sink)), onnx.load(str(out)))


def test_optimize_conv_sample(conv_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    result = run_edgecc("optimize", conv_onnx, "-O3", "-o", out)
    assert result.returncode == 0, result.stderr
    assert_same_outputs(onnx.load(str(conv_onnx)), onnx.load(str(out)), shapes={"x": [3, 3, 16, 16]})


def test_optimize_o3_to_higher_opset_recognises_gelu(tmp_path: Path) -> None:
    # an opset-17 model with an erf-Gelu decomposition, optimised for opset 20
    model = make_model(
        [
            node("Div", ["x", "root2"], ["q"]),
            node("Erf", ["q"], ["e"]),
            node("Add", ["e", "one"], ["inner"]),
            node("Mul", ["x", "half"], ["xh"]),
            node("Mul", ["xh", "inner"], ["y"]),
        ],
        [("x", [2, 16])],
        [("y", [2, 16])],
        [const("root2", math.sqrt(2)), const("one", 1.0), const("half", 0.5)],
        opset=17,
    )
    source, out = tmp_path / "gelu.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(source))
    result = run_edgecc("optimize", source, "-O3", "--opset", "20", "-o", out)
    assert result.returncode == 0, result.stderr
    optimized = onnx.load(str(out))
    assert next(o.version for o in optimized.opset_import if o.domain == "") == 20
    assert ops(optimized) == {"Gelu": 1}
    assert_same_outputs(model, optimized)


def _edge_case_model(case: str) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = const("w", rng.uniform(-1, 1, (6, 4)))
    if case == "gemm row bias then per-channel add":
        return make_model(
            [node("Gemm", ["x", "w", "b"], ["g"]), node("Add", ["g", "k"], ["y"])],
            [("x", [4, 6])],
            [("y", [4, 4])],
            [w, const("b", rng.uniform(-1, 1, (4, 1))), const("k", rng.uniform(-1, 1, 4))],
        )
    if case == "matmul plus rank-3 bias":
        return make_model(
            [node("MatMul", ["x", "w"], ["m"]), node("Add", ["m", "b"], ["y"])],
            [("x", [3, 6])],
            [("y", [1, 3, 4])],
            [w, const("b", rng.uniform(-1, 1, (1, 1, 4)))],
        )
    # Pad of 2 before a 2x2 MaxPool
    return make_model(
        [node("Pad", ["x", "pads", "v"], ["p"]), node("MaxPool", ["p"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
        [("x", [1, 2, 6, 6])],
        [("y", [1, 2, 4, 4])],
        [const("pads", [0, 0, 2, 2, 0, 0, 0, 0], np.int64), const("v", -np.inf)],
    )


@pytest.mark.parametrize(
    "case", ["gemm row bias then per-channel add", "matmul plus rank-3 bias", "pad wider than the pool kernel"]
)
def test_optimize_edge_cases_succeed(tmp_path: Path, case: str) -> None:
    """Correct passes never make `edgecc optimize` fail (5 = numerics, 1/3 = an output onnxruntime rejects)."""
    source, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(_edge_case_model(case), str(source))
    result = run_edgecc("optimize", source, "-O3", "-o", out)
    assert result.returncode == 0, result.stderr
    assert_same_outputs(onnx.load(str(source)), onnx.load(str(out)))


# --- failures -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"this is not an onnx model", b""], ids=["garbage", "empty"])
def test_optimize_bad_input_exits_3_without_output(tmp_path: Path, content: bytes) -> None:
    bad, out = tmp_path / "bad.onnx", tmp_path / "out.onnx"
    bad.write_bytes(content)
    result = run_edgecc("optimize", bad, "-o", out)
    assert result.returncode == 3, (result.returncode, result.stderr)
    assert not out.exists()
    assert "Traceback" not in result.stderr


def test_optimize_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    # a path that does not exist is a usage error (2) throughout edgecc (tests/test_bad_input.py)
    out = tmp_path / "out.onnx"
    result = run_edgecc("optimize", tmp_path / "missing.onnx", "-o", out, "--json")
    assert result.returncode == 2
    assert result.json()["ok"] is False
    assert not out.exists()


def test_optimize_unknown_pass_exits_2_and_keeps_existing_output(sink: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    out.write_bytes(b"precious")
    result = run_edgecc("optimize", sink, "--passes", "fold-everything", "-o", out)
    assert result.returncode == 2
    assert "fold-everything" in result.stderr
    assert out.read_bytes() == b"precious"
    result = run_edgecc("optimize", sink, "--passes", "-fold-everything", "-o", tmp_path / "other.onnx")
    assert result.returncode == 2 and not (tmp_path / "other.onnx").exists()


def test_optimize_unknown_level_exits_2(sink: Path, tmp_path: Path) -> None:
    result = run_edgecc("optimize", sink, "-O4", "-o", tmp_path / "out.onnx")
    assert result.returncode == 2
    assert not (tmp_path / "out.onnx").exists()


# --- edgecc convert records the cleanup passes --------------------------------------------------------------------


def test_convert_stamps_passes_unless_no_optimize(tmp_path: Path) -> None:
    source = tmp_path / "cnn.onnx"
    make_conv_onnx(source)
    out, raw = tmp_path / "out.onnx", tmp_path / "raw.onnx"
    result = run_edgecc("convert", source, "-o", out)
    assert result.returncode == 0, result.stderr
    assert _metadata(out)["edgecc.passes"] == ",".join(LEVELS[1])
    result = run_edgecc("convert", source, "--no-optimize", "-o", raw)
    assert result.returncode == 0, result.stderr
    assert "edgecc.passes" not in _metadata(raw)
    _verify(source, out)
    assert_same_outputs(onnx.load(str(source)), onnx.load(str(raw)))


def test_initializers_listed_as_inputs_fold_unless_kept(tmp_path: Path) -> None:
    from tests.legacy_models import ultraface_like

    legacy = ultraface_like(tmp_path / "legacy.onnx")
    folded, kept = tmp_path / "folded.onnx", tmp_path / "kept.onnx"
    result = run_edgecc("optimize", legacy, "-O2", "-o", folded, "--json")
    assert result.returncode == 0, result.stderr
    assert "BatchNormalization" not in ops(onnx.load(str(folded)))
    assert [i.name for i in onnx.load(str(folded)).graph.input] == ["input"]
    result = run_edgecc("optimize", legacy, "-O2", "--keep-initializer-inputs", "-o", kept, "--json")
    assert result.returncode == 0, result.stderr
    assert ops(onnx.load(str(kept)))["BatchNormalization"] == 7  # overridable weights cannot be folded
    _verify(legacy, folded)
    _verify(legacy, kept)


def test_convert_of_a_pytorch_1x_file_writes_the_ir_version_of_opset_17(tmp_path: Path) -> None:
    from tests.legacy_models import ultraface_like

    legacy = ultraface_like(tmp_path / "legacy.onnx")
    out = tmp_path / "converted.onnx"
    result = run_edgecc("convert", legacy, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    converted = onnx.load(str(out))
    assert converted.ir_version == 8 and converted.opset_import[0].version == 17
    assert [i.name for i in converted.graph.input] == ["input"]
    _verify(legacy, out)
