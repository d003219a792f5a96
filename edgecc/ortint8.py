"""int8 QDQ models on the host's onnxruntime with their exact integer meaning, on every x86 CPU.

onnxruntime fuses QDQ patterns into integer kernels (QLinearConv, QLinearMatMul, ...). On x86 CPUs without VNNI its
u8s8 kernels (which also serve s8 activations, shifted to u8) use VPMADDUBSW, whose int16 pair sums saturate
(documented by onnxruntime): int8 convolutions move by up to half their output range. Its u8u8 kernels widen to
int16 first and are exact everywhere. A probe run once per process decides how int8 models run here:

- `fused`: as they are (the fused kernels are exact on this CPU: VNNI, Arm);
- `unsigned`: signed int8 tensors rewritten to uint8 with zero points + 128 (the same real values, the exact u8u8
  kernels; inputs and outputs converted at the session's edge), where every int8 tensor is in a QDQ domain the
  rewrite understands;
- `reference`: QDQ fusion off (`session.disable_quant_qdq`: DequantizeLinear, float op, QuantizeLinear), otherwise.

`EDGECC_ORT_INT8=fused|unsigned|reference` overrides the probe.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["HOST_INT8_MODES", "host_int8_mode", "to_unsigned"]

HOST_INT8_MODES = ("fused", "unsigned", "reference")

# ops whose int8 data inputs may be uint8 with the same shift: they move, select or compare values, never compute new
# ones (input positions that carry quantised values; None: all)
_PASS_THROUGH: dict[str, tuple[int, ...] | None] = {
    "Identity": (0,),
    "Reshape": (0,),
    "Transpose": (0,),
    "Squeeze": (0,),
    "Unsqueeze": (0,),
    "Flatten": (0,),
    "Concat": None,
    "Slice": (0,),
    "Split": (0,),
    "Gather": (0,),
    "Expand": (0,),
    "Tile": (0,),
    "MaxPool": (0,),
    "DepthToSpace": (0,),
    "SpaceToDepth": (0,),
    "Pad": (0, 2),
    "ReduceMax": (0,),
    "ReduceMin": (0,),
}
_INT8, _UINT8 = 3, 2  # onnx.TensorProto.INT8 / UINT8


def _saturation_probe() -> "tuple[onnx.ModelProto, dict[str, np.ndarray], tuple[float, ...]]":
    """An int8 QDQ 1x1 Conv then MatMul over 64 channels of extreme values, as edgecc's quantiser writes them: where
    onnxruntime's fused u8s8 kernels saturate (VPMADDUBSW's int16 pair sums), their result leaves the exact one by far
    more than one step."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    channels, width = 64, 4
    x = rng.choice(np.array([-128.0, -127.0, 126.0, 127.0], np.float32), size=(1, channels, 1, width))
    out_scale = np.array(channels * 127.0 * 127.0 / 100.0, np.float32)
    tensors = {
        "x_scale": np.array(1.0, np.float32),
        "x_zero": np.array(0, np.int8),
        "w_q": rng.choice(np.array([-127, 127], np.int8), size=(8, channels, 1, 1)),
        "w_scale": np.ones(8, np.float32),
        "w_zero": np.zeros(8, np.int8),
        "b_q": np.zeros(8, np.int32),
        "b_scale": np.ones(8, np.float32),
        "b_zero": np.zeros(8, np.int32),
        "c_scale": out_scale,
        "c_zero": np.array(0, np.int8),
        "shape": np.array([8, width], np.int64),
        "m_q": rng.choice(np.array([-127, 127], np.int8), size=(width, 8)),
        "m_scale": np.ones(8, np.float32),
        "m_zero": np.zeros(8, np.int8),
        "y_scale": np.array(out_scale * 127.0 * 8 / 60.0, np.float32),
        "y_zero": np.array(0, np.int8),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], axis=0),
        helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zero"], ["b"], axis=0),
        helper.make_node("Conv", ["x_dq", "w", "b"], ["c"]),
        helper.make_node("QuantizeLinear", ["c", "c_scale", "c_zero"], ["c_q"]),
        helper.make_node("DequantizeLinear", ["c_q", "c_scale", "c_zero"], ["c_dq"]),
        helper.make_node("Reshape", ["c_dq", "shape"], ["flat"]),
        helper.make_node("QuantizeLinear", ["flat", "c_scale", "c_zero"], ["flat_q"]),
        helper.make_node("DequantizeLinear", ["flat_q", "c_scale", "c_zero"], ["flat_dq"]),
        helper.make_node("DequantizeLinear", ["m_q", "m_scale", "m_zero"], ["m"], axis=1),
        helper.make_node("MatMul", ["flat_dq", "m"], ["mm"]),
        helper.make_node("QuantizeLinear", ["mm", "y_scale", "y_zero"], ["y_q"]),
        helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "int8_saturation_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in tensors.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model, {"x": x}, (float(tensors["y_scale"]),)


