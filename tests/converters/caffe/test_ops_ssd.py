"""SSD PriorBox and DetectionOutput against OpenCV's Caffe importer (MobileNet-SSD style heads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.converters.caffe import caffe_numpy
from tests.converters.caffe.helpers import compare_with_opencv, converted_outputs, rand, write_net

IMAGE = 'input: "data"\ninput_shape { dim: 1 dim: 3 dim: 60 dim: 80 }\n'


def _feature(name: str, bottom: str, channels: int, stride: int) -> str:
    return (
        f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
        f"convolution_param {{ num_output: {channels} kernel_size: 3 pad: 1 stride: {stride} }} }}\n"
    )


@pytest.mark.parametrize(
    "param",
    [
        "min_size: 20 aspect_ratio: 2 flip: true clip: false variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2",
        "min_size: 20 max_size: 40 aspect_ratio: 2 aspect_ratio: 3 flip: true clip: true variance: 0.1",
        (
            "min_size: 10 min_size: 25 max_size: 20 max_size: 45 aspect_ratio: 2 flip: false clip: true step: 8 offset: 0.5 "
            "variance: 0.2"
        ),
        "min_size: 12 aspect_ratio: 3 clip: false step: 7.5 offset: 0.25 variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2",
    ],
)
def test_prior_box(param: str, tmp_path: Path) -> None:
    proto = IMAGE + _feature("f", "data", 4, 8)
    proto += f'layer {{ name: "prior" type: "PriorBox" bottom: "f" bottom: "data" top: "prior" prior_box_param {{ {param} }} }}\n'
    blobs = {"f": ("Convolution", [rand(4, 3, 3, 3, seed=1), rand(4, seed=2)])}
    compare_with_opencv(write_net(tmp_path, proto, blobs), {"data": rand(1, 3, 60, 80, seed=3)}, tensors=["prior"])


def test_prior_box_without_clip_verifies_with_ssd_default(tmp_path: Path) -> None:
    # OpenCV clips by default; the reference writes SSD's default (clip: false) into the prototxt it gives OpenCV
    proto = IMAGE + _feature("f", "data", 4, 8)
    proto += (
        'layer { name: "prior" type: "PriorBox" bottom: "f" bottom: "data" top: "prior" '
        "prior_box_param { min_size: 20 max_size: 50 aspect_ratio: 2 } }\n"
    )
    blobs = {"f": ("Convolution", [rand(4, 3, 3, 3, seed=1), rand(4, seed=2)])}
    paths = write_net(tmp_path, proto, blobs)
    compare_with_opencv(paths, {"data": rand(1, 3, 60, 80, seed=3)}, tensors=["prior", "f"])
    got = converted_outputs(paths, {"data": rand(1, 3, 60, 80, seed=3)}, ["prior"])["prior"]
    assert got.min() < 0  # not clipped


def test_prior_box_defaults_and_explicit_image_size(tmp_path: Path) -> None:
    # OpenCV 4.14 clips by default (SSD's default is clip: false) and ignores img_h/img_w when normalising,
    # so the oracle is SSD's PriorBoxLayer loops in numpy.
    proto = IMAGE + _feature("f", "data", 4, 8)
    proto += (
        'layer { name: "p1" type: "PriorBox" bottom: "f" bottom: "data" top: "p1" '
        "prior_box_param { min_size: 20 max_size: 50 aspect_ratio: 2 } }\n"
    )
    proto += (
        'layer { name: "p2" type: "PriorBox" bottom: "f" bottom: "data" top: "p2" '
        "prior_box_param { min_size: 30 img_h: 100 img_w: 120 step_h: 16 step_w: 12 variance: 0.1 } }\n"
    )
    blobs = {"f": ("Convolution", [rand(4, 3, 3, 3, seed=1), rand(4, seed=2)])}
    got = converted_outputs(write_net(tmp_path, proto, blobs), {"data": rand(1, 3, 60, 80, seed=3)}, ["p1", "p2"])
    p1 = caffe_numpy.prior_box((8, 10), (60, 80), [20], [50], [2], True, False, [0.1])
    p2 = caffe_numpy.prior_box((8, 10), (100, 120), [30], [], [], True, False, [0.1], step_hw=(16, 12))
    np.testing.assert_allclose(got["p1"], p1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got["p2"], p2, rtol=1e-6, atol=1e-7)


def _ssd_head(classes: int, nms: str, extra: str = "") -> tuple[str, dict]:
    proto = IMAGE + _feature("f1", "data", 8, 8) + _feature("f2", "f1", 8, 2)
    blobs = {
        "f1": ("Convolution", [rand(8, 3, 3, 3, seed=1), rand(8, seed=2)]),
        "f2": ("Convolution", [rand(8, 8, 3, 3, seed=3), rand(8, seed=4)]),
    }
    priors = {"f1": 4, "f2": 6}
    for index, (feature, count) in enumerate(priors.items()):
        ratios = "aspect_ratio: 2 flip: true" if count == 4 else "max_size: 60 aspect_ratio: 2 aspect_ratio: 3 flip: true"
        ratios = ratios.replace("max_size: 60 aspect_ratio: 2 aspect_ratio: 3", "max_size: 60 aspect_ratio: 2 aspect_ratio: 3")
        if count == 4:
            ratios = "max_size: 30 aspect_ratio: 2 flip: true"
        for kind, per in (("loc", 4), ("conf", classes)):
            name = f"{feature}_{kind}"
            proto += (
                f'layer {{ name: "{name}" type: "Convolution" bottom: "{feature}" top: "{name}" '
                f"convolution_param {{ num_output: {count * per} kernel_size: 1 }} }}\n"
                f'layer {{ name: "{name}_perm" type: "Permute" bottom: "{name}" top: "{name}_perm" '
                "permute_param { order: 0 order: 2 order: 3 order: 1 } }\n"
                f'layer {{ name: "{name}_flat" type: "Flatten" bottom: "{name}_perm" top: "{name}_flat" '
                "flatten_param { axis: 1 } }\n"
            )
            scale = 0.3 if kind == "loc" else 0.1
            blobs[name] = (
                "Convolution",
                [rand(count * per, 8, 1, 1, seed=10 + index * 3 + per) * scale, rand(count * per, seed=20 + index + per)],
            )
        proto += (
            f'layer {{ name: "{feature}_prior" type: "PriorBox" bottom: "{feature}" bottom: "data" top: "{feature}_prior" '
            f"prior_box_param {{ min_size: {15 * (index + 1)} {ratios} clip: false "
            "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }\n"
        )
    proto += (
        'layer { name: "loc" type: "Concat" bottom: "f1_loc_flat" bottom: "f2_loc_flat" top: "loc" concat_param { axis: 1 } }\n'
        'layer { name: "conf" type: "Concat" bottom: "f1_conf_flat" bottom: "f2_conf_flat" top: "conf" '
        "concat_param { axis: 1 } }\n"
        'layer { name: "prior" type: "Concat" bottom: "f1_prior" bottom: "f2_prior" top: "prior" concat_param { axis: 2 } }\n'
        'layer { name: "conf_reshape" type: "Reshape" bottom: "conf" top: "conf_reshape" '
        f"reshape_param {{ shape {{ dim: 0 dim: -1 dim: {classes} }} }} }}\n"
        'layer { name: "conf_softmax" type: "Softmax" bottom: "conf_reshape" top: "conf_softmax" softmax_param { axis: 2 } }\n'
        'layer { name: "conf_flatten" type: "Flatten" bottom: "conf_softmax" top: "conf_flatten" flatten_param { axis: 1 } }\n'
        'layer { name: "detection_out" type: "DetectionOutput" bottom: "loc" bottom: "conf_flatten" bottom: "prior" '
        'top: "detection_out" '
        f"detection_output_param {{ num_classes: {classes} share_location: true background_label_id: 0 {nms} {extra} }} }}\n"
    )
    return proto, blobs


@pytest.mark.parametrize(
    ("nms", "extra"),
    [
        ("nms_param { nms_threshold: 0.45 top_k: 100 }", "code_type: CENTER_SIZE keep_top_k: 50 confidence_threshold: 0.05"),
        ("nms_param { nms_threshold: 0.3 top_k: 20 }", "code_type: CENTER_SIZE keep_top_k: 10 confidence_threshold: 0.01"),
        ("nms_param { nms_threshold: 0.5 }", "code_type: CORNER keep_top_k: 200 confidence_threshold: 0.1"),
    ],
)
def test_mobilenet_ssd_style_head(nms: str, extra: str, tmp_path: Path) -> None:
    proto, blobs = _ssd_head(5, nms, extra)
    errors = compare_with_opencv(write_net(tmp_path, proto, blobs), {"data": rand(1, 3, 60, 80, seed=7)})
    assert {"prior", "loc", "conf_flatten", "detection_out"} <= set(errors)
    got = converted_outputs(
        write_net(tmp_path, proto, blobs, name="again"), {"data": rand(1, 3, 60, 80, seed=7)}, ["detection_out"]
    )
    rows = got["detection_out"].reshape(-1, 7)
    assert len(rows) > 1 and np.all(rows[:, 1] >= 1)  # real detections, no background label


def test_detection_output_with_nothing_above_threshold(tmp_path: Path) -> None:
    proto, blobs = _ssd_head(3, "nms_param { nms_threshold: 0.45 top_k: 100 }", "keep_top_k: 10 confidence_threshold: 0.999")
    got = converted_outputs(write_net(tmp_path, proto, blobs), {"data": rand(1, 3, 60, 80, seed=7)}, ["detection_out"])
    # SSD's DetectionOutputLayer writes one fake row: image id 0, then -1
    np.testing.assert_array_equal(got["detection_out"], np.array([[[[0, -1, -1, -1, -1, -1, -1]]]], np.float32))


def test_ssd_head_converts_end_to_end_and_verifies(tmp_path: Path) -> None:
    from tests.conftest import run_edgecc

    proto, blobs = _ssd_head(
        4, "nms_param { nms_threshold: 0.45 top_k: 100 }", "code_type: CENTER_SIZE keep_top_k: 30 confidence_threshold: 0.05"
    )
    paths = write_net(tmp_path, proto, blobs)
    out = tmp_path / "ssd.onnx"
    result = run_edgecc("convert", *paths, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    report = result.json()["verification"]
    assert report["passed"] and [o["name"] for o in report["outputs"]] == ["detection_out"]
    assert report["outputs"][0]["shape"][3] == 7
