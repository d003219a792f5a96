"""armnn targets: the real Arm NN 20.08 (Debian's pyarmnn, CpuRef) in a system-Python subprocess, against onnxruntime."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edgecc.errors import UnsupportedError
from edgecc.targets import armnn
from tests.conftest import run_edgecc
from tests.targets.helpers import mixed_model

_SPECIAL = {"TANH": "TanH", "BATCH_TO_SPACE_ND": "BatchToSpaceND", "SPACE_TO_BATCH_ND": "SpaceToBatchND"}


def _parse_function(op: str) -> str:
    return "Parse" + _SPECIAL.get(op, "".join(part if part[0].isdigit() else part.capitalize() for part in op.split("_")))


def test_every_op_edgecc_places_is_parsed_by_the_installed_arm_nn() -> None:
    library = next(Path("/usr/lib").rglob("libarmnnTfLiteParser.so.*"))
    symbols = set(re.findall(rb"TfLiteParser\d+(Parse[A-Za-z0-9]+?)E", library.read_bytes()))
    missing = [op for op in armnn.PARSED if _parse_function(op).encode() not in symbols]
    assert not missing, f"{library.name} has no parser for {missing}"
    target = armnn.ARMNN()
    assert "Erf" not in target.ops and "Conv" in target.ops and target.quant_scheme.per_channel is False and target.always_bias


def tiny_mixed(path: Path) -> Path:
    """The Erf-in-the-middle conv net at 16x16 (Erf: not in Arm NN's parser list)."""
    return mixed_model(path, size=16, width=64)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("armnn")
    (folder / "cal").mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        np.save(folder / "cal" / f"s{i}.npy", rng.standard_normal((1, 3, 16, 16)).astype(np.float32))
    return tiny_mixed(folder / "tiny.onnx"), folder / "cal"


def test_per_channel_int8_fc_weights_abort_arm_nn_and_become_a_clear_error(tmp_path: Path) -> None:
    """Arm NN 20.08 SIGABRTs on per-channel int8 FullyConnected weights: the worker dies, edgecc names the signal and lives on."""
    from onnx import TensorProto, helper, numpy_helper

    from edgecc.quantization.scheme import QuantScheme
    from edgecc.targets.precision import convert_precision
    from edgecc.targets.tflite import emit_tflite

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)],
        "fc",
        [helper.make_tensor_value_info("f", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=[
            numpy_helper.from_array(rng.standard_normal((10, 64)).astype(np.float32), "fw"),
            numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fb"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = [{"f": rng.standard_normal((1, 64)).astype(np.float32)} for _ in range(3)]
    tflite = tmp_path / "fc.tflite"
    for per_channel in (False, True):
        scheme = QuantScheme(precision="int8", activation_type="int8", weight_type="int8", per_channel=per_channel)
        tflite.write_bytes(
            emit_tflite(convert_precision(model, "int8", scheme, feeds), io_type="int8", always_bias=True, name="fc").data
        )
        if not per_channel:  # the scheme the armnn target uses runs
            runner = armnn.ArmnnRunner(tflite, name="fc.tflite")
            assert runner.run(feeds[0])["y"].shape == (1, 10)
            runner.close()
            continue
        with pytest.raises(UnsupportedError) as info:
            armnn.ArmnnRunner(tflite, name="fc.tflite")
        assert "SIGABRT" in info.value.message and "GetBiasTypeFromWeightsType" in info.value.message
        assert "per-channel" in (info.value.hint or "")


def test_compile_int8_runs_arm_nn_and_compares_with_onnxruntime(model: tuple[Path, Path], tmp_path: Path) -> None:
    path, cal = model
    out = tmp_path / "tiny.edgecc"
    result = run_edgecc("compile", path, "--target", "armnn", "--calibration", f"x={cal}", "-o", out)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    devices = [p["device"] for p in manifest["partitions"]]
    assert devices[0] == "armnn" and "cpu" in devices
    assert next(n for n in manifest["placement"] if n["node"] == "erf")["device"] == "cpu"
    for part in (p for p in manifest["partitions"] if p["device"] == "armnn"):
        vendor = part["vendor"]
        assert vendor["verification"]["passed"] and vendor["armnn_verification"]["passed"]
        assert vendor["armnn_verification"]["outputs"][0]["kind"] == "int8"
        assert sum(vendor["armnn_verification"]["outputs"][0]["steps_histogram"].values()) > 0
        assert "Arm NN 20.08 CpuRef via pyarmnn" in part["execution"]
    assert manifest["verification"]["passed"]
    sample = next(cal.iterdir())
    ran = run_edgecc("run", out, "--data", f"x={sample}", "-o", tmp_path / "y.npz")
    assert ran.returncode == 0, ran.stderr
    expected = json.loads((out / "manifest.json").read_text())
    assert np.load(tmp_path / "y.npz")["logits"].shape == (1, 10) and expected


def test_fp32_needs_no_calibration_and_matches_closely(model: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = model
    out = tmp_path / "fp32.edgecc"
    result = run_edgecc("compile", path, "--target", "armnn", "--precision", "fp32", "-o", out, "--samples", "2")
    assert result.returncode == 0, result.stderr
    parts = [p for p in json.loads((out / "manifest.json").read_text())["partitions"] if p["device"] == "armnn"]
    assert parts and all(
        o["kind"] == "float" and o["passed"] for p in parts for o in p["vendor"]["armnn_verification"]["outputs"]
    )


def test_backends_missing_here_are_exit_6(model: tuple[Path, Path], tmp_path: Path) -> None:
    path, cal = model
    result = run_edgecc("compile", path, "--target", "armnn-cpuacc", "--calibration", f"x={cal}", "-o", tmp_path / "acc.edgecc")
    assert result.returncode == 6 and "CpuAcc" in result.stderr and "available: CpuRef" in result.stderr
    assert not (tmp_path / "acc.edgecc").exists()
    out = tmp_path / "gpu.edgecc"
    result = run_edgecc(
        "compile", path, "--target", "armnn-gpuacc", "--calibration", f"x={cal}", "--no-vendor-compile", "-o", out
    )
    assert result.returncode == 0, result.stderr
    part = json.loads((out / "manifest.json").read_text())["partitions"][0]
    assert "TFLite interpreter" in part["execution"] and part["vendor"]["armnn"] == "not run (--no-vendor-compile)"


def test_without_pyarmnn_compile_is_exit_6_with_the_apt_hint(model: tuple[Path, Path], tmp_path: Path) -> None:
    path, cal = model
    env = {"EDGECC_ARMNN_PYTHON": str(tmp_path / "no-python")}
    result = run_edgecc("compile", path, "--target", "armnn", "--calibration", f"x={cal}", "-o", tmp_path / "x.edgecc", env=env)
    assert result.returncode == 6 and "python3-pyarmnn" in result.stderr and "Traceback" not in result.stderr


def _relu_pad(channels: int = 4) -> object:
    """Conv 1x1 -> Relu -> Pad of 2 zero channels on each side (ResNet's option-A shortcut) at 8x8: the Pad's int8 input has a
    non-zero zero point when activations are asymmetric."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Pad", ["r", "pads"], ["y"], name="pad", mode="constant"),
    ]
    inits = [
        numpy_helper.from_array(np.array([0, 2, 0, 0, 0, 2, 0, 0], np.int64), "pads"),
        numpy_helper.from_array((rng.standard_normal((channels, channels, 1, 1)) / 2).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32) / 10, "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "relu_pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels + 4, 8, 8])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_arm_nn_pads_quantised_tensors_with_raw_zero_so_the_target_quantises_activations_symmetrically(tmp_path: Path) -> None:
    """Arm NN 20.08 PAD of an int8 tensor writes the raw value 0, not the zero point (TfLiteParser::ParsePad never sets
    PadDescriptor::m_PadValue): with asymmetric activations (zero point -128 after a Relu) the padding is 128 steps off
    (ResNet-20 was off by 238 steps); the armnn target's symmetric activations (zero point 0) make Arm NN exact."""
    import dataclasses

    import onnx

    from edgecc.targets.precision import convert_precision
    from edgecc.targets.tflite import TfliteRunner, emit_tflite

    model = _relu_pad()
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)} for _ in range(2)]
    target = armnn.ARMNN()
    assert target.quant_scheme.symmetric_activations
    padded = np.zeros(8, bool)
    padded[[0, 1, 6, 7]] = True
    for symmetric in (False, True):
        scheme = dataclasses.replace(target.quant_scheme, symmetric_activations=symmetric)
        tflite = tmp_path / f"pad_{symmetric}.tflite"
        tflite.write_bytes(
            emit_tflite(convert_precision(model, "int8", scheme, feeds), io_type="int8", always_bias=True, name="pad").data
        )
        reference, arm = TfliteRunner(tflite, name="interpreter"), armnn.ArmnnRunner(tflite, name=tflite.name)
        try:
            step = arm.output_steps()["y"]
            steps = np.abs(arm.run(feeds[0])["y"] - reference.run(feeds[0])["y"]) / step
        finally:
            arm.close()
        assert steps[:, ~padded].max() <= 1
        if symmetric:
            assert steps.max() <= 1
        else:  # the defect: wrong exactly in the padded channels, by the zero point
            assert np.allclose(steps[:, padded], 128, atol=1)
    onnx.save(model, tmp_path / "pad.onnx")
    np.save(tmp_path / "x.npy", feeds[0]["x"])
    out = tmp_path / "pad.edgecc"
    result = run_edgecc(
        "compile",
        tmp_path / "pad.onnx",
        "--target",
        "armnn",
        "--calibration",
        f"x={tmp_path / 'x.npy'}",
        "--partitioner",
        "greedy",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert next(n for n in manifest["placement"] if n["node"] == "pad")["device"] == "armnn"
    part = next(p for p in manifest["partitions"] if p["device"] == "armnn")
    assert part["vendor"]["armnn_verification"]["passed"] and part["vendor"]["armnn_verification"]["outputs"][0]["max_steps"] <= 1


def _quantised_for_armnn_check(model: object, feeds: list, **scheme: object) -> object:
    from edgecc.quantization import QuantOptions, quantize_model
    from edgecc.quantization.scheme import QuantScheme

    quantised, _ = quantize_model(model, QuantScheme(**scheme), feeds, QuantOptions(holdout=0.0, per_layer_report=False))
    return quantised


def test_quantised_models_keep_arm_nn_defects_on_the_cpu(tmp_path: Path) -> None:
    """An already-quantised model brings its own scales: a Pad of a tensor with a non-zero zero point and a
    FullyConnected with per-channel weights would be wrong / abort on Arm NN 20.08 (shown above), so they stay on the CPU
    with the reason, and the bundle verifies."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgecc.targets.plan import check_support

    rng = np.random.default_rng(7)
    pad_feeds = [{"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)} for _ in range(3)]
    asymmetric = _quantised_for_armnn_check(_relu_pad(), pad_feeds, activation_type="int8", symmetric_activations=False)
    symmetric = _quantised_for_armnn_check(_relu_pad(), pad_feeds, activation_type="int8", symmetric_activations=True)
    for quantised, expected in ((asymmetric, False), (symmetric, True)):
        graph, support = check_support(quantised, armnn.ARMNN())
        pad = next(s for v, s in zip(graph.views, support) if v.op_type == "Pad")
        assert pad.supported is expected, pad.reason
        if not expected:
            assert "zero point" in pad.reason and "pad with 0" in pad.reason
    fc = helper.make_graph(
        [helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)],
        "fc",
        [helper.make_tensor_value_info("f", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=[
            numpy_helper.from_array(rng.standard_normal((10, 64)).astype(np.float32), "fw"),
            numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fb"),
        ],
    )
    fc_model = helper.make_model(fc, opset_imports=[helper.make_opsetid("", 17)])
    fc_feeds = [{"f": rng.standard_normal((1, 64)).astype(np.float32)} for _ in range(3)]
    per_channel = _quantised_for_armnn_check(fc_model, fc_feeds, activation_type="int8", per_channel=True)
    onnx.save(per_channel, tmp_path / "fc.onnx")
    out = tmp_path / "fc.edgecc"
    result = run_edgecc("compile", tmp_path / "fc.onnx", "--target", "armnn", "--partitioner", "greedy", "-o", out)
    assert result.returncode == 0, result.stderr  # no SIGABRT: the FullyConnected never reaches Arm NN
    manifest = json.loads((out / "manifest.json").read_text())
    gemm = next(n for n in manifest["placement"] if n["op_type"] == "Gemm")
    assert gemm["device"] == "cpu" and "per channel" in gemm["reason"]
    assert manifest["verification"]["passed"]


def _token_mlp() -> object:
    """Transformer-style MLP on [1, 64, 256] tokens: MatMul + bias, Relu, MatMul: FULLY_CONNECTED with 3-D outputs."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array((rng.standard_normal((256, 512)) * 0.06).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal(512) * 0.1).astype(np.float32), "b1"),
        numpy_helper.from_array((rng.standard_normal((512, 128)) * 0.05).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "tokens",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 128])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_three_d_fully_connected_is_written_flat_for_arm_nn(tmp_path: Path) -> None:
    """Arm NN 20.08 ignores FULLY_CONNECTED's keep_num_dims ("TensorShape set on OutputSlot[0] does not match the inferred
    shape": GPT-2, Llama, ViT, EdgeNeXt); its FULLY_CONNECTED outputs are 2-D, a RESHAPE restores the rank."""
    from edgecc.converters.tensorflow.flatbuffer import read
    from edgecc.pipeline.compile import CompileOptions, compile_model
    from edgecc.targets import get_target

    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 64, 256)).astype(np.float32)} for _ in range(8)]
    out = tmp_path / "tokens.edgecc"
    result = compile_model(
        _token_mlp(), get_target("armnn"), str(out), options=CompileOptions(), path="tokens.onnx", calibration=feeds
    )
    manifest = result.manifest
    assert manifest["verification"]["passed"]
    parts = [p for p in manifest["partitions"] if p["device"] == "armnn"]
    assert parts and all(p["vendor"]["armnn_verification"]["passed"] for p in parts)
    ops = {op.name for p in parts for op in read((out / p["artifact"]).read_bytes(), p["artifact"]).operators()}
    assert {"FULLY_CONNECTED", "RESHAPE"} <= ops, ops


