"""Layout bookkeeping: every ONNX tensor's TFLite tensor is `numpy.transpose(onnx_tensor, perm)`.

Conv-class operators work on NHWC tensors (`perm` = NHWC = (0, 2, 3, 1) for a 4-D NCHW ONNX tensor); ONNX
Transpose nodes only change the recorded permutation; axis attributes are remapped through it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "NHWC",
    "axis_permutation",
    "compose",
    "equivalent",
    "identity",
    "inverse",
    "is_identity",
    "only_unit_moves",
    "tfl_axis",
    "tfl_shape",
    "to_tfl",
]

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


def equivalent(shape: Sequence[int], first: Sequence[int], second: Sequence[int]) -> bool:
    """True when an ONNX tensor of `shape` held as `first` is the same TFLite tensor (shape and
    element order) as held as `second`."""
    if len(first) != len(second):
        return False
    return all(a == b or (shape[a] == 1 and shape[b] == 1) for a, b in zip(first, second))


def only_unit_moves(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """True when transposing a tensor of `shape` by `perm` only moves size-1 axes (the flat element order is unchanged)."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def axis_permutation(in_shape: Sequence[int], out_shape: Sequence[int]) -> Perm | None:
    """`p` with `reshape(x, out_shape) == transpose(x, p)` when the reshape only moves size-1 axes, else None."""
    if len(in_shape) != len(out_shape) or sorted(in_shape) != sorted(out_shape):
        return None
    big_in = [i for i, d in enumerate(in_shape) if d != 1]
    big_out = [i for i, d in enumerate(out_shape) if d != 1]
    if [in_shape[i] for i in big_in] != [out_shape[i] for i in big_out]:
        return None
    ones_in = iter(i for i, d in enumerate(in_shape) if d == 1)
    big = iter(big_in)
    return tuple(next(ones_in) if d == 1 else next(big) for d in out_shape)
