"""The ONNX graph being built from an MXNet symbol: MXNet tensor names, parameters, inputs made on first use, shapes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgecc.converters.builder import GraphBuilder
from edgecc.converters.mxnet.reader import DTYPE_FLAGS
from edgecc.converters.mxnet.schema import ParamFile, Symbol, SymNode
from edgecc.converters.options import ConvertOptions
from edgecc.errors import InvalidInputError, UsageError
from edgecc.registry import Registry

__all__ = ["OPS", "Converter", "Graph", "output_name", "register"]

Converter = Callable[["Graph", SymNode], list[str]]
#: MXNet operator name -> converter (ctx, node) -> ONNX tensor names of the node's outputs
OPS: Registry[Converter] = Registry("MXNet operator")

_SMALL = 64  # elements: smaller parameters go to shape inference with their values, larger ones leave memory once copied


def register(*names: str) -> Callable[[Converter], Converter]:
    """Register one converter under one or more MXNet operator names."""

    def decorator(fn: Converter) -> Converter:
        for name in names:
            OPS.register(name, fn)
        return fn

    return decorator


def output_name(node: SymNode, index: int, count: int) -> str:
    """MXNet's output naming: `name_output`, or `name_output0..` for several visible outputs."""
    if node.is_var:
        return node.name
    return f"{node.name}_output" if count == 1 else f"{node.name}_output{index}"


