"""Layout bookkeeping: every ONNX tensor's TFLite tensor is `numpy.transpose(onnx_tensor, perm)`.

Conv-class operators work on NHWC tensors (`perm` = NHWC = (0, 2, 3, 1) for a 4-D NCHW ONNX tensor); ONNX
Transpose nodes only change the recorded permutation; axis attributes are remapped through it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NHWC", "compose", "identity", "inverse", "is_identity", "tfl_axis", "tfl_shape", "to_tfl"]

Perm = tuple[int, ...]

NHWC: Perm = (0, 2, 3, 1)


def identity(rank: int) -> Perm:
    """The identity permutation of `rank` axes."""
    return tuple(range(rank))


def is_identity(perm: Sequence[int]) -> bool:
    """True when `perm` keeps every axis in place."""
    return all(i == p for i, p in enumerate(perm))


def inverse(perm: Sequence[int]) -> Perm:
    """The permutation undoing `perm`."""
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def compose(first: Sequence[int], then: Sequence[int]) -> Perm:
    """`transpose(transpose(a, first), then) == transpose(a, compose(first, then))`."""
    return tuple(first[t] for t in then)


def tfl_axis(axis: int, perm: Sequence[int]) -> int:
    """The TFLite axis holding ONNX axis `axis` (negative axes allowed)."""
    return list(perm).index(axis % len(perm))


def tfl_shape(shape: Sequence[int], perm: Sequence[int]) -> tuple[int, ...]:
    """The TFLite shape of an ONNX tensor of `shape`."""
    return tuple(int(shape[p]) for p in perm)


def to_tfl(array, perm: Sequence[int]):
    """An ONNX-layout numpy array in TFLite layout."""
    import numpy as np

    return np.ascontiguousarray(np.transpose(array, perm)) if not is_identity(perm) else array
