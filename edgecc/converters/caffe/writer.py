"""Writing caffemodels with edgecc's schema (random-weight verification and tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["caffemodel_bytes", "write_caffemodel"]


def caffemodel_bytes(layers: Iterable[tuple[str, str, Sequence[np.ndarray]]], *, name: str = "net") -> bytes:
    """A binary NetParameter holding (layer name, type, blobs) in the current `layer` format."""
    import numpy as np

    from edgecc.converters.caffe.schema import messages

    net = messages()["NetParameter"](name=name)
    for layer_name, layer_type, blobs in layers:
        layer = net.layer.add(name=layer_name, type=layer_type)
        for array in blobs:
            blob = layer.blobs.add()
            array = np.asarray(array, dtype=np.float32)
            blob.shape.dim.extend(int(d) for d in array.shape)
            blob.data.extend(array.ravel().tolist())
    return net.SerializeToString()


def write_caffemodel(path: str | Path, layers: Iterable[tuple[str, str, Sequence[np.ndarray]]], *, name: str = "net") -> Path:
    """Write `caffemodel_bytes(layers)` to `path`."""
    from edgecc.fileio import atomic_write_bytes

    atomic_write_bytes(path, caffemodel_bytes(layers, name=name))
    return Path(path)
