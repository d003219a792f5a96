"""Small real TensorFlow/Keras models written by the tests: CNN, LSTM/GRU, a custom tf.function module.

Each is saved in every format the frontend reads (SavedModel, .keras, .h5, frozen .pb,
TFLite float / fp16 / dynamic-range / full-int8).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["cnn", "custom_module", "frozen_pb", "representative", "rnn", "save_all", "tf", "tflite_variants"]


def tf():
    """TensorFlow, imported on first use."""
    import tensorflow

    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


def cnn(seed: int = 0):
    """Conv, depthwise conv, BN, relu6, add, concat, max/avg pooling, dense, softmax on 1x16x16x3 NHWC."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    x = keras.Input((16, 16, 3), batch_size=1, name="image")
    a = layers.Conv2D(8, 3, padding="same", name="conv1")(x)
    a = layers.BatchNormalization(name="bn1")(a)
    a = layers.ReLU(max_value=6.0, name="relu6_1")(a)
    b = layers.DepthwiseConv2D(3, padding="same", name="dw")(a)
    b = layers.BatchNormalization(name="bn2")(b)
    b = layers.ReLU(max_value=6.0, name="relu6_2")(b)
    c = layers.Add(name="add")([a, b])
    d = layers.Conv2D(4, 1, name="pw")(c)
    e = layers.Concatenate(name="concat")([c, d])
    e = layers.MaxPooling2D(2, name="maxpool")(e)
    e = layers.AveragePooling2D(2, name="avgpool")(e)
    e = layers.GlobalAveragePooling2D(name="gap")(e)
    e = layers.Dense(256, activation="relu", name="fc1")(e)  # >= 1024 weights: TFLite quantises it (fp16, dynamic range)
    e = layers.Dense(5, name="fc")(e)
    out = layers.Softmax(name="prob")(e)
    model = keras.Model(x, out, name="cnn")
    # non-trivial BN statistics so that folding them is actually tested
    for layer in (model.get_layer("bn1"), model.get_layer("bn2")):
        gamma, beta, mean, var = layer.get_weights()
        rng = np.random.default_rng(seed + 1)
        layer.set_weights(
            [
                gamma * rng.uniform(0.5, 1.5, gamma.shape),
                rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.2, mean.shape),
                rng.uniform(0.5, 2.0, var.shape),
            ]
        )
    return model


def rnn(seed: int = 0):
    """LSTM + GRU over a 1x6x4 sequence, dense head."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    x = keras.Input((6, 4), batch_size=1, name="seq")
    h = layers.LSTM(8, return_sequences=True, name="lstm")(x)
    h = layers.GRU(6, name="gru")(h)
    out = layers.Dense(3, name="head")(h)
    return keras.Model(x, out, name="rnn")


def custom_module():
    """A tf.Module with two signatures: `serving_default` (x*w+b) and `scaled` (named inputs a, b)."""
    tfm = tf()

    class Custom(tfm.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(3)
            self.w = tfm.Variable(rng.standard_normal((4, 3)).astype(np.float32))
            self.b = tfm.Variable(rng.standard_normal(3).astype(np.float32))

        @tfm.function(input_signature=[tfm.TensorSpec([None, 4], tfm.float32, name="x")])
        def serve(self, x):
            return {"y": tfm.nn.relu(tfm.matmul(x, self.w) + self.b)}

        @tfm.function(
            input_signature=[tfm.TensorSpec([2, 4], tfm.float32, name="a"), tfm.TensorSpec([2, 4], tfm.float32, name="b")]
        )
        def scaled(self, a, b):
            return {"sum": tfm.tanh(a * 2.0 + b), "prod": tfm.reduce_sum(a * b, axis=1)}

    return Custom()


def save_all(model, directory: Path, stem: str) -> dict[str, Path]:
    """SavedModel, .keras and .h5 of a Keras model."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"keras": directory / f"{stem}.keras", "h5": directory / f"{stem}.h5", "saved": directory / f"{stem}_saved"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.export(str(paths["saved"]), verbose=False)
    return paths


