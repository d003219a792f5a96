"""Resource variables of a TFLite model (`VAR_HANDLE`, `READ_VARIABLE`, `ASSIGN_VARIABLE`, `CALL_ONCE`) turned into
explicit state, so that a streaming model becomes a stateless ONNX step function.

For each variable (by its shared name) of the main subgraph, its first READ_VARIABLE becomes a model input
`<name>_state_in` and the value of its last ASSIGN_VARIABLE a model output `<name>_state_out`; reads after an
assign see the assigned value, as the interpreter computes them. The initial values come from the subgraph
CALL_ONCE runs (an ASSIGN_VARIABLE of a constant per variable) and are returned as `State` entries; the ONNX
export gives each state input its initial value as the input's default (an initializer of the same name), so
the ONNX model run without the state inputs computes the first step, and fed the previous step's
`_state_out` values it computes the next. The init subgraph is removed (it must be the last subgraph).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecc.converters.tensorflow.flatbuffer import TFLiteModel
from edgecc.errors import UnsupportedNode, UnsupportedOperator

if TYPE_CHECKING:
    import numpy as np

__all__ = ["VARIABLE_OPS", "State", "expose_state"]

VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


@dataclass(frozen=True)
class State:
    """One resource variable as state: the input that takes it, the output that gives its next value, its initial value."""

    variable: str
    input: str | None
    output: str | None
    initial: np.ndarray | None


def _name(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value or "")


def _refuse(model: TFLiteModel, node: str, op: str, reason: str) -> UnsupportedOperator:
    return UnsupportedOperator([UnsupportedNode(node, op, reason)], where="TFLite flatbuffer", path=model.path)


def _handles(model: TFLiteModel, subgraph: Any) -> dict[int, str]:
    """Resource tensor index -> variable shared name, from the VAR_HANDLE ops of a subgraph."""
    found = {}
    for op in subgraph.operators or []:
        if model.opcode_name(op.opcodeIndex)[0] == "VAR_HANDLE":
            options = op.builtinOptions
            shared = _name(getattr(options, "sharedName", None)) or model.tensor_name(subgraph, int(op.outputs[0]))
            found[int(op.outputs[0])] = shared
    return found


def _initial_values(model: TFLiteModel, index: int) -> dict[str, np.ndarray]:
    subgraph = model.model.subgraphs[index]
    handles = _handles(model, subgraph)
    values = {}
    for op in subgraph.operators or []:
        name = model.opcode_name(op.opcodeIndex)[0]
        if name == "ASSIGN_VARIABLE":
            resource, value = (int(t) for t in op.inputs)
            constant = model.constant(subgraph, value)
            if resource in handles and constant is not None:
                values[handles[resource]] = constant.copy()
        elif name != "VAR_HANDLE":
            raise _refuse(
                model,
                model.tensor_name(subgraph, int(op.outputs[0])) if len(op.outputs) else name,
                name,
                "the variables' init subgraph computes its values (edgecc reads constant initial values)",
            )
    return values


def expose_state(model: TFLiteModel) -> list[State]:
    """Rewrite the main subgraph's resource variables into state inputs/outputs; the states (empty: none)."""
    import numpy as np

    main = model.main
    names = [model.opcode_name(op.opcodeIndex)[0] for op in main.operators or []]
    if not any(n in VARIABLE_OPS for n in names):
        return []
    init_index = None
    for op, name in zip(main.operators, names):
        if name == "CALL_ONCE":
            init_index = int(op.builtinOptions.initSubgraphIndex)
    for index, subgraph in enumerate(model.model.subgraphs[1:], start=1):
        if index != init_index and any(model.opcode_name(o.opcodeIndex)[0] in VARIABLE_OPS for o in subgraph.operators or []):
            raise _refuse(model, f"subgraph {index}", "READ_VARIABLE", "resource variables used inside a control-flow subgraph")
    initial = _initial_values(model, init_index) if init_index is not None else {}
    handles = _handles(model, main)
    current: dict[str, int] = {}  # variable -> tensor holding its value at this point of the step
    inputs: dict[str, int] = {}
    outputs: dict[str, int] = {}
    rename: dict[int, int] = {}
    kept = []
    for op, name in zip(main.operators, names):
        op.inputs = np.asarray([rename.get(int(t), int(t)) for t in op.inputs], dtype=np.int32)
        if name in ("VAR_HANDLE", "CALL_ONCE"):
            continue
        if name == "READ_VARIABLE":
            resource, read = int(op.inputs[0]), int(op.outputs[0])
            variable = handles.get(resource)
            if variable is None:
                raise _refuse(model, model.tensor_name(main, read), name, "reads a resource that no VAR_HANDLE makes")
            if variable in current:
                rename[read] = current[variable]
            else:
                current[variable] = inputs[variable] = read
            continue
        if name == "ASSIGN_VARIABLE":
            resource, value = (int(t) for t in op.inputs)
            variable = handles.get(resource)
            if variable is None:
                raise _refuse(model, model.tensor_name(main, value), name, "assigns a resource that no VAR_HANDLE makes")
            current[variable] = outputs[variable] = value
            continue
        kept.append(op)
    main.operators = kept
    graph_inputs = [int(i) for i in main.inputs]
    graph_outputs = [int(o) for o in main.outputs]
    states = []
    for variable in sorted(set(inputs) | set(outputs), key=lambda v: list(handles.values()).index(v)):
        input_name = output_name = None
        if variable in inputs:
            tensor = main.tensors[inputs[variable]]
            tensor.name = f"{variable}_state_in".encode()
            graph_inputs.append(inputs[variable])
            input_name = tensor.name.decode()
        if variable in outputs:
            index = outputs[variable]
            if index not in graph_inputs and index not in graph_outputs and model.buffer_data(main, index) is None:
                main.tensors[index].name = f"{variable}_state_out".encode()
            graph_outputs.append(index)
            output_name = model.tensor_name(main, index)
        states.append(State(variable, input_name, output_name, initial.get(variable)))
    main.inputs = np.asarray(graph_inputs, dtype=np.int32)
    main.outputs = np.asarray(graph_outputs, dtype=np.int32)
    if init_index is not None:
        if init_index != len(model.model.subgraphs) - 1:
            raise _refuse(model, f"subgraph {init_index}", "CALL_ONCE", "the variables' init subgraph is not the last subgraph")
        model.model.subgraphs = model.model.subgraphs[:init_index]
    return states
