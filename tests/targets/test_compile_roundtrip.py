"""`edgecc convert X.tflite` then `edgecc compile --target ethos-u|edgetpu|armnn`: the bundle's TFLite has the original's
operators and scales (issue: the round trip through the CLI, -O2 passes and placement included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SAMPLES, run_edgecc
from tests.targets.tflite.test_roundtrip import make_tensorflow_int8_cnn, signature

TARGETS = {
    "ethos-u55-128": [],
    "edgetpu": ["--partitioner", "greedy", "--vendor-option", "io=int8"],
    "armnn": ["--partitioner", "greedy"],
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("tflite")
    return {
        "hello_world_int8": (
            SAMPLES / "models" / "tflite_hello_world_int8" / "hello_world_int8.tflite",
            "serving_default_dense_input:0:1x1",
        ),
        "tf_int8_cnn": (make_tensorflow_int8_cnn(folder / "cnn_int8.tflite"), "serving_default_image:0:1x12x12x3"),
    }


def _interior(ops: list[tuple[str, list]]) -> list[tuple[str, list]]:
    """Operators without the float-io QUANTIZE/DEQUANTIZE at the edges (integer-io targets take int8 directly)."""
    start = 1 if ops and ops[0][0] == "QUANTIZE" else 0
    end = len(ops) - 1 if ops and ops[-1][0] == "DEQUANTIZE" else len(ops)
    return ops[start:end]


# TensorFlow quantises the CNN's Dense weights per channel, which Arm NN 20.08 cannot take (it aborts): that node
# stays on the CPU for armnn (tests/targets/test_armnn.py), so the armnn round trip is checked on hello_world
CASES = [
    (name, target)
    for name in ("hello_world_int8", "tf_int8_cnn")
    for target in TARGETS
    if (name, target) != ("tf_int8_cnn", "armnn")
]


@pytest.mark.parametrize(("name", "target"), CASES)
def test_tflite_round_trip_through_compile(
    originals: dict[str, tuple[Path, str]], name: str, target: str, tmp_path: Path
) -> None:
    tflite, spec = originals[name]
    onnx_path = tmp_path / "m.onnx"
    assert run_edgecc("convert", tflite, "--no-verify", "-o", onnx_path).returncode == 0
    out = tmp_path / "m.edgecc"
    result = run_edgecc("compile", onnx_path, "--target", target, "--input", spec, *TARGETS[target], "-o", out)
    assert result.returncode == 0, result.stderr  # no --calibration: the converted model's own scales are used
    written = sorted(out.glob(f"partitions/p*_{target}.tflite"))
    assert len(written) == 1, "the whole model is one accelerator partition"
    original = _interior(signature(tflite.read_bytes()))
    got = _interior(signature(written[0].read_bytes()))
    # same operators with the same scales / zero points (per tensor and per channel); tf2onnx may order branches differently
    assert sorted(got, key=repr) == sorted(original, key=repr)
