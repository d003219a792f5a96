"""Dense arrays from TFLite's sparse tensor encoding (`SparsityParameters`), and its inverse for tests.

TFLite stores a sparse constant as its non-zero values in traversal order plus, per traversal level, either a
dense size or a CSR pair (segments, indices). Levels past the tensor's rank are block dimensions: `block_map[k]`
names the original dimension that block level k subdivides. This is TFLite's FormatConverter::SparseToDense,
vectorised over each level instead of recursing per element.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DENSE", "SPARSE_CSR", "densify", "sparsify"]

DENSE = 0
SPARSE_CSR = 1


def _vector(value: Any) -> np.ndarray:
    import numpy as np

    if value is None:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(getattr(value, "values", value), dtype=np.int64)


def densify(values: np.ndarray, shape: Sequence[int], sparsity: Any) -> np.ndarray:
    """The dense array of `shape` that the sparse `values` (1-D, traversal order) and `sparsity` describe.

    `sparsity` is a schema SparsityParametersT (traversalOrder, blockMap, dimMetadata with format, denseSize,
    arraySegments, arrayIndices). Inconsistent metadata raises ValueError.
    """
    import numpy as np

    shape = [int(d) for d in shape]
    rank = len(shape)
    order = [int(d) for d in _vector(sparsity.traversalOrder)]
    block_map = [int(d) for d in _vector(sparsity.blockMap)]
    levels = list(sparsity.dimMetadata or [])
    if len(order) != len(levels) or len(order) != rank + len(block_map):
        raise ValueError(f"sparsity has {len(order)} traversal levels, {len(levels)} dimension metadata, rank {rank}")
    block_size = [int(levels[order.index(rank + k)].denseSize) for k in range(len(block_map))]
    indices = np.zeros((1, 0), dtype=np.int64)  # one row per path through the levels so far
    position = np.zeros(1, dtype=np.int64)  # each path's index into the level's segments
    for level in levels:
        if int(level.format) == DENSE:
            size = int(level.denseSize)
            column = np.tile(np.arange(size, dtype=np.int64), len(position))
            indices = np.concatenate([np.repeat(indices, size, axis=0), column[:, None]], axis=1)
            position = (np.repeat(position, size) * size + column).astype(np.int64)
        else:
            segments, index_values = _vector(level.arraySegments), _vector(level.arrayIndices)
            if len(position) and (position.max() + 1 >= len(segments)):
                raise ValueError("sparse segments are shorter than the level above them")
            starts, ends = segments[position], segments[position + 1]
            counts = ends - starts
            if (counts < 0).any() or (ends.max(initial=0) > len(index_values)):
                raise ValueError("sparse segments point outside their indices")
            rows = np.repeat(np.arange(len(position)), counts)
            child = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(starts, counts)
            indices = np.concatenate([indices[rows], index_values[child][:, None]], axis=1)
            position = child.astype(np.int64)
    flat = np.asarray(values).reshape(-1)
    if len(flat) != len(indices):
        raise ValueError(f"sparse tensor holds {len(flat)} values, its metadata describes {len(indices)}")
    original = np.zeros((len(indices), rank), dtype=np.int64)
    for level in range(rank):
        original[:, order[level]] = indices[:, level]
    for level in range(rank, len(order)):
        block = order[level] - rank
        dim = block_map[block]
        original[:, dim] = original[:, dim] * block_size[block] + indices[:, level]
    if rank and (original >= np.asarray(shape)).any():
        raise ValueError("sparse indices fall outside the dense shape")
    dense = np.zeros(shape, dtype=flat.dtype)
    if len(flat):
        dense[tuple(original.T)] = flat
    return dense


def sparsify(dense: np.ndarray, block: Sequence[int] | None = None) -> tuple[np.ndarray, Any]:
    """The inverse (for tests and tools): values and a SparsityParametersT for `dense`.

    Every dimension is DENSE except the last original one, stored CSR; `block` (one size per original dimension,
    only the last may be > 1) adds a dense block level along that dimension, as TFLite's 1x4 weight blocks.
    """
    import numpy as np

    from edgecc.converters.tensorflow.flatbuffer import schema

    module = schema()
    dense = np.asarray(dense)
    rank = dense.ndim
    size = int(block[-1]) if block else 1
    if dense.shape[-1] % size:
        raise ValueError(f"last dimension {dense.shape[-1]} is not a multiple of the block size {size}")
    outer = dense.reshape(-1, dense.shape[-1] // size, size)  # rows, blocks, block elements
    keep = np.abs(outer).sum(axis=2) != 0
    segments = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
    columns = np.nonzero(keep)[1].astype(np.int32)
    values = outer[keep].reshape(-1) if size > 1 else outer[keep][:, 0]
    params = module.SparsityParametersT()
    params.traversalOrder = np.arange(rank + (1 if size > 1 else 0), dtype=np.int32)
    params.blockMap = np.asarray([rank - 1], dtype=np.int32) if size > 1 else None
    metadata = []
    for d in range(rank - 1):
        level = module.DimensionMetadataT()
        level.format, level.denseSize = DENSE, int(dense.shape[d])
        metadata.append(level)
    csr = module.DimensionMetadataT()
    csr.format = SPARSE_CSR
    csr.arraySegmentsType = module.SparseIndexVector.Int32Vector
    csr.arraySegments = module.Int32VectorT()
    csr.arraySegments.values = segments
    csr.arrayIndicesType = module.SparseIndexVector.Int32Vector
    csr.arrayIndices = module.Int32VectorT()
    csr.arrayIndices.values = columns
    metadata.append(csr)
    if size > 1:
        level = module.DimensionMetadataT()
        level.format, level.denseSize = DENSE, size
        metadata.append(level)
    params.dimMetadata = metadata
    return values, params
