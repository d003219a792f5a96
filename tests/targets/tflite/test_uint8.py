"""uint8 models (old TensorFlow quantisation, asymmetric uint8 weights): MobileNet v1 0.25 uint8 -> `edgecc convert` ->
the writer. io_type="uint8" gives back the original file's operators, scales and zero points (TFLite's uint8 kernels);
io_type="int8" gives int8 io (zero points shifted by 128) around the same uint8 kernels, because TFLite's int8
kernels need weight zero point 0 and these weights have no exact int8 form. Both are run with the TFLite interpreter
and must equal the original file's outputs bit for bit; against onnxruntime they agree exactly as the original does
(the original itself is up to several 1/256 steps from onnxruntime's float requantisation on real images, so the
step criterion is reported, not asserted). The int8-io artifact goes through Vela (ethos-u55-256)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecc.onnxutil import infer_shapes
from edgecc.targets.tflite import TfliteRunner, compare_with_onnx, emit_tflite
from tests.conftest import SAMPLES, run_edgecc
from tests.targets.tflite.test_roundtrip import signature

MOBILENET = SAMPLES / "models" / "tflite_mobilenet_v1_025_128_uint8" / "mobilenet_v1_0.25_128_quant.tflite"
BIRD = MOBILENET.parent / "ref" / "bird.npz"


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, onnx.ModelProto]:
    path = tmp_path_factory.mktemp("mn") / "mn.onnx"
    result = run_edgecc("convert", MOBILENET, "-o", path)
    assert result.returncode == 0, result.stderr
    return path, infer_shapes(onnx.load(path))


def _feeds() -> list[dict[str, np.ndarray]]:
    bird = np.load(BIRD)["in__input"]
    rng = np.random.default_rng(0)
    noisy = np.clip(bird.astype(np.int16) + rng.integers(-8, 9, bird.shape), 0, 255).astype(np.uint8)
    return [{"input": bird}, {"input": noisy}, {"input": bird[:, ::-1].copy()}]


def _check_against_original(art, model: onnx.ModelProto) -> None:
    """Bit-identical to the original TFLite file; onnxruntime's agreement the same as the original's; same top-1."""
    from edgecc.ortrun import OrtRunner
    from edgecc.targets.tflite.check import agreement_report, integer_layers

    feeds = _feeds()
    name = "MobilenetV1/Predictions/Reshape_1"
    runner = TfliteRunner(art.data, name="mn")
    ours = [runner.run(f) for f in feeds]
    original = [{name: o} for o in _original_outputs(feeds)]
    ort = OrtRunner(model, name="mn.onnx")  # as compare_with_onnx runs it
    reference = [ort.run(f) for f in feeds]
    for got, expected, ref in zip(ours, original, reference):
        np.testing.assert_array_equal(got[name], expected[name])
        assert int(got[name].argmax()) == int(ref[name].argmax())
    expected = agreement_report(
        original, reference, {name: 1.0}, reference_kernels=ort.int8_kernels, integer_layers=integer_layers(model)
    )
    assert compare_with_onnx(art, model, feeds)["outputs"] == expected["outputs"]


def _original_outputs(feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    runner = TfliteRunner(MOBILENET, name="original")
    return [next(iter(runner.run({runner.inputs[0].name: f["input"]}).values())) for f in feeds]


def test_uint8_io_reproduces_the_original(mobilenet: tuple[Path, onnx.ModelProto]) -> None:
    _, model = mobilenet
    assert (
        model.graph.node[0].op_type == "Transpose" and model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    )
    art = emit_tflite(model, io_type="uint8", name="mn")
    assert art.report["activation_type"] == "uint8" and art.report["internal_transposes"] == 0
    assert signature(art.data) == signature(MOBILENET.read_bytes())  # same operators, scales and zero points
    _check_against_original(art, model)


def test_int8_io_shifts_zero_points_around_the_uint8_kernels(mobilenet: tuple[Path, onnx.ModelProto]) -> None:
    _, model = mobilenet
    art = emit_tflite(model, io_type="int8", name="mn")
    original = signature(MOBILENET.read_bytes())
    written = signature(art.data)
    assert [w[0] for w in written] == ["QUANTIZE", *(o[0] for o in original), "QUANTIZE"]
    assert written[1:-1] == original
    (in_scale,), (in_zero,), _ = original[0][1][0]
    (out_scale,), (out_zero,), _ = original[-1][1][-1]
    assert written[0][1][0] == ((in_scale,), (in_zero - 128,), 0)  # int8 io: the same scale, zero point - 128 (exact)
    assert written[-1][1][-1] == ((out_scale,), (out_zero - 128,), 0)
    io = art.report["io"]
    assert io["inputs"][0]["dtype"] == "int8" and io["outputs"][0]["dtype"] == "int8"
    _check_against_original(art, model)


def test_ethos_u_compiles_the_uint8_model(mobilenet: tuple[Path, onnx.ModelProto], tmp_path: Path) -> None:
    import json

    path, _ = mobilenet
    bundle = tmp_path / "mn.edgecc"
    result = run_edgecc("compile", path, "--target", "ethos-u55-256", "-o", bundle)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    (partition,) = manifest["partitions"]
    assert any(f["path"].endswith("_vela.tflite") for f in partition["files"])
    vendor = partition["vendor"]
    assert not vendor["cpu_fallback"] and vendor["npu_operators"], vendor["summary"]  # Vela runs every operator on the NPU
    assert vendor["verification"]["passed"]
