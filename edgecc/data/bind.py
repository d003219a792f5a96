"""Binding samples to a model's inputs: names, shapes and dtypes checked with one wording, arrays cast and made contiguous."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MAX_CALIBRATION_MAGNITUDE", "bind"]

#: calibration values beyond this magnitude are refused: no real input is that large, and histograms of them overflow
MAX_CALIBRATION_MAGNITUDE = 1e30

_FAMILY = {"f": "float", "i": "integer", "u": "integer", "b": "bool", "c": "complex"}


def _cast(value: "np.ndarray", info: TensorInfo, where: str) -> "np.ndarray":
    """`value` in the input's dtype.

    Within a family (float64 -> float32, int32 -> int64) when the values fit; float data for an integer input when
    every value is a whole number in range (pixels saved as float); integers for a float input are refused (most
    likely unnormalised data).
    """
    import numpy as np

    want = np.dtype(info.dtype) if info.dtype != "bfloat16" else np.dtype("float32")
    have = value.dtype
    family, wanted = _FAMILY.get(have.kind), _FAMILY.get(want.kind)
    lossless_float = (
        family == "float" and wanted == "integer" and bool(np.all(np.isfinite(value))) and bool(np.all(value == np.round(value)))
    )
    if family != wanted and not lossless_float:
        raise InvalidInputError(
            f"{where}: input '{info.name}' has dtype {have}, the model expects {info.dtype}",
            hint=f"save the array as {info.dtype}",
        )
    if want.kind in "iu" and have != want and value.size:
        limits = np.iinfo(want)
        if float(value.min()) < limits.min or float(value.max()) > limits.max:
            raise InvalidInputError(f"{where}: input '{info.name}' holds values outside the range of {info.dtype}")
    return np.ascontiguousarray(value.astype(want, copy=False))


def _check_finite(value: "np.ndarray", info: TensorInfo, where: str) -> None:
    import numpy as np

    if value.dtype.kind not in "fc" or not value.size:
        return
    magnitude = np.abs(value.astype(np.float64, copy=False))
    bad = int(np.count_nonzero(~np.isfinite(magnitude)))
    if bad:
        raise InvalidInputError(
            f"{where}: input '{info.name}' holds {bad} NaN or infinite value(s); calibration data must be finite",
            hint="clean the data (numpy.nan_to_num) or drop those samples",
        )
    largest = float(magnitude.max())
    if largest > MAX_CALIBRATION_MAGNITUDE:
        raise InvalidInputError(
            f"{where}: input '{info.name}' holds values up to {largest:.3g}, beyond the calibration bound "
            f"±{MAX_CALIBRATION_MAGNITUDE:g}",
            hint="normalise the data as the model expects it",
        )


def _shape_ok(value: "np.ndarray", info: TensorInfo) -> bool:
    if info.shape is None:
        return True
    return len(info.shape) == value.ndim and all(
        not isinstance(d, int) or d < 0 or d == s for d, s in zip(info.shape, value.shape)
    )


def bind(
    samples: Sequence[Mapping[str, "np.ndarray"]],
    inputs: Sequence[TensorInfo],
    *,
    option: str = "--data",
    origins: Sequence[str] | None = None,
    finite: bool = False,
) -> list[dict[str, "np.ndarray"]]:
    """Check every sample against the model inputs and return feeds in the inputs' dtypes.

    A nameless array (key "") goes to the model's only input. Unknown or missing names, wrong ranks, static
    dimensions or dtype families are InvalidInputError (exit 3) naming `option`, the sample's origin and the input.
    With `finite` (calibration data) float values must be finite and within ±MAX_CALIBRATION_MAGNITUDE.
    """
    import numpy as np

    names = [i.name for i in inputs]
    feeds: list[dict[str, np.ndarray]] = []
    for index, sample in enumerate(samples):
        where = f"{option} {origins[index]}" if origins is not None and index < len(origins) else f"{option} sample {index}"
        feed: dict[str, np.ndarray] = {}
        for key, value in sample.items():
            if key == "":
                if len(inputs) != 1:
                    raise InvalidInputError(
                        f"{where}: a nameless array needs a single-input model (inputs: {', '.join(names)})",
                        hint=f"write NAME=FILE with NAME in {', '.join(names)}",
                    )
                key = names[0]
            if key not in names:
                raise InvalidInputError(f"{where}: '{key}' is not a model input (inputs: {', '.join(names)})")
            feed[key] = np.asarray(value)
        missing = [n for n in names if n not in feed]
        if missing:
            raise InvalidInputError(
                f"{where} gives no value for input(s) {', '.join(missing)}", hint=f"the model takes {', '.join(names)}"
            )
        for info in inputs:
            value = feed[info.name]
            if not _shape_ok(value, info):
                raise InvalidInputError(
                    f"{where}: input '{info.name}' has shape {'x'.join(map(str, value.shape)) or 'scalar'}, "
                    f"the model expects {info.shape_text()}"
                )
            if finite:
                _check_finite(value, info, where)
            feed[info.name] = _cast(value, info, where)
        feeds.append(feed)
    return feeds
