"""Bind `--input` specs and `--arg` values to the parameters of a model's `forward`.

Rules (the same for factories, TorchScript and `.pt2` programs):

- `--arg NAME=VALUE` gives a non-tensor argument (int, float, bool, str, None) by name;
- `--input` specs bind by name; specs whose name is no parameter bind positionally, in order, to the first
  parameters not bound otherwise (their names become the ONNX input names);
- parameters with defaults that nothing binds stay unbound (the model's default is used);
- a required parameter that nothing binds is a usage error naming it;
- keyword-only parameters are passed by keyword, the others positionally as long as no earlier one is skipped.

`Binding.call` calls the model with the tensors of the ONNX inputs (in `Binding.tensors` order) and the constants.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgecc.errors import UsageError
from edgecc.inputs import InputSpec, TensorInfo

__all__ = ["Binding", "Parameter", "bind", "coerce", "python_parameters", "script_parameters"]


@dataclass(frozen=True)
class Parameter:
    """One parameter of `forward`: how it is passed, whether it must be given, and its type when known."""

    name: str
    keyword_only: bool = False
    positional_only: bool = False
    required: bool = True
    type_name: str | None = None  # "Tensor", "int", "float", "bool", "str", ... (None: not declared)
    default: Any = None

    def describe(self) -> str:
        """`name` or `name (int)` for messages."""
        return f"{self.name} ({self.type_name})" if self.type_name and self.type_name != "Tensor" else self.name


def _annotation_name(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = str(text).replace("torch.", "")
    if "Tensor" in text and "Optional" not in text and "None" not in text:
        return "Tensor"
    return text if text in ("int", "float", "bool", "str") else None


def python_parameters(function: Callable[..., Any]) -> tuple[list[Parameter], bool]:
    """The parameters of a Python `forward` (bound method), and whether it also takes `**kwargs`."""
    signature = inspect.signature(function)
    params: list[Parameter] = []
    var_keyword = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        params.append(
            Parameter(
                p.name,
                keyword_only=p.kind is p.KEYWORD_ONLY,
                positional_only=p.kind is p.POSITIONAL_ONLY,
                required=p.default is p.empty,
                type_name=_annotation_name(p.annotation),
                default=None if p.default is p.empty else p.default,
            )
        )
    return params, var_keyword


def script_parameters(module: Any) -> list[Parameter]:
    """The parameters of a TorchScript module's `forward`, from its schema (types and defaults included)."""
    params = []
    for argument in module.forward.schema.arguments[1:]:
        type_name = str(argument.type)
        has_default = argument.has_default_value()
        params.append(
            Parameter(
                argument.name,
                keyword_only=bool(argument.kwarg_only),
                required=not has_default,
                type_name="Tensor" if type_name == "Tensor" else type_name,
                default=argument.default_value if has_default else None,
            )
        )
    return params


_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")


def coerce(value: Any, param: Parameter) -> Any:
    """`value` (parsed from text by `edgecc.inputs.parse_arg_values`) converted to the parameter's declared type."""
    kind = (param.type_name or "").replace("Optional[", "").rstrip("]").rstrip("?")
    if value is None or not kind:
        return value
    try:
        if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind == "str" and not isinstance(value, str):
            return str(value).lower() if isinstance(value, bool) else str(value)
        if kind == "bool" and isinstance(value, int) and value in (0, 1):
            return bool(value)
    except (TypeError, ValueError):
        pass
    expected = {"int": int, "float": float, "bool": bool, "str": str}.get(kind)
    if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
        raise UsageError(f"--arg {param.name}={value!r}: forward() declares {param.name} as {kind}")
    return value


