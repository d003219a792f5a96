"""Small real ONNX models with control flow (nested `If`) at any opset, built with onnx.helper for the tests.

Each branch computes from the outer input `x` (shape Nx4) with the Reduce*/Split forms of its opset, declares its
output without a shape (as exporters often do) and names it `y` like the enclosing graph's own output, so inner
names repeat outer ones (allowed: they live in different scopes).
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def _shapeless(name: str) -> onnx.ValueInfoProto:
    value = onnx.ValueInfoProto()
    value.name = name
    value.type.tensor_type.elem_type = F
    return value


def _branch(name: str, opset: int, op: str, inner: onnx.NodeProto | None = None) -> onnx.GraphProto:
    nodes = [inner] if inner is not None else []
    src = "inner_out" if inner is not None else "x"
    t, r, s = f"{name}_t", f"{name}_r", f"{name}_s"
    nodes.append(helper.make_node(op, [src, src], [t], name=f"{name}_{op}"))
    if opset >= 18:  # ReduceMean takes its axes as an input from opset 18 on
        nodes.append(helper.make_node("Constant", [], [f"{name}_axes"], value=helper.make_tensor("a", I64, [1], [1])))
        nodes.append(helper.make_node("ReduceMean", [t, f"{name}_axes"], [r], keepdims=1, name=f"{name}_mean"))
        nodes.append(helper.make_node("Split", [t], [f"{name}_a", f"{name}_b"], axis=1, num_outputs=2, name=f"{name}_split"))
    else:
        nodes.append(helper.make_node("ReduceMean", [t], [r], axes=[1], keepdims=1, name=f"{name}_mean"))
        split = [helper.make_node("Constant", [], [f"{name}_sizes"], value=helper.make_tensor("s", I64, [2], [2, 2]))]
        if opset >= 13:
            nodes += split
            nodes.append(
                helper.make_node("Split", [t, f"{name}_sizes"], [f"{name}_a", f"{name}_b"], axis=1, name=f"{name}_split")
            )
        else:
            nodes.append(helper.make_node("Split", [t], [f"{name}_a", f"{name}_b"], axis=1, split=[2, 2], name=f"{name}_split"))
    if opset >= 13:  # ReduceSum takes its axes as an input from opset 13 on
        nodes.append(helper.make_node("Constant", [], [f"{name}_ax"], value=helper.make_tensor("b", I64, [1], [1])))
        nodes.append(helper.make_node("ReduceSum", [t, f"{name}_ax"], [s], keepdims=1, name=f"{name}_sum"))
    else:
        nodes.append(helper.make_node("ReduceSum", [t], [s], axes=[1], keepdims=1, name=f"{name}_sum"))
    nodes.append(helper.make_node("Concat", [f"{name}_b", f"{name}_a"], [f"{name}_swapped"], axis=1, name=f"{name}_cat"))
    nodes.append(helper.make_node("Add", [f"{name}_swapped", r], [f"{name}_y0"], name=f"{name}_add"))
    nodes.append(helper.make_node("Sub", [f"{name}_y0", s], ["y"], name=f"{name}_sub"))
    return helper.make_graph(nodes, name, [], [_shapeless("y")])


def nested_if_model(opset: int, *, batch: int | str = "N") -> onnx.ModelProto:
    """`out = relu(If(max(x) > 0, then: If(max(x) < 0.5, ...), else: ...))` with one `If` nested in a branch."""
    inner = helper.make_node(
        "If",
        ["small"],
        ["inner_out"],
        name="inner_if",
        then_branch=_branch("inner_then", opset, "Add"),
        else_branch=_branch("inner_else", opset, "Mul"),
    )
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0, name="max"),  # every axis: the same at every opset
        helper.make_node("Greater", ["m", "zero"], ["positive"], name="positive"),
        helper.make_node("Less", ["m", "half"], ["small"], name="small"),
        helper.make_node(
            "If",
            ["positive"],
            ["y"],
            name="outer_if",
            then_branch=_branch("then", opset, "Add", inner),
            else_branch=_branch("else", opset, "Sub"),
        ),
        helper.make_node("Relu", ["y"], ["out"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        f"nested_if_{opset}",
        [helper.make_tensor_value_info("x", F, [batch, 4])],
        [helper.make_tensor_value_info("out", F, [batch, 4])],
        [helper.make_tensor("zero", F, [], [0.0]), helper.make_tensor("half", F, [], [0.5])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model
