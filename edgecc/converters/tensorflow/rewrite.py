"""Rewrites of a TFLite flatbuffer (`flatbuffer.TFLiteModel`) into what tf2onnx converts, applied before it reads the file.

Each rewrite edits the model in place and returns one note per change (shown with `-v` and kept in the ONNX
metadata); `prepare` runs them all in order. They keep the model's numerics:

- `densify`: block-sparse constants (TFLite `SparsityParameters`, read by `DENSIFY` ops or by kernels directly)
  become dense buffers and the `DENSIFY` ops are removed (tf2onnx cannot read sparse buffers).
- `transpose_conv_bias`: MediaPipe's custom `Convolution2DTransposeBias` (a transposed convolution with its bias,
  options `TfLiteTransposeConvParams` {padding, stride_w, stride_h}) becomes builtin `TRANSPOSE_CONV` + `ADD`.
- `sequence_lstm`: float `UNIDIRECTIONAL_SEQUENCE_LSTM` unrolled into builtin ops, one step per time index (`lstm.py`).
- `resource_variables`: VAR_HANDLE/READ_VARIABLE/ASSIGN_VARIABLE/CALL_ONCE state exposed as inputs and outputs
  (`state.py`), so that a streaming model becomes a stateless step function.
- `one_scale_per_axis`: a quantised tensor with one scale but a non-zero `quantized_dimension` (TFLite Micro
  ignores the axis of a one-scale tensor; the full interpreter refuses one past the tensor's rank) is per-tensor
  quantisation, written as such.
- `static_inputs` (`--input`): the inputs get the given static shapes and every tensor the shape the interpreter
  computes from them, so the ONNX model has no dynamic dimension left.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.tensorflow import lstm, sparse, state
from edgecc.converters.tensorflow.flatbuffer import TFLiteModel, schema
from edgecc.errors import InvalidInputError, UnsupportedError, UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.registry import Registry

if TYPE_CHECKING:
    from edgecc.inputs import InputSpec

__all__ = ["REWRITES", "TRANSPOSE_CONV_BIAS", "prepare", "static_inputs"]

log = logging.getLogger(__name__)

#: rewrite name -> function(model) -> notes, applied in registration order by `prepare`
REWRITES: Registry[Callable[[TFLiteModel], list[str]]] = Registry("TFLite rewrite")

TRANSPOSE_CONV_BIAS = "Convolution2DTransposeBias"

_FLOAT32 = 0
_INT32 = 2


def _consumers(subgraph: Any, tensor: int) -> list[Any]:
    return [op for op in subgraph.operators or [] if tensor in [int(t) for t in op.inputs]]


@REWRITES.register("densify")
def densify(model: TFLiteModel) -> list[str]:
    """Sparse constants -> dense buffers; DENSIFY ops removed (their output tensors share the dense buffer)."""
    import numpy as np

    notes = []
    for subgraph in model.model.subgraphs:
        dense_buffers: dict[int, int] = {}
        for index, tensor in enumerate(subgraph.tensors):
            if tensor.sparsity is None:
                continue
            raw = model.buffer_data(subgraph, index)
            if raw is None:
                continue
            dtype = np.dtype(model.dtype(subgraph, index)).newbyteorder("<")
            shape = [int(d) for d in tensor.shape]
            try:
                dense = sparse.densify(np.frombuffer(raw.tobytes(), dtype=dtype), shape, tensor.sparsity)
            except ValueError as exc:
                raise InvalidInputError(
                    f"'{model.path}': sparse tensor {tensor.name.decode(errors='replace')} is inconsistent ({exc})",
                    path=model.path,
                ) from None
            tensor.buffer = model.add_buffer(dense.astype(dtype).tobytes())
            tensor.sparsity = None
            dense_buffers[index] = tensor.buffer
        kept = []
        for op in subgraph.operators or []:
            name, _ = model.opcode_name(op.opcodeIndex)
            source = int(op.inputs[0]) if name == "DENSIFY" and len(op.inputs) else -1
            if source in dense_buffers:
                subgraph.tensors[int(op.outputs[0])].buffer = dense_buffers[source]
                continue
            kept.append(op)
        removed = len(subgraph.operators or []) - len(kept)
        subgraph.operators = kept
        if dense_buffers:
            notes.append(f"densified {len(dense_buffers)} sparse constant(s), removed {removed} DENSIFY operator(s)")
    return notes


def _transpose_conv_params(op: Any, path: str, node: str) -> tuple[int, int, int]:
    """(padding as TfLitePadding: 1 SAME, 2 VALID, stride_w, stride_h) from the custom options."""
    raw = bytes(bytearray(int(b) for b in op.customOptions)) if op.customOptions is not None else b""
    if len(raw) < 12:
        raise UnsupportedOperator(
            [UnsupportedNode(node, TRANSPOSE_CONV_BIAS, f"custom options of {len(raw)} bytes, expected padding and strides")],
            where="TFLite flatbuffer",
            path=path,
        )
    padding, stride_w, stride_h = struct.unpack_from("<iii", raw)
    if padding not in (1, 2) or stride_w < 1 or stride_h < 1:
        raise UnsupportedOperator(
            [UnsupportedNode(node, TRANSPOSE_CONV_BIAS, f"padding {padding}, strides {stride_w}x{stride_h}")],
            where="TFLite flatbuffer",
            path=path,
        )
    return padding, stride_w, stride_h


@REWRITES.register("transpose_conv_bias")
def transpose_conv_bias(model: TFLiteModel) -> list[str]:
    """MediaPipe's Convolution2DTransposeBias(x, weights OHWI, bias) -> TRANSPOSE_CONV(output_shape, weights, x) + ADD(bias)."""
    import numpy as np

    module = schema()
    notes = []
    for subgraph in model.model.subgraphs:
        operators = []
        for op in subgraph.operators or []:
            name, custom = model.opcode_name(op.opcodeIndex)
            if not (custom and name == TRANSPOSE_CONV_BIAS):
                operators.append(op)
                continue
            inputs, output = [int(t) for t in op.inputs], int(op.outputs[0])
            node = model.tensor_name(subgraph, output)
            if len(inputs) != 3 or model.dtype(subgraph, output) != "float32":
                raise UnsupportedOperator(
                    [UnsupportedNode(node, TRANSPOSE_CONV_BIAS, f"{len(inputs)} inputs, {model.dtype(subgraph, output)} output")],
                    where="TFLite flatbuffer",
                    path=model.path,
                )
            padding, stride_w, stride_h = _transpose_conv_params(op, model.path, node)
            x, weights, bias = inputs
            in_shape = model.signature(subgraph, x)
            kernel = model.signature(subgraph, weights)
            if len(in_shape) != 4 or len(kernel) != 4 or any(d < 0 for d in in_shape[1:]):
                raise UnsupportedOperator(
                    [UnsupportedNode(node, TRANSPOSE_CONV_BIAS, f"input {in_shape}, weights {kernel}: needs static NHWC")],
                    where="TFLite flatbuffer",
                    path=model.path,
                )
            if padding == 1:
                height, width = in_shape[1] * stride_h, in_shape[2] * stride_w
            else:
                height, width = (in_shape[1] - 1) * stride_h + kernel[1], (in_shape[2] - 1) * stride_w + kernel[2]
            out_shape = (max(in_shape[0], 1), height, width, kernel[0])
            shape_tensor = model.add_tensor(
                subgraph, f"{node}/output_shape", (4,), _INT32, np.asarray(out_shape, dtype="<i4").tobytes()
            )
            conv_out = model.add_tensor(subgraph, f"{node}/transpose_conv", out_shape, _FLOAT32)
            signature = model.signature(subgraph, output)
            subgraph.tensors[conv_out].shapeSignature = np.asarray(
                (signature[0], *out_shape[1:]) if len(signature) == 4 else out_shape, dtype=np.int32
            )
            conv = module.OperatorT()
            conv.opcodeIndex = model.opcode("TRANSPOSE_CONV", version=1)
            conv.inputs = np.asarray([shape_tensor, weights, x], dtype=np.int32)
            conv.outputs = np.asarray([conv_out], dtype=np.int32)
            conv.builtinOptionsType = module.BuiltinOptions.TransposeConvOptions
            conv.builtinOptions = module.TransposeConvOptionsT(
                padding=module.Padding.SAME if padding == 1 else module.Padding.VALID, strideW=stride_w, strideH=stride_h
            )
            add = module.OperatorT()
            add.opcodeIndex = model.opcode("ADD", version=1)
            add.inputs = np.asarray([conv_out, bias], dtype=np.int32)
            add.outputs = np.asarray([output], dtype=np.int32)
            add.builtinOptionsType = module.BuiltinOptions.AddOptions
            add.builtinOptions = module.AddOptionsT()
            operators.extend([conv, add])
            notes.append(
                f"{node}: {TRANSPOSE_CONV_BIAS} (stride {stride_h}x{stride_w}, {'SAME' if padding == 1 else 'VALID'}) "
                "as TRANSPOSE_CONV + ADD"
            )
        subgraph.operators = operators
    return notes


