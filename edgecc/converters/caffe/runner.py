"""The reference for Caffe conversions: OpenCV's Caffe importer (cv2.dnn.readNetFromCaffe, OpenCV 4.x)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import InvalidInputError, MissingDependencyError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from edgecc.converters.caffe.build import Plan
    from edgecc.converters.caffe.schema import CaffeNet
    from edgecc.inputs import TensorInfo

__all__ = ["OpenCVReference", "import_cv2"]

_PROBE = "__edgecc_probe_"


def import_cv2() -> Any:
    """cv2 with the Caffe importer, or MissingDependencyError with the install hint."""
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("opencv-python-headless", feature="verifying Caffe conversions", extra="caffe") from None
    if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromCaffe"):
        error = MissingDependencyError("opencv-python-headless<5", feature="verifying Caffe conversions", extra="caffe")
        error.message = (
            f"OpenCV {cv2.__version__} has no Caffe importer (OpenCV 5 removed it); verifying Caffe conversions needs OpenCV 4"
        )
        raise error
    return cv2


class OpenCVReference:
    """Runs the Caffe net with OpenCV; outputs are keyed by the ONNX tensor names of the conversion."""

    def __init__(
        self,
        net: CaffeNet,
        plan: Plan,
        inputs: Sequence[TensorInfo],
        generated: Mapping[str, Mapping[int, np.ndarray]],
        tensors: Sequence[str] | None = None,
    ) -> None:
        from edgecc.inputs import TensorInfo

        self._cv2 = import_cv2()
        self.name = f"OpenCV {self._cv2.__version__} Caffe importer"
        self.inputs = list(inputs)
        self._plan = plan
        wanted = list(tensors) if tensors is not None else list(plan.outputs)
        self.outputs = [TensorInfo(name, None, "float32") for name in wanted]
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecc-caffe-")
        prototxt, probes = self._probed_prototxt(net, wanted)
        caffemodel = net.caffemodel or self._random_caffemodel(net, generated)
        try:
            self._net = self._cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
        except self._cv2.error as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
            raise InvalidInputError(
                f"OpenCV cannot load '{net.prototxt}' for verification: {first}",
                path=net.prototxt,
                hint="convert with --no-verify",
            ) from None
        self._net.enableFusion(False)
        self._layer_of = probes
        types = {plan.layer.name: plan.layer.type for plan in self._plan.layers}
        self._detections = {t for t in wanted if types.get(self._plan.producers[t][0]) == "DetectionOutput"}

    def _probed_prototxt(self, net: CaffeNet, wanted: Sequence[str]) -> tuple[str, dict[str, str]]:
        """The prototxt with a Split 'probe' layer after every wanted tensor that is not a layer's first output."""
        text = Path(net.prototxt).read_text(encoding="utf-8")
        if any(
            layer.type == "PriorBox" and (not layer.prior_box_param.HasField("clip") or not layer.prior_box_param.variance)
            for layer in net.layers
        ):
            text = _with_ssd_defaults(net)
        v1 = "layers {" in text.replace("layers{", "layers {") and "\nlayer {" not in text
        layer_of: dict[str, str] = {}
        extra: list[str] = []
        for tensor in wanted:
            if tensor in self._plan.inputs:
                raise UsageError(f"'{tensor}' is a net input, not a layer output")
            layer, index = self._plan.producers[tensor]
            if index == 0:
                layer_of[tensor] = layer
                continue
            top = self._plan_top(layer, index)
            probe = f"{_PROBE}{len(extra)}"
            kind = "SPLIT" if v1 else '"Split"'
            extra.append(f'{"layers" if v1 else "layer"} {{ name: "{probe}" type: {kind} bottom: "{top}" top: "{probe}" }}')
            layer_of[tensor] = probe
        if not extra and text == Path(net.prototxt).read_text(encoding="utf-8"):
            return net.prototxt, layer_of
        path = Path(self._tmp.name) / "probed.prototxt"
        path.write_text(text + "\n" + "\n".join(extra) + "\n", encoding="utf-8")
        return str(path), layer_of

    def _plan_top(self, layer: str, index: int) -> str:
        for layer_plan in self._plan.layers:
            if layer_plan.layer.name == layer:
                return str(layer_plan.layer.top[index])
        raise KeyError(layer)

    def _random_caffemodel(self, net: CaffeNet, generated: Mapping[str, Mapping[int, np.ndarray]]) -> str:
        from edgecc.converters.caffe.writer import write_caffemodel

        types = {layer.name: layer.type for layer in net.layers}
        layers = [(name, types.get(name, ""), [blobs[i] for i in sorted(blobs)]) for name, blobs in generated.items()]
        return str(write_caffemodel(Path(self._tmp.name) / "random.caffemodel", layers))

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Forward the feeds through OpenCV and return every wanted tensor."""
        import numpy as np

        for info in self.inputs:
            self._net.setInput(np.ascontiguousarray(feeds[info.name], dtype=np.float32), info.name)
        names = [self._layer_of[o.name] for o in self.outputs]
        try:
            values = self._net.forward(names)
        except self._cv2.error as exc:
            lines = [line for line in str(exc).strip().splitlines() if line.strip()]
            raise InvalidInputError(
                f"OpenCV failed to run the Caffe net: {lines[-1] if lines else exc}", hint="convert with --no-verify"
            ) from None
        results = {o.name: np.array(v) for o, v in zip(self.outputs, values)}
        for name in self._detections:
            results[name] = _caffe_detection_order(results[name])
        return results


def _with_ssd_defaults(net: CaffeNet) -> str:
    """The net as prototxt text with SSD's PriorBox defaults written out: `clip: false` (OpenCV defaults to true),
    `variance: 0.1` (OpenCV requires one)."""
    from google.protobuf import text_format

    from edgecc.converters.caffe.schema import messages

    copy = messages()["NetParameter"](name=net.name)
    for net_input in net.inputs:
        if not any(layer.type == "Input" and net_input.name in layer.top for layer in net.layers):
            copy.input.append(net_input.name)
            copy.input_shape.add().dim.extend(net_input.shape or ())
    for layer in net.layers:
        entry = copy.layer.add()
        entry.CopyFrom(layer)
        del entry.blobs[:]
        if entry.type == "PriorBox" and not entry.prior_box_param.HasField("clip"):
            entry.prior_box_param.clip = False
        if entry.type == "PriorBox" and not entry.prior_box_param.variance:
            entry.prior_box_param.variance.append(0.1)
    return text_format.MessageToString(copy)


def _caffe_detection_order(rows: np.ndarray) -> np.ndarray:
    """OpenCV lists detections by score; Caffe's DetectionOutputLayer by image, then label, then score (descending)."""
    import numpy as np

    flat = rows.reshape(-1, 7)
    order = np.lexsort((-flat[:, 2], flat[:, 1], flat[:, 0]))
    return flat[order].reshape(rows.shape)
