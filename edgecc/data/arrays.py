"""Pickle-free reading of `.npy`/`.npz` files, and the natural file order of sample folders."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ARRAY_SUFFIXES", "load_array_file", "natural_sorted"]

ARRAY_SUFFIXES = (".npy", ".npz")


def _natural_key(path: Path) -> list[object]:
    """Sort s2.npy before s10.npy."""
    return [int(part) if part.isdigit() else part for part in re.split(r"([0-9]+)", path.name)]


def natural_sorted(paths: Iterable[Path]) -> list[Path]:
    """Paths in natural order of their names (s2 before s10)."""
    return sorted(paths, key=_natural_key)


def load_array_file(path: Path) -> "np.ndarray | dict[str, np.ndarray]":
    """An .npy array or the arrays of an .npz (by key), read without pickle; bad files are InvalidInputError (exit 3)."""
    import numpy as np

    from edgecc.fileio import check_input_file

    check_input_file(path, what="data file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InvalidInputError(
                f"data file '{path}' holds pickled Python objects, which edgecc never loads",
                path=path,
                hint="save plain arrays with numpy.save / numpy.savez",
            ) from None
        raise InvalidInputError(f"data file '{path}' is not a valid .npy/.npz file: {exc}", path=path) from None
    except (OSError, EOFError) as exc:
        raise InvalidInputError(f"data file '{path}' cannot be read as .npy/.npz: {exc}", path=path) from None
    except Exception as exc:  # noqa: BLE001 -- zipfile.BadZipFile and friends from a corrupt .npz
        raise InvalidInputError(f"data file '{path}' is corrupt: {exc}", path=path) from None
    if isinstance(loaded, np.ndarray):
        return loaded
    try:
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except Exception as exc:  # noqa: BLE001 -- a member that fails its CRC or is truncated
        raise InvalidInputError(f"data file '{path}' is corrupt: {exc}", path=path) from None
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):  # numpy hands members not named *.npy over as raw bytes
            raise InvalidInputError(
                f"data file '{path}': member '{key}' is not an .npy array",
                path=path,
                hint="an .npz holds NAME.npy members, as numpy.savez writes them",
            )
    return arrays
