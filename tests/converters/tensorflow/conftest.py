"""Fixtures: real TensorFlow/Keras/TFLite/TF.js models written once per test session (per xdist worker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def tf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tfmodels")


@pytest.fixture(scope="session")
def cnn_files(tf_dir: Path) -> dict[str, Path]:
    """The Keras CNN as .keras, .h5, SavedModel and frozen .pb."""
    from tests.converters.tensorflow import nets

    model = nets.cnn()
    paths = nets.save_all(model, tf_dir, "cnn")
    paths["pb"] = nets.frozen_pb(model, tf_dir / "cnn.pb")
    return paths


@pytest.fixture(scope="session")
def cnn_tflite(tf_dir: Path) -> dict[str, Path]:
    """float, fp16, dynamic-range, int8 and uint8 TFLite conversions of the CNN."""
    from tests.converters.tensorflow import nets

    return nets.tflite_variants(nets.cnn(), tf_dir, "cnn")


@pytest.fixture(scope="session")
def rnn_files(tf_dir: Path) -> dict[str, Path]:
    """The LSTM/GRU model as .keras, .h5 and SavedModel."""
    from tests.converters.tensorflow import nets

    return nets.save_all(nets.rnn(), tf_dir, "rnn")


@pytest.fixture(scope="session")
def custom_saved(tf_dir: Path) -> Path:
    """A SavedModel of a tf.Module with two signatures (serving_default and scaled)."""
    from tests.converters.tensorflow import nets

    module = nets.custom_module()
    path = tf_dir / "custom_saved"
    nets.tf().saved_model.save(module, str(path), signatures={"serving_default": module.serve, "scaled": module.scaled})
    return path
