"""`ethos-u55-*`, `ethos-u65-*`, `ethos-u85-*` (and `ethos-u` = ethos-u55-128): Arm Ethos-U microNPUs through Vela.

Operator support is Vela's (`vela --supported-ops-report`, SUPPORTED_OPS.md of ethos-u-vela 5.2.0, the
source of truth): a node goes to the NPU when edgecc's TFLite writer can express it AND the TFLite
operator it becomes is in Vela's summary table for the NPU family AND it meets Vela's constraints for that
operator. Each check below carries Vela's rule text verbatim as its docstring (tests/targets/test_ethos_u.py
runs the real `vela --supported-ops-report` and checks every op edgecc places and every rule text against
it). Rules about quantisation (int8 feature maps, int8 weights, int32 biases, positive scales, per-axis
only on convolutions) hold by construction: the partition is quantised with the target's QuantScheme
(int8 asymmetric activations, int8 symmetric per-channel weights, int8 io: what TensorFlow's full-integer
converter produces). Vela still decides: it runs on every emitted TFLite and its CPU-fallback list is
stored in the manifest (vendor.cpu_fallback).

Cost model (public numbers):
- MACs/cycle = the configuration number: Ethos-U55 32-256, Ethos-U65 256/512, Ethos-U85 128-2048 (Arm product
  pages developer.arm.com/Processors/Ethos-U55, -U65, -U85: "up to 0.5 TOPS" U55-256 at 1 GHz, "1 TOPS" U65-512,
  "4 TOPS" U85-2048 at 1 GHz);
- clock = the core_clock of Vela's default system configuration for the family (Arm/vela.ini shipped with
  Vela): U55 High_End_Embedded 500 MHz, U65 High_End 1 GHz, U85 SYS_DRAM_Mid 1 GHz; ~40 % sustained MAC
  utilisation (Vela's own per-layer estimates on small CNNs show 20-50 %);
- memory bandwidth = the SRAM figure of the same vela.ini entries: 4 GB/s (U55), 16 GB/s (U65), 32 GB/s (U85)
  (the configurations, clocks and bandwidths are one table, `edgecc.targets.vela.FAMILIES`);
- the NPU shares SRAM with the Cortex-M host (zero copy; ~2 us of cache maintenance per handed-over tensor);
  a command-stream invocation through the ethos-u core driver costs ~15 us; ~0.5 us per operator block.

Vela's output (`*_vela.tflite`, an Ethos-U custom operator plus CPU operators) cannot run here: the bundle's
runner executes the pre-Vela int8 TFLite with the TFLite interpreter, which has the same integer numerics
Vela must reproduce (Vela's bit-exactness is Arm's claim, not checked here).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.quantization import QuantScheme
from edgecc.targets import constraints as c
from edgecc.targets.api import Check, CostModel, EmitOptions, Memory, NodeView, restated
from edgecc.targets.tflite.rules import QDQ_OPS, activation_types, conv_padding, in_table, nhwc_hw, reduced_axes, vendor_ops
from edgecc.targets.tflite.target import TfliteTarget, VendorResult
from edgecc.targets.vela import ACCELERATORS, FAMILIES, PASS_THROUGH, family_of, run_vela

if TYPE_CHECKING:
    import onnx

__all__ = ["BY_CONSTRUCTION", "RULES", "SUPPORTED", "TARGETS", "EthosUTarget", "make_target"]

log = logging.getLogger(__name__)


def _ints(values: Any) -> list[int]:
    return [int(v) for v in (values or [])]


def _kernel(view: NodeView) -> list[int]:
    kernel = view.attr("kernel_shape")
    if kernel is None and len(view.input_shapes) > 1 and view.input_shapes[1]:
        kernel = view.input_shapes[1][2:]
    return _ints(kernel)


def _strides(view: NodeView) -> list[int]:
    return _ints(view.attr("strides")) or [1, 1]


def _dilations(view: NodeView) -> list[int]:
    return _ints(view.attr("dilations")) or [1, 1]


def _static(shape: Any) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


# -- Vela rules (docstring = rule text in SUPPORTED_OPS.md, Vela 5.2.0) -----------------------------------------


def stride_gt3_needs_valid(view: NodeView) -> tuple[bool, str]:
    """Stride>3 is only supported IF (dilation = 1 AND padding = VALID)"""
    strides = _strides(view)
    if max(strides) > 3 and (any(d != 1 for d in _dilations(view)) or conv_padding(view) != "VALID"):
        return (
            False,
            f"stride {'x'.join(map(str, strides))} with dilation {'x'.join(map(str, _dilations(view)))}, "
            f"padding {conv_padding(view)}",
        )
    return True, ""


def kernel_stride_1_to_3(view: NodeView) -> tuple[bool, str]:
    """Kernel stride must be in the range (1,3)."""
    strides = _strides(view)
    if any(s < 1 or s > 3 for s in strides):
        return False, f"stride {'x'.join(map(str, strides))}"
    return True, ""


#: Vela: "The sum of absolute weights cannot exceed 8323072" for 8-bit IFMs; with symmetric int8 weights
#: |q| <= 127, so at most 65536 weights per output channel can never exceed it (checked on shapes).
_WEIGHT_SUM_LIMIT = 8323072


def weight_sum(view: NodeView) -> tuple[bool, str]:
    """Weigth sum constraints: IF 8-bit IFM: The sum of absolute weights cannot exceed 8323072"""
    shape = view.input_shapes[1] if len(view.input_shapes) > 1 else None
    if not _static(shape):
        return False, "weight shape unknown"
    per_channel = math.prod(shape[1:]) if view.op_type != "Gemm" or view.attr("transB", 0) else shape[0]
    if view.op_type == "MatMul":
        per_channel = shape[0]
    if 127 * per_channel > _WEIGHT_SUM_LIMIT:
        return False, f"{per_channel} weights per output channel: the int8 sum of absolute weights may exceed {_WEIGHT_SUM_LIMIT}"
    return True, ""


def bias_constant(view: NodeView) -> tuple[bool, str]:
    """Bias tensors must be constant"""
    if len(view.inputs) > 2 and view.inputs[2] and not view.is_constant(2):
        return False, f"bias '{view.inputs[2]}' is not constant"
    if view.op_type in ("Conv", "ConvTranspose", "Gemm") and not view.is_constant(1):
        return False, f"weights '{view.inputs[1]}' are not constant"
    return True, ""


def fc_weights_form(view: NodeView) -> tuple[bool, str]:
    """FullyConnected weights must be on the form O,1,1,..,1,I."""
    shape = view.input_shapes[1] if len(view.input_shapes) > 1 else None
    if shape is None or len(shape) != 2:
        return False, f"weights of rank {len(shape) if shape is not None else '?'}"
    return True, ""


def _pool_kernel(view: NodeView) -> list[int]:
    if view.op_type.startswith("Global"):
        shape = view.input_shapes[0]
        return [int(shape[2]), int(shape[3])] if _static(shape) and len(shape) == 4 else []
    return _kernel(view)


def avgpool_kernel(view: NodeView) -> tuple[bool, str]:
    """Kernel constraints: IF padding=VALID: Kernel product must be less than or equal to 256*256 Kernel height must be less than
    or equal to 256. ELSE: Kernel width and height must be less than or equal to 8"""
    kernel = _pool_kernel(view)
    if len(kernel) != 2:
        return False, "kernel is not 2-D"
    if conv_padding(view) == "VALID":
        if kernel[0] * kernel[1] > 256 * 256 or kernel[0] > 256:
            return False, f"kernel {kernel[0]}x{kernel[1]} (VALID padding)"
    elif kernel[0] > 8 or kernel[1] > 8:
        return False, f"kernel {kernel[0]}x{kernel[1]} with SAME padding"
    return True, ""


def maxpool_kernel(view: NodeView) -> tuple[bool, str]:
    """kernel product must be less than or equal to 256*256 and kernel height must be less than or equal to 256."""
    kernel = _pool_kernel(view)
    if len(kernel) != 2 or kernel[0] * kernel[1] > 256 * 256 or kernel[0] > 256:
        return False, f"kernel {'x'.join(map(str, kernel)) or '?'}"
    return True, ""


def _reduced_axes(view: NodeView) -> list[int] | None:
    """Reduced axes of a node with a static input shape (None: not checkable here; axes as a tensor input are the writer's
    business, which checks their constness)."""
    return reduced_axes(view) if _static(view.input_shapes[0] if view.input_shapes else None) else None


def mean_batch_one(view: NodeView) -> tuple[bool, str]:
    """Batch must be 1."""
    shape = view.input_shapes[0] if view.input_shapes else None
    if _static(shape) and len(shape) == 4 and shape[0] != 1:
        return False, f"batch {shape[0]}"
    return True, ""


def mean_reduced_elements(view: NodeView) -> tuple[bool, str]:
    """Amount of reduced elements cannot exceed: 16777216(Int8), 8388608(UInt8), 65536(Int16)."""
    axes, shape = _reduced_axes(view), view.input_shapes[0]
    if axes is None:
        return True, ""
    count = math.prod(int(shape[a]) for a in axes)
    if count > 16777216:
        return False, f"{count} reduced elements"
    return True, ""


def mean_reduced_axis(view: NodeView) -> tuple[bool, str]:
    """Reduced axis must be less than 4096"""
    axes, shape = _reduced_axes(view), view.input_shapes[0]
    if axes is None:
        return True, ""
    too_big = [int(shape[a]) for a in axes if int(shape[a]) >= 4096]
    if too_big:
        return False, f"reduced axis of size {too_big[0]}"
    return True, ""


def mean_depth(view: NodeView) -> tuple[bool, str]:
    """Reduction over depth is only supported if any of h,w,c == 1"""
    axes, shape = _reduced_axes(view), view.input_shapes[0]
    if axes is None or len(shape) != 4 or 1 not in axes:
        return True, ""
    if 1 not in (shape[1], shape[2], shape[3]):
        return False, f"reduction over channels of {'x'.join(map(str, shape))}"
    return True, ""


def softmax_hw(view: NodeView) -> tuple[bool, str]:
    """The product of IFM width and height must be less than 65536"""
    hw = nhwc_hw(view.input_shapes[0] if view.input_shapes else None)
    if hw is None:
        return False, "input shape unknown"
    if hw[0] * hw[1] >= 65536:
        return False, f"IFM height x width {hw[0]}x{hw[1]}"
    return True, ""


def _resize_factors(view: NodeView) -> tuple[tuple[int, int], tuple[int, int], bool, bool] | None:
    src = view.input_shapes[0] if view.input_shapes else None
    dst = view.output_shapes[0] if view.output_shapes else None
    if not (_static(src) and _static(dst)) or len(src) != 4 or len(dst) != 4:
        return None
    mode = view.attr("coordinate_transformation_mode", "half_pixel")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    return (
        (int(src[2]), int(src[3])),
        (int(dst[2]), int(dst[3])),
        mode == "align_corners",
        mode in ("half_pixel", "pytorch_half_pixel"),
    )


def _scale(src: int, dst: int, align: bool) -> float:
    if align:
        return (dst - 1) / (src - 1) if src > 1 else float(dst)
    return dst / src


def _resize_u55(view: NodeView, half_pixel_two: bool) -> tuple[bool, str]:
    found = _resize_factors(view)
    if found is None:
        return False, "resize shapes unknown"
    (ih, iw), (oh, ow), align, half = found
    if (ih == iw == 1) or (ih, iw) == (oh, ow):
        return True, ""
    sh, sw = _scale(ih, oh, align), _scale(iw, ow, align)
    if sh != sw:
        if not ((oh == 1 and sh == 1) or (ow == 1 and sw == 1)):
            return False, f"scale factors {sh:g} (H) and {sw:g} (W) differ"
        sh = sw = max(sh, sw)
    if half_pixel_two and half:
        return (True, "") if sh == 2 else (False, f"half-pixel scale factor {sh:g}, need 2")
    return (True, "") if sh in (2, 4, 8) else (False, f"scale factor {sh:g}, need 2, 4 or 8")


def resize_bilinear_u55(view: NodeView) -> tuple[bool, str]:
    """IF not (IFM H == IFM W == 1) AND not IFM Shape == OFM Shape: IF W Scale-factor != H Scale-factor: OFM W or H must be 1, and
    scaling in the dim that is must also be 1 IF align corners: Scale-factor is defined as OFM H-1 / IFM H-1 ELSE: Scale-factor is
    defined as OFM H/IFM H IF half pixel centers: Scale-factor needs to be 2x Else: Scale-factor needs to be one of: 2x/4x/8x"""
    return _resize_u55(view, True)


def resize_nearest_u55(view: NodeView) -> tuple[bool, str]:
    """IF NOT (IFM H == IFM W == 1) AND NOT IFM Shape == OFM Shape: IF W Scale-factor != H Scale-factor: OFM W or H must be 1, and
    scaling in the dim that is must also be 1 IF align corners: Scale-factor is defined as OFM H-1 / IFM H-1 ELSE: Scale-factor is
    defined as OFM H / IFM H Scale-factor must be one of: 2x/4x/8x"""
    return _resize_u55(view, False)


def resize_u85(view: NodeView) -> tuple[bool, str]:
    """Scale-factor: IF align_corners: Scale-factor can be maximum 2048 ELSE: Scale-factor can be maximum 1024."""
    found = _resize_factors(view)
    if found is None:
        return False, "resize shapes unknown"
    (ih, iw), (oh, ow), align, _ = found
    limit = 2048 if align else 1024
    worst = max(_scale(ih, oh, align), _scale(iw, ow, align))
    return (True, "") if worst <= limit else (False, f"scale factor {worst:g} > {limit}")


def resize_power_of_two(view: NodeView) -> tuple[bool, str]:
    """Scale-factor must be an integer power of two."""
    found = _resize_factors(view)
    if found is None:
        return False, "resize shapes unknown"
    (ih, iw), (oh, ow), align, _ = found
    for src, dst in ((ih, oh), (iw, ow)):
        factor = _scale(src, dst, align)
        if factor != int(factor) or int(factor) & (int(factor) - 1):
            return False, f"scale factor {factor:g}"
    return True, ""


def transpose_rank(view: NodeView) -> tuple[bool, str]:
    """Tensor dimension must be <= 8"""
    shape = view.input_shapes[0] if view.input_shapes else None
    if shape is not None and len(shape) > 8:
        return False, f"rank {len(shape)}"
    return True, ""


def transpose_axes_product(view: NodeView) -> tuple[bool, str]:
    """Product of any N-2 axes in a rank N tensor must be less than or equal to 2^16."""
    shape = view.input_shapes[0] if view.input_shapes else None
    if not _static(shape):
        return False, "shape unknown"
    from itertools import combinations

    rank = len(shape)
    if rank <= 2:
        return True, ""
    worst = max(math.prod(combo) for combo in combinations([int(d) for d in shape], rank - 2))
    return (True, "") if worst <= 2**16 else (False, f"{worst} > 65536 for shape {'x'.join(map(str, shape))}")


def transpose_conv_shape(view: NodeView) -> tuple[bool, str]:
    """Shape constraints: IF PADDING=SAME: OFM must be equal to IFM * stride ELSE: OFM must be equal to
    IFM * stride + (kernel - stride)"""
    src = view.input_shapes[0] if view.input_shapes else None
    dst = view.output_shapes[0] if view.output_shapes else None
    if not (_static(src) and _static(dst)) or len(src) != 4:
        return False, "shapes unknown"
    strides, kernel = _strides(view), _kernel(view)
    same = all(int(dst[i + 2]) == int(src[i + 2]) * strides[i] for i in range(2))
    valid = len(kernel) == 2 and all(int(dst[i + 2]) == int(src[i + 2]) * strides[i] + (kernel[i] - strides[i]) for i in range(2))
    return (
        (True, "") if same or valid else (False, f"output {dst[2]}x{dst[3]} from input {src[2]}x{src[3]} with stride {strides}")
    )


def transpose_conv_stride(view: NodeView) -> tuple[bool, str]:
    """Stride values WxH must be: 1x1 OR 2x2 OR 2x1 (if IFM height and kernel height is 1) OR 1x2 (if
    IFM width and kernel width is 1)"""
    sh, sw = (_strides(view) + [1, 1])[:2]
    src = view.input_shapes[0] or (None, None, None, None)
    kernel = _kernel(view) + [1, 1]
    if (sw, sh) in ((1, 1), (2, 2)):
        return True, ""
    if (sw, sh) == (2, 1) and src[2] == 1 and kernel[0] == 1:
        return True, ""
    if (sw, sh) == (1, 2) and src[3] == 1 and kernel[1] == 1:
        return True, ""
    return False, f"stride {sw}x{sh} (WxH)"


def matmul_limits(view: NodeView) -> tuple[bool, str]:
    """IF Matmul or (FC with dynamic weights): OFM depth must be less than or equal to 2^16"""
    shape = view.output_shapes[0] if view.output_shapes else None
    if _static(shape) and shape and int(shape[-1]) > 2**16:
        return False, f"OFM depth {shape[-1]}"
    return True, ""


def matmul_reduced_axis(view: NodeView) -> tuple[bool, str]:
    """IF Matmul or (FC with dynamic weights): Reduced axis must be less than or equal to 2^16"""
    shape = view.input_shapes[0] if view.input_shapes else None
    if _static(shape) and shape and int(shape[-1]) > 2**16:
        return False, f"reduced axis {shape[-1]}"
    return True, ""


parameters_constant = restated(c.constant_weights, "Parameter tensors must be constant")


def slice_volume(view: NodeView) -> tuple[bool, str]:
    """Slice must represent a volume. Stride must be non-negative (and over W or H)."""
    if len(view.inputs) > 4 and view.inputs[4]:
        return False, f"steps '{view.inputs[4]}' given: their signs and axes are not visible before emission"
    return True, ""


#: Vela rules for ops edgecc places that hold by construction of edgecc's int8 TFLite, with the reason
#: ((TFLite op or "*", rule text prefix) -> why); tests check that every Vela rule is a check or listed here
BY_CONSTRUCTION: dict[tuple[str, str], str] = {
    ("*", "32-bit feature-maps are not supported."): "partitions are quantised with int8 activations (QuantScheme)",
    ("*", "Bias tensors precision must be Int32 or Int64"): "the writer writes int32 biases (scale = input scale x weight scale)",
    ("*", "Bias values must be stored in the channel axis"): "the writer writes 1-D biases with one value per output channel",
    ("*", "Int64 bias must be smaller than"): "the writer writes int32 biases, never int64",
    ("*", "Weight tensors must be 8-bit precision"): "weights are quantised to int8 (QuantScheme)",
    ("*", "IF Matmul or (FC with dynamic weights): IFM precision must be Int8"): "activations are int8 (QuantScheme)",
    ("FULLY_CONNECTED", "IF Matmul or (FC with dynamic weights)"): "FULLY_CONNECTED is written only for constant weights "
    "(dynamic ones become BATCH_MATMUL, which is checked)",
    ("FULLY_CONNECTED", "Kernel stride must be in the range (1,3)."): "FULLY_CONNECTED has no stride",
    ("*", "IFM and OFM datatypes must match"): "unary operators read and write int8 (QuantScheme)",
    ("*", "IFM and OFM shapes must match"): "unary elementwise ONNX operators keep the shape",
    ("*", "IFM precision must be one of: (Int8, UInt8, Int16)"): "activations are int8 (QuantScheme)",
    ("*", "Params tensor must be Int32 or Int64"): "the writer writes int32 paddings",
    ("*", "num_splits must match the number of outputs."): "the writer sets num_splits to the ONNX Split's output count",
    ("*", "IF IFM is Int32:"): "activations are int8, never int32",
    (
        "*",
        "Input(s), Output and Weight tensors must have quantization parameters.",
    ): "every tensor of an int8 partition is quantised",
    ("*", "Quantization scale of any tensor must be positive."): "scales come from calibrated min/max ranges (> 0)",
    ("*", "align_corners and half_pixel_centers are mutually exclusive."): "ONNX Resize has one coordinate_transformation_mode",
}


# -- per family: TFLite op -> Vela rules (ops not listed have only Vela's generic constraints) -------------------

_U55_RULES: dict[str, tuple[Check, ...]] = {
    "CONV_2D": (bias_constant, stride_gt3_needs_valid, weight_sum),
    "DEPTHWISE_CONV_2D": (bias_constant, kernel_stride_1_to_3, weight_sum),
    "TRANSPOSE_CONV": (bias_constant, transpose_conv_shape, transpose_conv_stride, weight_sum),
    "FULLY_CONNECTED": (bias_constant, fc_weights_form, weight_sum),
    "BATCH_MATMUL": (matmul_limits, matmul_reduced_axis),
    "AVERAGE_POOL_2D": (avgpool_kernel, stride_gt3_needs_valid),
    "MAX_POOL_2D": (stride_gt3_needs_valid, maxpool_kernel),
    "MEAN": (mean_reduced_elements, mean_batch_one, parameters_constant, mean_reduced_axis, mean_depth),
    "REDUCE_MAX": (kernel_stride_1_to_3,),
    "REDUCE_MIN": (kernel_stride_1_to_3,),
    "SUM": (kernel_stride_1_to_3,),
    "SOFTMAX": (softmax_hw,),
    "RESIZE_BILINEAR": (resize_bilinear_u55,),
    "RESIZE_NEAREST_NEIGHBOR": (resize_nearest_u55,),
    "TRANSPOSE": (transpose_axes_product, parameters_constant, transpose_rank),
    "PAD": (parameters_constant,),
    "SLICE": (parameters_constant,),
    "STRIDED_SLICE": (parameters_constant, slice_volume),
}

_U85_RULES: dict[str, tuple[Check, ...]] = {
    "CONV_2D": (bias_constant, weight_sum),
    "DEPTHWISE_CONV_2D": (bias_constant, weight_sum),
    "TRANSPOSE_CONV": (bias_constant, transpose_conv_shape, weight_sum),
    "FULLY_CONNECTED": (bias_constant, fc_weights_form, weight_sum),
    "AVERAGE_POOL_2D": (avgpool_kernel,),
    "MAX_POOL_2D": (maxpool_kernel,),
    "MEAN": (mean_reduced_elements, mean_batch_one, parameters_constant, mean_reduced_axis, mean_depth),
    "SOFTMAX": (softmax_hw,),
    "RESIZE_BILINEAR": (resize_power_of_two, resize_u85),
    "RESIZE_NEAREST_NEIGHBOR": (resize_u85,),
    "TRANSPOSE": (parameters_constant, transpose_rank),
    "PAD": (parameters_constant,),
    "SLICE": (parameters_constant,),
    "STRIDED_SLICE": (parameters_constant, slice_volume),
}

#: Vela's TFLite summary tables (the operators it can place on the NPU), per family, restricted to those
#: edgecc's writer emits; tests check them against the live `vela --supported-ops-report`
_U55_SUPPORTED: tuple[str, ...] = (
    "ABS",
    "ADD",
    "AVERAGE_POOL_2D",
    "BATCH_MATMUL",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "ELU",
    "EXP",
    "EXPAND_DIMS",
    "FULLY_CONNECTED",
    "GELU",
    "HARD_SWISH",
    "LEAKY_RELU",
    "LOG",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MEAN",
    "MUL",
    "NEG",
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
    "SPLIT",
    "SPLIT_V",
    "SQUEEZE",
    "STRIDED_SLICE",
    "SUB",
    "SUM",
    "TANH",
    "TRANSPOSE",
    "TRANSPOSE_CONV",
)

SUPPORTED: dict[str, tuple[str, ...]] = {
    "ethos-u55": _U55_SUPPORTED,
    "ethos-u85": tuple(sorted((*_U55_SUPPORTED, "DIV"))),  # U85 adds DIV; U55 and U65 share one table
}

RULES: dict[str, dict[str, tuple[Check, ...]]] = {"ethos-u55": _U55_RULES, "ethos-u85": _U85_RULES}


def _op_checks(family: str) -> dict[str, tuple[Check, ...]]:
    """ONNX op -> checks: the writer can express it, its TFLite op is in Vela's table, Vela's rules for that op."""
    in_vela_list = in_table(
        SUPPORTED[family],
        name="in_vela_list",
        missing=f"is not in Vela's {family} operator table",
        rule=f"The TFLite operator the node becomes is in Vela's {family} TFLite summary table.",
    )
    return vendor_ops(SUPPORTED[family], in_vela_list, vendor="Vela", rules=RULES[family])


_UTILISATION = 0.4


@dataclass
class EthosUTarget(TfliteTarget):
    """An Ethos-U configuration: int8 TFLite written by edgecc, compiled by Vela when it is installed."""

    accelerator: str = "ethos-u55-128"

    def vendor_step(
        self,
        tflite: Path,
        precision: str,
        options: EmitOptions,
        report: Mapping[str, Any],
        converted: onnx.ModelProto,
        float_model: onnx.ModelProto | None = None,
    ) -> VendorResult:
        """Run Vela on the verified TFLite; its output, summary and estimates (or say it was not run)."""
        if not options.vendor_compile:
            return VendorResult(
                info={
                    "accelerator": self.accelerator,
                    "vela": (
                        f"not run (--no-vendor-compile): the .tflite is ready for `vela --accelerator-config {self.accelerator}`"
                    ),
                    "summary": f"int8 TFLite ready for Vela ({self.accelerator}); Vela not run (--no-vendor-compile)",
                }
            )
        compiled = run_vela(tflite, tflite.parent, accelerator=self.accelerator, options=dict(options.vendor_options))
        files = [compiled.output, *(p for p in (compiled.summary_csv, compiled.per_layer_csv) if p is not None)]
        return VendorResult(
            files,
            {
                "accelerator": self.accelerator,
                **compiled.to_dict(),
                "vela_output": compiled.output.name,
                "summary": compiled.summary(self.accelerator),
                "numerics": (
                    "Vela's output runs only on Ethos-U hardware or Arm's FVP; the bundle runs and verifies the pre-Vela "
                    "int8 TFLite with the TFLite interpreter"
                ),
            },
        )

    def execution(self, precision: str) -> str:
        return (
            f"TFLite interpreter (ai-edge-litert) running the pre-Vela int8 TFLite; the {self.accelerator} command stream "
            "(*_vela.tflite) cannot run here"
        )


def make_target(accelerator: str, name: str | None = None) -> EthosUTarget:
    """The target for one Vela accelerator configuration."""
    family, macs = family_of(accelerator)
    spec = FAMILIES[family]
    rule_family = "ethos-u85" if family == "ethos-u85" else "ethos-u55"
    return EthosUTarget(
        name=name or accelerator,
        description=f"Arm {accelerator.replace('ethos-u', 'Ethos-U').rsplit('-', 1)[0]} microNPU, {macs} MACs/cycle, int8 TFLite "
        "compiled by Vela",
        precisions=("int8",),
        memory=Memory(kind="shared", sync_us=2.0),
        cost=CostModel(
            launch_us=15.0, gmacs={"int8": macs * spec.clock_ghz * _UTILISATION}, memory_gbps=spec.sram_gbps, op_overhead_us=0.5
        ),
        ops={**_op_checks(rule_family), **QDQ_OPS},
        generic=(c.static_shapes, activation_types),
        quant_scheme=QuantScheme(
            precision="int8",
            activation_type="int8",
            weight_type="int8",
            symmetric_activations=False,
            symmetric_weights=True,
            per_channel=True,
        ),
        requires_calibration=True,
        references=(
            "Vela SUPPORTED_OPS.md (`vela --supported-ops-report`, ethos-u-vela 5.2.0)",
            "Vela configuration file Arm/vela.ini (system configs and memory modes)",
            "Arm Ethos-U55 / U65 / U85 product pages (developer.arm.com/Processors)",
        ),
        io_type="int8",
        vendor_option_keys=tuple(sorted(PASS_THROUGH)),
        accelerator=accelerator,
    )


#: the ethos-u targets: one per accelerator configuration Vela accepts (vela.ACCELERATORS), and `ethos-u` = ethos-u55-128
TARGETS: dict[str, Callable[[], EthosUTarget]] = {
    "ethos-u": functools.partial(make_target, "ethos-u55-128", "ethos-u"),
    **{accelerator: functools.partial(make_target, accelerator) for accelerator in ACCELERATORS},
}
