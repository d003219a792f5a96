"""A model with a 1x1 output (a presence logit) converts with the default tolerances (edgecc.verify judges it by its
magnitude, max(range, max |reference|), not by the zero range of a single element)."""

from __future__ import annotations

import numpy as np

from edgecc.converters.options import ConvertOptions
from edgecc.pipeline.convert import convert, verify_conversion
from edgecc.verify import TOLERANCE_PRESETS


def _logit_model(path):
    """A real Keras model: a small CNN ending in one large logit (float32 rounding differs between TF and onnxruntime)."""
    import keras

    rng = np.random.default_rng(7)
    inputs = keras.Input((32, 32, 3), name="image")
    x = inputs
    for index, channels in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"conv{index}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{index}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, name="logit")(x))
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights(
                [rng.standard_normal(w.shape).astype(np.float32) * (1.0 if w.ndim > 1 else 0.1) for w in layer.get_weights()]
            )
    model.save(path)
    return path


def test_one_element_output_converts_with_default_tolerances(tmp_path):
    path = _logit_model(tmp_path / "logit.keras")
    conversion = convert([str(path)], ConvertOptions())
    report = verify_conversion(conversion)
    assert report is not None and report.samples == 1
    [output] = report.outputs
    assert output.shape == (1, 1) and output.reference_range == 0.0
    assert report.passed, output.reason
    # the error is real float32 rounding: above the bare atol a zero range would leave as the bound ...
    fp32 = TOLERANCE_PRESETS["fp32"]
    assert output.max_abs > fp32.atol
    # ... and inside the bound relative to the logit's magnitude
    reference = conversion.frontend.reference([str(path)], conversion.options)
    feed = {reference.inputs[0].name: np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)}
    magnitude = float(np.abs(next(iter(reference.run(feed).values()))).max())
    assert output.max_abs <= fp32.atol + fp32.rtol * magnitude
