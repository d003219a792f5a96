"""Building the ONNX graph from a parsed Caffe net: tensor naming, shapes, weights, the layer loop."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecc.errors import InvalidInputError, UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edgecc.converters.caffe.parse import CaffeNet
    from edgecc.converters.options import ConvertOptions

__all__ = ["LAYERS", "OPSET", "SKIPPED_TYPES", "LayerContext", "LayerError", "Plan", "build_model", "plan_net"]

log = logging.getLogger(__name__)

OPSET = 17

Shape = tuple[int, ...]
Converter = Callable[["LayerContext"], "list[Shape]"]

#: Caffe layer type -> converter; each converter emits ONNX nodes producing ctx.tops and returns their shapes
LAYERS: Registry[Converter] = Registry("Caffe layer")

#: layer types that do nothing at inference (removed from the graph)
SKIPPED_TYPES = ("Silence",)
#: training-only layer types, dropped (logged at info level)
TRAINING_TYPES = (
    "Data", "ImageData", "HDF5Data", "WindowData", "MemoryData", "AnnotatedData", "DummyData",
    "SoftmaxWithLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss", "MultinomialLogisticLoss",
    "SigmoidCrossEntropyLoss", "ContrastiveLoss", "Accuracy", "MultiBoxLoss", "HDF5Output",
)


class LayerError(Exception):
    """Raised by a converter for a layer setting edgecc cannot convert (collected, then reported together)."""


@dataclass
class LayerPlan:
    """One layer to convert: its Caffe bottoms/tops and the ONNX tensor names they read and write."""

    layer: Any
    inputs: list[str]
    outputs: list[str]


@dataclass
class Plan:
    """Tensor naming for a whole net; shared by the converter and the OpenCV reference."""

    inputs: list[str]
    layers: list[LayerPlan]
    outputs: list[str]
    producers: dict[str, tuple[str, int]] = field(default_factory=dict)  # ONNX tensor -> (layer name, top index)


def plan_net(net: CaffeNet) -> Plan:
    """Name every blob version: a blob's first version keeps the blob name, in-place rewrites take the layer name."""
    current: dict[str, str] = {}
    used: set[str] = set()
    inputs: list[str] = []
    for net_input in net.inputs:
        current[net_input.name] = net_input.name
        used.add(net_input.name)
        inputs.append(net_input.name)
    blob_names = {t for layer in net.layers for t in layer.top} | set(current)
    layers: list[LayerPlan] = []
    training_tops = {t for layer in net.layers if layer.type in TRAINING_TYPES for t in layer.top}
    producers: dict[str, tuple[str, int]] = {}
    consumed: set[str] = set()
    for layer in net.layers:
        if layer.type in TRAINING_TYPES:
            log.info("dropping training-only layer %s (%s)", layer.name, layer.type)
            continue
        if layer.type == "Input":
            continue
        ins = []
        for bottom in layer.bottom:
            if bottom not in current and bottom in training_tops:
                raise UsageError(
                    f"'{net.prototxt}' is a training net: layer '{layer.name}' reads '{bottom}' from a data layer",
                    hint="convert the deploy prototxt, or declare the input with `input:` + `input_shape`",
                )
            if bottom not in current:
                raise InvalidInputError(
                    f"prototxt '{net.prototxt}': layer '{layer.name}' ({layer.type}) reads blob '{bottom}', which no earlier layer produces",
                    path=net.prototxt,
                )
            ins.append(current[bottom])
            consumed.add(current[bottom])
        outs = []
        for index, top in enumerate(layer.top):
            if top not in used:
                name = top
            else:
                name = layer.name if layer.name not in used and layer.name not in blob_names else f"{layer.name}/{top}"
                suffix = 1
                while name in used:
                    name, suffix = f"{layer.name}/{top}_{suffix}", suffix + 1
            used.add(name)
            current[top] = name
            producers[name] = (layer.name, index)
            outs.append(name)
        layers.append(LayerPlan(layer, ins, outs))
    final = set(current.values())
    outputs = [name for plan in layers for name in plan.outputs if name in final and name not in consumed and name not in inputs]
    if not outputs and layers:
        outputs = [layers[-1].outputs[-1]] if layers[-1].outputs else []
    return Plan(inputs, layers, outputs, producers)


