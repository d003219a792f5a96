"""What a Caffe layer converter sees: the ONNX graph being built, the layer with its tensors and weights, the registry."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecc.converters.builder import GraphBuilder
from edgecc.errors import InvalidInputError
from edgecc.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from edgecc.converters.options import ConvertOptions

__all__ = ["LAYERS", "Graph", "LayerContext", "LayerError", "LayerPlan", "MissingWeights", "Shape"]

Shape = tuple[int, ...]
Converter = Callable[["LayerContext"], "list[Shape]"]

#: Caffe layer type -> converter; each converter emits ONNX nodes producing ctx.tops and returns their shapes
LAYERS: Registry[Converter] = Registry("Caffe layer")


class LayerError(Exception):
    """Raised by a converter for a layer setting edgecc cannot convert (collected, then reported together)."""


class MissingWeights(Exception):
    """A layer needs trained blobs and the net came without a caffemodel (and without --random-weights)."""

    def __init__(self, layer: str) -> None:
        super().__init__(layer)
        self.layer = layer


@dataclass
class LayerPlan:
    """One layer to convert: its Caffe bottoms/tops and the ONNX tensor names they read and write."""

    layer: Any
    inputs: list[str]
    outputs: list[str]


class Graph(GraphBuilder):
    """The net's ONNX graph; shapes are the static ones the layer converters return (no ONNX inference)."""

    def __init__(self) -> None:
        super().__init__()
        self.generated: dict[str, dict[int, Any]] = {}  # layer -> blob index -> random array (--random-weights)


class LayerContext:
    """What a layer converter sees: the layer, its input tensors/shapes, output names, weights and the graph."""

    def __init__(
        self,
        graph: Graph,
        plan: LayerPlan,
        shapes: list[Shape],
        blobs: list[Any] | None,
        options: ConvertOptions,
        net_path: str,
        weights_path: str | None,
    ) -> None:
        self.graph = graph
        self.layer = plan.layer
        self.name: str = plan.layer.name
        self.inputs = plan.inputs
        self.outputs = plan.outputs
        self.shapes = shapes
        self._blobs = blobs
        self._random = options.random_weights
        self._net_path = net_path
        self._weights_path = weights_path
        self.used_blobs = 0

    def shape(self, index: int = 0) -> Shape:
        """Static shape of input `index`."""
        return self.shapes[index]

    def axis(self, axis: int, rank: int) -> int:
        """A Caffe axis (may be negative) as a non-negative index."""
        resolved = axis + rank if axis < 0 else axis
        if not 0 <= resolved < max(rank, 1):
            raise LayerError(f"axis {axis} is out of range for a rank-{rank} input")
        return resolved

    def blob_count(self) -> int:
        """How many blobs the caffemodel holds for this layer (0 without weights)."""
        return len(self._blobs) if self._blobs is not None else 0

    def blob(self, index: int, shape: Shape, *, kind: str = "normal", what: str = "") -> np.ndarray:
        """Weight blob `index` with the `shape` the layer needs (legacy 4D shapes of the same count accepted)."""
        import numpy as np

        self.used_blobs = max(self.used_blobs, index + 1)
        label = what or f"blob {index}"
        if self._blobs is None:
            if not self._random:
                raise MissingWeights(self.name)
            rng = np.random.default_rng(zlib.crc32(f"{self.name}/{index}".encode()))
            if kind == "positive":
                value = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
            elif kind == "one":
                value = np.ones(shape, dtype=np.float32)
            else:
                value = (rng.standard_normal(size=shape) * 0.5).astype(np.float32)
            self.graph.generated.setdefault(self.name, {})[index] = value
            return value
        if index >= len(self._blobs):
            raise InvalidInputError(
                f"caffemodel '{self._weights_path}': layer '{self.name}' ({self.layer.type}) has {len(self._blobs)} blob(s), "
                f"the prototxt needs {label} too",
                path=self._weights_path,
            )
        try:
            array = self._blobs[index].array()
        except ValueError as exc:
            raise InvalidInputError(
                f"caffemodel '{self._weights_path}': layer '{self.name}' ({self.layer.type}) {label}: {exc}",
                path=self._weights_path,
            ) from None
        want = int(np.prod(shape)) if shape else 1
        squeezed = tuple(d for d in array.shape if d != 1)
        if array.shape == tuple(shape) or (array.size == want and squeezed == tuple(d for d in shape if d != 1)):
            return np.ascontiguousarray(array.reshape(shape))
        raise InvalidInputError(
            f"caffemodel '{self._weights_path}': layer '{self.name}' ({self.layer.type}) {label} has shape "
            f"{'x'.join(map(str, array.shape)) or 'scalar'}, the prototxt needs {'x'.join(map(str, shape)) or 'scalar'}",
            path=self._weights_path,
        )

    def node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | int = 1, **attrs: Any) -> list[str]:
        """Add a node named after the layer."""
        return self.graph.node(
            op_type, inputs, outputs, name=f"{self.name}/{op_type}" if outputs != self.outputs else self.name, **attrs
        )

    def const(self, suffix: str, value: Any, dtype: str = "float32") -> str:
        """An initializer named `<layer>/<suffix>`."""
        return self.graph.const(value, f"{self.name}/{suffix}", dtype)

    def ints(self, suffix: str, values: Sequence[int]) -> str:
        """An int64 1-D initializer (shapes, axes, starts)."""
        return self.const(suffix, list(values), "int64")
