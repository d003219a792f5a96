"""Checks the TFLite-consuming targets (ethos-u*, edgetpu, armnn) share, and the TFLite op each ONNX node becomes.

The ONNX -> TFLite op map is the writer's own registry (`edgecc.targets.tflite.ops`: each converter's `planned`
op), so what the targets plan with cannot drift from what the writer writes. `vendor_ops` builds a vendor's
per-op constraint table from it: the writer can express the node, the TFLite op it becomes is in the vendor's
operator table, and the vendor's rules for that TFLite op hold.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgecc.targets.api import Check, NodeView
from edgecc.targets.constraints import tensor_dtypes

if TYPE_CHECKING:
    from edgecc.targets.tflite.ops import PlannedOp

__all__ = [
    "QDQ_OPS",
    "activation_types",
    "conv_padding",
    "in_table",
    "nhwc_hw",
    "onnx_ops_for",
    "reduced_axes",
    "tflite_op",
    "tflite_variants",
    "vendor_ops",
    "when_tflite_op",
    "writer_expresses",
]


@functools.cache
def _planned() -> dict[str, PlannedOp]:
    """ONNX op type -> its writer converter's PlannedOp (the registry is complete once loaded)."""
    from edgecc.targets.tflite.ops import load

    return {name: entry.planned for name, entry in load().items() if entry.planned is not None}


def tflite_op(view: NodeView) -> str | None:
    """The TFLite builtin operator an ONNX node becomes in edgecc's writer (None: no TFLite equivalent)."""
    planned = _planned().get(view.op_type)
    return planned(view) if planned is not None else None


def tflite_variants(onnx_op: str) -> tuple[str, ...]:
    """Every TFLite builtin an ONNX op type may become, depending on attributes and shapes (() when none)."""
    planned = _planned().get(onnx_op)
    return planned.ops if planned is not None else ()


def onnx_ops_for(tflite_ops: Collection[str]) -> tuple[str, ...]:
    """ONNX op types whose TFLite operator (for some attributes) is among `tflite_ops`."""
    wanted = set(tflite_ops)
    return tuple(onnx_op for onnx_op, planned in _planned().items() if wanted.intersection(planned.ops))


def writer_expresses(view: NodeView) -> tuple[bool, str]:
    """edgecc's TFLite writer can express the node (edgecc.targets.tflite.writer_supports)."""
    from edgecc.targets.tflite import writer_supports

    ok, reason = writer_supports(view)
    return bool(ok), (reason or "edgecc's TFLite writer cannot express it")


activation_types = tensor_dtypes(
    ("float32", "int8", "uint8"),
    "Activations are float32 (edgecc quantises them) or int8/uint8 (a model quantised already, with Q/DQ nodes).",
    "activation_types",
)


#: Q/DQ nodes of an already-quantised model: the writer folds them into tensor quantisation parameters
QDQ_OPS: dict[str, tuple[Check, ...]] = {"QuantizeLinear": (writer_expresses,), "DequantizeLinear": (writer_expresses,)}


def nhwc_hw(shape: Sequence[Any] | None) -> tuple[int, int] | None:
    """(H, W) of an activation as the TFLite writer lays it out (NCHW -> NHWC for rank 4; rank 3 -> [N, W, C])."""
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    if len(shape) == 4:
        return int(shape[2]), int(shape[3])
    if len(shape) == 3:
        return 1, int(shape[1])
    return 1, 1


def reduced_axes(view: NodeView) -> list[int] | None:
    """The axes a reduction or global pooling node reduces (non-negative), or None when not visible to the planner
    (input shape unknown, or axes given as a tensor input)."""
    shape = view.input_shapes[0] if view.input_shapes else None
    if shape is None:
        return None
    rank = len(shape)
    if view.op_type.startswith("Global"):
        return list(range(2, rank))
    axes = view.attr("axes")
    if axes is None:
        return None if len(view.inputs) > 1 and view.inputs[1] else list(range(rank))
    return [int(a) % rank for a in axes]


def conv_padding(view: NodeView) -> str:
    """TFLite padding of a conv/pool node: VALID when nothing is padded, else SAME."""
    pads = list(view.attr("pads") or [])
    auto_pad = view.attr("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return "SAME"
    return "SAME" if any(pads) else "VALID"


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


def in_table(supported: Collection[str], *, name: str, rule: str, missing: str) -> Check:
    """A check that the TFLite op a node becomes is in a vendor's operator table; `missing` ends the failure
    ("it becomes TFLite OP, which <missing>")."""
    table = frozenset(supported)

    def check(view: NodeView) -> tuple[bool, str]:
        op = tflite_op(view)
        return (True, "") if op in table else (False, f"it becomes TFLite {op}, which {missing}")

    check.__name__, check.__doc__ = name, rule
    return check


def vendor_ops(
    supported: Collection[str],
    table_check: Check,
    *,
    vendor: str,
    rules: Mapping[str, Sequence[Check]] = {},
    common: Sequence[Check] = (),
    extra: Mapping[str, Sequence[Check]] = {},
) -> dict[str, tuple[Check, ...]]:
    """ONNX op -> checks of a TFLite-consuming target, for every ONNX op whose TFLite op is in `supported` (Q/DQ aside,
    see QDQ_OPS): the writer expresses it, `table_check`, the `common` checks, the op's `extra` checks, then the
    vendor's `rules` for each TFLite op it may become (applied when it becomes that op)."""
    ops: dict[str, tuple[Check, ...]] = {}
    for onnx_op in onnx_ops_for(supported):
        if onnx_op in QDQ_OPS:
            continue
        variant_rules = [
            when_tflite_op(op, rule, vendor) for op in sorted(tflite_variants(onnx_op)) for rule in rules.get(op, ())
        ]
        ops[onnx_op] = (writer_expresses, table_check, *common, *extra.get(onnx_op, ()), *variant_rules)
    return ops
