"""edgecc's own TFLite flatbuffer reader against the TFLite interpreter, and what it diagnoses before any interpreter:
custom operators (exit 4 naming each op and node, with --no-verify too) and truncated files (exit 3)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecc.converters import tensorflow as frontend
from edgecc.converters.tensorflow import flatbuffer
from edgecc.converters.tensorflow.reader import interpreter_from_bytes
from edgecc.errors import InvalidInputError, UnsupportedOperator
from tests.conftest import run_edgecc
from tests.converters.tensorflow import tflite_models
from tests.converters.tensorflow.helpers import TFOptions


@pytest.fixture(scope="module")
def custom_tflite(tf_dir):
    return tflite_models.custom_ops(tf_dir / "custom_ops.tflite")


@pytest.mark.parametrize("variant", ["float", "int8"])
def test_reader_lists_what_the_interpreter_lists(cnn_tflite, variant):
    data = cnn_tflite[variant].read_bytes()
    model = flatbuffer.read(data, str(cnn_tflite[variant]))
    interpreter = interpreter_from_bytes(data, delegates=False)
    assert [o.name for o in model.operators()] == [d["op_name"] for d in interpreter._get_ops_details()]
    main = model.main
    details = [d for d in interpreter.get_tensor_details() if d["index"] < len(main.tensors)]  # not its scratch tensors
    assert len(details) == len(main.tensors)
    for detail in details:
        index = detail["index"]
        assert model.tensor_name(main, index) == detail["name"]
        assert model.dtype(main, index) == detail["dtype"].__name__
        assert list(model.signature(main, index)) == [int(d) for d in detail["shape_signature"]]
        scales = detail["quantization_parameters"]["scales"]
        quant = main.tensors[index].quantization
        stored = np.asarray(quant.scale if quant is not None and quant.scale is not None else [], dtype=np.float32)
        assert np.array_equal(stored, scales)
        constant = model.constant(main, index)
        if constant is not None and detail["dtype"] == np.float32:
            assert constant.shape == tuple(detail["shape"])


def test_serialize_round_trip_runs_identically(cnn_tflite):
    data = cnn_tflite["float"].read_bytes()
    rewritten = flatbuffer.read(data, "cnn").serialize()
    feed = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype(np.float32)
    outputs = []
    for blob in (data, rewritten):
        interpreter = interpreter_from_bytes(blob, delegates=False)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    assert np.array_equal(outputs[0], outputs[1])


def test_custom_operators_are_exit_4_naming_each_op_and_node(custom_tflite):
    model = flatbuffer.read(custom_tflite.read_bytes(), str(custom_tflite))
    custom = model.custom_operators()
    assert set(custom) == {"Digamma", "Erfinv"} and len(custom["Digamma"]) == 2
    with pytest.raises(Exception, match="unresolved custom op"):  # the interpreter refuses the file ...
        interpreter_from_bytes(custom_tflite.read_bytes())
    with pytest.raises(UnsupportedOperator) as caught:  # ... edgecc names what it lacks
        frontend.convert([str(custom_tflite)], TFOptions())
    error = caught.value
    assert error.exit_code == 4
    assert sorted((n.op_type, n.node) for n in error.nodes) == sorted(
        (code, node) for code, nodes in custom.items() for node in nodes
    )
    assert "corrupt" not in error.one_line()


def test_custom_operators_cli_exit_4_with_no_verify(custom_tflite, tmp_path):
    out = tmp_path / "custom.onnx"
    result = run_edgecc("convert", custom_tflite, "-o", out, "--no-verify")
    assert result.returncode == 4, result.stderr
    assert "Digamma" in result.stderr and "Erfinv" in result.stderr and "corrupt" not in result.stderr
    assert not out.exists()


def test_truncated_file_stays_exit_3(cnn_tflite, tmp_path):
    data = cnn_tflite["float"].read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InvalidInputError, match="truncated or corrupt"):
        frontend.convert([str(cut)], TFOptions())
    result = run_edgecc("convert", cut, "-o", tmp_path / "cut.onnx", "--no-verify")
    assert result.returncode == 3, result.stderr


def test_describe_lists_custom_operators_without_an_interpreter(custom_tflite):
    details = frontend.describe([str(custom_tflite)], TFOptions())
    assert any(row.startswith("Digamma:") for row in details["custom operators"])
    assert any(row.startswith("Erfinv x1") for row in details["operators"])
