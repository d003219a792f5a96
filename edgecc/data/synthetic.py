"""Deterministic sample inputs made from the model's input descriptions (`random`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError, UsageError
from edgecc.inputs import TensorInfo, check_tensor_size

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MAX_SEED", "concrete_shape", "random_feeds"]

#: seeds of random samples are 0..MAX_SEED (numpy refuses negative ones)
MAX_SEED = 2**32 - 1


def concrete_shape(info: TensorInfo, *, default_dim: int = 1) -> tuple[int, ...]:
    """The shape with every dynamic dimension replaced by `default_dim`."""
    if info.shape is None:
        raise UsageError(
            f"input '{info.name}' has unknown rank",
            hint=f"fix it with --input {info.name}:DIMS",
        )
    return tuple(d if isinstance(d, int) and d >= 0 else default_dim for d in info.shape)


def random_feeds(inputs: Sequence[TensorInfo], *, seed: int = 0, count: int = 1) -> list[dict[str, "np.ndarray"]]:
    """Deterministic sample inputs: standard normal floats, small non-negative integers, random bools."""
    import numpy as np

    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"the seed of random samples must be 0..{MAX_SEED}, got {seed}")
    for info in inputs:  # before allocating anything: a model may declare absurd static dimensions
        shape = concrete_shape(info)
        where = f"random data for input '{info.name}' ({'x'.join(map(str, shape))})"
        check_tensor_size(shape, info.dtype, where, error=InvalidInputError)
    rng = np.random.default_rng(seed)
    samples: list[dict[str, np.ndarray]] = []
    for _ in range(count):
        feed: dict[str, np.ndarray] = {}
        for info in inputs:
            shape = concrete_shape(info)
            dtype = np.dtype(info.dtype) if info.dtype != "bfloat16" else np.dtype("float32")
            if dtype.kind == "f":
                value = rng.standard_normal(shape).astype(dtype)
            elif dtype.kind == "b":
                value = rng.integers(0, 2, shape).astype(bool)
            elif dtype.kind in "iu":
                info_range = np.iinfo(dtype)
                value = rng.integers(0, min(10, int(info_range.max)) + 1, shape).astype(dtype)
            else:
                raise UsageError(
                    f"cannot make sample data for input '{info.name}' of dtype {info.dtype}",
                    hint="give real data instead of random",
                )
            feed[info.name] = value
        samples.append(feed)
    return samples
