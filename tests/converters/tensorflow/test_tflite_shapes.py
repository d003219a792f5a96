"""TFLite models with a dynamic batch: `--input` fixes every shape (the reference resized to match), and tf2onnx's
`unk__N` dimension names never reach the user."""

from __future__ import annotations

import onnx
import pytest

from edgecc.converters import tensorflow as frontend
from edgecc.converters.tensorflow import flatbuffer
from edgecc.errors import UsageError
from edgecc.inputs import parse_input_spec
from tests.conftest import run_edgecc
from tests.converters.tensorflow import tflite_models
from tests.converters.tensorflow.helpers import TFOptions, convert_and_verify


@pytest.fixture(scope="module")
def dynamic_tflite(tf_dir):
    return tflite_models.dynamic_batch(tf_dir / "dynamic_batch.tflite")


def _input_name(path) -> str:
    model = flatbuffer.read(path.read_bytes(), str(path))
    return model.tensor_name(model.main, int(model.main.inputs[0]))


def _dims(value) -> list[object]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_the_fixture_has_a_dynamic_batch(dynamic_tflite):
    model = flatbuffer.read(dynamic_tflite.read_bytes(), str(dynamic_tflite))
    assert model.signature(model.main, int(model.main.inputs[0])) == (-1, 6, 7, 4)


def test_input_fixes_every_shape_and_matches_the_resized_interpreter(dynamic_tflite):
    name = _input_name(dynamic_tflite)
    options = TFOptions(inputs=(parse_input_spec(f"{name}:3x6x7x4"),))
    converted = convert_and_verify(dynamic_tflite, options)  # feeds of batch 3: the interpreter is resized to it
    assert converted.report.passed, converted.report.to_dict()
    graph = converted.model.graph
    assert _dims(graph.input[0]) == [3, 6, 7, 4]
    assert all(isinstance(d, int) for v in list(graph.output) + list(graph.value_info) for d in _dims(v)), [
        (v.name, _dims(v)) for v in graph.value_info if not all(isinstance(d, int) for d in _dims(v))
    ]
    assert converted.report.outputs[0].shape == (2, 3, 4 * 6 * 7)  # two samples of batch 3


def test_without_input_the_dynamic_batch_is_named_batch(dynamic_tflite):
    model = frontend.convert([str(dynamic_tflite)], TFOptions())
    assert _dims(model.graph.input[0])[0] == "batch"
    assert b"unk__" not in model.SerializeToString()


@pytest.mark.parametrize(("dims", "message"), [("3x6x9x4", "fixes it to 7"), ("3x6x7", "rank 3"), ("?x6x7x4", "dynamic")])
def test_input_contradicting_the_model_is_a_usage_error(dynamic_tflite, dims, message):
    name = _input_name(dynamic_tflite)
    with pytest.raises(UsageError, match=message):
        frontend.convert([str(dynamic_tflite)], TFOptions(inputs=(parse_input_spec(f"{name}:{dims}"),)))


def test_input_naming_no_input_is_a_usage_error(dynamic_tflite):
    with pytest.raises(UsageError, match="nope") as caught:
        frontend.convert([str(dynamic_tflite)], TFOptions(inputs=(parse_input_spec("nope:1x6x7x4"),)))
    assert _input_name(dynamic_tflite) in caught.value.hint


def test_cli_input_writes_static_onnx(dynamic_tflite, tmp_path):
    out = tmp_path / "static.onnx"
    name = _input_name(dynamic_tflite)
    result = run_edgecc("convert", dynamic_tflite, "-o", out, "--input", f"{name}:2x6x7x4", "--json")
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    assert _dims(model.graph.input[0]) == [2, 6, 7, 4] and _dims(model.graph.output[0]) == [2, 4 * 6 * 7]
    assert result.json()["verification"]["passed"]
    assert "unk__" not in result.stdout + result.stderr