def _divides_activations() -> object:
    """Conv a, Conv b; a / (relu(b) + 1); Conv: a Div of two activations (no constant divisor to turn into a Mul)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(9)
    inits = [
        numpy_helper.from_array((rng.standard_normal((32, 16, 3, 3)) * 0.2).astype(np.float32), "wa"),
        numpy_helper.from_array((rng.standard_normal((32, 16, 3, 3)) * 0.2).astype(np.float32), "wb"),
        numpy_helper.from_array((rng.standard_normal((16, 32, 1, 1)) * 0.2).astype(np.float32), "wy"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b"], ["rb"], name="relu_b"),
        helper.make_node("Add", ["rb", "one"], ["d"], name="plus_one"),
        helper.make_node("Div", ["a", "d"], ["q"], name="divide"),
        helper.make_node("Conv", ["q", "wy"], ["y"], name="head"),
    ]
    graph = helper.make_graph(
        nodes,
        "divides",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 64, 64])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_an_int8_div_is_placed_on_the_cpu_as_the_writer_cannot_write_it(tmp_path: Path) -> None:
    """Arm NN parses DIV, but TFLite has no int8 DIV kernel and edgecc's writer refuses it in int8: placement now asks
    the writer at the compile's precision, so Div goes to the CPU with that reason (before: exit 4 from the writer)."""
    from edgecc.pipeline.compile import CompileOptions, compile_model
    from edgecc.targets import get_target

    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 16, 64, 64)).astype(np.float32)} for _ in range(6)]
    result = compile_model(
        _divides_activations(),
        get_target("armnn"),
        str(tmp_path / "d.edgecc"),
        options=CompileOptions(),
        path="divides.onnx",
        calibration=feeds,
    )
    placement = {n["node"]: n for n in result.manifest["placement"]}
    assert placement["divide"]["device"] == "cpu" and "no int8 kernel" in placement["divide"]["reason"]
    assert placement["conv_a"]["device"] == "armnn"
    assert result.manifest["verification"]["passed"]
