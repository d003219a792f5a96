"""Make tf2onnx's output deterministic: canonical node order and names for the tensors tf2onnx generates.

tf2onnx walks Python sets while it optimises, so node order and the counters in the
names it invents (`Unsqueeze__55`, `const_fold_opt__160`) change from one process to the
next. Here nodes are put in a depth-first order from the graph outputs, and every
generated name is renumbered in that order; TensorFlow's own tensor names and the graph
inputs and outputs are kept.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

__all__ = ["canonicalize"]

_GENERATED = re.compile(r"__\d+")
_PORT = re.compile(r":\d+$")


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    from onnx import AttributeProto

    found = []
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            found.append(attr.g)
        elif attr.type == AttributeProto.GRAPHS:
            found.extend(attr.graphs)
    return found


def _outer_names(graph: onnx.GraphProto) -> list[str]:
    """Names a subgraph reads from enclosing scopes (in order of use)."""
    local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    found: list[str] = []
    for node in graph.node:
        for name in list(node.input) + [n for sub in _subgraphs(node) for n in _outer_names(sub)]:
            if name and name not in local and name not in found:
                found.append(name)
        local.update(node.output)
    return found


def _dependencies(node: onnx.NodeProto) -> list[str]:
    return list(node.input) + [n for sub in _subgraphs(node) for n in _outer_names(sub)]


def _order(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes in depth-first post-order from the outputs (inputs, then names used by subgraphs); unreached nodes last."""
    producer = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                producer[name] = index
    deps = [_dependencies(node) for node in graph.node]
    seen: set[int] = set()
    order: list[int] = []
    for root in [o.name for o in graph.output]:
        if root not in producer:
            continue
        stack = [(producer[root], 0)]
        while stack:
            index, next_input = stack.pop()
            if next_input == 0 and index in seen:
                continue
            seen.add(index)
            inputs = deps[index]
            while next_input < len(inputs):
                name = inputs[next_input]
                next_input += 1
                child = producer.get(name)
                if child is not None and child not in seen:
                    stack.append((index, next_input))
                    stack.append((child, 0))
                    break
            else:
                order.append(index)
    order.extend(i for i in range(len(graph.node)) if i not in seen)  # only dead nodes: -O1 removes them
    return [graph.node[i] for i in order]


def _collect(graph: onnx.GraphProto, names: list[str]) -> None:
    """Every tensor and node name in canonical order (recursing into subgraphs)."""
    ordered = _order(graph)
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)
    for node in graph.node:
        names.extend(node.input)
        for sub in _subgraphs(node):
            names.extend(i.name for i in sub.input)
            _collect(sub, names)
        names.extend(node.output)
        names.append(node.name)
    first_use = {}
    for position, name in enumerate(names):
        first_use.setdefault(name, position)
    inits = sorted(graph.initializer, key=lambda t: first_use.get(t.name, len(names)))
    copies_init = [type(t)() for t in inits]
    for copy, tensor in zip(copies_init, inits):
        copy.CopyFrom(tensor)
    del graph.initializer[:]
    graph.initializer.extend(copies_init)
    names.extend(t.name for t in graph.initializer)


def _apply(graph: onnx.GraphProto, rename: dict[str, str], node_names: dict[str, str] | None = None) -> None:
    node_names = rename if node_names is None else node_names
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
        node.name = node_names.get(node.name, node.name)
        if not node.domain:
            node.ClearField("domain")  # "" set explicitly or not at all: same meaning, same bytes
        for sub in _subgraphs(node):
            _apply(sub, rename, node_names)
    for tensor in graph.initializer:
        tensor.name = rename.get(tensor.name, tensor.name)
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = rename.get(value.name, value.name)
    infos = sorted(graph.value_info, key=lambda v: v.name)
    copies = [type(v)() for v in infos]
    for copy, value in zip(copies, infos):
        copy.CopyFrom(value)
    del graph.value_info[:]
    graph.value_info.extend(copies)


_QDQ = ("QuantizeLinear", "DequantizeLinear")


def _nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Every node, subgraphs included, in canonical order."""
    found = []
    for node in graph.node:
        found.append(node)
        for sub in _subgraphs(node):
            found.extend(_nodes(sub))
    return found


def canonicalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Reorder and rename in place (and return) so that equal conversions give byte-identical models.

    Nodes tf2onnx made up (their name or an output holds `__N`) and its Q/DQ nodes are renamed
    `<OpType>__P` after their position P in canonical order, outputs `<OpType>__P:K`; initializers
    are merged by content and named after their first consumer. TensorFlow's own names stay.
    """
    graph = model.graph
    _collect(graph, [])
    protected = {v.name for v in list(graph.input) + list(graph.output)}
    rename: dict[str, str] = {}
    node_names: dict[str, str] = {}
    for position, node in enumerate(_nodes(graph)):
        generated = node.op_type in _QDQ or _GENERATED.search(node.name) or any(_GENERATED.search(o) for o in node.output)
        if not generated:
            continue
        node_names[node.name] = f"{node.op_type}__{position}"
        for index, name in enumerate(node.output):
            if name and name not in protected:
                rename[name] = f"{node.op_type}__{position}:{index}"
    _apply(graph, rename, node_names)
    _initializers(graph)
    for node in _nodes(graph):
        for sub in _subgraphs(node):
            _initializers(sub)
    return model


def _initializers(graph: onnx.GraphProto) -> None:
    """Merge initializers with equal content and name each after its first consumer (`node/inputK`).

    Which of two equal constants tf2onnx keeps, and under which name, depends on set order;
    merging by content and naming by the (canonical) consumer removes that choice.
    """
    protected = {v.name for v in list(graph.input) + list(graph.output)}
    first: dict[tuple[int, tuple[int, ...], bytes], str] = {}
    merge: dict[str, str] = {}
    for tensor in graph.initializer:
        if tensor.name in protected:
            continue
        copy = type(tensor)()
        copy.CopyFrom(tensor)
        copy.name = ""
        key = (tensor.data_type, tuple(tensor.dims), copy.SerializeToString())
        if key in first:
            merge[tensor.name] = first[key]
        else:
            first[key] = tensor.name
    if merge:
        kept = [t for t in graph.initializer if t.name not in merge]
        copies = [type(t)() for t in kept]
        for copy, tensor in zip(copies, kept):
            copy.CopyFrom(tensor)
        del graph.initializer[:]
        graph.initializer.extend(copies)
        _apply(graph, merge, {})
    consumer: dict[str, str] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumer.setdefault(name, f"{node.name}/input{index}")
    taken = {n for node in graph.node for n in node.output} | protected
    rename: dict[str, str] = {}
    for tensor in graph.initializer:
        if tensor.name in protected or tensor.name not in consumer:
            continue
        candidate = consumer[tensor.name]
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        rename[tensor.name] = candidate
    _apply(graph, rename, {})
