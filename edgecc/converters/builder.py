"""The ONNX graph a frontend builds: one `GraphBuilder` shared by the Caffe, Caffe2 and MXNet frontends.

It holds what every hand-written frontend needs: unique tensor and node names, nodes,
initializers (written straight into the final model, so weights are copied once),
graph inputs, the shape and element type known for each tensor (from the frontend or
from incremental ONNX shape inference of the partial graph), the unsupported ops
collected before failing, and the final opset-17 `onnx.ModelProto`.

Naming rules of a framework (Caffe blob names, MXNet `name_output`, Caffe2 SSA blob
versions) stay in the frontends; the builder only makes names unique.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgecc.errors import UnsupportedNode, UnsupportedOperator

__all__ = ["IR_VERSION", "OPSET", "Constants", "GraphBuilder", "Shape", "unregistered"]

log = logging.getLogger(__name__)

#: the opset every hand-written frontend emits (the pipeline converts to the requested one)
OPSET = 17
IR_VERSION = 8

#: a tensor shape: ints, symbolic dims (str) or None for unknown dims
Shape = tuple[Any, ...]


def unregistered(ops: Iterable[tuple[str, str]], known: Container[str], reason: str) -> list[UnsupportedNode]:
    """The (node name, op type) pairs whose op type has no converter in `known`, for one UnsupportedOperator."""
    return [UnsupportedNode(name, op_type, reason) for name, op_type in ops if op_type not in known]


class Constants(Mapping[str, np.ndarray]):
    """Initializer values as numpy arrays, decoded on demand (big weights are not held twice)."""

    def __init__(self, initializers: Mapping[str, onnx.TensorProto]) -> None:
        self._initializers = initializers
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = numpy_helper.to_array(self._initializers[name])
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._initializers

    def __iter__(self) -> Iterator[str]:
        return iter(self._initializers)

    def __len__(self) -> int:
        return len(self._initializers)

    def forget(self, name: str) -> None:
        """Drop a cached value (the initializer changed)."""
        self._cache.pop(name, None)


def _write_tensor(tensor: onnx.TensorProto, name: str, array: np.ndarray) -> None:
    """Fill `tensor` with `array`: raw little-endian bytes (strings as string_data)."""
    if array.dtype == object or np.issubdtype(array.dtype, np.str_):
        tensor.CopyFrom(numpy_helper.from_array(array, name))
        return
    tensor.name = name
    tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.dims.extend(int(d) for d in array.shape)
    tensor.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


class GraphBuilder:
    """Nodes, initializers, inputs and known shapes/types of an ONNX graph under construction."""

    #: fresh tensor names are `base`, `base<sep>1`, `base<sep>2`, ...
    name_separator = "_"
    #: node names are made unique among node names only (True) or among all names (False)
    separate_node_names = False
    #: initializers up to this many elements are given to shape inference with their values
    infer_inline_limit = 4096
    #: let shape inference propagate values (Shape -> Gather -> Reshape ...)
    infer_data_prop = False
    #: keep symbolic dims (dim_param) in shapes; False turns them into None
    symbolic_dims = True
    #: rerun shape inference over the whole graph, so that the symbolic dims it invents (`unk__N`) stay
    #: consistent, instead of over the nodes added since the last run only (faster)
    infer_whole_graph = False

    def __init__(self) -> None:
        # initializers are written straight into the final model: weights are copied once
        self.model = onnx.ModelProto()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.consts = Constants(self.initializers)
        self.inputs: list[onnx.ValueInfoProto] = []
        self.shapes: dict[str, Shape | None] = {}
        self.types: dict[str, int] = {}
        self.unsupported: list[UnsupportedNode] = []
        self.poisoned: set[str] = set()  # outputs of ops that failed: whatever reads them is skipped
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self._inferred_upto = 0

    # ------------------------------------------------------------ names
    def reserve(self, *names: str) -> None:
        """Mark tensor names as taken."""
        self._names.update(names)

    def unique(self, base: str) -> str:
        """A tensor name not used yet, derived from `base` (and now taken)."""
        return self._fresh(base, self._names, self.name_separator)

    def node_name(self, base: str) -> str:
        """A node name not used yet, derived from `base`."""
        if self.separate_node_names:
            return self._fresh(base, self._node_names, "_")
        return self.unique(base)

    @staticmethod
    def _fresh(base: str, taken: set[str], separator: str) -> str:
        name, index = base, 0
        while name in taken:
            index += 1
            name = f"{base}{separator}{index}"
        taken.add(name)
        return name

    # ------------------------------------------------------------ inputs, initializers, nodes
    def add_input(self, name: str, elem_type: int, shape: Sequence[int | str | None] | None) -> str:
        """A graph input of `elem_type` and `shape` (None: unknown rank)."""
        self.reserve(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, None if shape is None else list(shape)))
        if shape is not None:
            self.shapes[name] = tuple(
                d if isinstance(d, int) or (self.symbolic_dims and isinstance(d, str)) else None for d in shape
            )
        self.types[name] = elem_type
        return name

    def add_initializer(self, name: str, value: Any) -> str:
        """An initializer named exactly `name` (one of that name before is replaced)."""
        array = np.asarray(value)
        if name in self.initializers:
            graph_inits = self.model.graph.initializer
            del graph_inits[next(i for i, t in enumerate(graph_inits) if t.name == name)]
            del self.initializers[name]
        self.reserve(name)
        tensor = self.model.graph.initializer.add()
        _write_tensor(tensor, name, array)
        self.initializers[name] = tensor
        self.consts.forget(name)
        self.shapes[name] = tuple(int(d) for d in array.shape)
        self.types[name] = tensor.data_type
        return name

    def const(self, value: Any, base: str, dtype: Any = None) -> str:
        """A new initializer holding `value` (as `dtype`; float64 becomes float32 when no dtype is given)."""
        array = np.asarray(value, dtype=dtype) if dtype is not None else np.asarray(value)
        if array.dtype == np.float64 and dtype is None:
            array = array.astype(np.float32)
        return self.add_initializer(self.unique(base), array)

    def ints(self, values: Sequence[int], base: str) -> str:
        """An int64 1-D initializer (shapes, axes, pads)."""
        return self.const(list(values), base, np.int64)

    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | str | int = 1,
        *,
        name: str = "",
        domain: str = "",
        **attrs: Any,
    ) -> list[str]:
        """Append a node; `outputs` gives the names, or a base name / a count for fresh ones. Returns the output names."""
        base = name or op_type
        if isinstance(outputs, int):
            out_names = [self.unique(f"{base}_out{i}" if outputs > 1 else f"{base}_out") for i in range(outputs)]
        elif isinstance(outputs, str):
            out_names = [self.unique(outputs)]
        else:
            out_names = list(outputs)
            self.reserve(*(o for o in out_names if o))
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(
            helper.make_node(op_type, list(inputs), out_names, name=self.node_name(base), domain=domain or None, **attrs)
        )
        return out_names

    # ------------------------------------------------------------ shapes and types
    def set_shape(self, name: str, shape: Shape | None, elem_type: int | None = None) -> None:
        """Record what the frontend knows of a tensor."""
        self.shapes[name] = None if shape is None else tuple(shape)
        if elem_type is not None:
            self.types[name] = elem_type

    def inference_model(
        self, nodes: Sequence[onnx.NodeProto], outputs: Sequence[str] = (), *, whole: bool = False
    ) -> onnx.ModelProto:
        """`nodes` as a model for shape inference: small initializers with values, other inputs typed by what is known.

        `whole` gives every graph input and initializer (the graph so far); otherwise only what `nodes` read
        from outside themselves.
        """
        limit = self.infer_inline_limit
        if whole:
            inputs = list(self.inputs) + [
                helper.make_tensor_value_info(n, t.data_type, list(t.dims))
                for n, t in self.initializers.items()
                if np.prod(t.dims, dtype=np.int64) > limit
            ]
            inits = [t for t in self.initializers.values() if np.prod(t.dims, dtype=np.int64) <= limit]
        else:
            produced = {o for n in nodes for o in n.output}
            inputs, inits, seen = [], [], set()
            for node in nodes:
                for name in node.input:
                    if not name or name in produced or name in seen:
                        continue
                    seen.add(name)
                    tensor = self.initializers.get(name)
                    if tensor is not None and np.prod(tensor.dims, dtype=np.int64) <= limit:
                        inits.append(tensor)
                    elif name in self.types:
                        shape = self.shapes.get(name)
                        inputs.append(
                            helper.make_tensor_value_info(name, self.types[name], None if shape is None else list(shape))
                        )
        graph = helper.make_graph(
            list(nodes), "partial", inputs, [helper.make_value_info(o, onnx.TypeProto()) for o in outputs], initializer=inits
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        return model

    def infer(self) -> None:
        """Shape inference of the nodes added since the last call (or of the whole graph), fed the shapes known so far."""
        if self._inferred_upto >= len(self.nodes):
            return
        if self.infer_whole_graph:
            model = self.inference_model(self.nodes, [o for n in self.nodes for o in n.output][-1:], whole=True)
        else:
            model = self.inference_model(self.nodes[self._inferred_upto :])
        self._inferred_upto = len(self.nodes)
        try:
            inferred = onnx.shape_inference.infer_shapes(
                model, check_type=False, strict_mode=False, data_prop=self.infer_data_prop
            )
        except Exception as exc:  # noqa: BLE001 -- best effort: callers handle unknown shapes
            log.debug("shape inference of the partial graph failed: %s", exc)
            return
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            tensor_type = vi.type.tensor_type
            if tensor_type.elem_type:
                self.types[vi.name] = tensor_type.elem_type
            if tensor_type.HasField("shape"):
                self.shapes[vi.name] = tuple(
                    int(d.dim_value) if d.HasField("dim_value") else ((d.dim_param or None) if self.symbolic_dims else None)
                    for d in tensor_type.shape.dim
                )

    def shape(self, name: str) -> Shape | None:
        """The shape of a tensor (None entries for unknown dims), or None if even the rank is unknown."""
        if name not in self.shapes:
            self.infer()
        return self.shapes.get(name)

    def elem_type(self, name: str) -> int | None:
        """The ONNX element type of a tensor, if known."""
        if name not in self.types:
            self.infer()
        return self.types.get(name)

    def shape_problem(self) -> str | None:
        """The first shape-inference error of the graph so far (strict mode), if any."""
        try:
            onnx.shape_inference.infer_shapes(
                self.inference_model(self.nodes, whole=True), check_type=True, strict_mode=True, data_prop=True
            )
        except Exception as exc:  # noqa: BLE001 -- onnx raises InferenceError / ValidationError / RuntimeError
            return " ".join(str(exc).split())[:300]
        return None

    # ------------------------------------------------------------ unsupported ops
    def fail(self, node: str, op_type: str, reason: str, outputs: Iterable[str] = ()) -> None:
        """Record an op that cannot be converted; ops reading its `outputs` are skipped (see `skip`)."""
        self.unsupported.append(UnsupportedNode(node, op_type, reason))
        self.poisoned.update(outputs)

    def skip(self, inputs: Iterable[str], outputs: Iterable[str]) -> bool:
        """True, with `outputs` poisoned in turn, when an input comes from an op that failed."""
        if self.poisoned.isdisjoint(inputs):
            return False
        self.poisoned.update(outputs)
        return True

    def raise_unsupported(self, *, where: str, path: str | None = None, hint: str | None = None) -> None:
        """UnsupportedOperator listing every op recorded by `fail`, if any."""
        if self.unsupported:
            raise UnsupportedOperator(self.unsupported, where=where, path=path, hint=hint)

    # ------------------------------------------------------------ the model
    def prune(self, outputs: Sequence[str]) -> list[onnx.NodeProto]:
        """Nodes needed for `outputs`, in order (drops unused auxiliary outputs such as Reshape's old_shape)."""
        needed = set(outputs)
        kept: list[onnx.NodeProto] = []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(i for i in node.input if i)
        kept.reverse()
        return kept

    def output_info(self, name: str, default_elem: int = onnx.TensorProto.FLOAT) -> onnx.ValueInfoProto:
        """Type and shape of a tensor as a graph output (`default_elem` of unknown shape when not known)."""
        self.shape(name)
        shape = self.shapes.get(name)
        return helper.make_tensor_value_info(name, self.types.get(name, default_elem), None if shape is None else list(shape))

    def finish(
        self,
        name: str,
        outputs: Sequence[onnx.ValueInfoProto],
        *,
        inputs: Sequence[onnx.ValueInfoProto] | None = None,
        nodes: Sequence[onnx.NodeProto] | None = None,
    ) -> onnx.ModelProto:
        """The opset-17 model. `nodes` (default: all) may be a pruned subset: initializers they do not use are dropped."""
        model = self.model
        graph = model.graph
        if nodes is not None:
            used = {i for n in nodes for i in n.input} | {o.name for o in outputs}
            for index in reversed([i for i, t in enumerate(graph.initializer) if t.name not in used]):
                del graph.initializer[index]
        graph.name = name
        graph.node.extend(self.nodes if nodes is None else nodes)
        graph.input.extend(self.inputs if inputs is None else inputs)
        graph.output.extend(outputs)
        model.opset_import.append(helper.make_opsetid("", OPSET))
        model.producer_name = "edgecc"
        model.ir_version = IR_VERSION
        return model