@dataclass
class Binding:
    """How ONNX inputs and `--arg` constants reach `forward`."""

    parameters: list[Parameter]
    tensors: list[str]  # parameter names fed by the ONNX inputs, in ONNX input order
    constants: dict[str, Any] = field(default_factory=dict)  # parameter name -> --arg value
    extra_keywords: dict[str, Any] = field(default_factory=dict)  # --arg values for **kwargs

    def is_plain(self) -> bool:
        """True when the tensors are exactly `forward`'s parameters, in order, and nothing else is passed."""
        return not self.constants and not self.extra_keywords and self.tensors == [p.name for p in self.parameters]

    def arguments(self, tensors: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments of `forward` for `tensors` (in ONNX input order)."""
        values = dict(zip(self.tensors, tensors))
        values.update(self.constants)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        skipped = False
        for param in self.parameters:
            if param.name not in values:
                skipped = True
                continue
            if param.keyword_only or (skipped and not param.positional_only):
                kwargs[param.name] = values[param.name]
            else:
                args.append(values[param.name])
        kwargs.update(self.extra_keywords)
        return args, kwargs

    def call(self, function: Callable[..., Any], tensors: Sequence[Any]) -> Any:
        """`function(...)` with the tensors and constants in their places."""
        args, kwargs = self.arguments(tensors)
        return function(*args, **kwargs)


def _takes(params: Sequence[Parameter]) -> str:
    return ", ".join(p.describe() + ("" if p.required else "=...") for p in params) or "nothing"


def bind(
    params: Sequence[Parameter],
    specs: Sequence[InputSpec],
    args: Mapping[str, Any],
    source: str,
    *,
    var_keyword: bool = False,
    default_dtype: str = "float32",
) -> tuple[Binding, list[TensorInfo]]:
    """Bind specs and `--arg` values to `params`; returns the binding and the ONNX inputs (one per spec)."""
    by_name = {p.name: p for p in params}
    constants: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in args.items():
        if name in by_name:
            constants[name] = coerce(value, by_name[name])
        elif var_keyword:
            extra[name] = value
        else:
            raise UsageError(f"--arg {name}: {source} has no such forward() parameter (forward takes: {_takes(params)})")
    if not specs:
        required = [p for p in params if p.required and p.name not in constants]
        example = required[0].name if required else (params[0].name if params else "x")
        raise UsageError(
            f"{source} carries no input shapes",
            hint=f"give them with --input, e.g. --input {example}:1x3x224x224 (forward takes: {_takes(params)})",
        )
    free = [p for p in params if p.name not in constants]
    named = {s.name for s in specs if s.name in by_name}
    clash = sorted(named & set(constants))
    if clash:
        raise UsageError(f"'{clash[0]}' is given both by --input and by --arg")
    bound: dict[str, InputSpec] = {s.name: s for s in specs if s.name in named}
    open_params = [p for p in free if p.name not in bound and not p.keyword_only]
    positional_specs = [s for s in specs if s.name not in named]
    if len(positional_specs) > len(open_params):
        raise UsageError(
            f"{source}: forward takes {len(free)} input(s) ({_takes(free)}), --input gives {len(specs)} "
            f"({', '.join(s.name for s in specs)})",
            hint="name the --input specs after forward()'s parameters",
        )
    for spec, param in zip(positional_specs, open_params):
        bound[param.name] = spec
    missing = [p for p in params if p.required and p.name not in bound and p.name not in constants]
    if missing:
        tensor_like = [p for p in missing if p.type_name in (None, "Tensor")]
        others = [p for p in missing if p not in tensor_like]
        hints = [f"--input {p.name}:DIMS[:DTYPE]" for p in tensor_like] + [f"--arg {p.name}=VALUE" for p in others]
        raise UsageError(
            f"{source}: forward() parameter(s) {', '.join(p.describe() for p in missing)} have no default and are not given",
            hint="give " + ", ".join(hints),
        )
    order = [p.name for p in params if p.name in bound]
    infos = []
    for name in order:
        spec = bound[name]
        if spec.shape is None:
            raise UsageError(
                f"--input '{spec.text()}' needs dimensions for a PyTorch model", hint=f"e.g. {spec.name}:1x3x224x224"
            )
        infos.append(TensorInfo(spec.name, spec.shape, spec.dtype or default_dtype))
    return Binding(list(params), order, constants, extra), infos
