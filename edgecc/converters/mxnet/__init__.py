"""MXNet frontend: `prefix-symbol.json` + `prefix-NNNN.params` to ONNX, read by edgecc itself (no MXNet needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.converters.mxnet.schema import SYMBOL_SUFFIX, looks_like_params, looks_like_symbol
from edgecc.converters.options import ConvertOptions

if TYPE_CHECKING:
    import onnx

__all__ = ["DESCRIPTION", "EXTRA", "convert", "describe", "detect", "supported_ops"]

DESCRIPTION = "MXNet: prefix-symbol.json + prefix-NNNN.params (read without MXNet)"
EXTRA = None


def detect(paths: Sequence[str]) -> bool:
    """A symbol JSON (by content), a prefix whose `prefix-symbol.json` exists, or a `.params` list file."""
    first = Path(paths[0])
    if looks_like_symbol(first) or looks_like_params(first):
        return True
    return not first.exists() and looks_like_symbol(Path(str(first) + SYMBOL_SUFFIX))


def supported_ops() -> list[str]:
    """Every MXNet operator name with a converter."""
    from edgecc.converters.mxnet import build  # noqa: F401  (its ops_* imports fill the registry)
    from edgecc.converters.mxnet.graph import OPS

    return OPS.names()


def convert(paths: Sequence[str], options: ConvertOptions) -> onnx.ModelProto:
    """Read the symbol and params files and build an opset-17 ONNX model."""
    from edgecc.converters.mxnet.build import build_model
    from edgecc.converters.mxnet.reader import load

    symbol, params = load(paths, options)
    return build_model(symbol, params, options)


def describe(paths: Sequence[str], options: ConvertOptions) -> dict[str, Any]:
    """Operators, parameter counts and inputs, without converting."""
    from edgecc.converters.mxnet.reader import load

    symbol, params = load(paths, options)
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
