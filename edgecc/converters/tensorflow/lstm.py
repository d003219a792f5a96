"""TFLite's fused `UNIDIRECTIONAL_SEQUENCE_LSTM`, which tf2onnx cannot convert, unrolled into builtin ops it can.

The fused op (inputs: sequence, per-gate input and recurrent weights, optional peepholes, gate biases, optional
projection, the output and cell state variables, optional layer-norm weights) is rewritten, for float models with
constant weights and a static sequence length, into one step per time index that computes what TFLite's float
kernel computes (lstm_eval.cc): gates = FC(x_t, W_x, bias) + FC(h, W_h), sigmoid input/forget/output gates (the
input gate is 1 - forget with CIFG), the cell gate through the op's activation, c = f * c + i * g (clipped to
`cell_clip` when set), h = o * activation(c). The states start from the state variables' initial values (zero
unless the file stores others), as the interpreter does after allocating. The per-gate weights are concatenated
into one matrix per step; steps are UNPACKed from and PACKed back into the sequence.

Peepholes, projection and layer normalisation, quantised LSTMs and non-constant weights are exit 4 naming the node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecc.converters.tensorflow.flatbuffer import TFLiteModel, schema
from edgecc.errors import UnsupportedNode, UnsupportedOperator

if TYPE_CHECKING:
    import numpy as np

__all__ = ["OP", "unroll_sequence_lstm"]

OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"

_FLOAT32 = 0
_INT32 = 2
_INPUT_WEIGHTS = (1, 2, 3, 4)  # input, forget, cell, output gates
_RECURRENT_WEIGHTS = (5, 6, 7, 8)
_BIASES = (12, 13, 14, 15)
_UNSUPPORTED_INPUTS = {9: "peepholes", 10: "peepholes", 11: "peepholes", 16: "projection", 17: "projection"}
_LAYER_NORM = (20, 21, 22, 23)
_OUTPUT_STATE, _CELL_STATE = 18, 19


class _Steps:
    """Appends the unrolled ops' tensors and operators for one LSTM node."""

    def __init__(self, model: TFLiteModel, subgraph: Any, prefix: str) -> None:
        self.model, self.subgraph, self.prefix = model, subgraph, prefix
        self.operators: list[Any] = []
        self.count = 0

    def constant(self, name: str, value: np.ndarray) -> int:
        import numpy as np

        value = np.array(value, order="C")  # ascontiguousarray would make a scalar 1-D
        code = _INT32 if value.dtype == np.int32 else _FLOAT32
        dtype = "<i4" if code == _INT32 else "<f4"
        return self.model.add_tensor(self.subgraph, f"{self.prefix}/{name}", value.shape, code, value.astype(dtype).tobytes())

    def tensor(self, name: str, shape: tuple[int, ...]) -> int:
        self.count += 1
        return self.model.add_tensor(self.subgraph, f"{self.prefix}/{name}", shape, _FLOAT32)

    def op(self, name: str, inputs: list[int], shapes: list[tuple[int, ...]], label: str, options: Any = None) -> list[int]:
        outputs = [self.tensor(f"{label}{'' if len(shapes) == 1 else f':{k}'}", s) for k, s in enumerate(shapes)]
        self.operators.append(self.model.make_operator(name, inputs, outputs, options))
        return outputs

    def activation(self, code: int, x: int, shape: tuple[int, ...], label: str) -> int:
        names = {1: "RELU", 3: "RELU6", 4: "TANH"}
        if code == 0:
            return x
        return self.op(names[code], [x], [shape], label)[0]


def _refuse(model: TFLiteModel, node: str, reason: str) -> UnsupportedOperator:
    return UnsupportedOperator([UnsupportedNode(node, OP, reason)], where="TFLite flatbuffer", path=model.path)


