"""Lazy, quiet imports of TensorFlow, Keras and tf2onnx.

TensorFlow and the TFLite interpreter write C++ log lines straight to file
descriptor 2; `quiet()` points it at /dev/null while they work so that edgecc's
own messages stay one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

from edgecc.errors import MissingDependencyError
from edgecc.logs import native_stderr, quiet_loggers

__all__ = ["keras", "quiet", "tf", "tf2onnx"]

log = logging.getLogger(__name__)

_EXTRA = "tensorflow"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep TensorFlow's C++ logging (fd 2; known noise dropped, anything else logged as a warning), Python warnings
    and chatty loggers off the terminal for the block."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    native = contextlib.nullcontext() if os.environ.get("EDGECC_DEBUG") else native_stderr(log)
    with (
        native,
        quiet_loggers("tensorflow", "tf2onnx", "absl", "h5py", "keras", level=logging.CRITICAL),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


def tf() -> Any:
    """The tensorflow module (imported once, quietly)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet():
            import tensorflow

            tensorflow.get_logger().setLevel(logging.ERROR)
    except ImportError:
        raise MissingDependencyError("tensorflow", feature="converting TensorFlow models", extra=_EXTRA) from None
    return tensorflow


def keras() -> Any:
    """The keras module (Keras 3 or tf.keras)."""
    tf()
    try:
        with quiet():
            import keras as keras_module
    except ImportError:
        raise MissingDependencyError("keras", feature="reading Keras models", extra=_EXTRA) from None
    return keras_module


def tf2onnx() -> Any:
    """The tf2onnx package with its loggers silenced."""
    tf()
    try:
        with quiet():
            import tf2onnx as module
            import tf2onnx.convert
            import tf2onnx.tf_loader
    except ImportError:
        raise MissingDependencyError("tf2onnx", feature="converting TensorFlow models", extra=_EXTRA) from None
    return module
