"""The ONNX graph being built from an MXNet symbol: tensor names, parameters, inputs, shapes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgecc.converters.mxnet.params import DTYPE_FLAGS, ParamFile
from edgecc.converters.mxnet.symbol import Symbol, SymNode
from edgecc.converters.options import ConvertOptions
from edgecc.errors import InvalidInputError, UsageError
from edgecc.registry import Registry

__all__ = ["OPS", "OPSET", "Converter", "GraphBuilder", "output_name", "register"]

log = logging.getLogger(__name__)

OPSET = 17
Converter = Callable[["GraphBuilder", SymNode], list[str]]
#: MXNet operator name -> converter (ctx, node) -> ONNX tensor names of the node's outputs
OPS: Registry[Converter] = Registry("MXNet operator")

_SPATIAL_OPS = {"Convolution", "Pooling", "BatchNorm", "Deconvolution", "InstanceNorm", "LRN", "UpSampling"}


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


class GraphBuilder:
    """Collects ONNX nodes, initializers and inputs while the symbol is walked in order."""

    def __init__(self, symbol: Symbol, params: ParamFile, options: ConvertOptions) -> None:
        self.symbol = symbol
        self.params = params
        self.options = options
        self.path = symbol.path
        self.model = onnx.ModelProto()  # initializers are written straight into it: no copy of the weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}
        self.small: dict[str, np.ndarray] = {}
        self.inputs: dict[int, onnx.ValueInfoProto] = {}
        self.tensors: dict[tuple[int, int], str] = {}
        self.used_names: set[str] = set()
        self._shapes: dict[str, tuple[Any, ...] | None] = {}
        self._dtypes: dict[str, int] = {}
        self._shape_nodes = -1
        self._consumers = symbol.consumers()
        self._input_names: set[str] = set()

    # --- naming -------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        """A tensor name not used yet."""
        name, count = base, 0
        while name in self.used_names:
            count += 1
            name = f"{base}_{count}"
        self.used_names.add(name)
        return name

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
            self._store(name, array)
            if array.size <= 64:
                self.small[name] = np.array(array)
            else:
                self.params.release(name)
            self.used_names.add(name)
        return name

    def _graph_input(self, src: SymNode) -> str:
        if src.name in self._input_names:  # two variables of one name are one argument in MXNet
            return src.name
        self._input_names.add(src.name)
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
        self.inputs[src.index] = helper.make_tensor_value_info(src.name, elem, None if shape is None else list(shape))
        self.used_names.add(src.name)
        return src.name

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

    def _store(self, name: str, array: np.ndarray) -> None:
        """Add an initializer in place in the model (raw little-endian bytes)."""
        tensor = self.model.graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(int(d) for d in array.shape)
        tensor.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        self.initializers[name] = tensor

    def const(self, value: Any, base: str, dtype: Any = np.float32) -> str:
        """A new initializer holding `value`."""
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        name = self.unique(base)
        self._store(name, array)
        if array.size <= 64:
            self.small[name] = array
        return name

    def ints(self, values: Sequence[int], base: str) -> str:
        """An int64 1-D constant (shapes, axes, pads)."""
        return self.const(list(values), base, np.int64)

    # --- nodes ------------------------------------------------------------------------------
    def add(self, op_type: str, inputs: Sequence[str], base: str, *, outputs: int = 1, name: str | None = None, **attrs: Any) -> str:
        """Append an ONNX node and return its (first) output name; `base` is the output's name."""
        names = [self.unique(base if outputs == 1 else f"{base}{i}") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.unique(name or f"{base}__{op_type}"), **attrs))
        return names[0]

    def add_multi(self, op_type: str, inputs: Sequence[str], bases: Sequence[str], **attrs: Any) -> list[str]:
        """Append an ONNX node with several outputs."""
        names = [self.unique(b) for b in bases]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.unique(f"{bases[0]}__{op_type}"), **attrs))
        return names

    def out(self, node: SymNode, index: int = 0, count: int = 1) -> str:
        """The MXNet output name of `node` (`name_output`), reserved for the converter's last node."""
        return output_name(node, index, count)

    # --- shapes -----------------------------------------------------------------------------
    def _infer(self) -> None:
        graph_inputs = list(self.inputs.values())
        inits = []
        for name, tensor in self.initializers.items():
            if name in self.small:
                inits.append(tensor)
            else:
                graph_inputs.append(helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims)))
        produced = [o for n in self.nodes for o in n.output]
        graph = helper.make_graph(
            self.nodes, "infer", graph_inputs, [helper.make_value_info(o, onnx.TypeProto()) for o in produced[-1:]], inits
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except (onnx.shape_inference.InferenceError, ValueError, RuntimeError) as exc:
            log.debug("shape inference failed: %s", exc)
            return
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            ttype = vi.type.tensor_type
            if ttype.elem_type:
                self._dtypes[vi.name] = ttype.elem_type
            if ttype.HasField("shape"):
                dims: list[Any] = []
                for dim in ttype.shape.dim:
                    dims.append(int(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or None))
                self._shapes[vi.name] = tuple(dims)
        self._shape_nodes = len(self.nodes)

    def shape(self, tensor: str) -> tuple[Any, ...] | None:
        """The tensor's shape as far as ONNX shape inference knows it (ints, symbols or None); None for unknown rank."""
        if tensor in self.small:
            return tuple(self.small[tensor].shape)
        if tensor in self.initializers:
            return tuple(self.initializers[tensor].dims)
        if tensor not in self._shapes and self._shape_nodes != len(self.nodes):
            self._infer()
        return self._shapes.get(tensor)

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
        if tensor in self.initializers:
            return self.initializers[tensor].data_type
        for vi in self.inputs.values():
            if vi.name == tensor:
                return vi.type.tensor_type.elem_type
        if tensor not in self._dtypes and self._shape_nodes != len(self.nodes):
            self._infer()
        return self._dtypes.get(tensor, TensorProto.FLOAT)

    def value_info(self, tensor: str) -> onnx.ValueInfoProto:
        """Type and shape of a tensor for a graph output (float of unknown shape when inference cannot tell)."""
        if self._shape_nodes != len(self.nodes):
            self._infer()
        shape = self._shapes.get(tensor)
        return helper.make_tensor_value_info(tensor, self._dtypes.get(tensor, TensorProto.FLOAT), None if shape is None else list(shape))

    def np_dtype(self, tensor: str) -> np.dtype:
        """The numpy dtype of a tensor."""
        return np.dtype(helper.tensor_dtype_to_np_dtype(self.elem_type(tensor)))
