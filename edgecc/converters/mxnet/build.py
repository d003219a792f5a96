"""Building the ONNX model from an MXNet symbol and its parameters: checks, the walk over the needed nodes, the heads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.converters.builder import unregistered
from edgecc.converters.mxnet import ops_math, ops_nn, ops_tensor  # noqa: F401  (register converters)
from edgecc.converters.mxnet.graph import OPS, Graph
from edgecc.converters.mxnet.schema import SYMBOL_SUFFIX, ParamFile, Symbol
from edgecc.converters.options import ConvertOptions
from edgecc.errors import InvalidInputError, UnsupportedOperator, UsageError

if TYPE_CHECKING:
    import onnx

__all__ = ["build_model"]


def _check_ops(symbol: Symbol) -> None:
    missing = unregistered(((n.name, n.op) for n in symbol.nodes if not n.is_var), OPS, "no converter")
    if missing:
        raise UnsupportedOperator(missing, where=symbol.path, path=symbol.path)


def _check_params(symbol: Symbol, params: ParamFile) -> None:
    """Shapes recorded in the symbol (`__shape__` of variables) must match the stored arrays."""
    for node in symbol.nodes:
        if node.is_var and node.name in params.arrays and node.attrs.has("__shape__"):
            want = node.attrs.ints("__shape__")
            have = tuple(params.arrays[node.name].shape)
            if want and all(d > 0 for d in want) and tuple(want) != have:
                raise InvalidInputError(
                    f"{symbol.path}: variable '{node.name}' has shape {tuple(want)} in the symbol, {have} in {params.path}",
                    path=symbol.path,
                )


def build_model(symbol: Symbol, params: ParamFile, options: ConvertOptions) -> onnx.ModelProto:
    """Walk the symbol in order and build the ONNX model."""
    _check_ops(symbol)
    _check_params(symbol, params)
    ctx = Graph(symbol, params, options)
    needed = _needed_nodes(symbol)
    for node in symbol.nodes:
        if node.is_var or node.index not in needed:
            continue
        outputs = OPS.get(node.op)(ctx, node)
        for index, name in enumerate(outputs):
            ctx.tensors[(node.index, index)] = name
    outputs = []
    for source, index in symbol.heads:
        node = symbol.nodes[source]
        if node.is_var:
            name = ctx.inp(_HeadProbe(source, index), 0)  # a head that is a variable
        else:
            name = ctx.tensors.get((source, index))
        if name is None:
            raise InvalidInputError(
                f"{symbol.path}: head refers to output {index} of '{node.name}', which does not exist", path=symbol.path
            )
        outputs.append(name)
    inputs = ctx.ordered_inputs()
    unknown_specs = [s.name for s in options.inputs if s.name not in {i.name for i in inputs}]
    if unknown_specs:
        raise UsageError(
            f"--input names {', '.join(unknown_specs)}, not an input of {symbol.path}",
            hint=f"inputs: {', '.join(i.name for i in inputs) or 'none'}",
        )
    return ctx.finish(
        Path(symbol.path).name.replace(SYMBOL_SUFFIX, ""), [ctx.output_info(name) for name in outputs], inputs=inputs
    )


class _HeadProbe:
    """A stand-in node whose only input is a head entry, to resolve variables used as outputs."""

    def __init__(self, source: int, index: int) -> None:
        self.inputs = [(source, index)]
        self.name = "<heads>"
        self.op = "heads"


def _needed_nodes(symbol: Symbol) -> set[int]:
    """Nodes the heads depend on (dead branches are skipped)."""
    needed: set[int] = set()
    stack = [source for source, _ in symbol.heads]
    while stack:
        index = stack.pop()
        if index in needed:
            continue
        needed.add(index)
        node = symbol.nodes[index]
        inputs = (
            node.inputs[:1]
            if node.op in ("SoftmaxOutput", "Softmax", "LinearRegressionOutput", "LogisticRegressionOutput")
            else node.inputs
        )
        stack.extend(source for source, _ in inputs)
    return needed
