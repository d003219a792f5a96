"""What the TFLite-consuming targets (ethos-u*, edgetpu, armnn) share: the ONNX -> TFLite op they place,
the "the writer can express it" check, and the emit flow.

emit(): the partition in the target's precision (`convert_precision`: QDQ int8 with the target's
QuantScheme, or fp32) -> edgecc's TFLite writer (`edgecc.targets.tflite.emit_tflite`) -> the TFLite
file run by the TFLite interpreter against onnxruntime on the same partition (`compare_with_onnx`;
out of tolerance = NumericsError, exit 5; the report is stored as info["verification"]) -> the
target's vendor step (Vela, Arm NN, or a note for the Edge TPU compiler).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import NumericsError, UsageError
from edgecc.targets.api import Check, EmitOptions, Emitted, NodeView, Target

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["QDQ_OPS", "TFLITE_VARIANTS", "TfliteTarget", "activation_types", "boundary_conversions", "conv_padding", "float_operators", "nhwc_hw",
           "onnx_ops_for", "tflite_op", "tflite_op_name", "when_tflite_op", "writer_expresses"]

log = logging.getLogger(__name__)


def _group(view: NodeView) -> int:
    return int(view.attr("group", 1))


def _channels(view: NodeView) -> int | None:
    shape = view.input_shapes[0] if view.input_shapes else None
    return shape[1] if shape is not None and len(shape) > 1 and isinstance(shape[1], int) else None


def _conv_op(view: NodeView) -> str:
    group = _group(view)
    return "DEPTHWISE_CONV_2D" if group > 1 and group == _channels(view) else "CONV_2D"


def _matmul_op(view: NodeView) -> str:
    return "FULLY_CONNECTED" if view.is_constant(1) else "BATCH_MATMUL"


def _resize_op(view: NodeView) -> str:
    mode = view.attr("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    return "RESIZE_BILINEAR" if mode == "linear" else "RESIZE_NEAREST_NEIGHBOR"


def _split_op(view: NodeView) -> str:
    return "SPLIT_V" if len(view.inputs) > 1 and view.inputs[1] else "SPLIT"


#: ONNX op type -> the main TFLite builtin it becomes (a function where it depends on attributes/shapes); it must be
#: among the writer's TFLITE_OP_FOR entries (tested). Clip counts as RELU6: its bounds are inputs the planner does not
#: see; the writer picks RELU/RELU6/RELU_N1_TO_1/RELU_0_TO_1 or MINIMUM/MAXIMUM, and Vela reports any it leaves on the CPU.
_TFLITE_OP: dict[str, Any] = {
    "Conv": _conv_op, "ConvTranspose": "TRANSPOSE_CONV", "Gemm": "FULLY_CONNECTED", "MatMul": _matmul_op,
    "MaxPool": "MAX_POOL_2D", "AveragePool": "AVERAGE_POOL_2D", "GlobalAveragePool": "MEAN", "GlobalMaxPool": "REDUCE_MAX",
    "ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceSum": "SUM",
    "Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Max": "MAXIMUM", "Min": "MINIMUM",
    "Relu": "RELU", "Clip": "RELU6", "Sigmoid": "LOGISTIC", "Tanh": "TANH", "LeakyRelu": "LEAKY_RELU", "PRelu": "PRELU",
    "HardSwish": "HARD_SWISH", "Softmax": "SOFTMAX", "Exp": "EXP", "Log": "LOG", "Abs": "ABS", "Neg": "NEG", "Elu": "ELU",
    "Gelu": "GELU", "Concat": "CONCATENATION", "Reshape": "RESHAPE", "Flatten": "RESHAPE", "Squeeze": "RESHAPE",
    "Unsqueeze": "RESHAPE", "Transpose": "TRANSPOSE", "Pad": "PAD", "Resize": _resize_op, "Upsample": _resize_op, "Slice": "STRIDED_SLICE",
    "Split": _split_op, "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE", "SpaceToDepth": "SPACE_TO_DEPTH",
    "DepthToSpace": "DEPTH_TO_SPACE", "LpNormalization": "L2_NORMALIZATION", "Sqrt": "SQRT",
}


def tflite_op(view: NodeView) -> str | None:
    """The TFLite builtin operator an ONNX node becomes in edgecc's writer (None: no TFLite equivalent)."""
    entry = _TFLITE_OP.get(view.op_type)
    return entry(view) if callable(entry) else entry


