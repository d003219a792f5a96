"""Helpers shared by the op converters: SAME/VALID/explicit padding, NHWC inputs, views."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgecc.targets.tflite import layout
from edgecc.targets.tflite.context import Context, NotExpressible

if TYPE_CHECKING:
    import onnx

    from edgecc.targets.api import NodeView

__all__ = ["spatial_padding", "pad_tensor", "rank_is", "static_input"]


def rank_is(view: NodeView, rank: int, index: int = 0) -> tuple[bool, str]:
    """Input `index` has rank `rank` (unknown shapes pass: the writer rechecks at emit time)."""
    shape = view.input_shapes[index] if index < len(view.input_shapes) else None
    if shape is not None and len(shape) != rank:
        return False, f"input rank {len(shape)}, the TFLite writer needs rank {rank}"
    return True, ""


def static_input(view: NodeView, index: int, what: str) -> tuple[bool, str]:
    """Input `index` must be constant (an initializer or DequantizeLinear of one)."""
    if index < len(view.inputs) and view.inputs[index] and not view.is_constant(index):
        return False, f"{what} must be a constant"
    return True, ""


def spatial_padding(
    in_hw: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
    auto_pad: str = "NOTSET",
) -> tuple[str, list[int] | None]:
    """("SAME"|"VALID", None) when TFLite's padding modes express the ONNX pads, else ("VALID", explicit pads)."""
    if auto_pad in ("SAME_UPPER",):
        return "SAME", None
    if auto_pad == "VALID":
        return "VALID", None
    if auto_pad == "SAME_LOWER":
        totals = [
            max((math.ceil(sz / s) - 1) * s + (k - 1) * d + 1 - sz, 0) for sz, k, s, d in zip(in_hw, kernel, strides, dilations)
        ]
        pads = [t - t // 2 for t in totals] + [t // 2 for t in totals]
    n = len(in_hw)
    if not any(pads):
        return "VALID", None
    same = True
    for i, (size, k, s, d) in enumerate(zip(in_hw, kernel, strides, dilations)):
        out = math.ceil(size / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        if pads[i] != total // 2 or pads[i + n] != total - total // 2:
            same = False
    return ("SAME", None) if same else ("VALID", list(pads))


def pad_tensor(
    ctx: Context,
    tensor: int,
    name: str,
    onnx_shape: Sequence[int],
    perm: Sequence[int],
    spatial_pads: Sequence[int],
    value: float | None = None,
) -> tuple[int, tuple[int, ...]]:
    """PAD (or PADV2 with `value`) the spatial axes 2.. of an NCHW tensor held as `perm`; returns (tensor, new ONNX shape)."""
    import numpy as np

    rank = len(onnx_shape)
    n = rank - 2
    onnx_pads = [[0, 0] for _ in range(rank)]
    for i in range(n):
        onnx_pads[2 + i] = [int(spatial_pads[i]), int(spatial_pads[i + n])]
    if any(p < 0 for row in onnx_pads for p in row):
        raise NotExpressible("negative pads")
    tfl_pads = np.asarray([onnx_pads[p] for p in perm], dtype=np.int32)
    new_shape = tuple(int(d + a + b) for d, (a, b) in zip(onnx_shape, onnx_pads))
    spec = ctx.builder.tensors[tensor]
    out = ctx.builder.tensor(f"{name}_padded", layout.tfl_shape(new_shape, perm), spec.dtype, quant=spec.quant)
    pads_const = ctx.const_tensor(f"{name}_pads", tfl_pads)
    if value is None:
        ctx.builder.operator("PAD", [tensor, pads_const], [out], "PadOptions")
    else:
        if spec.quant is not None:
            q = spec.quant
            info = np.iinfo(q.dtype)
            fill = np.asarray([int(np.clip(round(value / q.scale[0]) + q.zero_point[0], info.min, info.max))], dtype=q.dtype)
            value_t = ctx.const_tensor(f"{name}_pad_value", fill.reshape(()), q)
        else:
            value_t = ctx.const_tensor(f"{name}_pad_value", np.asarray(value, dtype=np.float32).reshape(()))
        ctx.builder.operator("PADV2", [tensor, pads_const, value_t], [out], "PadV2Options")
    return out, new_shape


def node_attrs(node: onnx.NodeProto) -> dict:
    """Attributes of `node` as Python values."""
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def nhwc_or_identity(rank: int) -> tuple[int, ...]:
    """NHWC for rank 4, identity otherwise."""
    return layout.NHWC if rank == 4 else layout.identity(rank)