class Graph:
    """Nodes, initializers and static shapes of the ONNX graph under construction."""

    def __init__(self) -> None:
        import onnx

        self.generated: dict[str, dict[int, Any]] = {}  # layer -> blob index -> random array (--random-weights)
        self.nodes: list[Any] = []
        # initializers are written straight into the final model: weights are copied once, from the caffemodel bytes
        self.model = onnx.ModelProto()
        self.shapes: dict[str, Shape] = {}
        self._names: set[str] = set()

    def unique(self, name: str) -> str:
        """A tensor/node name not used yet, based on `name`."""
        candidate, index = name, 1
        while candidate in self._names:
            candidate, index = f"{name}_{index}", index + 1
        self._names.add(candidate)
        return candidate

    def reserve(self, names: Sequence[str]) -> None:
        """Mark names (Caffe blob names) as taken."""
        self._names.update(names)

    def const(self, name: str, value: np.ndarray) -> str:
        """Add an initializer and return its name."""
        from onnx import helper

        unique = self.unique(name)
        tensor = self.model.graph.initializer.add()
        tensor.name = unique
        tensor.data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        tensor.dims.extend(int(d) for d in value.shape)
        tensor.raw_data = value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
        return unique

    def node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | int, name: str, **attrs: Any) -> list[str]:
        """Add a node; `outputs` may be a count of fresh names derived from `name`."""
        from onnx import helper

        if isinstance(outputs, int):
            outputs = [self.unique(f"{name}_out{i}" if outputs > 1 else f"{name}_out") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=self.unique(name), **attrs))
        return list(outputs)


class LayerContext:
    """What a layer converter sees: the layer, its input tensors/shapes, output names, weights and the graph."""

    def __init__(self, graph: Graph, plan: LayerPlan, shapes: list[Shape], blobs: list[Any] | None, options: ConvertOptions, net_path: str, weights_path: str | None) -> None:
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
                raise _MissingWeights(self.name)
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
                f"caffemodel '{self._weights_path}': layer '{self.name}' ({self.layer.type}) {label}: {exc}", path=self._weights_path
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
        return self.graph.node(op_type, inputs, outputs, f"{self.name}/{op_type}" if outputs != self.outputs else self.name, **attrs)

    def const(self, suffix: str, value: Any, dtype: str = "float32") -> str:
        """An initializer named `<layer>/<suffix>`."""
        import numpy as np

        return self.graph.const(f"{self.name}/{suffix}", np.asarray(value, dtype=dtype))

    def ints(self, suffix: str, values: Sequence[int]) -> str:
        """An int64 1-D initializer (shapes, axes, starts)."""
        return self.const(suffix, list(values), "int64")


class _MissingWeights(Exception):
    def __init__(self, layer: str) -> None:
        super().__init__(layer)
        self.layer = layer


def _input_shapes(net: CaffeNet, options: ConvertOptions) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    known = {i.name for i in net.inputs}
    for spec in options.inputs:
        if spec.name not in known:
            raise UsageError(f"--input names '{spec.name}', which is not an input of the net (inputs: {', '.join(sorted(known)) or 'none'})")
    for net_input in net.inputs:
        spec = options.input_spec(net_input.name)
        shape: Any = net_input.shape
        if spec is not None and spec.shape is not None:
            shape = spec.shape
        if shape is None or not all(isinstance(d, int) and d > 0 for d in shape):
            raise UsageError(
                f"input '{net_input.name}' of '{net.prototxt}' has no complete shape",
                hint=f"give it with --input {net_input.name}:1x3x224x224",
            )
        shapes[net_input.name] = tuple(int(d) for d in shape)
    return shapes


def _check_types(plan: Plan) -> None:
    unknown = [
        UnsupportedNode(p.layer.name, p.layer.type, "no converter for this Caffe layer type")
        for p in plan.layers
        if p.layer.type not in LAYERS and p.layer.type not in SKIPPED_TYPES
    ]
    if unknown:
        raise UnsupportedOperator(unknown, where="Caffe net", hint=f"supported layer types: {', '.join(LAYERS.names())}")


