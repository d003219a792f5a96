"""MXNet frontend: `prefix-symbol.json` + `prefix-NNNN.params` to ONNX, read by edgecc itself (no MXNet needed)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.converters.options import ConvertOptions
from edgecc.errors import InvalidInputError, UnsupportedNode, UnsupportedOperator, UsageError

if TYPE_CHECKING:
    import onnx

    from edgecc.converters.mxnet.params import ParamFile
    from edgecc.converters.mxnet.symbol import Symbol

__all__ = ["DESCRIPTION", "EXTRA", "convert", "describe", "detect", "resolve_files", "supported_ops"]

log = logging.getLogger(__name__)

DESCRIPTION = "MXNet: prefix-symbol.json + prefix-NNNN.params (read without MXNet)"
EXTRA = None

_SYMBOL_SUFFIX = "-symbol.json"


def _looks_like_symbol(path: Path) -> bool:
    if not path.is_file() or path.suffix != ".json":
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return b'"nodes"' in head and (b'"op"' in head or path.name.endswith(_SYMBOL_SUFFIX))


_PARAMS_RE = re.compile(r"^(?P<prefix>.*)-(?P<epoch>[0-9]{4})\.params$")


def _looks_like_params(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return head == (0x112).to_bytes(8, "little")


def detect(paths: Sequence[str]) -> bool:
    """A symbol JSON (by content), a prefix whose `prefix-symbol.json` exists, or a `.params` list file."""
    first = Path(paths[0])
    if _looks_like_symbol(first) or _looks_like_params(first):
        return True
    return not first.exists() and _looks_like_symbol(Path(str(first) + _SYMBOL_SUFFIX))


def resolve_files(paths: Sequence[str], options: ConvertOptions) -> tuple[str, str]:
    """(symbol file, params file) from `sym.json params`, `sym.json --epoch N` or `prefix [--epoch N]`."""
    first = paths[0]
    match = _PARAMS_RE.match(first)
    if len(paths) == 1 and match and _looks_like_params(Path(first)):
        symbol = match.group("prefix") + _SYMBOL_SUFFIX
        if not Path(symbol).is_file():
            raise UsageError(f"'{first}' holds MXNet parameters; its symbol file '{symbol}' does not exist", hint="give the symbol file first")
        return symbol, first
    if _looks_like_params(Path(first)):
        raise UsageError(f"'{first}' holds MXNet parameters only", hint="give the symbol file first: edgecc convert prefix-symbol.json prefix-NNNN.params")
    if _looks_like_symbol(Path(first)):
        symbol = first
        prefix = first[: -len(_SYMBOL_SUFFIX)] if first.endswith(_SYMBOL_SUFFIX) else first[: -len(".json")]
    else:
        symbol = first + _SYMBOL_SUFFIX
        prefix = first
    if len(paths) > 2:
        raise UsageError("MXNet takes a symbol file and one params file", hint="edgecc convert prefix-symbol.json prefix-0000.params")
    if len(paths) == 2:
        if options.epoch is not None and not paths[1].endswith(f"-{options.epoch:04d}.params"):
            raise UsageError(f"--epoch {options.epoch} conflicts with the params file '{paths[1]}'", hint="give one of them")
        return symbol, paths[1]
    if options.epoch is not None:
        params = f"{prefix}-{options.epoch:04d}.params"
        if not Path(params).exists():
            raise UsageError(f"params file '{params}' for --epoch {options.epoch} does not exist", hint="check the prefix and epoch")
        return symbol, params
    found = sorted(Path(prefix).parent.glob(Path(prefix).name + "-[0-9][0-9][0-9][0-9].params"))
    if len(found) == 1:
        return symbol, str(found[0])
    listed = ", ".join(p.name for p in found) or "none found"
    raise UsageError(
        f"which params file goes with '{symbol}'? ({listed})",
        hint="give it as the second argument or pick one with --epoch N",
    )


def supported_ops() -> list[str]:
    """Every MXNet operator name with a converter."""
    from edgecc.converters.mxnet import ops_math, ops_nn, ops_tensor  # noqa: F401  (fill the registry)
    from edgecc.converters.mxnet.graph import OPS

    return OPS.names()


def _load(paths: Sequence[str], options: ConvertOptions) -> tuple[Symbol, ParamFile]:
    from edgecc.converters.mxnet.params import read_params
    from edgecc.converters.mxnet.symbol import read_symbol

    symbol_path, params_path = resolve_files(paths, options)
    return read_symbol(symbol_path), read_params(params_path)


def _check_ops(symbol: Symbol) -> None:
    from edgecc.converters.mxnet.graph import OPS

    supported_ops()
    missing = [UnsupportedNode(n.name, n.op, "no converter") for n in symbol.nodes if not n.is_var and n.op not in OPS]
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
                    f"{symbol.path}: variable '{node.name}' has shape {tuple(want)} in the symbol, "
                    f"{have} in {params.path}",
                    path=symbol.path,
                )


def build(symbol: Symbol, params: ParamFile, options: ConvertOptions) -> onnx.ModelProto:
    """Walk the symbol in order and build the ONNX model."""
    from onnx import helper

    from edgecc.converters.mxnet.graph import OPS, OPSET, GraphBuilder

    _check_ops(symbol)
    _check_params(symbol, params)
    ctx = GraphBuilder(symbol, params, options)
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
            raise InvalidInputError(f"{symbol.path}: head refers to output {index} of '{node.name}', which does not exist", path=symbol.path)
        outputs.append(name)
    inputs = [ctx.inputs[k] for k in sorted(ctx.inputs)]
    unknown_specs = [s.name for s in options.inputs if s.name not in {i.name for i in inputs}]
    if unknown_specs:
        raise UsageError(
            f"--input names {', '.join(unknown_specs)}, not an input of {symbol.path}",
            hint=f"inputs: {', '.join(i.name for i in inputs) or 'none'}",
        )
    output_infos = [ctx.value_info(name) for name in outputs]
    model = ctx.model
    graph = model.graph
    graph.name = Path(symbol.path).name.replace(_SYMBOL_SUFFIX, "")
    graph.node.extend(ctx.nodes)
    graph.input.extend(inputs)
    graph.output.extend(output_infos)
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.producer_name = "edgecc"
    model.ir_version = 8
    return model


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
        inputs = node.inputs[:1] if node.op in ("SoftmaxOutput", "Softmax", "LinearRegressionOutput", "LogisticRegressionOutput") else node.inputs
        stack.extend(source for source, _ in inputs)
    return needed


def convert(paths: Sequence[str], options: ConvertOptions) -> onnx.ModelProto:
    """Read the symbol and params files and build an opset-17 ONNX model."""
    symbol, params = _load(paths, options)
    return build(symbol, params, options)


def describe(paths: Sequence[str], options: ConvertOptions) -> dict[str, Any]:
    """Operators, parameter counts and inputs, without converting."""
    symbol, params = _load(paths, options)
    ops: dict[str, int] = {}
    for node in symbol.nodes:
        if not node.is_var:
            ops[node.op] = ops.get(node.op, 0) + 1
    return {
        "kind": "MXNet symbol",
        "symbol": symbol.path,
        "params": params.path,
        "operators": [f"{op} x{count}" for op, count in sorted(ops.items())],
        "inputs": [n.name for n in symbol.nodes if n.is_var and n.name not in params.arrays],
        "parameters": int(sum(a.size for a in params.arrays.values())),
        "parameter_bytes": params.nbytes(),
        "unsupported": sorted({n.op for n in symbol.nodes if not n.is_var and n.op not in set(supported_ops())}),
    }
