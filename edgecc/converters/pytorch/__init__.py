"""PyTorch frontend: TorchScript archives, torch.export programs (.pt2) and `file.py:function` factories.

State dicts (`.pth` of tensors) are loaded with `weights_only=True` and only
together with an architecture.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.options import DEFAULT_OPSET, ConvertOptions
from edgecc.converters.pytorch import schema

if TYPE_CHECKING:
    import onnx

    from edgecc.converters.pytorch.runner import TorchReference
    from edgecc.converters.pytorch.schema import LoadedModule

__all__ = ["DESCRIPTION", "EXTRA", "convert", "describe", "detect", "reference"]

DESCRIPTION = "PyTorch: TorchScript (.pt), torch.export (.pt2), file.py:function factory (+ state dict)"
EXTRA = "torch"


def detect(paths: Sequence[str]) -> bool:
    """A TorchScript or torch.export zip, a torch.save file, or a `file.py:function` spec."""
    return schema.sniff(paths[0]) is not None


@functools.lru_cache(maxsize=2)
def _load(paths: tuple[str, ...], options: ConvertOptions) -> LoadedModule:
    from edgecc.converters.pytorch.reader import load

    return load(paths, options)


def convert(paths: Sequence[str], options: ConvertOptions) -> onnx.ModelProto:
    """Export the model with torch.onnx into a single ModelProto."""
    from edgecc.converters.pytorch.build import export

    loaded = _load(tuple(paths), options)
    return export(loaded, options.opset or DEFAULT_OPSET)


def reference(paths: Sequence[str], options: ConvertOptions) -> TorchReference:
    """The loaded model run by torch itself."""
    from edgecc.converters.pytorch.runner import TorchReference

    return TorchReference(_load(tuple(paths), options))


def describe(paths: Sequence[str], options: ConvertOptions) -> dict[str, Any]:
    """What can be said without converting: kind, arguments, parameter counts."""
    from edgecc.converters.pytorch.reader import describe_torch_save

    kind = schema.sniff(paths[0])
    if kind == schema.TORCH_SAVE:
        return describe_torch_save(paths[0])
    if kind == schema.TORCHSCRIPT:
        import torch

        module = torch.jit.load(paths[0], map_location="cpu")
        params = list(module.parameters()) + list(module.buffers())
        return {
            "kind": "TorchScript",
            "forward_arguments": [a.name for a in module.forward.schema.arguments[1:]],
            "parameters": sum(int(p.numel()) for p in module.parameters()),
            "parameter_bytes": sum(int(p.numel()) * p.element_size() for p in params),
        }
    return {"kind": kind}