REWRITES.register("sequence_lstm", lstm.unroll_sequence_lstm)


@REWRITES.register("resource_variables")
def resource_variables(model: TFLiteModel) -> list[str]:
    """Resource variables -> state inputs and outputs (`state.py`); the states are kept in `model.states`."""
    model.states = state.expose_state(model)
    return [
        f"variable {s.variable}: state input {s.input or '-'}, next value output {s.output or '-'}, initial value "
        + ("x".join(map(str, s.initial.shape)) or "scalar" if s.initial is not None else "zeros")
        for s in model.states
    ]


@REWRITES.register("one_scale_per_axis")
def one_scale_per_axis(model: TFLiteModel) -> list[str]:
    """One scale with quantized_dimension != 0 -> per-tensor (quantized_dimension 0)."""
    notes = []
    for subgraph in model.model.subgraphs:
        for tensor in subgraph.tensors:
            quant = tensor.quantization
            if quant is None or quant.scale is None or len(quant.scale) != 1 or not quant.quantizedDimension:
                continue
            notes.append(
                f"{tensor.name.decode(errors='replace')}: one scale with quantized_dimension {quant.quantizedDimension}, "
                "read as per-tensor"
            )
            quant.quantizedDimension = 0
    return notes


def prepare(model: TFLiteModel, names: Sequence[str] | None = None) -> list[str]:
    """Run the rewrites (all, or the named ones) in order; the notes of what changed."""
    notes: list[str] = []
    for name in names if names is not None else REWRITES.names():
        notes.extend(REWRITES.get(name)(model))
    return notes


