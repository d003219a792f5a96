"""edgecc -O3 against the best simplifiers (onnxsim, onnxslim, run here on the same file): no more nodes than either,
same outputs. Two graphs where simplifiers are known to win: the PyTorch-1.x form (IR 4, opset 9, every weight also a
graph input; before constant-initializer-inputs, -O3 left every BatchNormalization unfolded there, 28 nodes against
21), and a TFLite file whose reshapes compute their shape at run time (Shape/Gather/Slice/Cast/Concat chains from
tf2onnx), converted with the batch fixed so that the chains are static."""

from __future__ import annotations

import onnx

from edgecc.passes import LEVELS
from tests.legacy_models import ultraface_like
from tests.passes.helpers import assert_same_outputs, ops, optimize


def _peer_counts(path) -> dict[str, int]:  # noqa: ANN001
    import onnxsim
    import onnxslim

    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    assert ok
    return {"onnxsim": len(simplified.graph.node), "onnxslim": len(onnxslim.slim(onnx.load(str(path))).graph.node)}


def test_o3_is_at_or_below_onnxsim_and_onnxslim_on_a_pytorch_1x_export(tmp_path):
    path = ultraface_like(tmp_path / "ultraface_like.onnx")
    model = onnx.load(path)
    ours, _ = optimize(model, LEVELS[3])
    counts = {"edgecc -O3": len(ours.graph.node), **_peer_counts(path)}
    assert counts["edgecc -O3"] <= min(counts["onnxsim"], counts["onnxslim"]), counts
    assert "BatchNormalization" not in ops(ours)
    assert_same_outputs(model, ours, rtol=1e-4)


def _tflite_with_shape_chains(path):
    """A Keras model whose reshapes are computed from tf.shape (dynamic batch), converted by TFLiteConverter."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    class Flatten(tf.keras.layers.Layer):
        def call(self, t):  # noqa: ANN001, ANN201
            s = tf.shape(t)
            return tf.reshape(t, tf.stack([s[0], s[1] * s[2] * s[3]]))

    class Columns(tf.keras.layers.Layer):
        def call(self, t):  # noqa: ANN001, ANN201
            return tf.reshape(t, tf.concat([tf.shape(t)[:1], [5, 1]], 0))

    tf.keras.utils.set_random_seed(0)
    image = tf.keras.Input(shape=(8, 8, 3), name="image")
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    x = Columns()(tf.keras.layers.Dense(5, bias_initializer="random_normal")(Flatten()(x)))
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(image, x)).convert())
    return path


def test_o3_folds_static_shape_chains_of_a_tflite_graph_as_the_simplifiers_do(tmp_path):
    from edgecc.converters.options import ConvertOptions
    from edgecc.inputs import parse_input_specs
    from edgecc.pipeline.convert import convert

    source = _tflite_with_shape_chains(tmp_path / "chains.tflite")
    specs = parse_input_specs(["serving_default_image:0:1x8x8x3"])
    raw = convert([str(source)], ConvertOptions(inputs=specs, optimize=False)).model
    assert {"Shape", "Gather", "Concat"} <= set(ops(raw))  # the chains are there before optimising
    path = tmp_path / "raw.onnx"
    onnx.save(raw, str(path))
    ours, _ = optimize(raw, LEVELS[3])
    counts = {"edgecc -O3": len(ours.graph.node), **_peer_counts(path)}
    assert counts["edgecc -O3"] <= min(counts["onnxsim"], counts["onnxslim"]), counts
    assert not {"Shape", "Gather", "Concat", "Cast", "Slice"} & set(ops(ours))
    assert_same_outputs(raw, ours)
