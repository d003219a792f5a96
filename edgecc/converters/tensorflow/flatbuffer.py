"""edgecc's own view of a TFLite flatbuffer: operators, tensors, constant data, sparsity and quantisation.

Read and written with the object API of the published TFLite schema (`schema_py_generated`, shipped by
ai-edge-litert and by TensorFlow), so no interpreter is built: a model the interpreter refuses (custom
operators, quantisation only TFLite Micro accepts) can still be listed, diagnosed and rewritten
(`rewrite.py`) before tf2onnx reads it. A file the schema cannot parse is an InvalidInputError (exit 3).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecc.errors import InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "NUMPY_DTYPE",
    "TFLiteModel",
    "OperatorInfo",
    "builtin_code",
    "read",
    "schema",
]

#: TFLite TensorType value -> numpy dtype name
NUMPY_DTYPE: dict[int, str] = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    5: "object",  # string
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float64",
    12: "uint64",
    15: "uint32",
    16: "uint16",
}

_SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated")


@functools.lru_cache(maxsize=1)
def schema() -> Any:
    """The generated TFLite schema module (object API: ModelT, TensorT, OperatorT ...)."""
    for name in _SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingDependencyError("tensorflow", feature="reading TFLite flatbuffers", extra="tensorflow")


@functools.lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    ops = schema().BuiltinOperator
    return {value: name for name, value in vars(ops).items() if not name.startswith("_") and isinstance(value, int)}


def builtin_code(name: str) -> int:
    """The BuiltinOperator value of `name` (e.g. "TRANSPOSE_CONV")."""
    return int(getattr(schema().BuiltinOperator, name))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


@dataclass(frozen=True)
class OperatorInfo:
    """One operator of a subgraph: position, op name (builtin name or custom code), version and tensor names."""

    subgraph: int
    index: int
    name: str
    custom: bool
    version: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def node(self) -> str:
        """The name users know the node by: its first output tensor."""
        return self.outputs[0] if self.outputs else f"operator {self.index}"


class TFLiteModel:
    """A parsed TFLite model (`.model` is the schema's ModelT, edited in place by rewrites) and its helpers."""

    def __init__(self, model: Any, path: str) -> None:
        self.model = model
        self.path = path
        self.states: list[Any] = []  # state.State entries once resource variables are exposed (rewrite.py)

    # --- operators --------------------------------------------------------------------------------

    def opcode_name(self, opcode_index: int) -> tuple[str, bool]:
        """(builtin name or custom code, is custom) of an operator-code index."""
        code = self.model.operatorCodes[opcode_index]
        value = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
        name = _builtin_names().get(value, f"BUILTIN_{value}")
        if name == "CUSTOM":
            return _text(code.customCode) or "<unnamed custom op>", True
        return name, False

    def tensor_name(self, subgraph: Any, index: int) -> str:
        """The name of tensor `index` of `subgraph` ("" for an omitted optional input)."""
        if index < 0:
            return ""
        return _text(subgraph.tensors[index].name)

    def operators(self) -> list[OperatorInfo]:
        """Every operator of every subgraph in order."""
        found = []
        for s, subgraph in enumerate(self.model.subgraphs or []):
            for i, op in enumerate(subgraph.operators or []):
                name, custom = self.opcode_name(op.opcodeIndex)
                code = self.model.operatorCodes[op.opcodeIndex]
                found.append(
                    OperatorInfo(
                        s,
                        i,
                        name,
                        custom,
                        int(code.version or 1),
                        tuple(self.tensor_name(subgraph, t) for t in _ints(op.inputs)),
                        tuple(self.tensor_name(subgraph, t) for t in _ints(op.outputs)),
                    )
                )
        return found

    def custom_operators(self) -> dict[str, list[str]]:
        """Custom op code -> the nodes (first output tensor names) that use it, in graph order."""
        found: dict[str, list[str]] = {}
        for op in self.operators():
            if op.custom:
                found.setdefault(op.name, []).append(op.node)
        return found

    # --- tensors ----------------------------------------------------------------------------------

    @property
    def main(self) -> Any:
        """Subgraph 0, the one TFLite runs."""
        return self.model.subgraphs[0]

    def signature(self, subgraph: Any, index: int) -> tuple[int, ...]:
        """A tensor's shape with -1 where its shape signature says the dimension is dynamic."""
        tensor = subgraph.tensors[index]
        shape = tuple(int(d) for d in _ints(tensor.shape))
        signature = _ints(tensor.shapeSignature)
        return tuple(int(d) for d in signature) if len(signature) == len(shape) and len(signature) else shape

    def dtype(self, subgraph: Any, index: int) -> str:
        """A tensor's numpy dtype name."""
        return NUMPY_DTYPE.get(int(subgraph.tensors[index].type), f"tflite-type-{subgraph.tensors[index].type}")

    def buffer_data(self, subgraph: Any, index: int) -> np.ndarray | None:
        """The raw bytes (uint8) of a constant tensor, None when it has none."""
        import numpy as np

        tensor = subgraph.tensors[index]
        if not tensor.buffer:
            return None
        buffer = self.model.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data):
            return np.asarray(buffer.data, dtype=np.uint8)
        return None

    def constant(self, subgraph: Any, index: int) -> np.ndarray | None:
        """A dense constant tensor as a numpy array of its shape (None: not constant or sparse)."""
        import numpy as np

        raw = self.buffer_data(subgraph, index)
        tensor = subgraph.tensors[index]
        if raw is None or tensor.sparsity is not None:
            return None
        return np.frombuffer(raw.tobytes(), dtype=np.dtype(self.dtype(subgraph, index)).newbyteorder("<")).reshape(
            tuple(int(d) for d in _ints(tensor.shape))
        )

    def add_buffer(self, data: bytes) -> int:
        """Append a buffer holding `data`; its index."""
        import numpy as np

        buffer = schema().BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8).copy()
        self.model.buffers.append(buffer)
        return len(self.model.buffers) - 1

    def add_tensor(self, subgraph: Any, name: str, shape: tuple[int, ...], type_code: int, data: bytes | None = None) -> int:
        """Append a tensor (constant when `data` is given); its index."""
        import numpy as np

        tensor = schema().TensorT()
        tensor.name = name.encode()
        tensor.shape = np.asarray(shape, dtype=np.int32)
        tensor.type = type_code
        tensor.buffer = self.add_buffer(data) if data is not None else self.empty_buffer()
        subgraph.tensors.append(tensor)
        return len(subgraph.tensors) - 1

    def empty_buffer(self) -> int:
        """Buffer 0, the schema's empty buffer for tensors without data."""
        return 0

    def opcode(self, name: str, version: int = 1, custom: str | None = None) -> int:
        """The index of an operator code (added when the model has none for it)."""
        value = builtin_code("CUSTOM") if custom else builtin_code(name)
        for i, code in enumerate(self.model.operatorCodes):
            same = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0)) == value
            if same and (custom is None or _text(code.customCode) == custom) and int(code.version or 1) >= version:
                return i
        code = schema().OperatorCodeT()
        code.builtinCode = value
        code.deprecatedBuiltinCode = min(value, 127)
        code.version = version
        if custom:
            code.customCode = custom.encode()
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def make_operator(
        self, name: str, inputs: list[int], outputs: list[int], options: Any = None, options_type: str | None = None
    ) -> Any:
        """A builtin OperatorT (not yet placed in a subgraph); `options` a schema `...OptionsT`, `options_type` its
        BuiltinOptions name (default: the options class name without the trailing T)."""
        import numpy as np

        module = schema()
        op = module.OperatorT()
        op.opcodeIndex = self.opcode(name)
        op.inputs = np.asarray(inputs, dtype=np.int32)
        op.outputs = np.asarray(outputs, dtype=np.int32)
        if options is not None:
            op.builtinOptionsType = getattr(module.BuiltinOptions, options_type or type(options).__name__[:-1])
            op.builtinOptions = options
        return op

    # --- writing ----------------------------------------------------------------------------------

    def serialize(self) -> bytes:
        """The model as a flatbuffer with the TFL3 identifier."""
        import flatbuffers

        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _ints(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value]


