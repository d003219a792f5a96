"""Labelled evaluation data: one .npz with an array per model input (leading sample axis) and optional int `labels`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.data.arrays import load_array_file
from edgecc.data.bind import bind
from edgecc.errors import InvalidInputError, UsageError
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np

__all__ = ["read_evaluation"]


def read_evaluation(
    path: str | Path, inputs: Sequence[TensorInfo], *, option: str = "--eval"
) -> tuple[list[dict[str, "np.ndarray"]], "np.ndarray | None"]:
    """Feeds and labels of an evaluation .npz: arrays keyed by input name, sample axis first,
    plus `labels` [N] (class indices)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"{option}: evaluation data '{path}' does not exist",
            hint="give an .npz with one array per input (sample axis first) and 'labels'",
        )
    if path.suffix.lower() != ".npz":
        raise InvalidInputError(f"{option}: evaluation data '{path}' must be an .npz file", path=path)
    loaded = load_array_file(path)
    arrays = dict(loaded) if isinstance(loaded, dict) else {}
    labels = arrays.pop("labels", None)
    names = [i.name for i in inputs]
    missing = [n for n in names if n not in arrays]
    unknown = [k for k in arrays if k not in names]
    if missing or unknown:
        raise InvalidInputError(
            f"{option}: evaluation data '{path}' has arrays {', '.join(sorted(arrays)) or 'none'}; the model takes "
            f"{', '.join(names)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
            path=path,
            hint="key the arrays by input name, with a leading sample axis, plus 'labels'",
        )
    counts = {len(arrays[n]) for n in names}
    if len(counts) != 1:
        raise InvalidInputError(
            f"{option}: evaluation data '{path}': inputs hold different sample counts {sorted(counts)}", path=path
        )
    count = counts.pop()
    if labels is not None and (labels.dtype.kind not in "iu" or labels.shape != (count,)):
        raise InvalidInputError(
            f"{option}: evaluation data '{path}': 'labels' must be {count} integers (class indices), got {labels.dtype} "
            f"{'x'.join(map(str, labels.shape))}",
            path=path,
        )
    samples = []
    for index in range(count):
        sample = {}
        for info in inputs:
            value = arrays[info.name][index]
            if info.shape is not None and value.ndim == len(info.shape) - 1:
                value = value[None]  # samples stored without the batch-1 axis
            sample[info.name] = value
        samples.append(sample)
    feeds = bind(samples, inputs, option=option, origins=[f"'{path}' sample {i}" for i in range(count)])
    return feeds, labels
