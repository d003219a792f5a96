"""The pass API: the registry, what a pass is, sees and returns, and the -O levels as data (re-exported by edgecc.passes)."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecc.registry import Registry

if TYPE_CHECKING:
    import onnx_ir as ir


__all__ = [
    "PASSES",
    "Pass",
    "PassContext",
    "PassFunction",
    "PassResult",
    "register_pass",
    "LEVELS",
    "LEVEL_ADDITIONS",
    "load_passes",
    "pipeline_for",
]


@dataclass(frozen=True)
class PassContext:
    """Settings passes may read (frozen: unknown keys are rejected)."""

    opset: int | None = None  # target ai.onnx opset for opset-dependent rewrites
    fold_size_limit: int = 1 << 20  # constant folding: largest tensor (elements) created or read
    keep_initializer_inputs: bool = False  # initializers also listed as graph inputs stay overridable inputs


@dataclass(frozen=True)
class PassResult:
    """What one pass did: the model after it, whether it changed the model, and how many rewrites it counted.

    It mirrors `onnx_ir.passes.PassResult(model, modified)` (same fields, same
    meaning: `modified` says whether the returned model differs from the input)
    and adds `rewrites`, the count the optimisation report shows. It mirrors
    rather than subclasses it because onnx_ir's class is a mutable dataclass (a
    frozen dataclass cannot inherit from one) and so that importing the pass
    registry does not import onnx_ir. `from_ir` takes an onnx_ir or onnxscript
    result through unchanged; `to_ir` gives one back for onnx_ir's pass managers.
    """

    model: "ir.Model"
    modified: bool
    rewrites: int = 0

    def __post_init__(self) -> None:
        if self.rewrites < 0:
            raise ValueError(f"a pass cannot make {self.rewrites} rewrites")
        if self.rewrites and not self.modified:
            raise ValueError(f"a pass that made {self.rewrites} rewrites must say it modified the model")

    @classmethod
    def counted(cls, model: "ir.Model", rewrites: int) -> "PassResult":
        """The result of a pass that modified `model` exactly when it made a rewrite."""
        return cls(model, rewrites > 0, rewrites)

    @classmethod
    def from_ir(cls, result: "ir.passes.PassResult", rewrites: int = 0) -> "PassResult":
        """An onnx_ir/onnxscript pass's result taken through (a counted rewrite also marks it modified)."""
        return cls(result.model, bool(result.modified) or rewrites > 0, rewrites)

    def to_ir(self) -> "ir.passes.PassResult":
        """The same result as an `onnx_ir.passes.PassResult` (without the rewrite count)."""
        import onnx_ir as ir

        return ir.passes.PassResult(self.model, self.modified)


#: the signature of every registered pass
PassFunction = Callable[["ir.Model", PassContext], PassResult]


@dataclass(frozen=True)
class Pass:
    """A registered pass: name, family, one-line description and the function."""

    name: str
    family: str
    description: str
    run: PassFunction
    once: bool = False  # runs once after the fixed-point loop (annotations, analyses, opset conversion)


PASSES: Registry[Pass] = Registry("pass")

_PASS_MODULES = (
    "edgecc.passes.cleanup",
    "edgecc.passes.fusion",
    "edgecc.passes.reparameterize",
    "edgecc.passes.layout",
    "edgecc.passes.patterns",
)


def register_pass(name: str, family: str, *, once: bool = False) -> Callable[[PassFunction], PassFunction]:
    """Register a pass function; its docstring's first line is its description."""

    def decorator(func: PassFunction) -> PassFunction:
        description = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        PASSES.register(name, Pass(name, family, description, func, once))
        return func

    return decorator


def load_passes() -> Registry[Pass]:
    """Import every pass module (they register themselves) and return the registry."""
    for module in _PASS_MODULES:
        importlib.import_module(module)
    return PASSES


#: what each -O level adds to the level below it (index = level; -O0 runs nothing)
LEVEL_ADDITIONS: tuple[tuple[str, ...], ...] = (
    (),
    (
        "constant-initializer-inputs",
        "lift-constants",
        "eliminate-identity",
        "fold-constants",
        "eliminate-dead-code",
        "dedup-initializers",
        "eliminate-common-subexpressions",
    ),
    (
        "fold-measured-shapes",
        "fold-batchnorm",
        "fold-affine",
        "merge-parallel-convs",
        "div-to-mul",
        "matmul-add-to-gemm",
        "fold-pad",
        "collapse-reshapes",
        "merge-slices",
        "optimize-transposes",
    ),
    ("recognize-patterns", "annotate-activations", "normalize-opset", "infer-shapes"),
)

#: -O levels as lists of pass names: each level runs the level below it, then its own additions
LEVELS: dict[int, tuple[str, ...]] = {
    level: tuple(itertools.chain.from_iterable(LEVEL_ADDITIONS[: level + 1])) for level in range(len(LEVEL_ADDITIONS))
}


def pipeline_for(level: int, edits: tuple[str, ...] = ()) -> list[str]:
    """The pass names of `level`, with `name`/`+name` appended and `-name` removed."""
    from edgecc.errors import UsageError

    if level not in LEVELS:
        raise UsageError(f"unknown optimisation level {level}", hint=f"choose one of {', '.join(map(str, LEVELS))}")
    registry = load_passes()
    names = list(LEVELS[level])
    for edit in edits:
        remove = edit.startswith("-")
        name = edit.lstrip("+-")
        if name not in registry:
            raise UsageError(f"unknown pass '{name}'", hint=f"`edgecc passes` lists them: {', '.join(registry.names())}")
        if remove:
            names = [n for n in names if n != name]
        elif name not in names:
            names.append(name)
    return names
