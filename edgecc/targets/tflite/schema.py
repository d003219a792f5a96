"""An in-memory TFLite model (buffers, tensors, operators, metadata) serialised with the `tflite` package's builders.

The flatbuffer is written with the generated code of the published TFLite schema that the `tflite` PyPI package
ships (`tflite.Model.ModelStart`, `tflite.Tensor.TensorAddShape`, ...; schema version 3, TensorFlow 2.18), so the
byte layout is the schema's own, not a hand-written encoder. Operator codes carry both `builtin_code` and, for
codes below 127, `deprecated_builtin_code`, as TensorFlow's converter writes them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ModelBuilder", "QuantParams", "TensorSpec", "TFLITE_TYPE", "table"]

#: numpy dtype name -> TFLite TensorType value
TFLITE_TYPE: dict[str, int] = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7, "int8": 9}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantisation of a tensor: real = scale * (q - zero_point), per tensor or along `axis`."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0
    dtype: str = "int8"

    @property
    def per_channel(self) -> bool:
        """True when there is more than one scale."""
        return len(self.scale) > 1

    def with_dtype(self, dtype: str) -> QuantParams:
        """The same real values stored as `dtype` (int8 <-> uint8 shifts the zero point by 128)."""
        if dtype == self.dtype:
            return self
        shift = {("uint8", "int8"): -128, ("int8", "uint8"): 128}.get((self.dtype, dtype))
        if shift is None:
            raise ValueError(f"cannot re-type {self.dtype} quantisation as {dtype}")
        return QuantParams(self.scale, tuple(z + shift for z in self.zero_point), self.axis, dtype)

    def same_as(self, other: QuantParams | None, rtol: float = 1e-6) -> bool:
        """Equal scales (to `rtol`), zero points, axis and dtype."""
        if (
            other is None
            or other.dtype != self.dtype
            or other.zero_point != self.zero_point
            or len(other.scale) != len(self.scale)
        ):
            return False
        return all(abs(a - b) <= rtol * max(abs(a), abs(b)) for a, b in zip(self.scale, other.scale)) and (
            not self.per_channel or self.axis == other.axis
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis, "dtype": self.dtype}


@dataclass
class TensorSpec:
    """One TFLite tensor: name, shape, dtype, constant buffer index (0 = none) and quantisation."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int = 0
    quant: QuantParams | None = None