class Graph(GraphBuilder):
    """The graph of a symbol walked in order; converters read inputs and parameters through it."""

    infer_whole_graph = True  # inputs often have symbolic dims (N, H, W): keep the ones inference invents consistent
    infer_inline_limit = _SMALL

    def __init__(self, symbol: Symbol, params: ParamFile, options: ConvertOptions) -> None:
        super().__init__()
        self.symbol = symbol
        self.params = params
        self.options = options
        self.path = symbol.path
        self.tensors: dict[tuple[int, int], str] = {}  # (node index, output index) -> ONNX tensor
        self._consumers = symbol.consumers()
        self._input_index: dict[str, int] = {}  # graph input -> index of its variable node

    # --- inputs and parameters -----------------------------------------------------------
    def inp(self, node: SymNode, position: int) -> str:
        """The ONNX tensor feeding input `position` of `node` (graph inputs are created on first use)."""
        if position >= len(node.inputs):
            raise InvalidInputError(f"{self.path}: node '{node.name}' ({node.op}) has no input #{position}", path=self.path)
        source, index = node.inputs[position]
        key = (source, index)
        if key in self.tensors:
            return self.tensors[key]
        src = self.symbol.nodes[source]
        if not src.is_var:
            raise InvalidInputError(
                f"{self.path}: node '{node.name}' reads output {index} of '{src.name}', which does not exist", path=self.path
            )
        if src.name in self.params.arrays:
            return self._param_tensor(src.name)
        self.tensors[key] = self._graph_input(src)
        return self.tensors[key]

    def num_inputs(self, node: SymNode) -> int:
        """How many inputs the node has."""
        return len(node.inputs)

    def _param_tensor(self, name: str) -> str:
        if name not in self.initializers:
            array = self.params.arrays[name]
            self.add_initializer(name, array)
            if array.size > _SMALL:
                self.params.release(name)
        return name

    def _graph_input(self, src: SymNode) -> str:
        if src.name in self._input_index:  # two variables of one name are one argument in MXNet
            return src.name
        self._input_index[src.name] = src.index
        spec = self.options.input_spec(src.name)
        shape: Sequence[Any] | None = None
        if spec is not None and spec.shape is not None:
            shape = spec.shape
        elif src.attrs.has("__shape__"):
            dims = src.attrs.ints("__shape__")
            if dims and all(d > 0 for d in dims):
                shape = dims
        if shape is None:
            shape = self._guess_shape(src)
        if shape is None:
            raise UsageError(
                f"{self.path}: the shape of input '{src.name}' is not in the symbol",
                hint=f"give it with --input {src.name}:DIMS (e.g. {src.name}:1x3x224x224)",
            )
        elem = TensorProto.FLOAT
        if spec is not None and spec.dtype:
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
        elif src.attrs.has("__dtype__"):
            dtype = DTYPE_FLAGS.get(src.attrs.int("__dtype__"))
            if dtype is not None:
                elem = helper.np_dtype_to_tensor_dtype(dtype)
        return self.add_input(src.name, elem, shape)

    def _guess_shape(self, src: SymNode) -> list[Any] | None:
        """Rank and channels from the first consumer when the user gave no --input."""
        for consumer, position in self._consumers.get(src.index, []):
            if position != 0:
                continue
            if consumer.op in ("Convolution", "Deconvolution"):
                kernel = consumer.attrs.ints("kernel")
                weight = self._maybe_param(consumer, 1)
                channels: Any = "C"
                if weight is not None and consumer.op == "Convolution":
                    channels = int(weight.shape[1]) * consumer.attrs.int("num_group", 1)
                elif weight is not None:
                    channels = int(weight.shape[0])
                spatial = ["H", "W", "D"][: len(kernel)] if len(kernel) <= 2 else ["D", "H", "W"]
                return ["N", channels, *spatial]
            if consumer.op == "FullyConnected":
                weight = self._maybe_param(consumer, 1)
                if weight is not None and weight.ndim == 2:
                    return ["N", int(weight.shape[1])]
        return None

    def _maybe_param(self, node: SymNode, position: int) -> np.ndarray | None:
        if position >= len(node.inputs):
            return None
        src = self.symbol.nodes[node.inputs[position][0]]
        return self.params.arrays.get(src.name) if src.is_var else None

    def param_array(self, node: SymNode, position: int, shape: Sequence[int] | None = None, what: str = "") -> np.ndarray:
        """The trained array feeding input `position` of `node`; missing or misshapen -> exit 3."""
        if position >= len(node.inputs):
            raise InvalidInputError(
                f"{self.path}: node '{node.name}' ({node.op}) lacks its {what or f'input #{position}'}", path=self.path
            )
        src = self.symbol.nodes[node.inputs[position][0]]
        if not src.is_var:
            raise UsageError(
                f"{self.path}: node '{node.name}' ({node.op}): {what or f'input #{position}'} is computed by '{src.name}', "
                "edgecc needs it as a stored parameter"
            )
        array = self.params.arrays.get(src.name)
        if array is None:
            raise InvalidInputError(
                f"{self.path}: node '{node.name}' ({node.op}) uses parameter '{src.name}', "
                f"which is not in the params file {self.params.path}",
                path=self.path,
            )
        if shape is not None and tuple(array.shape) != tuple(shape):
            raise InvalidInputError(
                f"{self.path}: node '{node.name}' ({node.op}): parameter '{src.name}' has shape "
                f"{tuple(array.shape)} in {self.params.path}, the symbol needs {tuple(shape)}",
                path=self.path,
            )
        return array

    def param(self, node: SymNode, position: int, shape: Sequence[int] | None = None, what: str = "") -> str:
        """The initializer name of a trained parameter input (checked as `param_array`)."""
        self.param_array(node, position, shape, what)
        return self._param_tensor(self.symbol.nodes[node.inputs[position][0]].name)

    def ordered_inputs(self) -> list[onnx.ValueInfoProto]:
        """The graph inputs in the order of their variables in the symbol."""
        return sorted(self.inputs, key=lambda vi: self._input_index[vi.name])

    def const(self, value: Any, base: str, dtype: Any = np.float32) -> str:
        """A new initializer holding `value`: float32 unless `dtype` says otherwise, a scalar as a 1-element vector."""
        return super().const(np.ascontiguousarray(np.asarray(value, dtype=dtype)), base, dtype)

    # --- nodes ------------------------------------------------------------------------------
    def add(
        self, op_type: str, inputs: Sequence[str], base: str, *, outputs: int = 1, name: str | None = None, **attrs: Any
    ) -> str:
        """Append an ONNX node and return its (first) output name; `base` is the output's name."""
        names = [self.unique(base if outputs == 1 else f"{base}{i}") for i in range(outputs)]
        return self.node(op_type, inputs, names, name=name or f"{base}__{op_type}", **attrs)[0]

    def add_multi(self, op_type: str, inputs: Sequence[str], bases: Sequence[str], **attrs: Any) -> list[str]:
        """Append an ONNX node with several outputs."""
        return self.node(op_type, inputs, [self.unique(b) for b in bases], name=f"{bases[0]}__{op_type}", **attrs)

    def out(self, node: SymNode, index: int = 0, count: int = 1) -> str:
        """The MXNet output name of `node` (`name_output`), reserved for the converter's last node."""
        return output_name(node, index, count)

    # --- shapes -----------------------------------------------------------------------------
    def static_shape(self, tensor: str, node: SymNode, why: str) -> tuple[int, ...]:
        """The shape with every dimension known, or a usage error asking for --input."""
        shape = self.shape(tensor)
        if shape is None or not all(isinstance(d, int) for d in shape):
            raise UsageError(
                f"{self.path}: node '{node.name}' ({node.op}) needs the static shape of its input for {why}, "
                f"which is {shape if shape is not None else 'unknown'}",
                hint="give the input shapes with --input NAME:DIMS",
            )
        return tuple(int(d) for d in shape)

    def rank(self, tensor: str, node: SymNode) -> int:
        """The tensor's rank, or a usage error asking for --input."""
        shape = self.shape(tensor)
        if shape is None:
            raise UsageError(
                f"{self.path}: node '{node.name}' ({node.op}) needs the rank of its input",
                hint="give the input shapes with --input NAME:DIMS",
            )
        return len(shape)

    def elem_type(self, tensor: str) -> int:
        """The ONNX element type of a tensor (float when unknown)."""
        return super().elem_type(tensor) or TensorProto.FLOAT

    def np_dtype(self, tensor: str) -> np.dtype:
        """The numpy dtype of a tensor."""
        return np.dtype(helper.tensor_dtype_to_np_dtype(self.elem_type(tensor)))
