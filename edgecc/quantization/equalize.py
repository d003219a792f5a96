"""Accuracy repair before quantisation: cross-layer equalisation (CLE) and analytic bias correction."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edgecc.quantization.calibrate import TensorStats
    from edgecc.quantization.scheme import QuantScheme

__all__ = ["correct_bias", "equalize_cross_layer", "simulate_weight_quantization"]

log = logging.getLogger(__name__)

SCALE_EQUIVARIANT = ("Relu", "LeakyRelu", "PRelu", "Identity")


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _weight_layout(node: onnx.NodeProto, weight: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The weight as [out, in_per_group, ...] and the group count (Conv), or None."""
    if node.op_type == "Conv":
        return weight, int(_attr(node, "group", 1))
    if node.op_type == "Gemm" and weight.ndim == 2 and not _attr(node, "transA", 0):
        return (weight if _attr(node, "transB", 0) else weight.T), 1
    return None


def _store(model: onnx.ModelProto, tensor: onnx.TensorProto, array: np.ndarray, *, as_out_in: bool, node: onnx.NodeProto) -> None:
    import onnx

    if node.op_type == "Gemm" and not _attr(node, "transB", 0) and as_out_in:
        array = array.T
    tensor.CopyFrom(
        onnx.numpy_helper.from_array(array.astype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)), tensor.name)
    )


def _bias(
    model: onnx.ModelProto, node: onnx.NodeProto, channels: int, inits: dict[str, onnx.TensorProto]
) -> onnx.TensorProto | None:
    """The node's bias initializer, created as zeros when absent (Conv, Gemm)."""
    import numpy as np
    import onnx

    index = 2
    if len(node.input) > index and node.input[index]:
        return inits.get(node.input[index])
    if node.op_type == "Gemm" and (float(_attr(node, "beta", 1.0)) != 1.0):
        return None
    name = f"{node.name or node.output[0]}_bias_edgecc"
    tensor = onnx.numpy_helper.from_array(np.zeros(channels, dtype=np.float32), name)
    model.graph.initializer.append(tensor)
    while len(node.input) < index:
        node.input.append("")
    node.input.append(name)
    inits[name] = model.graph.initializer[-1]
    return model.graph.initializer[-1]


def equalize_cross_layer(model: onnx.ModelProto, *, iterations: int = 20) -> tuple[onnx.ModelProto, list[tuple[str, str]]]:
    """Rescale channels of consecutive Conv/Gemm pairs (through ReLU-like ops) so that their weight ranges match.

    For a pair (A, B) joined through channel i: W_A[i] /= s_i, b_A[i] /= s_i, W_B[:, i] *= s_i with
    s_i = sqrt(r_A[i] / r_B[i]) (r = per-channel max |w|); depthwise B is scaled per output channel.
    Returns the changed model and the equalised pairs.
    """
    import copy

    import numpy as np
    import onnx

    model = copy.deepcopy(model)
    inits = _initializers(model)
    users = _consumers(model)
    graph_outputs = {o.name for o in model.graph.output}
    pairs: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2 or node.input[1] not in inits:
            continue
        tensor = node.output[0]
        chain = [node]
        while True:
            nexts = users.get(tensor, [])
            if len(nexts) != 1 or tensor in graph_outputs:
                break
            nxt = nexts[0]
            if nxt.op_type in SCALE_EQUIVARIANT and (nxt.op_type != "PRelu" or nxt.input[1] in inits):
                chain.append(nxt)
                tensor = nxt.output[0]
                continue
            if nxt.op_type in ("Conv", "Gemm") and nxt.input[0] == tensor and len(nxt.input) > 1 and nxt.input[1] in inits:
                pairs.append((node, nxt))
                break
            break
    done: list[tuple[str, str]] = []
    for _ in range(iterations):
        for first, second in pairs:
            w1_raw = onnx.numpy_helper.to_array(inits[first.input[1]]).astype(np.float64)
            w2_raw = onnx.numpy_helper.to_array(inits[second.input[1]]).astype(np.float64)
            l1, l2 = _weight_layout(first, w1_raw), _weight_layout(second, w2_raw)
            if l1 is None or l2 is None:
                continue
            (w1, g1), (w2, g2) = l1, l2
            channels = w1.shape[0]
            depthwise = g2 > 1 and g2 == w2.shape[0] == channels and w2.shape[1] == 1
            if g1 not in (1, w1.shape[0]):
                continue
            if not depthwise and (g2 != 1 or w2.shape[1] != channels):
                continue
            r1 = np.abs(w1.reshape(channels, -1)).max(axis=1)
            r2 = (
                np.abs(w2.reshape(channels, -1)).max(axis=1)
                if depthwise
                else np.abs(np.moveaxis(w2, 1, 0).reshape(channels, -1)).max(axis=1)
            )
            valid = (r1 > 0) & (r2 > 0)
            s = np.ones(channels)
            s[valid] = np.sqrt(r1[valid] / r2[valid])
            shape1 = (channels,) + (1,) * (w1.ndim - 1)
            w1 = w1 / s.reshape(shape1)
            if depthwise:
                w2 = w2 * s.reshape((channels,) + (1,) * (w2.ndim - 1))
            else:
                w2 = w2 * s.reshape((1, channels) + (1,) * (w2.ndim - 2))
            _store(model, inits[first.input[1]], w1, as_out_in=True, node=first)
            _store(model, inits[second.input[1]], w2, as_out_in=True, node=second)
            if len(first.input) > 2 and first.input[2] in inits:
                b1 = onnx.numpy_helper.to_array(inits[first.input[2]]).astype(np.float64)
                _store(model, inits[first.input[2]], b1 / s, as_out_in=False, node=first)
            if (first.name, second.name) not in done:
                done.append((first.name or first.output[0], second.name or second.output[0]))
    log.info("cross-layer equalisation over %d pair(s)", len(pairs))
    return model, list(dict.fromkeys(done))


