"""Frontends: one per framework, each with `detect(paths)` and `convert(paths, options)`.

Frontends are registered by module path and imported only when used, so that
listing or detecting them never imports a heavy framework.

Every frontend package names its modules the same way:

    __init__.py  the frontend interface: DESCRIPTION, EXTRA, detect, convert, [reference], describe,
                 [default_tolerance], supported_*()
    schema.py    what the format is: protobuf schema or data classes, format kinds, recognising a file
                 from its first bytes (cheap: no framework import)
    reader.py    reading the files into those
    graph.py     (frontends edgecc parses itself) the `builder.GraphBuilder` subclass converters write
                 into, and the op registry
    ops_*.py     op converters by category, registered in that registry
    build.py     the parsed model -> onnx.ModelProto
    runner.py    the original framework run as the verification reference, where one exists (not
                 `reference.py`: a submodule of that name would replace the `reference` function)
    runtime.py   lazy, quiet imports of a heavy framework (tensorflow); writer.py: Caffe's caffemodel writer
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from edgecc.errors import InvalidInputError, UsageError
from edgecc.registry import LazyModule, Registry

if TYPE_CHECKING:
    import onnx

    from edgecc.converters.options import ConvertOptions
    from edgecc.verify import Runnable, Tolerance

__all__ = ["FRONTENDS", "Frontend", "get_frontend", "detect_frontend", "frontend_names"]

FRONTENDS: Registry[LazyModule] = Registry("framework")
FRONTENDS.register("onnx", LazyModule("edgecc.converters.onnx_model"))
FRONTENDS.register("pytorch", LazyModule("edgecc.converters.pytorch"))
# before caffe2: both read .pb protobufs; the tensorflow frontend tells GraphDef from NetDef by content
FRONTENDS.register("tensorflow", LazyModule("edgecc.converters.tensorflow"))
FRONTENDS.register("caffe2", LazyModule("edgecc.converters.caffe2"))  # before caffe: NetDef text also has `type:` lines
FRONTENDS.register("caffe", LazyModule("edgecc.converters.caffe"))
FRONTENDS.register("mxnet", LazyModule("edgecc.converters.mxnet"))


@dataclass(frozen=True)
class Frontend:
    """The callable surface of a frontend module."""

    name: str
    description: str
    extra: str | None
    detect: Callable[[Sequence[str]], bool]
    convert: Callable[[Sequence[str], "ConvertOptions"], "onnx.ModelProto"]
    reference: Callable[[Sequence[str], "ConvertOptions"], "Runnable"] | None
    describe: Callable[[Sequence[str], "ConvertOptions"], dict[str, Any]] | None
    # the verification tolerance this source calls for (e.g. quantised steps for int8 TFLite); None: the fp32 preset
    default_tolerance: Callable[[Sequence[str], "ConvertOptions"], "Tolerance | None"] | None = None


def get_frontend(name: str) -> Frontend:
    """The frontend registered as `name`; unknown names are usage errors listing the known ones."""
    try:
        lazy = FRONTENDS.get(name)
    except KeyError:
        raise UsageError(f"unknown framework '{name}'", hint=f"choose one of: {', '.join(FRONTENDS.names())}") from None
    module = lazy.load()
    return Frontend(
        name=name,
        description=getattr(module, "DESCRIPTION", ""),
        extra=getattr(module, "EXTRA", None),
        detect=module.detect,
        convert=module.convert,
        reference=getattr(module, "reference", None),
        describe=getattr(module, "describe", None),
        default_tolerance=getattr(module, "default_tolerance", None),
    )


def frontend_names() -> list[str]:
    """Registered framework names."""
    return FRONTENDS.names()


def detect_frontend(paths: Sequence[str], framework: str | None = None) -> Frontend:
    """The frontend named by `framework`, or the first whose `detect` accepts the files."""
    import os

    from edgecc.fileio import check_input_file

    for path in paths:  # devices, pipes and link loops are refused before any detector reads them
        if os.path.lexists(path) and not os.path.isdir(path):
            check_input_file(path)
    if framework:
        return get_frontend(framework)
    for name in FRONTENDS:
        frontend = get_frontend(name)
        if frontend.detect(paths):
            return frontend
    from pathlib import Path

    if not Path(paths[0]).exists():
        raise UsageError(f"model file '{paths[0]}' does not exist", hint="check the path")
    raise InvalidInputError(
        f"'{paths[0]}' is not a model format edgecc recognises",
        path=paths[0],
        hint=f"supported frameworks: {', '.join(FRONTENDS.names())}; pass --framework if the file is one of them",
    )
