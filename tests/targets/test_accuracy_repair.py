"""compile's accuracy repair: an integer bundle that misses its tolerance keeps its most harmful layers on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.errors import NumericsError
from edgecc.pipeline.compile import CompileOptions, compile_model
from edgecc.targets import get_target
from tests.conftest import run_edgecc


def _outlier_model(channels: int = 32, size: int = 64) -> onnx.ModelProto:
    """spread -> reader -> Relu -> head: `spread` writes one channel 400x larger than the others and `reader` ignores
    that channel. In int8 the one per-tensor scale of spread's output crushes the channels reader uses (the classic
    activation outlier): the int8 bundle misses cosine 0.99 unless spread and reader stay in float."""
    rng = np.random.default_rng(0)
    spread = (rng.standard_normal((channels, channels, 1, 1)) * 0.3).astype(np.float32)
    spread[0] *= 400.0
    reader = (rng.standard_normal((channels, channels, 3, 3)) * 0.1).astype(np.float32)
    reader[:, 0] = 0.0
    head = (rng.standard_normal((channels, channels, 1, 1)) * 0.2).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "spread_w"], ["a"], name="spread"),
        helper.make_node("Conv", ["a", "reader_w"], ["b"], name="reader", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "head_w"], ["y"], name="head"),
    ]
    graph = helper.make_graph(
        nodes,
        "outlier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, size, size])],
        [numpy_helper.from_array(w, f"{n}_w") for n, w in (("spread", spread), ("reader", reader), ("head", head))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def outlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("outlier")
    onnx.save(_outlier_model(), folder / "outlier.onnx")
    rng = np.random.default_rng(1)
    np.savez(folder / "cal.npz", x=rng.standard_normal((8, 1, 32, 64, 64)).astype(np.float32))
    return folder / "outlier.onnx", folder / "cal.npz"


def test_the_harmful_layers_stay_on_the_cpu_and_the_bundle_meets_its_tolerance(
    outlier: tuple[Path, Path], tmp_path: Path
) -> None:
    model, cal = outlier
    out = tmp_path / "o.edgecc"
    result = run_edgecc("compile", model, "--target", "ethos-u55-128", "--calibration", f"x={cal}", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "accuracy repair: kept 2 layer(s) on the CPU" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    repair = manifest["accuracy_repair"]
    assert repair["attempts"][0]["cosine"] < 0.5  # the int8 bundle before repair: the outlier crushes every channel
    assert repair["met"] and {k["node"] for k in repair["kept_on_cpu"]} == {"spread", "reader"}
    assert repair["attempts"][0] == {**repair["attempts"][0], "kept": 0, "passed": False, "how": "bundle"}
    assert repair["attempts"][-1]["passed"] and repair["attempts"][-1]["how"] == "bundle"
    placement = {n["node"]: n for n in manifest["placement"]}
    assert placement["reader"]["device"] == "cpu" and "accuracy repair" in placement["reader"]["reason"]
    assert placement["head"]["device"] == "ethos-u55-128"
    assert manifest["verification"]["passed"] and min(o["cosine"] for o in manifest["verification"]["outputs"]) >= 0.99


def test_without_a_budget_or_with_too_small_a_one_it_is_exit_5_and_nothing_is_written(
    outlier: tuple[Path, Path], tmp_path: Path
) -> None:
    model, cal = outlier
    out = tmp_path / "kept.edgecc"
    first = run_edgecc("compile", model, "--target", "ethos-u55-128", "--calibration", f"x={cal}", "--archive", "-o", out)
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    for budget, note in (("0", None), ("1", "after accuracy repair kept 1 layer(s)")):
        result = run_edgecc(
            "compile",
            model,
            "--target",
            "ethos-u55-128",
            "--calibration",
            f"x={cal}",
            "--repair-budget",
            budget,
            "--archive",
            "-o",
            out,
        )
        assert result.returncode == 5, result.stderr
        assert (note or "beyond int8 tolerance") in result.stderr.strip().splitlines()[-1]
        assert out.read_bytes() == before  # the earlier bundle is kept as it was


def test_json_output_carries_the_repair(outlier: tuple[Path, Path], tmp_path: Path) -> None:
    model, cal = outlier
    result = run_edgecc(
        "compile", model, "--target", "hisilicon-npu", "--calibration", f"x={cal}", "--json", "-o", tmp_path / "h.edgecc"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy_repair"]["met"]


def test_the_failed_repair_is_in_the_error_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 32, 64, 64)).astype(np.float32)} for _ in range(8)]
    with pytest.raises(NumericsError) as caught:
        compile_model(
            _outlier_model(),
            get_target("hisilicon-npu"),
            str(tmp_path / "never-written.edgecc"),
            options=CompileOptions(repair_budget=1),
            path="outlier.onnx",
            calibration=feeds,
        )
    assert not (tmp_path / "never-written.edgecc").exists()
    repair = caught.value.to_dict()["report"]["accuracy_repair"]
    assert not repair["met"] and repair["budget"] == 1 and len(repair["kept_on_cpu"]) == 1
    assert [a["how"] for a in repair["attempts"]][0] == "bundle"


def test_the_goal_search_stops_when_it_stops_converging() -> None:
    from edgecc.quantization.core import _stalled

    assert _stalled([{"value": 0.968}, {"value": 0.965}, {"value": 0.969}, {"value": 0.970}], 0.99)
    assert not _stalled([{"value": 0.90}, {"value": 0.93}, {"value": 0.95}, {"value": 0.97}], 0.99)
    assert not _stalled([{"value": 0.968}, {"value": 0.965}], 0.99)  # too few steps to tell