def simulate_weight_quantization(weight: np.ndarray, scheme: QuantScheme, axis: int = 0) -> np.ndarray:
    """Quantise-dequantise a weight as the scheme does (int8/uint8, symmetric or not, per channel on `axis` or per tensor)."""
    import numpy as np

    w = weight.astype(np.float64)
    if scheme.per_channel:
        moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    else:
        moved = w.reshape(1, -1)
    if scheme.symmetric_weights:
        qmax = 127.0 if scheme.weight_type == "int8" else 127.5
        t = np.abs(moved).max(axis=1, keepdims=True)
        scale = np.where(t > 0, t / qmax, 1.0)
        q = np.clip(np.round(moved / scale), -qmax, qmax) * scale
    else:
        lo = np.minimum(moved.min(axis=1, keepdims=True), 0)
        hi = np.maximum(moved.max(axis=1, keepdims=True), 0)
        scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0)
        zero = np.round(-lo / scale)
        q = (np.clip(np.round(moved / scale) + zero, 0, 255) - zero) * scale
    if scheme.per_channel:
        shape = list(np.moveaxis(w, axis, 0).shape)
        return np.moveaxis(q.reshape(shape), 0, axis)
    return q.reshape(w.shape)


def correct_bias(
    model: onnx.ModelProto,
    stats: Mapping[str, TensorStats],
    scheme: QuantScheme,
    *,
    skip: set[str] | frozenset[str] = frozenset(),
) -> tuple[onnx.ModelProto, list[str]]:
    """Subtract the expected output shift E[(W_q - W) x] = (W_q - W) E[x] from the bias of each Conv/Gemm.

    E[x] per input channel comes from the calibration statistics; W_q is the weight as the scheme will quantise it.
    """
    import copy

    import numpy as np
    import onnx

    model = copy.deepcopy(model)
    inits = _initializers(model)
    corrected: list[str] = []
    for node in model.graph.node:
        name = node.name or node.output[0]
        if node.op_type not in ("Conv", "Gemm") or name in skip or len(node.input) < 2 or node.input[1] not in inits:
            continue
        s = stats.get(node.input[0])
        if s is None:
            continue
        raw = onnx.numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        layout = _weight_layout(node, raw)
        if layout is None:
            continue
        w, groups = layout
        mean = s.channel_mean() if node.op_type == "Conv" else s.last_mean()
        if mean is None:
            continue
        out_channels = w.shape[0]
        in_per_group = w.shape[1]
        if mean.shape[0] != in_per_group * groups:
            continue
        wq = simulate_weight_quantization(w, scheme, axis=0)
        delta = (wq - w).reshape(out_channels, in_per_group, -1).sum(axis=2)  # [out, in_per_group]
        per_group_out = out_channels // groups
        shift = np.zeros(out_channels)
        for g in range(groups):
            rows = slice(g * per_group_out, (g + 1) * per_group_out)
            shift[rows] = delta[rows] @ mean[g * in_per_group : (g + 1) * in_per_group]
        bias = _bias(model, node, out_channels, inits)
        if bias is None:
            continue
        b = onnx.numpy_helper.to_array(bias).astype(np.float64)
        if b.shape != (out_channels,):
            continue
        bias.CopyFrom(onnx.numpy_helper.from_array((b - shift).astype(np.float32), bias.name))
        corrected.append(name)
    return model, corrected
