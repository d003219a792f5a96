"""edgetpu: Coral's operator/tensor rules, prefix-only mapping, full-integer TFLite verified with the TFLite interpreter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecc.targets import get_target
from tests.conftest import run_edgecc
from tests.targets.helpers import convert_pnet, face_image, mixed_model
from tests.targets.test_ethos_u import view


def test_coral_rules_reject_what_the_edge_tpu_cannot_map() -> None:
    tpu = get_target("edgetpu")
    assert tpu.maps_prefix_only and tpu.requires_calibration
    assert tpu.check(view("Softmax", [(1, 1000)], [(1, 1000)], axis=-1)).supported
    verdict = tpu.check(view("Softmax", [(1, 2, 45, 33)], [(1, 2, 45, 33)], axis=1))
    assert not verdict.supported and "Supports only 1-D input tensor with a max of 16,000 elements." in verdict.reason
    assert "16,000" in tpu.check(view("Softmax", [(1, 20000)], [(1, 20000)], axis=-1)).reason
    assert "all but the 3 innermost dimensions are 1" in tpu.check(view("Relu", [(2, 8, 4, 4)], [(2, 8, 4, 4)])).reason
    assert (
        "Must use the same dilation in x and y dimensions."
        in tpu.check(view("Conv", [(1, 8, 16, 16), (8, 8, 3, 3), (8,)], [(1, 8, 12, 14)], dilations=[2, 1])).reason
    )
    assert "Output tensor is one-dimensional" in tpu.check(view("Gemm", [(4, 8), (10, 8), (10,)], [(4, 10)], transB=1)).reason
    assert tpu.check(view("GlobalAveragePool", [(1, 8, 7, 7)], [(1, 8, 1, 1)])).supported
    assert (
        "Supports reduction along x- and/or y-dimensions only"
        in tpu.check(view("ReduceMean", [(1, 8, 7, 7)], [(1, 1, 7, 7)], axes=[1], keepdims=1)).reason
    )
    assert "Erf is not in edgetpu's operator list" in tpu.check(view("Erf", [(1, 8)], [(1, 8)])).reason


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tpu")
    model = mixed_model(folder / "mixed.onnx", seed=3)
    np.save(folder / "x.npy", np.random.default_rng(2).standard_normal((1, 3, 96, 96)).astype(np.float32))
    return model, folder / "x.npy"


def test_everything_after_the_first_unsupported_node_runs_on_the_cpu(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    model, sample = mixed
    out = tmp_path / "tpu.edgecc"
    result = run_edgecc("compile", model, "--target", "edgetpu", "--calibration", f"x={sample}", "-o", out)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(p["device"], p["nodes"]) for p in manifest["partitions"]] == [("edgetpu", 3), ("cpu", 6)]
    after = [n for n in manifest["placement"] if n["node"] in ("conv3", "relu3", "gap", "fc")]
    assert all(n["device"] == "cpu" and "after 'erf' (Erf)" in n["reason"] for n in after)
    part = manifest["partitions"][0]
    vendor = part["vendor"]
    assert vendor["io_type"] == "uint8" and vendor["verification"]["passed"]
    assert {"tensor": "x", "from_dtype": "float32", "to_dtype": "uint8", "from_layout": "NCHW", "to_layout": "NHWC"} in part[
        "conversions"
    ]
    assert "edgetpu_compiler -s p0_edgetpu.tflite" in vendor["edgetpu_compiler"]
    assert vendor["tflite_operators"] == ["CONV_2D", "QUANTIZE"]  # uint8 input -> int8 inside, as TF's converter does it
    assert manifest["verification"]["passed"]


def test_int8_io_vendor_option_and_bad_value(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    model, sample = mixed
    out = tmp_path / "int8io.edgecc"
    result = run_edgecc(
        "compile", model, "--target", "edgetpu", "--calibration", f"x={sample}", "--vendor-option", "io=int8", "-o", out
    )
    assert result.returncode == 0, result.stderr
    part = json.loads((out / "manifest.json").read_text())["partitions"][0]
    assert part["vendor"]["io_type"] == "int8" and part["vendor"]["tflite_operators"] == ["CONV_2D"]
    bad = run_edgecc(
        "compile",
        model,
        "--target",
        "edgetpu",
        "--calibration",
        f"x={sample}",
        "--vendor-option",
        "io=float",
        "-o",
        tmp_path / "bad.edgecc",
    )
    assert bad.returncode == 2 and "io=uint8 or io=int8" in bad.stderr


def test_real_pnet_keeps_softmax_over_channels_on_the_cpu(tmp_path: Path) -> None:
    model = convert_pnet(tmp_path / "pnet.onnx")
    face = face_image(tmp_path / "data.npy")
    out = tmp_path / "pnet.edgecc"
    result = run_edgecc("compile", model, "--target", "edgetpu", "--calibration", f"data={face}", "-o", out)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    softmax = next(n for n in manifest["placement"] if n["op_type"] == "Softmax")
    assert softmax["device"] == "cpu" and "1-D input tensor" in softmax["reason"]
    assert manifest["verification"]["passed"] and manifest["partitions"][0]["vendor"]["verification"]["passed"]
    # the partition is quantised whole (PReLU too, which onnxruntime's quantiser alone kept in float): no float island
    # for the Edge TPU compiler to stop at
    vendor = manifest["partitions"][0]["vendor"]
    assert "float operator(s)" not in vendor["summary"] and not vendor["float_operators"], vendor["summary"]
    assert "PRELU" in vendor["tflite_operators"]


def test_quantised_weights_of_a_qdq_model_are_parameters_not_4d_tensors(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    """The rank rule is about activations: the DequantizeLinear of 4-D conv weights (MobileNet uint8's 8x3x3x3) must not stop the
    prefix mapping at the very first node."""
    import onnx

    from edgecc.targets.precision import convert_precision

    model, sample = mixed
    tpu = get_target("edgetpu")
    qdq = convert_precision(onnx.load(model), "int8", tpu.quant_scheme, [{"x": np.load(sample)}])
    onnx.save(qdq, tmp_path / "qdq.onnx")
    checked = run_edgecc("targets", "check", tmp_path / "qdq.onnx", "--target", "edgetpu", "--json")
    assert checked.returncode == 0, checked.stderr
    nodes = {n["node"]: n for n in json.loads(checked.stdout)["targets"][0]["node_results"]}
    weights = {i.name for i in qdq.graph.initializer if len(i.dims) == 4}
    weight_dq = [nodes[n.name] for n in qdq.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights]
    assert weight_dq and all(n["supported"] for n in weight_dq), weight_dq
    assert nodes["conv1"]["supported"]
    out = tmp_path / "qdq.edgecc"
    result = run_edgecc("compile", tmp_path / "qdq.onnx", "--target", "edgetpu", "-o", out)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert next(n for n in manifest["placement"] if n["node"] == "conv1")["device"] == "edgetpu"
    assert manifest["partitions"][0]["device"] == "edgetpu" and manifest["partitions"][0]["vendor"]["verification"]["passed"]
