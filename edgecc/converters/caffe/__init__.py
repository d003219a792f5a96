"""Caffe frontend: deploy prototxt (+ caffemodel) to ONNX with edgecc's own protobuf schema; no Caffe needed.

Verification runs the same files through OpenCV's Caffe importer (opencv-python-headless < 5).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.caffe import schema

if TYPE_CHECKING:
    import onnx

    from edgecc.converters.caffe.build import Plan
    from edgecc.converters.caffe.runner import OpenCVReference
    from edgecc.converters.caffe.schema import CaffeNet
    from edgecc.converters.options import ConvertOptions
    from edgecc.inputs import TensorInfo

__all__ = ["DESCRIPTION", "EXTRA", "convert", "describe", "detect", "layer_reference", "reference", "supported_layers"]

DESCRIPTION = "Caffe: deploy prototxt + caffemodel (current `layer` and legacy V1 `layers` formats)"
EXTRA = "caffe"


def detect(paths: Sequence[str]) -> bool:
    """A Caffe prototxt (text NetParameter), or a caffemodel given before its prototxt."""
    kind = schema.sniff(paths[0])
    if kind == "prototxt":
        return True
    return kind == "caffemodel" and len(paths) == 2 and schema.sniff(paths[1]) == "prototxt"


#: what verification needs after a conversion (the net without its weights, naming, random blobs, inputs),
#: keyed by (paths, options); the last few conversions only
_AFTER: OrderedDict[tuple[tuple[str, ...], ConvertOptions], tuple[CaffeNet, Plan, dict[str, Any], list[TensorInfo]]] = (
    OrderedDict()
)


def _build(paths: tuple[str, ...], options: ConvertOptions) -> onnx.ModelProto:
    from edgecc.converters.caffe.build import build_model, plan_net
    from edgecc.converters.caffe.reader import load_net, split_paths
    from edgecc.onnxutil import graph_inputs

    prototxt, caffemodel = split_paths(paths)
    net = load_net(prototxt, caffemodel)
    model, generated = build_model(net, options)
    net.weights.clear()  # drop the views into the caffemodel bytes: the model holds its own copy
    _AFTER[(paths, options)] = (net, plan_net(net), generated, graph_inputs(model))
    while len(_AFTER) > 2:
        _AFTER.popitem(last=False)
    return model


def convert(paths: Sequence[str], options: ConvertOptions) -> onnx.ModelProto:
    """Parse the prototxt and caffemodel and build an opset-17 ONNX model whose tensors keep the blob names."""
    return _build(tuple(paths), options)


def _after(paths: Sequence[str], options: ConvertOptions) -> tuple[CaffeNet, Plan, dict[str, Any], list[TensorInfo]]:
    key = (tuple(paths), options)
    if key not in _AFTER:
        _build(*key)
    return _AFTER[key]


def reference(paths: Sequence[str], options: ConvertOptions) -> OpenCVReference:
    """The same net run by OpenCV's Caffe importer (random weights are written to a temporary caffemodel)."""
    from edgecc.converters.caffe.runner import OpenCVReference

    net, plan, generated, inputs = _after(paths, options)
    return OpenCVReference(net, plan, inputs, generated)


def layer_reference(paths: Sequence[str], options: ConvertOptions, tensors: Sequence[str] | None = None) -> OpenCVReference:
    """OpenCV's run of the net, returning `tensors` (default: every layer output the conversion names)."""
    from edgecc.converters.caffe.runner import OpenCVReference

    net, plan, generated, inputs = _after(paths, options)
    return OpenCVReference(net, plan, inputs, generated, tensors=list(plan.producers) if tensors is None else tensors)


def describe(paths: Sequence[str], options: ConvertOptions) -> dict[str, Any]:
    """Inputs and a layer-type histogram straight from the prototxt."""
    from collections import Counter

    from edgecc.converters.caffe.reader import load_net, split_paths

    prototxt, caffemodel = split_paths(paths)
    net = load_net(prototxt, caffemodel)
    counts = Counter(layer.type for layer in net.layers)
    return {
        "name": net.name,
        "inputs": [f"{i.name} {'x'.join(map(str, i.shape)) if i.shape else '?'}" for i in net.inputs],
        "layers": len(net.layers),
        "layer types": [f"{kind} x{count}" for kind, count in sorted(counts.items())],
        "weights": "caffemodel" if caffemodel else "none (prototxt only)",
    }


def supported_layers() -> list[tuple[str, str]]:
    """(layer type, one-line description) of every registered layer converter."""
    from edgecc.converters.caffe import build  # noqa: F401  (its ops_* imports fill the registry)
    from edgecc.converters.caffe.graph import LAYERS

    return [(name, (func.__doc__ or "").strip().splitlines()[0]) for name, func in LAYERS.items()]