def _probe_exact(model: "onnx.ModelProto", feeds: "dict[str, np.ndarray]", steps: "tuple[float, ...]") -> bool:
    """Whether the fused session of `model` agrees with its QDQ semantics (unfused session) within one step."""
    import numpy as np
    import onnxruntime as ort

    data = model.SerializeToString()
    results = []
    for disable in ("0", "1"):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.disable_quant_qdq", disable)
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        results.append(session.run(None, feeds))
    return all(np.allclose(a, b, rtol=0.0, atol=1.01 * step) for a, b, step in zip(*results, steps))


@functools.lru_cache(maxsize=1)
def _probed_mode() -> str:
    model, feeds, steps = _saturation_probe()
    if _probe_exact(model, feeds, steps):
        return "fused"
    unsigned = to_unsigned(model)
    if unsigned is not None and _probe_exact(unsigned, feeds, steps):
        return "unsigned"
    return "reference"


def host_int8_mode() -> str:
    """How this process runs int8 QDQ models on onnxruntime: `fused`, `unsigned` or `reference` (module docstring)."""
    mode = os.environ.get("EDGECC_ORT_INT8", "auto").strip().lower()
    return mode if mode in HOST_INT8_MODES else _probed_mode()


def _has_int8(model: "onnx.ModelProto") -> bool:
    """Whether a model holds int8 tensors at a glance: an int8 initializer or input, or a Q/DQ with an int8 zero point."""
    graph = model.graph
    if any(t.data_type == _INT8 for t in graph.initializer) or any(v.type.tensor_type.elem_type == _INT8 for v in graph.input):
        return True
    initializers = {i.name: i for i in graph.initializer}
    return any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear")
        and len(n.input) > 2
        and n.input[2] in initializers
        and initializers[n.input[2]].data_type == _INT8
        for n in graph.node
    )


def to_unsigned(model: "onnx.ModelProto") -> "onnx.ModelProto | None":
    """The same model with every int8 tensor as uint8 + 128 (zero points too), or None where the rewrite cannot tell
    that every int8 tensor is a quantised value only moved between Q/DQ and pass-through ops. A model that quantises
    to no int8 tensor is returned as it is."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from edgecc.onnxutil import infer_shapes

    if not _has_int8(model):
        return model
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in model.graph.node for a in n.attribute):
        return None
    try:
        typed = infer_shapes(model)
    except Exception:  # noqa: BLE001 -- a model shape inference cannot type is left to the reference semantics
        return None
    graph = typed.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    initializers = {i.name: i for i in graph.initializer}
    types.update({name: t.data_type for name, t in initializers.items()})
    signed = {name for name, elem in types.items() if elem == _INT8}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            if any(name in signed for name in [*node.input, *node.output]):
                return None
            continue
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            if any(name in signed for name in node.input[1:2]):
                return None
            continue
        data = _PASS_THROUGH.get(node.op_type, ())
        if node.op_type == "Resize" and _attribute(node, "mode", b"nearest") == b"nearest":
            data = (0,)
        positions = range(len(node.input)) if data is None else data
        if any(name in signed for i, name in enumerate(node.input) if i not in positions):
            return None
        moved = any(node.input[i] in signed for i in positions if i < len(node.input))
        if any(name in signed for name in node.output) and not moved:
            return None
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(typed)
    graph = rewritten.graph
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == _INT8:
            shifted = (numpy_helper.to_array(tensor).astype(np.int16) + 128).astype(np.uint8)
            graph.initializer[index].CopyFrom(numpy_helper.from_array(shifted, tensor.name))
    for value in [*graph.value_info, *graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == _INT8:
            value.type.tensor_type.elem_type = _UINT8
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in signed and (len(node.input) < 3 or not node.input[2]):
            name = f"{node.input[0]}__zero_u8"
            graph.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), name))
            while len(node.input) < 2:
                node.input.append("")
            if len(node.input) == 2:
                node.input.append(name)
            else:
                node.input[2] = name
    return rewritten


def _attribute(node: "onnx.NodeProto", name: str, default: object) -> object:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)