def frozen_pb(model, path: Path) -> Path:
    """A frozen GraphDef of a Keras model (variables folded into constants)."""
    tfm = tf()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = [tfm.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    concrete = tfm.function(lambda *xs: model(xs[0] if len(xs) == 1 else list(xs), training=False)).get_concrete_function(*spec)
    frozen = convert_variables_to_constants_v2(concrete)
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path


def representative(shape, count: int = 16, seed: int = 0):
    """A representative dataset generator for full-integer TFLite quantisation."""
    rng = np.random.default_rng(seed)

    def generate():
        for _ in range(count):
            yield [rng.uniform(-1, 1, shape).astype(np.float32)]

    return generate


def tflite_variants(model, directory: Path, stem: str) -> dict[str, Path]:
    """float32, fp16-weight, dynamic-range, int8 (int8 in/out) and uint8-io full-integer TFLite files."""
    tfm = tf()
    shape = tuple(model.inputs[0].shape)
    paths: dict[str, Path] = {}

    def write(name: str, configure) -> None:
        converter = tfm.lite.TFLiteConverter.from_keras_model(model)
        configure(converter)
        paths[name] = directory / f"{stem}_{name}.tflite"
        paths[name].write_bytes(converter.convert())

    def fp16(c):
        c.optimizations = [tfm.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tfm.float16]

    def dynamic(c):
        c.optimizations = [tfm.lite.Optimize.DEFAULT]

    def int8(c, io=tfm.int8):
        c.optimizations = [tfm.lite.Optimize.DEFAULT]
        c.representative_dataset = representative(shape)
        c.target_spec.supported_ops = [tfm.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = io
        c.inference_output_type = io

    write("float", lambda c: None)
    write("fp16", fp16)
    write("dynamic", dynamic)
    write("int8", int8)
    write("uint8", lambda c: int8(c, tfm.uint8))
    return paths


def _weight_entry(name: str, value: np.ndarray, quantize: str | None):
    """(manifest entry, bytes) for one weight, optionally uint8/uint16 affine-quantised or float16."""
    entry = {"name": name, "shape": list(value.shape), "dtype": "float32"}
    if quantize in ("uint8", "uint16"):
        levels = 255 if quantize == "uint8" else 65535
        low, high = float(value.min()), float(value.max())
        scale = (high - low) / levels if high > low else 1.0
        q = np.round((value - low) / scale).astype(quantize)
        entry["quantization"] = {"dtype": quantize, "scale": scale, "min": low}
        return entry, q.astype("<u2" if quantize == "uint16" else "u1").tobytes()
    if quantize == "float16":
        entry["quantization"] = {"dtype": "float16"}
        return entry, value.astype("<f2").tobytes()
    return entry, value.astype("<f4").tobytes()


def write_tfjs_layers(model, directory: Path, *, quantize: str | None = None, shard_bytes: int = 4096) -> Path:
    """A TF.js layers model (model.json + group1-shardNofM.bin) of a Keras model, in the documented format."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    entries, blob = [], b""
    for variable in model.weights:
        entry, data = _weight_entry(variable.path, np.asarray(variable.numpy()), quantize)
        entries.append(entry)
        blob += data
    shards = [blob[i : i + shard_bytes] for i in range(0, len(blob), shard_bytes)] or [b""]
    names = [f"group1-shard{i + 1}of{len(shards)}.bin" for i in range(len(shards))]
    for name, data in zip(names, shards):
        (directory / name).write_bytes(data)
    document = {
        "format": "layers-model",
        "generatedBy": "edgecc tests",
        "convertedBy": None,
        "modelTopology": {"keras_version": "3", "backend": "tensorflow", "model_config": json.loads(model.to_json())},
        "weightsManifest": [{"paths": names, "weights": entries}],
    }
    path = directory / "model.json"
    path.write_text(json.dumps(document))
    return path


def write_tfjs_graph(pb_path: Path, directory: Path, *, quantize: str | None = None) -> Path:
    """A TF.js graph model of a frozen GraphDef: Const values moved into one weight shard."""
    import json

    from google.protobuf import json_format

    tfm = tf()
    graph_def = tfm.compat.v1.GraphDef()
    graph_def.ParseFromString(pb_path.read_bytes())
    entries, blob = [], b""
    for node in graph_def.node:
        if node.op == "Const" and node.attr["dtype"].type == tfm.float32.as_datatype_enum:
            value = tfm.make_ndarray(node.attr["value"].tensor)
            entry, data = _weight_entry(node.name, value, quantize if value.size > 1 else None)
            entries.append(entry)
            blob += data
            del node.attr["value"]
        elif node.op == "Const":
            value = tfm.make_ndarray(node.attr["value"].tensor)
            entries.append({"name": node.name, "shape": list(value.shape), "dtype": "int32"})
            blob += value.astype("<i4").tobytes()
            del node.attr["value"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "group1-shard1of1.bin").write_bytes(blob)
    document = {
        "format": "graph-model",
        "generatedBy": "edgecc tests",
        "modelTopology": json_format.MessageToDict(graph_def),
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": entries}],
    }
    path = directory / "model.json"
    path.write_text(json.dumps(document))
    return path