def static_inputs(
    model: TFLiteModel,
    specs: Sequence[InputSpec],
    interpreter_shapes: Callable[[bytes, Mapping[int, tuple[int, ...]]], dict[int, tuple[int, ...]]],
) -> list[str]:
    """Fix the main subgraph's inputs to the shapes of `specs` (--input) and every tensor to the shape that follows.

    `interpreter_shapes(model bytes, {input tensor index: shape})` resizes the inputs in a TFLite interpreter and
    returns every tensor's shape; a dimension fixed by the model that the spec contradicts is a UsageError.
    """
    import numpy as np

    subgraph = model.main
    by_name = {model.tensor_name(subgraph, int(i)): int(i) for i in subgraph.inputs}
    unknown = [s.name for s in specs if s.name not in by_name]
    if unknown:
        raise UsageError(
            f"--input names {', '.join(unknown)}, which the TFLite model does not have as input",
            hint=f"its inputs: {', '.join(by_name)}",
        )
    wanted: dict[int, tuple[int, ...]] = {}
    for spec in specs:
        if spec.shape is None:
            continue
        index = by_name[spec.name]
        signature = model.signature(subgraph, index)
        if len(signature) != len(spec.shape):
            raise UsageError(
                f"--input '{spec.text()}' has rank {len(spec.shape)}, the model's input '{spec.name}' has rank "
                f"{len(signature)} ({'x'.join('?' if d < 0 else str(d) for d in signature)})"
            )
        shape = []
        for axis, (was, new) in enumerate(zip(signature, spec.shape)):
            if isinstance(new, int) and was >= 0 and was != new:
                raise UsageError(f"--input '{spec.text()}' sets dimension {axis} to {new}, but the model fixes it to {was}")
            if not isinstance(new, int) and was < 0:
                raise UsageError(
                    f"--input '{spec.text()}' leaves dimension {axis} of '{spec.name}' dynamic",
                    hint="give a number for every dynamic dimension, e.g. 1 for the batch",
                )
            shape.append(new if isinstance(new, int) else was)
        wanted[index] = tuple(shape)
    if not wanted:
        return []
    try:
        shapes = interpreter_shapes(model.serialize(), wanted)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 -- the TFLite interpreter raises RuntimeError/ValueError with its own text
        raise UnsupportedError(
            f"the TFLite model cannot be resized to {', '.join(s.text() for s in specs)}: {' '.join(str(exc).split())[:200]}",
            path=model.path,
        ) from None
    for index, shape in shapes.items():
        if index < len(subgraph.tensors):
            tensor = subgraph.tensors[index]
            tensor.shape = np.asarray(shape, dtype=np.int32)
            tensor.shapeSignature = None
    for tensor in subgraph.tensors:
        tensor.shapeSignature = None
    names = {model.tensor_name(subgraph, i): s for i, s in wanted.items()}
    return [f"input {n} fixed to {'x'.join(map(str, s))} (--input)" for n, s in names.items()]
