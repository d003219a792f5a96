"""Building the ONNX model from a parsed Caffe net: blob naming (the plan), input shapes, the layer loop."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecc.converters.builder import unregistered
from edgecc.converters.caffe import ops_act, ops_nn, ops_norm, ops_ssd, ops_tensor  # noqa: F401  (register converters)
from edgecc.converters.caffe.graph import LAYERS, Graph, LayerContext, LayerError, LayerPlan, MissingWeights, Shape
from edgecc.errors import InvalidInputError, UnsupportedOperator, UsageError

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edgecc.converters.caffe.schema import CaffeNet
    from edgecc.converters.options import ConvertOptions

__all__ = ["SKIPPED_TYPES", "TRAINING_TYPES", "Plan", "build_model", "plan_net"]

log = logging.getLogger(__name__)

#: layer types that do nothing at inference (removed from the graph)
SKIPPED_TYPES = ("Silence",)
#: training-only layer types, dropped (logged at info level)
TRAINING_TYPES = (
    "Data",
    "ImageData",
    "HDF5Data",
    "WindowData",
    "MemoryData",
    "AnnotatedData",
    "DummyData",
    "SoftmaxWithLoss",
    "EuclideanLoss",
    "HingeLoss",
    "InfogainLoss",
    "MultinomialLogisticLoss",
    "SigmoidCrossEntropyLoss",
    "ContrastiveLoss",
    "Accuracy",
    "MultiBoxLoss",
    "HDF5Output",
)


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
                    f"prototxt '{net.prototxt}': layer '{layer.name}' ({layer.type}) reads blob '{bottom}', "
                    "which no earlier layer produces",
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


def _input_shapes(net: CaffeNet, options: ConvertOptions) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    known = {i.name for i in net.inputs}
    for spec in options.inputs:
        if spec.name not in known:
            raise UsageError(
                f"--input names '{spec.name}', which is not an input of the net (inputs: {', '.join(sorted(known)) or 'none'})"
            )
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
    unknown = unregistered(
        ((p.layer.name, p.layer.type) for p in plan.layers if p.layer.type not in SKIPPED_TYPES),
        LAYERS,
        "no converter for this Caffe layer type",
    )
    if unknown:
        raise UnsupportedOperator(unknown, where="Caffe net", hint=f"supported layer types: {', '.join(LAYERS.names())}")


def _no_weights(net: CaffeNet, layers: list[str]) -> UsageError:
    return UsageError(
        f"'{net.prototxt}' alone has no weights for layer(s) {', '.join(layers[:8])}{' ...' if len(layers) > 8 else ''}",
        hint="give the caffemodel too, or --random-weights for a test model with random weights",
    )


def build_model(net: CaffeNet, options: ConvertOptions) -> tuple[onnx.ModelProto, dict[str, dict[int, np.ndarray]]]:
    """Convert every layer; collect unsupported layers and missing weights before failing."""
    from onnx import TensorProto, helper

    plan = plan_net(net)
    _check_types(plan)
    if net.caffemodel is None and not options.random_weights:
        needs = [
            p.layer.name
            for p in plan.layers
            if p.layer.type in _WEIGHTED and not (p.layer.type in _OPTIONAL_WEIGHTS and len(p.layer.bottom) > 1)
        ]
        if needs:
            raise _no_weights(net, needs)
    shapes = _input_shapes(net, options)
    graph = Graph()
    graph.reserve(*plan.producers, *plan.inputs)
    for name in plan.inputs:
        graph.add_input(name, TensorProto.FLOAT, shapes[name])
    missing: list[str] = []
    no_weights: list[str] = []
    for layer_plan in plan.layers:
        layer = layer_plan.layer
        if layer.type in SKIPPED_TYPES or graph.skip(layer_plan.inputs, layer_plan.outputs):  # skipped: an earlier failure
            continue
        in_shapes: list[Shape] = [graph.shapes[i] for i in layer_plan.inputs]  # type: ignore[misc]
        if any(d < 0 for shape in in_shapes for d in shape):
            graph.fail(
                layer.name, layer.type, "input with a size only known at run time (after DetectionOutput)", layer_plan.outputs
            )
            continue
        blobs = net.weights.get(layer.name) if net.caffemodel is not None else None
        if net.caffemodel is not None and blobs is None and layer.type in _WEIGHTED:
            blobs = []
            if layer.type not in _OPTIONAL_WEIGHTS:
                missing.append(f"{layer.name} ({layer.type})")
                graph.poisoned.update(layer_plan.outputs)
                continue
        ctx = LayerContext(graph, layer_plan, in_shapes, blobs, options, net.prototxt, net.caffemodel)
        try:
            out_shapes = LAYERS.get(layer.type)(ctx)
        except LayerError as exc:
            graph.fail(layer.name, layer.type, str(exc), layer_plan.outputs)
            continue
        except MissingWeights:
            no_weights.append(layer.name)
            graph.poisoned.update(layer_plan.outputs)
            continue
        for name, shape in zip(layer_plan.outputs, out_shapes):
            graph.set_shape(name, tuple(int(d) for d in shape))
    if no_weights:
        raise _no_weights(net, no_weights)
    if missing:
        raise InvalidInputError(
            f"caffemodel '{net.caffemodel}' does not match prototxt '{net.prototxt}': "
            f"no weights for layer(s) {', '.join(missing)}",
            path=net.caffemodel,
            hint="use the caffemodel trained with this prototxt",
        )
    graph.raise_unsupported(where="Caffe net")
    outputs = [
        helper.make_tensor_value_info(
            n, TensorProto.FLOAT, [d if d >= 0 else f"{n}_dim{i}" for i, d in enumerate(graph.shapes[n])]
        )
        for n in plan.outputs
    ]
    return graph.finish(net.name or "caffe", outputs), graph.generated


#: layer types that read blobs from the caffemodel
_WEIGHTED = {"Convolution", "Deconvolution", "InnerProduct", "PReLU", "BatchNorm", "Scale", "Bias", "Normalize"}
#: of those, the ones that may legitimately have no blobs (Scale/Bias with two bottoms)
_OPTIONAL_WEIGHTS = {"Scale", "Bias"}
