"""TF.js layers and graph models written by the test in the documented model.json + shard format."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgecc.converters import tensorflow as frontend
from edgecc.converters.tensorflow import schema
from edgecc.converters.tensorflow.reader import read_manifest_weights
from edgecc.errors import InvalidInputError
from tests.conftest import Scratch, assert_clean_failure
from tests.converters.tensorflow import nets
from tests.converters.tensorflow.helpers import TFOptions, convert_and_verify


@pytest.fixture(scope="module")
def keras_cnn(cnn_files):
    import keras

    return keras.models.load_model(cnn_files["keras"], compile=False)


@pytest.mark.parametrize("quantize", [None, "uint8", "float16"])
def test_layers_model(keras_cnn, tmp_path, quantize):
    path = nets.write_tfjs_layers(keras_cnn, tmp_path / "js", quantize=quantize)
    assert schema.sniff(str(path.parent)) == schema.TFJS
    converted = convert_and_verify(path.parent)
    assert converted.report.passed, converted.report.to_dict()
    # against the original Keras model: exact for float weights, close for quantised ones
    x = np.random.default_rng(1).standard_normal((1, 16, 16, 3)).astype(np.float32)
    got = converted.runner.run({"image": x})["prob"]
    expected = keras_cnn.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5 if quantize is None else 0.05)


def test_graph_model(cnn_files, tmp_path):
    path = nets.write_tfjs_graph(cnn_files["pb"], tmp_path / "graph", quantize="uint16")
    converted = convert_and_verify(path)
    assert converted.report.passed, converted.report.to_dict()
    details = frontend.describe([str(path)], TFOptions())
    assert details["kind"] == "TF.js model (graph model)"


def test_uint8_dequantisation_formula(tmp_path):
    """q * scale + min, read little-endian from the shard."""
    (tmp_path / "w.bin").write_bytes(bytes([0, 1, 255, 10]))
    manifest = [
        {
            "paths": ["w.bin"],
            "weights": [
                {"name": "w", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}
            ],
        }
    ]
    weights = read_manifest_weights(tmp_path / "model.json", manifest)
    np.testing.assert_array_equal(weights["w"], np.array([[-1.0, -0.5], [126.5, 4.0]], np.float32))


def test_missing_shard_and_wrong_size(keras_cnn, tmp_path):
    path = nets.write_tfjs_layers(keras_cnn, tmp_path / "js")
    document = json.loads(path.read_text())
    shard = tmp_path / "js" / document["weightsManifest"][0]["paths"][-1]
    data = shard.read_bytes()
    shard.write_bytes(data[:-4])
    frontend._load.cache_clear()
    with pytest.raises(InvalidInputError, match="hold .* bytes"):
        frontend.convert([str(path)], TFOptions())
    shard.unlink()
    with pytest.raises(InvalidInputError, match="is missing"):
        frontend.convert([str(path)], TFOptions())


def test_shard_path_outside_directory_is_refused(tmp_path):
    manifest = [{"paths": ["../secret.bin"], "weights": [{"name": "w", "shape": [1], "dtype": "float32"}]}]
    with pytest.raises(InvalidInputError, match="outside its folder"):
        read_manifest_weights(tmp_path / "model.json", manifest)


def test_shard_linking_outside_the_model_folder_is_refused(keras_cnn, scratch: Scratch):
    """A shard that is a symbolic link out of the folder: its real path is checked, not only its name (exit 3)."""
    path = nets.write_tfjs_layers(keras_cnn, scratch.files / "js")
    shard = scratch.files / "js" / json.loads(path.read_text())["weightsManifest"][0]["paths"][0]
    secret = scratch.root / "secret.bin"
    secret.write_bytes(shard.read_bytes())  # the right bytes: only the link check can refuse it
    shard.unlink()
    shard.symlink_to(secret)
    before = scratch.snapshot()
    result = scratch.run("convert", path, "-o", scratch.files / "out.onnx")
    line = assert_clean_failure(result, 3, "model.json", shard.name)
    assert "outside the folder" in line
    assert scratch.snapshot() == before
    scratch.assert_nothing_left()


@pytest.mark.parametrize("kind", ["loop", "device"])
def test_shard_that_loops_or_is_a_device_is_refused(tmp_path, kind):
    if kind == "loop":
        (tmp_path / "w.bin").symlink_to("v.bin")
        (tmp_path / "v.bin").symlink_to("w.bin")
    else:
        os.mkfifo(tmp_path / "w.bin")  # inside the folder, but not a regular file
    manifest = [{"paths": ["w.bin"], "weights": [{"name": "w", "shape": [1], "dtype": "float32"}]}]
    with pytest.raises(InvalidInputError, match="loop of symbolic links" if kind == "loop" else "not a regular file"):
        read_manifest_weights(tmp_path / "model.json", manifest)