def read(data: bytes, path: str) -> TFLiteModel:
    """Parse TFLite flatbuffer bytes; a truncated or corrupt file is an InvalidInputError naming the path."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InvalidInputError(f"'{path}' is not a TFLite flatbuffer (no TFL3 identifier)", path=path)
    module = schema()
    try:
        model = module.ModelT.InitFromPackedBuf(bytearray(data), 0)
        if not model.subgraphs:
            raise ValueError("the model has no subgraph")
        for subgraph in model.subgraphs:
            count = len(subgraph.tensors or [])
            for op in subgraph.operators or []:
                if not 0 <= op.opcodeIndex < len(model.operatorCodes or []):
                    raise ValueError(
                        f"an operator uses operator code {op.opcodeIndex}, the model has {len(model.operatorCodes or [])}"
                    )
                if any(t >= count for t in _ints(op.inputs) + _ints(op.outputs)):
                    raise ValueError("an operator uses a tensor index beyond the subgraph's tensors")
            for tensor in subgraph.tensors or []:
                if tensor.buffer and tensor.buffer >= len(model.buffers or []):
                    raise ValueError(f"a tensor uses buffer {tensor.buffer}, the model has {len(model.buffers or [])}")
    except Exception as exc:  # noqa: BLE001 -- the generated reader raises struct, index and unicode errors on bad bytes
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise InvalidInputError(f"'{path}' is a truncated or corrupt TFLite flatbuffer ({text[:200]})", path=path) from None
    _external_buffers(model, data)
    return TFLiteModel(model, path)


def _external_buffers(model: Any, data: bytes) -> None:
    """Models over 2 GiB keep buffer bytes after the flatbuffer (offset/size): read them into the buffers."""
    import numpy as np

    for buffer in model.buffers or []:
        offset, size = int(getattr(buffer, "offset", 0) or 0), int(getattr(buffer, "size", 0) or 0)
        if offset > 1 and size:
            buffer.data = np.frombuffer(data, dtype=np.uint8, count=size, offset=offset).copy()
            buffer.offset, buffer.size = 0, 0
