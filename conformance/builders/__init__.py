"""Builders: one module per `source` of a zoo entry, each with `build(entry, out, cache) -> dict` (see CONTRACT.md)."""

from __future__ import annotations

import importlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["builder_for", "save_npz", "SOURCES"]

#: entry `source` -> module of conformance.builders
SOURCES = {
    "torch": "torch_models",
    "transformers": "transformers_models",
    "keras": "keras_models",
    "package": "packages",
}


def builder_for(source: str) -> Callable[[dict[str, Any], Path, Path], dict[str, Any]]:
    """The build function of an entry source (KeyError names the known sources)."""
    if source not in SOURCES:
        raise KeyError(f"unknown source '{source}' (known: {', '.join(SOURCES)})")
    return importlib.import_module(f"conformance.builders.{SOURCES[source]}").build


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez with fixed member timestamps, so a rebuild writes the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())