def tflite_op_name(onnx_op: str) -> str | None:
    """The TFLite builtin of an ONNX op type whose mapping does not depend on attributes (None otherwise)."""
    entry = _TFLITE_OP.get(onnx_op)
    return entry if isinstance(entry, str) else None


def onnx_ops_for(tflite_ops: Sequence[str]) -> tuple[str, ...]:
    """ONNX op types whose TFLite operator (for some attributes) is among `tflite_ops`."""
    wanted = set(tflite_ops)
    found = []
    for onnx_op, entry in _TFLITE_OP.items():
        names = {entry} if isinstance(entry, str) else TFLITE_VARIANTS.get(onnx_op, set())
        if names & wanted:
            found.append(onnx_op)
    return tuple(found)


TFLITE_VARIANTS = {"Conv": {"CONV_2D", "DEPTHWISE_CONV_2D"}, "MatMul": {"FULLY_CONNECTED", "BATCH_MATMUL"},
             "Resize": {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"}, "Upsample": {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"},
             "Split": {"SPLIT", "SPLIT_V"}}


def writer_expresses(view: NodeView) -> tuple[bool, str]:
    """edgecc's TFLite writer can express the node (edgecc.targets.tflite.writer_supports)."""
    try:
        from edgecc.targets.tflite import writer_supports
    except ImportError:  # the writer package is part of edgecc; without it nothing can be emitted
        return False, "edgecc's TFLite writer (edgecc.targets.tflite) is not available"
    ok, reason = writer_supports(view)
    return bool(ok), (reason or "edgecc's TFLite writer cannot express it")


def activation_types(view: NodeView) -> tuple[bool, str]:
    """Activations are float32 (edgecc quantises them) or int8/uint8 (a model quantised already, with Q/DQ nodes)."""
    for name, dtype in [*zip(view.inputs, view.input_dtypes), *zip(view.outputs, view.output_dtypes)]:
        if name and name not in view.constant_inputs and dtype not in (None, "float32", "int8", "uint8"):
            return False, f"tensor '{name}' is {dtype}"
    return True, ""


#: Q/DQ nodes of an already-quantised model: the writer folds them into tensor quantisation parameters
QDQ_OPS: dict[str, tuple[Any, ...]] = {"QuantizeLinear": (writer_expresses,), "DequantizeLinear": (writer_expresses,)}


def nhwc_hw(shape: Sequence[Any] | None) -> tuple[int, int] | None:
    """(H, W) of an activation as the TFLite writer lays it out (NCHW -> NHWC for rank 4; rank 3 -> [N, W, C])."""
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    if len(shape) == 4:
        return int(shape[2]), int(shape[3])
    if len(shape) == 3:
        return 1, int(shape[1])
    return 1, 1