def build_model(net: CaffeNet, options: ConvertOptions) -> tuple[onnx.ModelProto, dict[str, dict[int, np.ndarray]]]:
    """Convert every layer; collect unsupported layers and missing weights before failing."""
    from onnx import TensorProto, helper

    plan = plan_net(net)
    _check_types(plan)
    if net.caffemodel is None and not options.random_weights:
        needs = [
            p.layer.name for p in plan.layers
            if p.layer.type in _WEIGHTED and not (p.layer.type in _OPTIONAL_WEIGHTS and len(p.layer.bottom) > 1)
        ]
        if needs:
            raise UsageError(
                f"'{net.prototxt}' alone has no weights for layer(s) {', '.join(needs[:8])}{' ...' if len(needs) > 8 else ''}",
                hint="give the caffemodel too, or --random-weights for a test model with random weights",
            )
    shapes = _input_shapes(net, options)
    graph = Graph()
    graph.reserve(list(plan.producers) + plan.inputs)
    graph.shapes.update(shapes)
    failures: list[UnsupportedNode] = []
    missing: list[str] = []
    no_weights: list[str] = []
    for layer_plan in plan.layers:
        layer = layer_plan.layer
        if layer.type in SKIPPED_TYPES:
            continue
        if any(i not in graph.shapes for i in layer_plan.inputs):
            continue  # an earlier failure
        if any(d < 0 for i in layer_plan.inputs for d in graph.shapes[i]):
            failures.append(UnsupportedNode(layer.name, layer.type, "input with a size only known at run time (after DetectionOutput)"))
            continue
        blobs = net.weights.get(layer.name) if net.caffemodel is not None else None
        if net.caffemodel is not None and blobs is None and layer.type in _WEIGHTED:
            blobs = []
            if layer.type not in _OPTIONAL_WEIGHTS:
                missing.append(f"{layer.name} ({layer.type})")
                continue
        ctx = LayerContext(graph, layer_plan, [graph.shapes[i] for i in layer_plan.inputs], blobs, options, net.prototxt, net.caffemodel)
        try:
            out_shapes = LAYERS.get(layer.type)(ctx)
        except LayerError as exc:
            failures.append(UnsupportedNode(layer.name, layer.type, str(exc)))
            continue
        except _MissingWeights:
            no_weights.append(layer.name)
            continue
        for name, shape in zip(layer_plan.outputs, out_shapes):
            graph.shapes[name] = tuple(int(d) for d in shape)
    if no_weights:
        raise UsageError(
            f"'{net.prototxt}' alone has no weights for layer(s) {', '.join(no_weights[:8])}{' ...' if len(no_weights) > 8 else ''}",
            hint="give the caffemodel too, or --random-weights for a test model with random weights",
        )
    if missing:
        raise InvalidInputError(
            f"caffemodel '{net.caffemodel}' does not match prototxt '{net.prototxt}': no weights for layer(s) {', '.join(missing)}",
            path=net.caffemodel,
            hint="use the caffemodel trained with this prototxt",
        )
    if failures:
        raise UnsupportedOperator(failures, where="Caffe net")
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shapes[n])) for n in plan.inputs]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [d if d >= 0 else f"{n}_dim{i}" for i, d in enumerate(graph.shapes[n])])
        for n in plan.outputs
    ]
    model = graph.model
    model.graph.name = net.name or "caffe"
    model.graph.node.extend(graph.nodes)
    model.graph.input.extend(inputs)
    model.graph.output.extend(outputs)
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.producer_name = "edgecc"
    model.ir_version = 8
    return model, graph.generated


#: layer types that read blobs from the caffemodel
_WEIGHTED = {"Convolution", "Deconvolution", "InnerProduct", "PReLU", "BatchNorm", "Scale", "Bias", "Normalize"}
#: of those, the ones that may legitimately have no blobs (Scale/Bias with two bottoms)
_OPTIONAL_WEIGHTS = {"Scale", "Bias"}