@dataclass
class OperatorSpec:
    """One TFLite operator: opcode index, input/output tensor indices, options table name and fields."""

    opcode: int
    inputs: list[int]
    outputs: list[int]
    options: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class ModelBuilder:
    """Collects a single-subgraph TFLite model and serialises it (`to_bytes`)."""

    def __init__(self, description: str = "edgecc") -> None:
        self.description = description
        self.buffers: list[bytes] = [b""]  # buffer 0 is the empty sentinel
        self.tensors: list[TensorSpec] = []
        self.opcodes: list[tuple[int, int]] = []  # (builtin code, version)
        self.operators: list[OperatorSpec] = []
        self.op_names: list[str] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.metadata: list[tuple[str, bytes]] = []
        self._names: set[str] = set()

    def unique(self, name: str) -> str:
        """`name`, or `name_N` when a tensor already has it."""
        candidate, index = name, 1
        while candidate in self._names:
            candidate, index = f"{name}_{index}", index + 1
        return candidate

    def tensor(
        self, name: str, shape: tuple[int, ...], dtype: str, *, data: np.ndarray | None = None, quant: QuantParams | None = None
    ) -> int:
        """Add a tensor (constant when `data` is given); returns its index."""
        buffer = 0
        if data is not None:
            import numpy as np

            array = np.ascontiguousarray(data, dtype=dtype)
            self.buffers.append(array.tobytes())
            buffer = len(self.buffers) - 1
        name = self.unique(name)
        self._names.add(name)
        self.tensors.append(TensorSpec(name, tuple(int(d) for d in shape), dtype, buffer, quant))
        return len(self.tensors) - 1

    def operator(
        self, op: str, inputs: list[int], outputs: list[int], options: str | None = None, version: int = 1, **fields: Any
    ) -> int:
        """Add operator `op` (a BuiltinOperator name, e.g. "CONV_2D"); returns its index in execution order."""
        code = getattr(importlib.import_module("tflite.BuiltinOperator").BuiltinOperator, op)
        key = (code, version)
        if key not in self.opcodes:
            self.opcodes.append(key)
        self.operators.append(OperatorSpec(self.opcodes.index(key), list(inputs), list(outputs), options, fields))
        self.op_names.append(op)
        return len(self.operators) - 1

    def add_metadata(self, name: str, payload: bytes) -> None:
        """A Model.metadata entry pointing at a buffer holding `payload`."""
        self.buffers.append(payload)
        self.metadata.append((name, payload))

    def to_bytes(self) -> bytes:
        """The model as a TFLite flatbuffer (file identifier TFL3)."""
        import flatbuffers
        import numpy as np

        Buffer, Metadata, Model, Operator, OperatorCode, QuantizationParameters, SubGraph, Tensor = (
            importlib.import_module(f"tflite.{m}")
            for m in ("Buffer", "Metadata", "Model", "Operator", "OperatorCode", "QuantizationParameters", "SubGraph", "Tensor")
        )

        b = flatbuffers.Builder(1024 + sum(len(x) for x in self.buffers))

        def vector(module: Any, start: str, offsets: list[int]) -> int:
            getattr(module, start)(b, len(offsets))
            for off in reversed(offsets):
                b.PrependUOffsetTRelative(off)
            return b.EndVector()

        def ints(values: list[int] | tuple[int, ...], dtype: str = "int32") -> int:
            return b.CreateNumpyVector(np.asarray(values, dtype=dtype))

        # buffers (data aligned to 16 bytes, as TensorFlow writes them)
        buffer_offsets = []
        meta_index = {}
        for index, data in enumerate(self.buffers):
            data_off = None
            if data:
                b.StartVector(1, len(data), 16)
                b.head = b.head - len(data)
                b.Bytes[b.head : b.head + len(data)] = data
                data_off = b.EndVector()
            Buffer.BufferStart(b)
            if data_off is not None:
                Buffer.BufferAddData(b, data_off)
            buffer_offsets.append(Buffer.BufferEnd(b))
            meta_index[index] = index
        tensor_offsets = []
        for spec in self.tensors:
            name = b.CreateString(spec.name)
            shape = ints(spec.shape)
            quant = None
            if spec.quant is not None:
                scale = b.CreateNumpyVector(np.asarray(spec.quant.scale, dtype=np.float32))
                zero = b.CreateNumpyVector(np.asarray(spec.quant.zero_point, dtype=np.int64))
                QuantizationParameters.QuantizationParametersStart(b)
                QuantizationParameters.QuantizationParametersAddScale(b, scale)
                QuantizationParameters.QuantizationParametersAddZeroPoint(b, zero)
                QuantizationParameters.QuantizationParametersAddQuantizedDimension(b, spec.quant.axis)
                quant = QuantizationParameters.QuantizationParametersEnd(b)
            Tensor.TensorStart(b)
            Tensor.TensorAddShape(b, shape)
            Tensor.TensorAddType(b, TFLITE_TYPE[spec.dtype])
            Tensor.TensorAddBuffer(b, spec.buffer)
            Tensor.TensorAddName(b, name)
            if quant is not None:
                Tensor.TensorAddQuantization(b, quant)
            tensor_offsets.append(Tensor.TensorEnd(b))
        op_offsets = []
        for op in self.operators:
            options_off, options_type = None, 0
            if op.options:
                options_off, options_type = table(b, op.options, op.fields), _options_type(op.options)
            ins, outs = ints(op.inputs), ints(op.outputs)
            Operator.OperatorStart(b)
            Operator.OperatorAddOpcodeIndex(b, op.opcode)
            Operator.OperatorAddInputs(b, ins)
            Operator.OperatorAddOutputs(b, outs)
            if options_off is not None:
                Operator.OperatorAddBuiltinOptionsType(b, options_type)
                Operator.OperatorAddBuiltinOptions(b, options_off)
            op_offsets.append(Operator.OperatorEnd(b))
        tensors_vec = vector(SubGraph, "SubGraphStartTensorsVector", tensor_offsets)
        ops_vec = vector(SubGraph, "SubGraphStartOperatorsVector", op_offsets)
        in_vec, out_vec = ints(self.inputs), ints(self.outputs)
        graph_name = b.CreateString("main")
        SubGraph.SubGraphStart(b)
        SubGraph.SubGraphAddTensors(b, tensors_vec)
        SubGraph.SubGraphAddInputs(b, in_vec)
        SubGraph.SubGraphAddOutputs(b, out_vec)
        SubGraph.SubGraphAddOperators(b, ops_vec)
        SubGraph.SubGraphAddName(b, graph_name)
        subgraph = SubGraph.SubGraphEnd(b)
        code_offsets = []
        for code, version in self.opcodes:
            OperatorCode.OperatorCodeStart(b)
            OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            OperatorCode.OperatorCodeAddBuiltinCode(b, code)
            OperatorCode.OperatorCodeAddVersion(b, version)
            code_offsets.append(OperatorCode.OperatorCodeEnd(b))
        meta_offsets = []
        first_meta = len(self.buffers) - len(self.metadata)
        for i, (name, _payload) in enumerate(self.metadata):
            name_off = b.CreateString(name)
            Metadata.MetadataStart(b)
            Metadata.MetadataAddName(b, name_off)
            Metadata.MetadataAddBuffer(b, first_meta + i)
            meta_offsets.append(Metadata.MetadataEnd(b))
        codes_vec = vector(Model, "ModelStartOperatorCodesVector", code_offsets)
        subgraphs_vec = vector(Model, "ModelStartSubgraphsVector", [subgraph])
        buffers_vec = vector(Model, "ModelStartBuffersVector", buffer_offsets)
        meta_vec = vector(Model, "ModelStartMetadataVector", meta_offsets) if meta_offsets else None
        description = b.CreateString(self.description)
        Model.ModelStart(b)
        Model.ModelAddVersion(b, 3)
        Model.ModelAddOperatorCodes(b, codes_vec)
        Model.ModelAddSubgraphs(b, subgraphs_vec)
        Model.ModelAddDescription(b, description)
        Model.ModelAddBuffers(b, buffers_vec)
        if meta_vec is not None:
            Model.ModelAddMetadata(b, meta_vec)
        model = Model.ModelEnd(b)
        b.Finish(model, file_identifier=b"TFL3")
        return bytes(b.Output())


def _options_type(options: str) -> int:
    return getattr(importlib.import_module("tflite.BuiltinOptions").BuiltinOptions, options)


def table(builder: Any, name: str, fields: dict[str, Any]) -> int:
    """Build the options table `name` (e.g. "Conv2DOptions") from `fields` (schema field names in CamelCase)."""
    import numpy as np

    module = importlib.import_module(f"tflite.{name}")
    vectors = {}
    for key, value in fields.items():  # vectors must be created before the table starts
        if isinstance(value, (list, tuple)):
            vectors[key] = builder.CreateNumpyVector(np.asarray(value, dtype=np.int32))
    getattr(module, f"{name}Start")(builder)
    for key, value in fields.items():
        getattr(module, f"{name}Add{key}")(builder, vectors.get(key, value))
    return getattr(module, f"{name}End")(builder)