def conv_padding(view: NodeView) -> str:
    """TFLite padding of a conv/pool node: VALID when nothing is padded, else SAME."""
    pads = list(view.attr("pads") or [])
    auto_pad = view.attr("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return "SAME"
    return "SAME" if any(pads) else "VALID"


def float_operators(path: Path) -> list[str]:
    """Operators of a TFLite file that read or write float32 tensors ("INDEX:OP"), e.g. float islands in an int8 model."""
    from edgecc.targets.tflite.runner import interpreter_class

    interpreter = interpreter_class()(model_path=str(path))
    found = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 -- the only per-operator view the interpreter offers
        types = [t.__name__ if hasattr(t, "__name__") else str(t) for t in (*op.get("operand_types", ()), *op.get("result_types", ()))]
        if "float32" in types:
            found.append(f"{op['index']}:{op['op_name']}")
    return found


def _layouts(perm: Sequence[int]) -> tuple[str, str]:
    perm = list(perm)
    if perm == [0, 2, 3, 1]:
        return "NCHW", "NHWC"
    return "ONNX", f"perm {perm}"


def boundary_conversions(io: Mapping[str, Any]) -> list[dict[str, str]]:
    """The host-side conversions at the TFLite file's boundary (manifest `conversions` entries: dtype and layout)."""
    found = []
    for direction in ("inputs", "outputs"):
        for entry in io.get(direction, []):
            perm = list(entry.get("perm", []))
            onnx_dtype, tfl_dtype = entry.get("onnx_dtype", "float32"), entry.get("dtype", "float32")
            transposed = perm != list(range(len(perm)))
            if onnx_dtype == tfl_dtype and not transposed:
                continue
            item = {"tensor": entry["name"], "from_dtype": onnx_dtype, "to_dtype": tfl_dtype}
            if direction == "outputs":
                item = {"tensor": entry["name"], "from_dtype": tfl_dtype, "to_dtype": onnx_dtype}
            if transposed:
                onnx_layout, tfl_layout = _layouts(perm)
                item.update(from_layout=onnx_layout, to_layout=tfl_layout) if direction == "inputs" else \
                    item.update(from_layout=tfl_layout, to_layout=onnx_layout)
            found.append(item)
    return found


@dataclass
class TfliteTarget(Target):
    """A target whose artifact is an edgecc-written TFLite flatbuffer, verified with the TFLite interpreter."""

    io_type: str = "int8"  # the integer io of int8 artifacts ("float32" io for fp32 partitions)
    always_bias: bool = False
    vendor_option_keys: tuple[str, ...] = ()

    def io_type_for(self, precision: str, options: EmitOptions) -> str:
        """The TFLite io dtype of a partition in `precision`."""
        return "float32" if precision == "fp32" else self.io_type

    def check_vendor_options(self, options: Mapping[str, str]) -> None:
        """Unknown --vendor-option keys are a usage error (exit 2) listing the known ones."""
        unknown = sorted(set(options) - set(self.vendor_option_keys))
        if unknown:
            known = ", ".join(self.vendor_option_keys) or "none"
            raise UsageError(f"target '{self.name}' has no --vendor-option {', '.join(unknown)}", hint=f"known options: {known}")

    def emit(self, model: onnx.ModelProto, precision: str, directory: Path, stem: str,
             calibration: Sequence[Mapping[str, np.ndarray]], options: EmitOptions | None = None) -> Emitted:
        """Write `<stem>.tflite` (verified against onnxruntime), then run the target's vendor step."""
        from edgecc.targets.precision import convert_precision
        from edgecc.targets.tflite import compare_with_onnx, emit_tflite

        options = options or EmitOptions()
        self.check_vendor_options(options.vendor_options)
        converted = convert_precision(model, precision, self.scheme_for(precision), calibration)
        io_type = self.io_type_for(precision, options)
        artifact = emit_tflite(converted, io_type=io_type, always_bias=self.always_bias, name=stem)
        path = directory / f"{stem}.tflite"
        path.write_bytes(artifact.data)
        report = dict(artifact.report or {})
        info: dict[str, Any] = {
            "format": "tflite",
            "io_type": io_type,
            "tflite_operators": sorted(set(artifact.operators)),
            "conversions": boundary_conversions(report.get("io", {})),
            "conversions_text": list(report.get("conversions", [])),
        }
        if options.feeds:
            verification = compare_with_onnx(artifact, converted, [dict(f) for f in options.feeds])
            info["verification"] = {"artifact": path.name, "reference": "onnxruntime on the partition's ONNX ("
                                    + ("QDQ" if precision != "fp32" else "float") + ")", **verification}
            if not verification.get("passed", False):
                raise NumericsError(f"the TFLite file edgecc wrote for partition {stem} ({self.name}) differs from onnxruntime on the "
                                    f"same {precision} partition beyond tolerance", report=info["verification"],
                                    hint="report this as an edgecc TFLite writer bug; --precision fp32 (where the target allows it) avoids it")
        if precision != "fp32":
            info["float_operators"] = float_operators(path)
        files = [path]
        self.vendor_step(path, directory, stem, precision, options, info, files, converted)
        return Emitted(files, info)

    def vendor_step(self, tflite: Path, directory: Path, stem: str, precision: str, options: EmitOptions,
                    info: dict[str, Any], files: list[Path], converted: onnx.ModelProto) -> None:
        """Run the vendor tool on the written TFLite (none by default); add files and report entries."""

    def runner(self, artifact: Path, *, name: str) -> Any:
        """The TFLite interpreter over the artifact (float io, ONNX names and layout, as the bundle expects)."""
        from edgecc.targets.tflite import TfliteRunner

        return TfliteRunner(artifact, name=name)


def when_tflite_op(op: str, check: Check, vendor: str) -> Check:
    """`check` applied only to nodes that become TFLite `op`; its rule text prefixed with the op, failures name `vendor`."""
    rule = " ".join((check.__doc__ or check.__name__).split())

    def applies(view: NodeView) -> tuple[bool, str]:
        if tflite_op(view) != op:
            return True, ""
        ok, detail = check(view)
        return ok, "" if ok else f"{vendor} {op} rule '{rule}': {detail}"

    applies.__doc__ = f"{op}: {rule}"
    applies.__name__ = f"{op.lower()}_{getattr(check, '__name__', 'check')}"
    return applies
