"""End-to-end through the `edgecc` entry point: binary and text NetDefs, detection, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from edgecc.converters.caffe2 import detect
from edgecc.converters.caffe2.schema import sniff
from tests.conftest import Scratch, assert_clean_failure, make_conv_onnx, run_edgecc
from tests.converters.caffe2 import reference as ref
from tests.converters.caffe2.netdefs import assert_close, fill, net, op

RNG = np.random.default_rng(3)
W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
B = RNG.standard_normal(4).astype(np.float32)
FW = RNG.standard_normal((5, 4 * 3 * 3)).astype(np.float32)
FB = RNG.standard_normal(5).astype(np.float32)


def small_cnn() -> tuple[object, object]:
    """Conv -> Add(broadcast bias) -> Relu (in place) -> MaxPool -> FC -> Softmax, as Caffe2 exporters write it."""
    predict = net(
        [
            op("Conv", ["data", "conv_w"], ["conv"], name="conv1", kernel=3, pad=1),
            op("Add", ["conv", "conv_b"], ["conv_biased"], broadcast=1, axis=1),
            op("Relu", ["conv_biased"], ["conv_biased"]),
            op("MaxPool", ["conv_biased"], ["pool"], kernel=2, stride=2),
            op("FC", ["pool", "fc_w", "fc_b"], ["fc"], name="fc1"),
            op("Softmax", ["fc"], ["prob"]),
        ],
        ["data", "conv_w", "conv_b", "fc_w", "fc_b"],
        ["prob"],
        name="small_cnn",
    )
    init = net(
        [fill("conv_w", W), fill("conv_b", B), fill("fc_w", FW), fill("fc_b", FB)], outputs=["conv_w", "conv_b", "fc_w", "fc_b"]
    )
    return predict, init


def expected(x: np.ndarray) -> np.ndarray:
    h = np.maximum(ref.conv2d(x, W, None, pads=(1, 1, 1, 1)) + B.reshape(1, -1, 1, 1), 0)
    return ref.softmax(ref.fc(ref.pool2d(h, "max", (2, 2), (2, 2)), FW, FB))


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    predict, init = small_cnn()
    (tmp_path / "predict_net.pb").write_bytes(predict.SerializeToString())
    (tmp_path / "init_net.pb").write_bytes(init.SerializeToString())
    return tmp_path / "predict_net.pb", tmp_path / "init_net.pb"


def _run(model: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {"data": x})[0]


def test_binary_pair_converts_and_matches_reference(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    result = run_edgecc("convert", *pair, "--input", "data:2x3x6x6", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["frontend"] == "caffe2" and report["opset"] == 17 and report["verification"] is None
    assert "not verified" in result.stderr
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    assert_close(_run(out, x), expected(x))


def test_init_net_first_and_dynamic_batch(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    result = run_edgecc("convert", pair[1], pair[0], "--input", "data:Nx3x6x6", "-o", out)
    assert result.returncode == 0, result.stderr
    x = RNG.standard_normal((3, 3, 6, 6)).astype(np.float32)
    assert_close(_run(out, x), expected(x))


def test_text_netdefs_and_value_info(tmp_path: Path) -> None:
    predict, init = small_cnn()
    (tmp_path / "predict_net.pbtxt").write_text(text_format.MessageToString(predict))
    (tmp_path / "init_net.pbtxt").write_text(text_format.MessageToString(init))
    (tmp_path / "value_info.json").write_text(json.dumps({"data": [1, [1, 3, 6, 6]]}))
    assert sniff(tmp_path / "predict_net.pbtxt") == "text"
    assert detect([str(tmp_path / "predict_net.pbtxt"), str(tmp_path / "init_net.pbtxt")])
    out = tmp_path / "model.onnx"
    # --framework: the Caffe frontend, detected first, currently claims any text protobuf with `type:` (see the report)
    result = run_edgecc(
        "convert", tmp_path / "predict_net.pbtxt", tmp_path / "init_net.pbtxt", "--framework", "caffe2", "-o", out
    )
    assert result.returncode == 0, result.stderr
    x = RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)
    assert_close(_run(out, x), expected(x))


def test_inspect_pair_and_single_predict_net(pair: tuple[Path, Path]) -> None:
    full = run_edgecc("inspect", *pair, "--input", "data:1x3x6x6", "--json")
    assert full.returncode == 0, full.stderr
    info = full.json()
    assert info["format"] == "caffe2" if "format" in info else True
    text = json.dumps(info)
    assert "Conv" in text and "Gemm" in text
    single = run_edgecc("inspect", pair[0], "--json")
    assert single.returncode == 0, single.stderr
    details = single.json()["details"]
    assert details["external outputs"] == ["prob"] and "init_net" in details["note"]


# ----------------------------------------------------------------------------- detection


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_detection_tells_netdef_from_other_protobufs(pair: tuple[Path, Path], tmp_path: Path) -> None:
    assert detect([str(pair[0]), str(pair[1])])
    onnx_file = tmp_path / "model.pb"
    make_conv_onnx(onnx_file)
    graphdef = tmp_path / "graph.pb"  # TensorFlow GraphDef: node (1) {name, op}, versions (4) {producer}
    graphdef.write_bytes(_field(1, _field(1, b"x") + _field(2, b"Placeholder")) + _field(4, b"\x08\x1b"))
    caffemodel = tmp_path / "net.caffemodel"  # Caffe NetParameter: name (1), layer (100) {name, type, bottom, top}
    caffemodel.write_bytes(
        _field(1, b"lenet") + _field(100, _field(1, b"conv1") + _field(2, b"Convolution") + _field(3, b"data"))
    )
    v1 = tmp_path / "v1.caffemodel"  # V1 layers (2) {bottom 2, top 3, name 4, type 5 as an enum}
    v1.write_bytes(_field(1, b"old") + _field(2, _field(2, b"data") + _field(3, b"conv") + _field(4, b"conv1") + b"\x28\x04"))
    for other in (onnx_file, graphdef, caffemodel, v1):
        assert not detect([str(other)]), other
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(RNG.integers(0, 256, 4096).astype(np.uint8).tobytes())
    assert not detect([str(garbage)])
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text('name: "LeNet"\nlayer {\n  name: "data"\n  type: "Input"\n}\n')
    assert not detect([str(prototxt)])


# ----------------------------------------------------------------------------- bad input


def _single_error(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecc: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_init_net_missing_a_blob(pair: tuple[Path, Path], tmp_path: Path) -> None:
    _, init = small_cnn()
    del init.op[2]  # fc_w
    pair[1].write_bytes(init.SerializeToString())
    out = tmp_path / "m.onnx"
    result = run_edgecc("convert", *pair, "--input", "data:1x3x6x6", "-o", out)
    assert result.returncode == 3
    line = _single_error(result)
    assert "'fc_w'" in line and "'fc1' (FC)" in line and "init_net.pb" in line
    assert not out.exists()


def test_mismatched_weight_shape(pair: tuple[Path, Path], tmp_path: Path) -> None:
    _, init = small_cnn()
    init.op[2].CopyFrom(fill("fc_w", RNG.standard_normal((5, 7)).astype(np.float32)))
    pair[1].write_bytes(init.SerializeToString())
    out = tmp_path / "m.onnx"
    result = run_edgecc("convert", *pair, "--input", "data:1x3x6x6", "-o", out)
    assert result.returncode == 3
    line = _single_error(result)
    assert "fc1" in line and "predict_net.pb" in line
    assert not out.exists()


def test_mismatched_conv_channels(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = run_edgecc("convert", *pair, "--input", "data:1x5x6x6", "-o", out)
    assert result.returncode == 3
    assert "conv1" in _single_error(result)
    assert not out.exists()


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("keep", [0.5, 0.93])
def test_truncated_files(which: int, keep: float, pair: tuple[Path, Path], tmp_path: Path) -> None:
    data = pair[which].read_bytes()
    pair[which].write_bytes(data[: int(len(data) * keep)])
    out = tmp_path / "m.onnx"
    result = run_edgecc("convert", *pair, "--framework", "caffe2", "--input", "data:1x3x6x6", "-o", out)
    assert result.returncode == 3, result.stderr
    line = _single_error(result)
    assert pair[which].name in line or "init_net" in line
    assert not out.exists()


def test_unknown_ops_are_all_listed(tmp_path: Path) -> None:
    predict = net(
        [
            op("Relu", ["data"], ["a"]),
            op("FancyOp", ["a"], ["b"], name="fancy1"),
            op("OtherOp", ["b"], ["c"], name="other1"),
            op("FancyOp", ["c"], ["d"], name="fancy2"),
        ],
        ["data"],
        ["d"],
    )
    init = net([op("GivenTensorFill", [], ["unused"], shape=[1], values=[0.0]), op("WeirdFill", [], ["z"], name="weird")])
    (tmp_path / "p.pb").write_bytes(predict.SerializeToString())
    (tmp_path / "i.pb").write_bytes(init.SerializeToString())
    result = run_edgecc(
        "convert", tmp_path / "p.pb", tmp_path / "i.pb", "--input", "data:1x2", "-o", tmp_path / "m.onnx", "--json"
    )
    assert result.returncode == 4
    nodes = (
        {(n["node"], n["op_type"]) for n in result.json()["error"]["nodes"]}
        if "error" in result.json()
        else {(n["node"], n["op_type"]) for n in result.json()["nodes"]}
    )
    assert nodes == {("fancy1", "FancyOp"), ("other1", "OtherOp"), ("fancy2", "FancyOp"), ("weird", "WeirdFill")}
    assert not (tmp_path / "m.onnx").exists()


def test_training_mode_ops_are_unsupported_with_a_reason(tmp_path: Path) -> None:
    predict = net(
        [op("SpatialBN", ["x", "s", "b", "m", "v"], ["y"], name="bn1"), op("Dropout", ["y"], ["z", "mask"], name="drop1")],
        ["x", "s", "b", "m", "v"],
        ["z"],
    )
    init = net([fill(n, np.ones(3, np.float32)) for n in "sbmv"])
    (tmp_path / "p.pb").write_bytes(predict.SerializeToString())
    (tmp_path / "i.pb").write_bytes(init.SerializeToString())
    result = run_edgecc("convert", tmp_path / "p.pb", tmp_path / "i.pb", "--input", "x:1x3x2x2", "-o", tmp_path / "m.onnx")
    assert result.returncode == 4
    line = _single_error(result)
    assert "bn1 (SpatialBN)" in line and "is_test=0" in line


def test_missing_input_shape_and_predict_net_alone(pair: tuple[Path, Path], tmp_path: Path) -> None:
    no_shape = run_edgecc("convert", *pair, "-o", tmp_path / "m.onnx")
    assert no_shape.returncode == 2 and "--input data:" in _single_error(no_shape)
    alone = run_edgecc("convert", pair[0], "--input", "data:1x3x6x6", "-o", tmp_path / "m.onnx")
    assert alone.returncode == 2 and "init_net" in _single_error(alone)
    wrong_name = run_edgecc("convert", *pair, "--input", "image:1x3x6x6", "-o", tmp_path / "m.onnx")
    assert wrong_name.returncode == 2 and "image" in _single_error(wrong_name)
    assert not (tmp_path / "m.onnx").exists()


def test_init_net_filling_the_input_blob(tmp_path: Path) -> None:
    """Model-zoo init_nets often fill the input blob with a dummy (even randomly): --input makes it an input."""
    predict, init = small_cnn()
    init.op.append(op("GaussianFill", [], ["data"], shape=[1, 3, 6, 6]))
    (tmp_path / "p.pb").write_bytes(predict.SerializeToString())
    (tmp_path / "i.pb").write_bytes(init.SerializeToString())
    out = tmp_path / "m.onnx"
    result = run_edgecc("convert", tmp_path / "p.pb", tmp_path / "i.pb", "--input", "data:2x3x6x6", "-o", out)
    assert result.returncode == 0, result.stderr
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    assert_close(_run(out, x), expected(x))


def test_documented_three_file_form(tmp_path: Path) -> None:
    """README: `edgecc convert predict_net.pbtxt init_net.pb value_info.json -o model.onnx` (shapes from the json)."""
    predict, init = small_cnn()
    (tmp_path / "predict_net.pbtxt").write_text(text_format.MessageToString(predict))
    (tmp_path / "init_net.pb").write_bytes(init.SerializeToString())
    (tmp_path / "shapes.json").write_text(json.dumps({"data": [1, [2, 3, 6, 6]]}))
    out = tmp_path / "model.onnx"
    files = (tmp_path / "predict_net.pbtxt", tmp_path / "init_net.pb", tmp_path / "shapes.json")
    result = run_edgecc("convert", *files, "--framework", "caffe2", "-o", out)
    assert result.returncode == 0, result.stderr
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    assert_close(_run(out, x), expected(x))
    inspected = run_edgecc("inspect", *files, "--framework", "caffe2", "--json")
    assert inspected.returncode == 0, inspected.stderr
    too_many = run_edgecc("convert", *files, tmp_path / "more.json", "-o", tmp_path / "other.onnx")
    assert_clean_failure(too_many, 2, "more.json")
    assert not (tmp_path / "other.onnx").exists()


def test_value_info_beside_the_net_linking_outside_is_refused(pair: tuple[Path, Path], scratch: Scratch) -> None:
    folder = scratch.files / "net"
    folder.mkdir()
    for file in pair:
        (folder / file.name).write_bytes(file.read_bytes())
    (scratch.root / "elsewhere.json").write_text(json.dumps({"data": [1, [1, 3, 6, 6]]}))
    (folder / "value_info.json").symlink_to(scratch.root / "elsewhere.json")
    before = scratch.snapshot()
    result = scratch.run("convert", folder / "predict_net.pb", folder / "init_net.pb", "-o", scratch.files / "m.onnx")
    line = assert_clean_failure(result, 3, "predict_net.pb", "value_info.json")
    assert "outside the folder" in line
    assert scratch.snapshot() == before
    scratch.assert_nothing_left()
