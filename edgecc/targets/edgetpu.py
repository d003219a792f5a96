"""`edgetpu`: Google Coral Edge TPU, full-integer TFLite ready for `edgetpu_compiler`.

Operator and tensor constraints follow Coral's "TensorFlow models on the Edge TPU" page
(coral.ai/docs/edgetpu/models-intro, "Model requirements" and the "Supported operations" table with its
"Known limitations" column); each check's docstring is that text. General requirements: tensor
parameters quantised to 8 bits (int8 or uint8), tensor sizes constant at compile time, parameters (such
as bias tensors) constant at compile time, tensors 1-, 2- or 3-dimensional (more dimensions only when all
but the 3 innermost are 1), and only the listed operations. The Edge TPU compiler maps the graph only up to
the first operation it cannot run: "the compiler cannot partition the model more than once, so as soon as
an unsupported operation occurs, that operation and everything after it executes on the CPU" - modelled
with `maps_prefix_only` (edgecc's partitioner then places everything after the first unsupported node on
the CPU, and the placement report says why).

io: uint8 by default (the full-integer models of Coral's examples feed uint8 images), `--vendor-option
io=int8` for int8 io; activations int8 asymmetric and weights int8 symmetric per channel, as TensorFlow's
full-integer converter writes them.

The Edge TPU compiler (`edgetpu_compiler`, Debian package from Coral's apt repository, x86-64 only) is not
installable here: the bundle holds the verified TFLite ready for `edgetpu_compiler -s FILE.tflite` and the
placement report; the runner runs that TFLite with the TFLite interpreter (same integer numerics).

Cost parameters (public specs): 4 TOPS int8 peak (Coral USB Accelerator / Dev Board datasheets) = 2,000
GMAC/s; Coral's benchmark table (coral.ai/docs/edgetpu/benchmarks: MobileNet v1 224x224, 0.57 GMAC, ~2.4 ms)
implies ~240 GMAC/s sustained. Parameters live in 8 MB on-chip SRAM; tensors cross USB 3.0 (5 Gb/s,
~0.32 GB/s effective) with ~100 us per transfer; an invocation of the edgetpu custom op ~250 us.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import UsageError
from edgecc.quantization import QuantScheme
from edgecc.targets import constraints as c
from edgecc.targets.api import Check, CostModel, EmitOptions, Memory, NodeView
from edgecc.targets.tflite.rules import QDQ_OPS, activation_types, in_table, reduced_axes, vendor_ops
from edgecc.targets.tflite.target import TfliteTarget, VendorResult

if TYPE_CHECKING:
    import onnx

__all__ = ["SUPPORTED", "TARGET", "TARGETS", "EdgeTpuTarget"]

#: the TFLite operators of Coral's "Supported operations" table (those edgecc's writer can emit)
SUPPORTED = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "EXPAND_DIMS",
    "FULLY_CONNECTED",
    "L2_NORMALIZATION",
    "LOGISTIC",
    "MAXIMUM",
    "MAX_POOL_2D",
    "MEAN",
    "MINIMUM",
    "MUL",
    "PAD",
    "PRELU",
    "QUANTIZE",
    "REDUCE_MAX",
    "REDUCE_MIN",
    "RELU",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
    "SLICE",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SPLIT",
    "SQUEEZE",
    "STRIDED_SLICE",
    "SUB",
    "SUM",
    "TANH",
    "TRANSPOSE",
    "TRANSPOSE_CONV",
)


def _shape(view: NodeView, index: int = 0, output: bool = False) -> tuple[Any, ...] | None:
    shapes = view.output_shapes if output else view.input_shapes
    return shapes[index] if len(shapes) > index else None


def innermost_three(view: NodeView) -> tuple[bool, str]:
    """Tensors are either 1-, 2-, or 3-dimensional. If a tensor has more than 3 dimensions, then only the 3 innermost dimensions
    may have a size greater than 1."""
    if view.inputs and all(not name or name in view.constant_inputs for name in view.inputs):
        # a constant-only node (the DequantizeLinear of quantised weights): its output is a parameter,
        # not a tensor the Edge TPU moves
        return True, ""
    for name, shape in [*zip(view.inputs, view.input_shapes), *zip(view.outputs, view.output_shapes)]:
        if name and name not in view.constant_inputs and shape is not None and len(shape) > 3:
            outer = [d for d in shape[:-3] if d != 1]
            if outer:
                return (
                    False,
                    f"'{name}' has shape {'x'.join(map(str, shape))}; the Edge TPU allows more than 3 dimensions only "
                    "when all but the 3 innermost dimensions are 1",
                )
    return True, ""


def parameters_constant(view: NodeView) -> tuple[bool, str]:
    """Model parameters (such as bias tensors) are constant at compile-time."""
    if view.op_type in ("Conv", "ConvTranspose", "Gemm", "PRelu"):
        for index in range(1, len(view.inputs)):
            if view.inputs[index] and not view.is_constant(index):
                return False, f"'{view.inputs[index]}' is not constant"
    return True, ""


def same_dilation(view: NodeView) -> tuple[bool, str]:
    """Must use the same dilation in x and y dimensions."""
    dilations = list(view.attr("dilations") or [1, 1])
    return (True, "") if len(set(dilations)) <= 1 else (False, f"dilation {'x'.join(map(str, dilations))}")


def fc_output_1d(view: NodeView) -> tuple[bool, str]:
    """Only the default format is supported for fully-connected weights. Output tensor is one-dimensional."""
    shape = _shape(view, output=True)
    if shape is None or len([d for d in shape if d != 1]) > 1:
        return False, f"output shape {'x'.join(map(str, shape)) if shape is not None else 'unknown'}"
    return True, ""


def mean_spatial(view: NodeView) -> tuple[bool, str]:
    """No reduction in batch dimension. Supports reduction along x- and/or y-dimensions only."""
    axes, shape = reduced_axes(view), _shape(view)
    if axes is None or shape is None:
        return False, "reduction axes unknown"
    if len(shape) != 4 or any(a not in (2, 3) for a in axes):
        return False, f"reduces axes {axes} of rank {len(shape)}"
    return True, ""


def reduce_not_batch(view: NodeView) -> tuple[bool, str]:
    """Cannot operate on batch dimension."""
    axes = reduced_axes(view)
    if axes is None:
        return False, "reduction axes unknown"
    return (False, "reduces the batch dimension") if 0 in axes else (True, "")


def pad_spatial(view: NodeView) -> tuple[bool, str]:
    """No padding in batch dimension. Supports padding along x- and/or y-dimensions only."""
    pads = view.attr("pads")
    shape = _shape(view)
    if pads is None:  # pads as an input tensor (opset >= 11): the values are not visible to the planner
        return False, "pads given as a tensor; the Edge TPU accepts x/y padding only, which cannot be checked before emission"
    rank = len(pads) // 2
    bad = [axis for axis in range(rank) if (pads[axis] or pads[axis + rank]) and not (rank == 4 and axis in (2, 3))]
    return (False, f"pads on axes {bad} of {'x'.join(map(str, shape or ()))}") if bad else (True, "")


def resize_3d(view: NodeView) -> tuple[bool, str]:
    """Input/output is a 3-dimensional tensor. Depending on input/output size, this operation may not be mapped to the Edge
    TPU to avoid loss in precision."""
    shape = _shape(view)
    if shape is None or len(shape) != 4 or shape[0] != 1:
        return False, f"input {'x'.join(map(str, shape or ()))} is not one 3-D image"
    return True, ""


def softmax_1d(view: NodeView) -> tuple[bool, str]:
    """Supports only 1-D input tensor with a max of 16,000 elements."""
    shape = _shape(view)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return False, "input shape unknown"
    big = [d for d in shape if d != 1]
    if len(big) > 1 or (big and big[0] > 16000):
        return False, f"input {'x'.join(map(str, shape))}"
    return True, ""


def split_not_batch(view: NodeView) -> tuple[bool, str]:
    """No splitting in batch dimension."""
    shape = _shape(view)
    axis = int(view.attr("axis", 0))
    if shape is not None and axis % max(len(shape), 1) == 0:
        return False, "splits the batch dimension"
    return True, ""


def slice_unit_strides(view: NodeView) -> tuple[bool, str]:
    """All strides must be equal to 1 (that is, effectively a Stride op), and with
    ellipsis-axis-mask == 0, and new-axis-max == 0."""
    if len(view.inputs) > 4 and view.inputs[4]:
        return (
            False,
            f"steps '{view.inputs[4]}' given; the Edge TPU maps only unit strides, which cannot be checked before emission",
        )
    return True, ""


#: TFLite op -> Coral's known limitations for it
RULES: dict[str, tuple[Check, ...]] = {
    "CONV_2D": (same_dilation,),
    "DEPTHWISE_CONV_2D": (same_dilation,),
    "FULLY_CONNECTED": (fc_output_1d,),
    "MEAN": (mean_spatial,),
    "PAD": (pad_spatial,),
    "REDUCE_MAX": (reduce_not_batch,),
    "REDUCE_MIN": (reduce_not_batch,),
    "SUM": (reduce_not_batch,),
    "RESIZE_BILINEAR": (resize_3d,),
    "RESIZE_NEAREST_NEIGHBOR": (resize_3d,),
    "SOFTMAX": (softmax_1d,),
    "SPLIT": (split_not_batch,),
    "SPLIT_V": (split_not_batch,),
    "STRIDED_SLICE": (slice_unit_strides,),
}


in_supported_table = in_table(
    SUPPORTED,
    name="in_supported_table",
    missing="the Edge TPU does not support",
    rule='The TFLite operator the node becomes is in Coral\'s Edge TPU "Supported operations" table.',
)


def _ops() -> dict[str, tuple[Check, ...]]:
    return vendor_ops(SUPPORTED, in_supported_table, vendor="Edge TPU", rules=RULES, common=(parameters_constant,))


@dataclass
class EdgeTpuTarget(TfliteTarget):
    """Full-integer TFLite for the Edge TPU compiler (not run here)."""

    def io_type_for(self, precision: str, options: EmitOptions) -> str:
        """uint8 io unless `--vendor-option io=int8`."""
        io = dict(options.vendor_options).get("io", self.io_type)
        if io not in ("uint8", "int8"):
            raise UsageError(f"--vendor-option io={io} is not valid for {self.name}", hint="io=uint8 or io=int8")
        return io

    def vendor_step(
        self,
        tflite: Path,
        precision: str,
        options: EmitOptions,
        report: Mapping[str, Any],
        converted: onnx.ModelProto,
        float_model: onnx.ModelProto | None = None,
    ) -> VendorResult:
        """Record that the TFLite awaits the Edge TPU compiler (not installable here)."""
        floats = report.get("float_operators", [])
        return VendorResult(
            info={
                "edgetpu_compiler": (
                    f"not run: not installable here; compile on an x86-64 Linux host with `edgetpu_compiler -s {tflite.name}`"
                ),
                "summary": (
                    f"full-integer TFLite ({report.get('io_type')} io) ready for edgetpu_compiler; "
                    f"{len(report.get('tflite_operators', []))} operator type(s)"
                    + (
                        f"; {len(floats)} float operator(s) ({', '.join(floats[:4])}) that the Edge TPU compiler "
                        "leaves, with everything after them, on the CPU"
                        if floats
                        else ""
                    )
                ),
            }
        )

    def execution(self, precision: str) -> str:
        return (
            "TFLite interpreter (ai-edge-litert) running the full-integer TFLite; the Edge TPU compiler is not installable here"
        )


TARGET = EdgeTpuTarget(
    name="edgetpu",
    description=(
        "Google Coral Edge TPU (4 TOPS int8), full-integer TFLite for edgetpu_compiler; maps only up to the first unsupported op"
    ),
    precisions=("int8",),
    memory=Memory(kind="dma", bandwidth_gbps=0.32, setup_us=100.0),
    cost=CostModel(launch_us=250.0, gmacs={"int8": 240.0}, memory_gbps=8.0, op_overhead_us=1.0),
    ops={**_ops(), **QDQ_OPS},
    generic=(c.static_shapes, activation_types, innermost_three),
    quant_scheme=QuantScheme(
        precision="int8",
        activation_type="int8",
        weight_type="int8",
        symmetric_activations=False,
        symmetric_weights=True,
        per_channel=True,
    ),
    requires_calibration=True,
    maps_prefix_only=True,
    references=(
        (
            "Coral: TensorFlow models on the Edge TPU, model requirements and supported operations "
            "(coral.ai/docs/edgetpu/models-intro)"
        ),
        "Coral: Edge TPU Compiler (coral.ai/docs/edgetpu/compiler)",
        "Coral: Edge TPU performance benchmarks (coral.ai/docs/edgetpu/benchmarks)",
    ),
    io_type="uint8",
    vendor_option_keys=("io",),
)

#: the targets this module declares (edgecc.targets.BUILTIN_MODULES)
TARGETS = {TARGET.name: TARGET}
