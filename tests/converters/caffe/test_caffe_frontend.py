"""End-to-end Caffe conversions through the `edgecc` command: real model, file formats, weights, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgecc.converters.caffe.schema import messages
from tests.conftest import SAMPLES, Scratch, assert_clean_failure, run_edgecc
from tests.converters.caffe.helpers import compare_with_opencv, rand, write_net

PNET = SAMPLES / "models" / "caffe_mtcnn_pnet"
PROTOTXT, CAFFEMODEL = PNET / "det1.prototxt", PNET / "det1.caffemodel"

SMALL = (
    'name: "small"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }\n'
    'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
    'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n'
    'layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 3 } }\n'
    'layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }\n'
)
SMALL_BLOBS = {
    "conv": ("Convolution", [rand(4, 3, 3, 3, seed=1), rand(4, seed=2)]),
    "fc": ("InnerProduct", [rand(3, 36, seed=3), rand(3, seed=4)]),
}


def _no_traceback_one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("edgecc: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(("ref_name", "shape"), [("face_resized", "1x3x12x12"), ("face_100x75", "1x3x100x75")])
def test_mtcnn_pnet_matches_caffe_reference_outputs(ref_name: str, shape: str, tmp_path: Path) -> None:
    ref = np.load(PNET / "ref" / f"{ref_name}.npz")
    np.save(tmp_path / "data.npy", ref["in__data"])
    out = tmp_path / "pnet.onnx"
    result = run_edgecc(
        "convert",
        PROTOTXT,
        CAFFEMODEL,
        "--input",
        f"data:{shape}",
        "--data",
        f"data={tmp_path / 'data.npy'}",
        "-o",
        out,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = result.json()["verification"]
    assert report["passed"] and report["reference"].startswith("OpenCV")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"data": ref["in__data"]})))
    assert set(got) == {"prob1", "conv4-2"}
    for name in ("prob1", "conv4-2"):
        expected = ref[f"out__{name}"]
        assert got[name].shape == expected.shape
        assert np.abs(got[name] - expected).max() <= 1e-4 * max(float(np.ptp(expected)), 1e-6)


def test_mtcnn_pnet_every_layer_matches_opencv() -> None:
    ref = np.load(PNET / "ref" / "face_resized.npz")
    errors = compare_with_opencv([PROTOTXT, CAFFEMODEL], {"data": ref["in__data"]})
    # in-place PReLUs get their own tensors; every Caffe layer is compared
    assert {"conv1", "PReLU1", "pool1", "conv2", "PReLU2", "conv3", "PReLU3", "conv4-1", "conv4-2", "prob1"} <= set(errors)


def test_tensor_names_are_caffe_blob_names(tmp_path: Path) -> None:
    out = tmp_path / "pnet.onnx"
    assert run_edgecc("convert", PROTOTXT, CAFFEMODEL, "-o", out, "--no-verify").returncode == 0
    model = onnx.load(out)
    produced = {o for node in model.graph.node for o in node.output}
    assert {"conv1", "PReLU1", "pool1", "conv4-1", "conv4-2", "prob1"} <= produced
    assert [i.name for i in model.graph.input] == ["data"]
    assert {o.name for o in model.graph.output} == {"prob1", "conv4-2"}
    assert model.opset_import[0].version == 17
    # --per-layer compares graphs by these names
    other = tmp_path / "pnet13.onnx"
    assert run_edgecc("convert", out, "--opset", "13", "-o", other, "--no-verify").returncode == 0
    result = run_edgecc("verify", out, other, "--per-layer", "--json")
    assert result.returncode == 0, result.stderr
    assert result.json()["per_layer"]["shared_tensors"] >= 10


def test_input_layer_and_input_dim_forms(tmp_path: Path) -> None:
    body = SMALL.split("\n", 3)[3]
    forms = {
        "input_dim": 'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n',
        "input_layer": 'layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n',
    }
    for name, head in forms.items():
        paths = write_net(tmp_path, head + body, SMALL_BLOBS, name=name)
        errors = compare_with_opencv(paths, {"data": rand(1, 3, 8, 8, seed=5)})
        assert {"conv", "relu", "pool", "fc", "prob"} <= set(errors)


def test_legacy_v1_layers_format(tmp_path: Path) -> None:
    proto = (
        'name: "old"\ninput: "data"\ninput_dim: 1\ninput_dim: 2\ninput_dim: 6\ninput_dim: 6\n'
        'layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" '
        "convolution_param { num_output: 3 kernel_size: 3 } }\n"
        'layers { name: "relu" type: RELU bottom: "conv" top: "conv" }\n'
        'layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }\n'
        'layers { name: "fc" type: INNER_PRODUCT bottom: "pool" top: "fc" inner_product_param { num_output: 2 } }\n'
        'layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }\n'
    )
    (tmp_path / "old.prototxt").write_text(proto)
    net = messages()["NetParameter"](name="old")
    for name, kind, arrays in [
        ("conv", 4, [rand(3, 2, 3, 3, seed=1), rand(1, 1, 1, 3, seed=2)]),
        ("fc", 14, [rand(1, 1, 2, 12, seed=3), rand(1, 1, 1, 2, seed=4)]),
    ]:
        layer = net.layers.add(name=name, type=kind)
        for array in arrays:
            blob = layer.blobs.add(num=array.shape[0], channels=array.shape[1], height=array.shape[2], width=array.shape[3])
            blob.data.extend(array.ravel().tolist())
    (tmp_path / "old.caffemodel").write_bytes(net.SerializeToString())
    errors = compare_with_opencv([tmp_path / "old.prototxt", tmp_path / "old.caffemodel"], {"data": rand(1, 2, 6, 6, seed=6)})
    assert {"conv", "relu", "pool", "fc", "prob"} <= set(errors)


def test_odd_file_names_need_framework(tmp_path: Path) -> None:
    proto, model = write_net(tmp_path, SMALL, SMALL_BLOBS)
    odd_proto, odd_model = tmp_path / "net.cfg", tmp_path / "weights.bin"
    odd_proto.write_text(proto.read_text().replace('name: "small"\n', ""))
    odd_model.write_bytes(model.read_bytes())
    out = tmp_path / "odd.onnx"
    result = run_edgecc("convert", odd_proto, odd_model, "--framework", "caffe", "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.exists()


def test_caffemodel_first_is_accepted(tmp_path: Path) -> None:
    proto, model = write_net(tmp_path, SMALL, SMALL_BLOBS)
    out = tmp_path / "swapped.onnx"
    result = run_edgecc("convert", model, proto, "-o", out)
    assert result.returncode == 0, result.stderr


def test_random_weights_prototxt_only(tmp_path: Path) -> None:
    proto = tmp_path / "net.prototxt"
    proto.write_text(
        SMALL.replace("ReLU", "PReLU").replace(
            "kernel_size: 3 }", 'kernel_size: 3 } }\nlayer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv"'
        )
    )
    out = tmp_path / "random.onnx"
    refused = run_edgecc("convert", proto, "-o", out)
    assert refused.returncode == 2
    assert "--random-weights" in _no_traceback_one_line(refused.stderr)
    assert not out.exists()
    result = run_edgecc("convert", proto, "--random-weights", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    assert result.json()["verification"]["passed"]  # OpenCV ran the same random weights from a temporary caffemodel
    again = tmp_path / "again.onnx"
    assert run_edgecc("convert", proto, "--random-weights", "-o", again, "--no-verify").returncode == 0
    assert again.read_bytes() == out.read_bytes()


def test_inspect_prototxt() -> None:
    result = run_edgecc("inspect", PROTOTXT, CAFFEMODEL, "--json")
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- bad input


def _convert_fails(tmp_path: Path, *files: Path, code: int) -> str:
    out = tmp_path / "bad.onnx"
    result = run_edgecc("convert", *files, "-o", out)
    assert result.returncode == code, result.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".bad.onnx*"))
    return _no_traceback_one_line(result.stderr)


def test_caffemodel_missing_layer(tmp_path: Path) -> None:
    proto, model = write_net(tmp_path, SMALL, {"conv": SMALL_BLOBS["conv"]})
    line = _convert_fails(tmp_path, proto, model, code=3)
    assert "fc (InnerProduct)" in line and str(model) in line


def test_caffemodel_wrong_blob_shape(tmp_path: Path) -> None:
    blobs = dict(SMALL_BLOBS, conv=("Convolution", [rand(4, 3, 5, 5, seed=1), rand(4, seed=2)]))
    proto, model = write_net(tmp_path, SMALL, blobs)
    line = _convert_fails(tmp_path, proto, model, code=3)
    assert "'conv'" in line and "4x3x5x5" in line and "4x3x3x3" in line


def test_caffemodel_wrong_blob_count(tmp_path: Path) -> None:
    blobs = dict(SMALL_BLOBS, fc=("InnerProduct", [rand(3, 36, seed=3)]))
    proto, model = write_net(tmp_path, SMALL, blobs)
    line = _convert_fails(tmp_path, proto, model, code=3)
    assert "'fc'" in line and "bias" in line


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_caffemodel(keep: float, tmp_path: Path) -> None:
    data = CAFFEMODEL.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: int(len(data) * keep)])
    line = _convert_fails(tmp_path, PROTOTXT, cut, code=3)
    assert "cut.caffemodel" in line and ("truncated" in line or "holds" in line)


def test_prototxt_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    broken = SMALL.replace('top: "pool" pooling_param {', 'top: "pool" pooling_param {{', 1)
    proto = tmp_path / "broken.prototxt"
    proto.write_text(broken)
    line = _convert_fails(tmp_path, proto, "--random-weights", code=3)
    assert "line 6, column 80" in line and "broken.prototxt" in line


def test_unknown_layer_types_are_listed_together(tmp_path: Path) -> None:
    proto = SMALL + (
        'layer { name: "rpn" type: "Proposal" bottom: "prob" top: "rois" }\n'
        'layer { name: "spp1" type: "SPP" bottom: "conv" top: "spp1" }\n'
        'layer { name: "mystery" type: "MyCustomLayer" bottom: "prob" top: "m" }\n'
    )
    paths = write_net(tmp_path, proto, SMALL_BLOBS)
    line = _convert_fails(tmp_path, *paths, code=4)
    for text in ("rpn (Proposal)", "spp1 (SPP)", "mystery (MyCustomLayer)", "3 unsupported"):
        assert text in line


def test_missing_opencv_is_exit_6_and_no_verify_still_converts(tmp_path: Path) -> None:
    # make `import cv2` fail as it does where opencv-python-headless is not installed
    shadow = tmp_path / "shadow" / "cv2"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named cv2')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    proto, model = write_net(tmp_path, SMALL, SMALL_BLOBS)
    out = tmp_path / "m.onnx"
    result = run_edgecc("convert", proto, model, "-o", out, env=env)
    assert result.returncode == 6, result.stderr
    line = _no_traceback_one_line(result.stderr)
    assert "opencv-python-headless" in line and "edgecc[caffe]" in line
    assert not out.exists()
    ok = run_edgecc("convert", proto, model, "-o", out, "--no-verify", env=env)
    assert ok.returncode == 0, ok.stderr
    assert out.exists()


def test_unsupported_settings_of_known_layers_are_listed_together(tmp_path: Path) -> None:
    proto = SMALL + (
        'layer { name: "stoch" type: "Pooling" bottom: "conv" top: "stoch" pooling_param { pool: STOCHASTIC kernel_size: 2 } }\n'
        'layer { name: "axis2" type: "Convolution" bottom: "conv" top: "axis2" '
        "convolution_param { num_output: 2 kernel_size: 1 axis: 2 } }\n"
    )
    paths = write_net(tmp_path, proto, dict(SMALL_BLOBS, axis2=("Convolution", [rand(2, 4, 1, 1), rand(2)])))
    line = _convert_fails(tmp_path, *paths, code=4)
    assert "stoch (Pooling): STOCHASTIC pooling" in line and "axis2 (Convolution)" in line


def test_every_registered_layer_type_has_a_test() -> None:
    from edgecc.converters.caffe import supported_layers

    tested = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = [
        name for name, _ in supported_layers() if f'type: "{name}"' not in tested and f"type: {name.upper()}" not in tested
    ]
    assert not missing, f"layer types without a test: {missing}"
    assert all(doc for _, doc in supported_layers())


def test_training_prototxt_points_to_the_deploy_one(tmp_path: Path) -> None:
    proto = tmp_path / "train_val.prototxt"
    proto.write_text(
        'layer { name: "mnist" type: "Data" top: "data" top: "label" data_param { source: "x" batch_size: 4 } }\n'
        + SMALL.split("\n", 3)[3]
        + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }\n'
    )
    line = _convert_fails(tmp_path, proto, "--random-weights", code=2)
    assert "training net" in line and "'conv'" in line


def test_prototxt_alone_lists_every_layer_needing_weights(tmp_path: Path) -> None:
    line = _convert_fails(tmp_path, PROTOTXT, code=2)
    assert "conv1, PReLU1, conv2, PReLU2, conv3, PReLU3, conv4-1, conv4-2" in line


def test_detect_is_content_based(tmp_path: Path) -> None:
    from edgecc.converters.caffe import detect

    proto, model = write_net(tmp_path, SMALL, SMALL_BLOBS)
    renamed = tmp_path / "deploy.txt"
    renamed.write_text(SMALL)
    caffe2_text = tmp_path / "predict_net.pbtxt"
    caffe2_text.write_text('name: "net"\nop { input: "data" output: "conv" name: "c" type: "Conv" }\nexternal_input: "data"\n')
    tf_text = tmp_path / "graph.pbtxt"
    tf_text.write_text('node { name: "x" op: "Placeholder" }\nversions { producer: 1 }\n')
    assert detect([str(proto)]) and detect([str(renamed)]) and detect([str(model), str(proto)])
    assert not detect([str(model)]) and not detect([str(caffe2_text)]) and not detect([str(tf_text)])


def test_verify_runs_a_caffe_model_against_its_onnx(tmp_path):
    """`edgecc verify deploy.prototxt model.onnx --reference-weights x.caffemodel` runs Caffe through OpenCV."""
    from tests.conftest import SAMPLES, run_edgecc

    folder = SAMPLES / "models" / "caffe_mtcnn_pnet"
    out = tmp_path / "pnet.onnx"
    converted = run_edgecc(
        "convert", folder / "det1.prototxt", folder / "det1.caffemodel", "--input", "data:1x3x12x12", "-o", out
    )
    assert converted.returncode == 0, converted.stderr
    result = run_edgecc(
        "verify",
        folder / "det1.prototxt",
        out,
        "--reference-weights",
        folder / "det1.caffemodel",
        "--input",
        "data:1x3x12x12",
        "--samples",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["samples"] == 2 and {o["name"] for o in report["outputs"]} == {"prob1", "conv4-2"}
    assert all(o["max_abs"] < 1e-4 for o in report["outputs"])


@pytest.mark.parametrize("flip", [(b"\x04\x03\x03\x03", b"\x04\x03\x03\x02"), (b"\x04\x03\x03\x03", b"\x04\x03\x07\x03")])
def test_bit_flipped_blob_shape_is_invalid_input(scratch: Scratch, flip) -> None:
    """A flipped bit in a blob's shape: the values no longer fit the shape, or the shape no longer fits the layer."""
    proto, model = write_net(scratch.files, SMALL, SMALL_BLOBS)
    data = model.read_bytes()
    assert data.count(flip[0]) == 1  # the packed dims of the conv weights
    model.write_bytes(data.replace(*flip))
    before = scratch.snapshot()
    line = assert_clean_failure(scratch.run("convert", proto, model, "-o", scratch.files / "out.onnx"), 3, model.name, "'conv'")
    assert "4x3x3x2" in line or "4x3x7x3" in line
    assert scratch.snapshot() == before
    scratch.assert_nothing_left()
