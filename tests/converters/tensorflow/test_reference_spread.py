"""The TFLite reference's own spread: XNNPACK (what users run) against TFLite's builtin kernels on the same input,
measured while verifying and added to the tolerance of each output."""

from __future__ import annotations

import numpy as np

from edgecc.converters import tensorflow as frontend
from edgecc.converters.tensorflow.reader import interpreter_from_bytes
from edgecc.verify import TOLERANCE_PRESETS, _spread_tolerance
from tests.converters.tensorflow.helpers import TFOptions, convert_and_verify


def _run(data: bytes, resolver: str, feed: np.ndarray) -> np.ndarray:
    interpreter = interpreter_from_bytes(data, delegates=resolver == "AUTO")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.float64)


def test_spread_is_the_difference_between_xnnpack_and_builtin_kernels(cnn_tflite):
    path = str(cnn_tflite["float"])
    reference = frontend.reference([path], TFOptions())
    feeds = [{reference.inputs[0].name: np.random.default_rng(i).normal(size=(1, 16, 16, 3)).astype(np.float32)} for i in (0, 1)]
    for feed in feeds:
        reference.run(feed)
    data = cnn_tflite["float"].read_bytes()
    key = reference.inputs[0].name
    expected = max(
        float(np.abs(_run(data, "AUTO", f[key]) - _run(data, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", f[key])).max()) for f in feeds
    )
    (name,) = reference.spread()
    assert reference.spread()[name] == expected
    base = TOLERANCE_PRESETS["fp32"]
    widened, notes = _spread_tolerance(reference, [(name, name)], base)
    if expected > 0:
        assert widened[name].atol == base.atol + 2 * expected and widened[name].rtol == base.rtol
        assert notes and name in notes[0]
    else:
        assert widened[name] == base and not notes


def test_verification_reports_the_spread(cnn_tflite):
    converted = convert_and_verify(cnn_tflite["float"])
    assert converted.report.passed, converted.report.to_dict()
    assert converted.report.tolerance == TOLERANCE_PRESETS["fp32"]  # the base criteria stay what they were


def test_integer_spread_lowers_the_within_one_step_floor_to_the_reference_own_agreement(cnn_tflite):
    path = str(cnn_tflite["int8"])
    reference = frontend.reference([path], TFOptions())
    key = reference.inputs[0].name
    feeds = [
        {key: np.random.default_rng(i).integers(-128, 128, size=(1, 16, 16, 3)).astype(np.int8)} for i in range(3)
    ]
    for feed in feeds:
        reference.run(feed)
    data = cnn_tflite["int8"].read_bytes()
    gaps = np.concatenate(
        [
            np.abs(_run(data, "AUTO", f[key]) - _run(data, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", f[key])).ravel()
            for f in feeds
        ]
    )
    (name,) = reference.spread_within_one()
    assert reference.spread_within_one()[name] == float((gaps <= 1).mean())
    base = TOLERANCE_PRESETS["steps"]
    widened, _ = _spread_tolerance(reference, [(name, name)], base)
    if gaps.max() > 0:
        assert widened[name].max_steps == base.max_steps + int(np.ceil(gaps.max()))
        assert widened[name].min_within_one_step == min(base.min_within_one_step, float((gaps <= 1).mean()))
    else:
        assert widened[name] == base