def _weights(model: TFLiteModel, subgraph: Any, inputs: list[int], slots: tuple[int, ...], node: str) -> list[Any]:
    """The constant float arrays at `slots` (None for an omitted optional one)."""
    found = []
    for slot in slots:
        index = inputs[slot] if slot < len(inputs) else -1
        if index < 0:
            found.append(None)
            continue
        value = model.constant(subgraph, index)
        if value is None or model.dtype(subgraph, index) != "float32":
            raise _refuse(model, node, f"input {slot} ({model.tensor_name(subgraph, index)}) is not a float32 constant")
        found.append(value)
    return found


def _initial_state(model: TFLiteModel, subgraph: Any, index: int, shape: tuple[int, int]) -> np.ndarray:
    import numpy as np

    value = model.constant(subgraph, index) if index >= 0 else None
    if value is None or value.size != shape[0] * shape[1]:
        return np.zeros(shape, dtype=np.float32)
    return value.reshape(shape).astype(np.float32)


def _unroll(model: TFLiteModel, subgraph: Any, op: Any) -> list[Any]:
    import numpy as np

    module = schema()
    inputs = [int(t) for t in op.inputs]
    output = int(op.outputs[0])
    node = model.tensor_name(subgraph, output)
    options = op.builtinOptions
    if model.dtype(subgraph, inputs[0]) != "float32" or model.dtype(subgraph, output) != "float32":
        raise _refuse(model, node, f"{model.dtype(subgraph, inputs[0])} LSTM (edgecc unrolls float LSTMs)")
    for slot, what in _UNSUPPORTED_INPUTS.items():
        if slot < len(inputs) and inputs[slot] >= 0:
            raise _refuse(model, node, f"LSTM with {what}")
    if any(slot < len(inputs) and inputs[slot] >= 0 for slot in _LAYER_NORM):
        raise _refuse(model, node, "LSTM with layer normalisation")
    activation = int(getattr(options, "fusedActivationFunction", 4) or 0)
    if activation not in (0, 1, 3, 4):
        raise _refuse(model, node, f"LSTM activation {activation}")
    input_w = _weights(model, subgraph, inputs, _INPUT_WEIGHTS, node)
    recurrent_w = _weights(model, subgraph, inputs, _RECURRENT_WEIGHTS, node)
    biases = _weights(model, subgraph, inputs, _BIASES, node)
    cifg = input_w[0] is None
    gates = [g for g in range(4) if not (cifg and g == 0)]
    if any(input_w[g] is None or recurrent_w[g] is None or biases[g] is None for g in gates):
        raise _refuse(model, node, "LSTM without the weights or biases of a gate")
    shape = model.signature(subgraph, inputs[0])
    time_major = bool(getattr(options, "timeMajor", False))
    if len(shape) != 3 or any(d < 0 for d in shape):
        raise _refuse(model, node, f"sequence of shape {shape} (needs a static [batch, time, features])")
    batch, steps = (shape[1], shape[0]) if time_major else (shape[0], shape[1])
    cells, outputs_n = input_w[gates[0]].shape[0], recurrent_w[gates[0]].shape[1]
    emit = _Steps(model, subgraph, node)
    w_x = emit.constant("input_weights", np.concatenate([input_w[g] for g in gates], axis=0))
    w_h = emit.constant("recurrent_weights", np.concatenate([recurrent_w[g] for g in gates], axis=0))
    bias = emit.constant("bias", np.concatenate([biases[g] for g in gates], axis=0))
    axis_one = emit.constant("split_axis", np.asarray(1, dtype=np.int32))
    time_axis = 0 if time_major else 1
    step_inputs = emit.op(
        "UNPACK", [inputs[0]], [(batch, shape[2])] * steps, "x", module.UnpackOptionsT(num=steps, axis=time_axis)
    )
    h0 = _initial_state(model, subgraph, inputs[_OUTPUT_STATE], (batch, outputs_n))
    c0 = _initial_state(model, subgraph, inputs[_CELL_STATE], (batch, cells))
    h = None if not h0.any() else emit.constant("output_state", h0)
    c = None if not c0.any() else emit.constant("cell_state", c0)
    one = emit.constant("one", np.ones((1,), dtype=np.float32)) if cifg else -1
    clip = float(getattr(options, "cellClip", 0.0) or 0.0)
    clip_bounds = (
        (emit.constant("clip_max", np.asarray([clip], np.float32)), emit.constant("clip_min", np.asarray([-clip], np.float32)))
        if clip > 0
        else None
    )
    width = len(gates) * cells
    hidden = []
    fc = module.FullyConnectedOptionsT
    for t, x in enumerate(step_inputs):
        pre = emit.op("FULLY_CONNECTED", [x, w_x, bias], [(batch, width)], f"t{t}/input_gates", fc())[0]
        if h is not None:
            rec = emit.op("FULLY_CONNECTED", [h, w_h, -1], [(batch, width)], f"t{t}/recurrent_gates", fc())[0]
            pre = emit.op("ADD", [pre, rec], [(batch, width)], f"t{t}/gates", module.AddOptionsT())[0]
        parts = emit.op(
            "SPLIT", [axis_one, pre], [(batch, cells)] * len(gates), f"t{t}/split", module.SplitOptionsT(numSplits=len(gates))
        )
        named = dict(zip(gates, parts))
        forget = emit.op("LOGISTIC", [named[1]], [(batch, cells)], f"t{t}/forget")[0]
        if cifg:
            gate_in = emit.op("SUB", [one, forget], [(batch, cells)], f"t{t}/input", module.SubOptionsT())[0]
        else:
            gate_in = emit.op("LOGISTIC", [named[0]], [(batch, cells)], f"t{t}/input")[0]
        candidate = emit.activation(activation, named[2], (batch, cells), f"t{t}/candidate")
        gate_out = emit.op("LOGISTIC", [named[3]], [(batch, cells)], f"t{t}/output")[0]
        new_c = emit.op("MUL", [gate_in, candidate], [(batch, cells)], f"t{t}/input_x_candidate", module.MulOptionsT())[0]
        if c is not None:
            kept = emit.op("MUL", [forget, c], [(batch, cells)], f"t{t}/forget_x_cell", module.MulOptionsT())[0]
            new_c = emit.op("ADD", [kept, new_c], [(batch, cells)], f"t{t}/cell", module.AddOptionsT())[0]
        if clip_bounds is not None:
            new_c = emit.op("MINIMUM", [new_c, clip_bounds[0]], [(batch, cells)], f"t{t}/cell_clip_max")[0]
            new_c = emit.op("MAXIMUM", [new_c, clip_bounds[1]], [(batch, cells)], f"t{t}/cell_clip_min")[0]
        c = new_c
        squashed = emit.activation(activation, c, (batch, cells), f"t{t}/cell_activation")
        h = emit.op("MUL", [gate_out, squashed], [(batch, outputs_n)], f"t{t}/hidden", module.MulOptionsT())[0]
        hidden.append(h)
    emit.operators.append(model.make_operator("PACK", hidden, [output], module.PackOptionsT(valuesCount=steps, axis=time_axis)))
    return emit.operators


def unroll_sequence_lstm(model: TFLiteModel) -> list[str]:
    """Every UNIDIRECTIONAL_SEQUENCE_LSTM of every subgraph unrolled in place; one note per node."""
    notes = []
    for subgraph in model.model.subgraphs:
        operators = []
        for op in subgraph.operators or []:
            name, custom = model.opcode_name(op.opcodeIndex)
            if custom or name != OP:
                operators.append(op)
                continue
            unrolled = _unroll(model, subgraph, op)
            operators.extend(unrolled)
            shape = model.signature(subgraph, int(op.inputs[0]))
            notes.append(
                f"{model.tensor_name(subgraph, int(op.outputs[0]))}: {OP} over {shape} unrolled into {len(unrolled)} builtin ops"
            )
        subgraph.operators = operators
    return notes
