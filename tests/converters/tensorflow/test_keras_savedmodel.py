"""Keras (.keras/.h5), SavedModel and frozen GraphDef conversions checked against TensorFlow itself."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edgecc.converters import tensorflow as frontend
from edgecc.errors import UsageError
from tests.converters.tensorflow.helpers import TFOptions, convert_and_verify


@pytest.mark.parametrize("fmt", ["keras", "h5", "saved", "pb"])
def test_cnn_every_format(cnn_files, fmt):
    converted = convert_and_verify(cnn_files[fmt])
    assert converted.report.passed, converted.report.to_dict()
    ops = Counter(n.op_type for n in converted.model.graph.node)
    # conv + depthwise (grouped Conv) + 1x1 conv; BN folded; relu6 as Clip; add, concat, pools, dense, softmax
    assert ops["Conv"] == 3, ops
    for op in ("Clip", "Add", "Concat", "MaxPool", "AveragePool", "Softmax"):
        assert ops[op] >= 1, (op, ops)
    assert converted.runner.inputs[0].shape[1:] == (16, 16, 3)  # NHWC kept by default
    props = {p.key: p.value for p in converted.model.metadata_props}
    assert "NHWC" in props["edgecc.input_layout"]


def test_cnn_keras_outputs_match_keras_predict(cnn_files):
    """The reference itself is the real Keras model: ONNX output equals keras.Model.predict on the same data."""
    import keras

    model = keras.models.load_model(cnn_files["keras"], compile=False)
    x = np.random.default_rng(7).standard_normal((1, 16, 16, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    converted = convert_and_verify(cnn_files["keras"], feeds=[{"image": x}])
    got = converted.runner.run({"image": x})["prob"]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert converted.report.passed


def test_nchw_inputs_transposes_and_records_layout(cnn_files):
    options = TFOptions(nchw_inputs=("image",))
    converted = convert_and_verify(cnn_files["keras"], options)
    assert converted.report.passed, converted.report.to_dict()
    assert converted.runner.inputs[0].shape[1:] == (3, 16, 16)
    props = {p.key: p.value for p in converted.model.metadata_props}
    assert props["edgecc.input_layout"].startswith("image=NCHW")


def test_nchw_inputs_unknown_name_is_usage_error(cnn_files):
    with pytest.raises(UsageError, match="nope"):
        frontend.convert([str(cnn_files["h5"])], TFOptions(nchw_inputs=("nope",)))


@pytest.mark.parametrize("fmt", ["keras", "h5", "saved"])
def test_lstm_gru(rnn_files, fmt):
    converted = convert_and_verify(rnn_files[fmt])
    assert converted.report.passed, converted.report.to_dict()
    ops = {n.op_type for n in converted.model.graph.node}
    assert {"LSTM", "GRU"} & ops or "Loop" in ops or "Scan" in ops, ops


def test_custom_signature_default_and_named(custom_saved):
    default = convert_and_verify(custom_saved)
    assert default.report.passed
    assert [i.name for i in default.runner.inputs] == ["x"] and [o.name for o in default.runner.outputs] == ["y"]
    scaled = convert_and_verify(custom_saved, TFOptions(signature="scaled"))
    assert scaled.report.passed, scaled.report.to_dict()
    assert sorted(i.name for i in scaled.runner.inputs) == ["a", "b"]
    assert sorted(o.name for o in scaled.runner.outputs) == ["prod", "sum"]


def test_unknown_signature_lists_the_known_ones(custom_saved):
    with pytest.raises(UsageError) as info:
        frontend.convert([str(custom_saved)], TFOptions(signature="missing"))
    assert "scaled" in info.value.one_line() and "serving_default" in info.value.one_line()


def test_frozen_pb_inputs_and_outputs_found_from_graph(cnn_files):
    source = frontend._load((str(cnn_files["pb"]),), TFOptions())
    assert [i.name for i in source.inputs] == ["image:0"]
    assert source.outputs == ["Identity:0"]


def test_describe_keras_and_saved_model(cnn_files, custom_saved):
    keras_details = frontend.describe([str(cnn_files["keras"])], TFOptions())
    assert any(row.startswith("DepthwiseConv2D") for row in keras_details["layers"])
    assert keras_details["parameters"] > 1000
    saved = frontend.describe([str(custom_saved)], TFOptions())
    assert saved["signatures"] == ["scaled", "serving_default"]
