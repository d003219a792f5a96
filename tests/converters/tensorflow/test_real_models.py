"""Real published models (samples/models, Apache-2.0/MIT): convert, verify, and match the stored ref/*.npz."""

from __future__ import annotations

import numpy as np
import pytest

from edgecc.converters import tensorflow as frontend
from edgecc.converters.tensorflow.reader import tflite_interpreter
from edgecc.errors import UnsupportedOperator
from edgecc.inputs import parse_input_spec
from tests.conftest import SAMPLES
from tests.converters.tensorflow.helpers import TFOptions, convert_and_verify

MODELS = SAMPLES / "models"


def _refs(folder: str) -> list[dict[str, np.ndarray]]:
    refs = []
    for path in sorted((MODELS / folder / "ref").glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            refs.append({k: data[k] for k in data.files})
    assert refs
    return refs


def _float_close(got: np.ndarray, expected: np.ndarray) -> None:
    span = float(expected.max() - expected.min()) or 1.0
    assert np.abs(got.astype(np.float64) - expected).max() <= 1e-4 * span + 1e-6


def test_hello_world_float():
    path = MODELS / "tflite_hello_world_float" / "hello_world_float.tflite"
    (ref,) = _refs("tflite_hello_world_float")
    name = tflite_interpreter(str(path)).get_input_details()[0]["name"]
    feeds = [{name: np.array([[x]], np.float32)} for x in ref["in__x_float"]]
    converted = convert_and_verify(path, feeds=feeds)
    assert converted.report.passed, converted.report.to_dict()
    out = converted.runner.outputs[0].name
    got = np.array([converted.runner.run(f)[out].item() for f in feeds])
    _float_close(got, ref["out__y_float"])


def test_hello_world_int8_within_one_step():
    path = MODELS / "tflite_hello_world_int8" / "hello_world_int8.tflite"
    (ref,) = _refs("tflite_hello_world_int8")
    interpreter = tflite_interpreter(str(path))
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = outp["quantization"]
    q = np.clip(np.round(ref["in__x_float"] / in_scale) + in_zero, -128, 127).astype(np.int8)
    feeds = [{inp["name"]: np.array([[v]], np.int8)} for v in q]
    converted = convert_and_verify(path, feeds=feeds)
    assert converted.report.passed and converted.report.outputs[0].max_abs <= 1.0, converted.report.to_dict()
    got = np.array([converted.runner.run(f)[outp["name"]].item() for f in feeds])
    y = (got.astype(np.float64) - out_zero) * out_scale
    assert np.abs(y - ref["out__y_float"]).max() <= out_scale * 1.0001


def test_mobilenet_uint8_matches_refs():
    path = MODELS / "tflite_mobilenet_v1_025_128_uint8" / "mobilenet_v1_0.25_128_quant.tflite"
    refs = _refs("tflite_mobilenet_v1_025_128_uint8")
    feeds = [{"input": r["in__input"]} for r in refs]
    converted = convert_and_verify(path, feeds=feeds)
    assert converted.report.passed, converted.report.to_dict()
    for feed, ref in zip(feeds, refs):
        got = converted.runner.run(feed)["MobilenetV1/Predictions/Reshape_1"]
        assert got.dtype == np.uint8
        assert np.abs(got.astype(int) - ref["out__out"].astype(int)).max() <= 1
        assert got.argmax() == ref["out__out"].argmax()


def test_kws_from_reshape_matches_refs():
    path = MODELS / "tf_kws_dnn_s" / "DNN_S.pb"
    refs = _refs("tf_kws_dnn_s")
    options = TFOptions(inputs=(parse_input_spec("Reshape:0:1x250"),))
    feeds = [{"Reshape:0": r["in__Reshape:0"]} for r in refs]
    converted = convert_and_verify(path, options, feeds=feeds)
    assert converted.report.passed, converted.report.to_dict()
    for feed, ref in zip(feeds, refs):
        _float_close(converted.runner.run(feed)["labels_softmax:0"], ref["out__labels_softmax:0"])


def test_kws_whole_graph_lists_every_unsupported_op():
    path = MODELS / "tf_kws_dnn_s" / "DNN_S.pb"
    with pytest.raises(UnsupportedOperator) as info:
        frontend.convert([str(path)], TFOptions())
    found = {(n.node, n.op_type) for n in info.value.nodes}
    assert found == {("decoded_sample_data", "DecodeWav"), ("AudioSpectrogram", "AudioSpectrogram"), ("Mfcc", "Mfcc")}


def test_gender_mini_xception_h5_matches_ref():
    path = MODELS / "keras_gender_mini_xception" / "gender_mini_XCEPTION.21-0.95.hdf5"
    (ref,) = _refs("keras_gender_mini_xception")
    converted = convert_and_verify(path, feeds=[{"input_1": ref["in__input"]}])
    assert converted.report.passed, converted.report.to_dict()
    _float_close(converted.runner.run({"input_1": ref["in__input"]})["predictions"], ref["out__out"])
