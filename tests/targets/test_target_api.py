"""Target API: constraint tables with reasons, built-ins, plug-ins from entry points and TOML files, `edgecc targets`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from edgecc.targets import get_target, load_targets
from edgecc.targets.plan import check_support
from edgecc.targets.toml_target import load_target_file
from tests.conftest import Scratch, assert_clean_failure
from tests.targets.helpers import FIXTURES, mixed_model, run_cmd

BUILTINS = ("cpu", "mali-gpu", "qnn-htp", "hisilicon-npu")


def _conv_model(kernel: int, stride: int, batch: int = 1) -> onnx.ModelProto:
    import numpy as np
    from onnx import numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, kernel, kernel), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[stride, stride], dilations=[2, 2])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 40, 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_builtins_are_registered_with_costs_references_and_schemes() -> None:
    registry = load_targets()
    for name in BUILTINS:
        target = registry.get(name)
        assert target.precisions and target.references and target.cost.launch_us > 0
        assert target.quant_scheme.precision in ("int8", "fp16", "fp32")
        table = target.support_table()
        assert all(isinstance(rule, str) and rule for row in table for rule in row["rules"])
    assert registry.get("hisilicon-npu").memory.kind == "dma"
    assert registry.get("mali-gpu").memory.kind == "shared"


def test_every_failing_constraint_is_reported_with_its_detail() -> None:
    _, support = check_support(_conv_model(kernel=17, stride=9, batch=2), get_target("hisilicon-npu"))
    reasons = support[0].reasons
    assert not support[0].supported
    assert any("kernel 17x17" in r for r in reasons)
    assert any("stride 9x9" in r for r in reasons)
    assert any("dilation 2x2" in r for r in reasons)
    assert any("batch 2" in r for r in reasons)
    _, ok = check_support(_conv_model(kernel=3, stride=1), get_target("cpu"))
    assert ok[0].supported


def test_ops_missing_from_the_table_name_the_target(tmp_path: Path) -> None:
    model = onnx.load(mixed_model(tmp_path / "m.onnx"))
    graph, support = check_support(model, get_target("mali-gpu"))
    verdict = {v.name: s for v, s in zip(graph.views, support)}
    assert not verdict["erf"].supported and "Erf is not in mali-gpu's operator list" in verdict["erf"].reason
    assert verdict["conv1"].supported and verdict["relu1"].supported


def test_toml_target_file_loads_and_checks(tmp_path: Path) -> None:
    target = load_target_file(FIXTURES / "vendor_npu.toml")
    assert target.name == "vendor-npu" and target.precisions == ("fp16",) and target.memory.sync_us == 5.0
    _, support = check_support(_conv_model(kernel=5, stride=1), target)
    assert any("kernel 5x5" in r for r in support[0].reasons)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\nprecisions = ["int8"]\n[cost]\nlaunch_us = 1\nmemory_gbps = 1\n'
        "gmacs = { int8 = 1 }\n[ops.Conv]\nwobble = 3\n"
    )
    result = run_cmd("targets", "show", bad)
    assert result.returncode == 3
    assert "unknown constraint 'wobble'" in result.stderr and "Traceback" not in result.stderr


def test_targets_list_show_and_check_from_the_cli(tmp_path: Path) -> None:
    listed = run_cmd("targets", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["name"] for t in listed.json()["targets"]][:4] == list(BUILTINS)
    shown = run_cmd("targets", "show", "hisilicon-npu")
    assert shown.returncode == 0 and "Kernel height and width are in [1, 15]." in shown.stderr and "dma" in shown.stderr.lower()
    model = mixed_model(tmp_path / "m.onnx")
    checked = run_cmd("targets", "check", model, "--json")
    assert checked.returncode == 0, checked.stderr
    matrix = {m["target"]: m for m in checked.json()["targets"]}
    assert matrix["cpu"]["supported"] == matrix["cpu"]["nodes"] == 9
    erf = next(n for n in matrix["hisilicon-npu"]["node_results"] if n["node"] == "erf")
    assert not erf["supported"] and erf["reasons"]
    unknown = run_cmd("targets", "show", "tpu9000")
    assert unknown.returncode == 2 and "hisilicon-npu" in unknown.stderr


def test_toml_target_from_environment_and_entry_point_plugin(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    shutil.copytree(FIXTURES / "acme_target_pkg", package)
    site = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert pip.returncode == 0, pip.stderr
    env = {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "EDGECC_TARGET_FILES": str(FIXTURES / "vendor_npu.toml"),
    }
    listed = run_cmd("targets", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    by_name = {t["name"]: t for t in listed.json()["targets"]}
    assert by_name["acme-npu"]["source"] == "entry point acme_edgecc_target:make_target"
    assert by_name["vendor-npu"]["source"].startswith("file ")
    model = mixed_model(tmp_path / "m.onnx")
    compiled = run_cmd("compile", model, "--target", "acme-npu", "-o", tmp_path / "m.edgecc", "--json", env=env)
    assert compiled.returncode == 0, compiled.stderr
    devices = [p["device"] for p in compiled.json()["partitions"]]
    assert "acme-npu" in devices
    # a bundle that needs the plug-in runs with it
    ran = run_cmd("run", tmp_path / "m.edgecc", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["outputs"]["logits"]["shape"] == [1, 10]


def test_support_docs_are_generated_from_the_tables() -> None:
    result = run_cmd("targets", "docs")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for name in BUILTINS:
        target = get_target(name)
        assert f"## {name}" in text
        for row in target.support_table():
            if row["op_type"] != "*":
                assert f"`{row['op_type']}`" in text
            for rule in row["rules"]:
                assert rule in text


@pytest.mark.parametrize(
    "edit, key",
    [
        (("launch_us = 40.0", "launch_us = 1e309"), "cost.launch_us"),
        (("kernel = [1, 3]", "kernel = [1, 1e309]"), "ops.Conv.kernel[1]"),
        (("memory_gbps = 10.0", "memory_gbps = nan"), "cost.memory_gbps"),
        (("max_rank = 4", "max_rank = 9223372036854775807000"), "generic.max_rank"),
    ],
)
def test_toml_target_with_a_number_out_of_range_is_invalid_input(scratch: Scratch, edit, key) -> None:
    """1e309 overflows to infinity in TOML: it crashed `int()` (OverflowError, exit 1) or became an infinite cost."""
    text = (FIXTURES / "vendor_npu.toml").read_text()
    assert edit[0] in text
    target = scratch.files / "overflow.toml"
    target.write_text(text.replace(edit[0], edit[1]))
    model = mixed_model(scratch.files / "m.onnx")
    before = scratch.snapshot()
    for args in (("targets", target), ("compile", model, "--target", target, "-o", scratch.files / "m.edgecc")):
        line = assert_clean_failure(scratch.run(*args), 3, "overflow.toml", key)
        assert "finite" in line or "64-bit" in line
    assert scratch.snapshot() == before
    scratch.assert_nothing_left()
