"""The PyTorch artefacts: their kinds, recognised from content without importing torch, and `LoadedModule`."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import torch

    from edgecc.converters.pytorch.bind import Binding

__all__ = ["EXPORTED_PROGRAM", "FACTORY", "TORCHSCRIPT", "TORCH_SAVE", "LoadedModule", "sniff", "split_factory"]

TORCHSCRIPT = "torchscript"
EXPORTED_PROGRAM = "exported-program"
TORCH_SAVE = "torch-save"  # torch.save output: a state dict or checkpoint (tensors only, we hope)
FACTORY = "python-factory"

# torch.save's legacy (non-zip) format: pickle protocol 2 + the long 0x1950a86a20f9469cfc6c
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def split_factory(spec: str) -> tuple[Path, str] | None:
    """`path/to/file.py:function` -> (file, function); None for anything else."""
    file_text, sep, function = spec.rpartition(":")
    if sep and file_text.endswith(".py") and function.isidentifier():
        return Path(file_text), function
    return None


def _zip_members(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def sniff(path_text: str) -> str | None:
    """The kind of PyTorch artefact at `path_text`, or None if it is not one."""
    if split_factory(path_text):
        return FACTORY
    path = Path(path_text)
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(_LEGACY_MAGIC):
        return TORCH_SAVE
    if not head.startswith(b"PK"):
        return None
    members = _zip_members(path)
    if members is None:
        # a truncated zip keeps its local headers: judge by the suffix then
        return {".pt2": EXPORTED_PROGRAM, ".ptl": TORCHSCRIPT}.get(
            path.suffix.lower(), TORCH_SAVE if path.suffix.lower() in (".pt", ".pth", ".th", ".bin", ".ckpt") else None
        )
    inner = [m.split("/", 1)[1] for m in members if "/" in m]
    if any(m.startswith("code/") for m in inner):
        return TORCHSCRIPT
    if any(m in ("archive_format", "archive_version") or (m.startswith("models/") and m.endswith(".json")) for m in inner):
        return EXPORTED_PROGRAM
    if "data.pkl" in inner:
        return TORCH_SAVE
    return None


@dataclass
class LoadedModule:
    """A runnable PyTorch model with its ONNX input names and example inputs."""

    kind: str
    module: Any  # nn.Module, ScriptModule or ExportedProgram
    inputs: list[TensorInfo]
    example_inputs: tuple[torch.Tensor, ...]
    dynamic_dims: dict[str, dict[int, str]]
    binding: Binding | None = None  # how the inputs (and --arg constants) reach forward(); None: positionally
    output_names: list[str] | None = None  # ONNX output names, in the order of `run`'s leaves (set by the loader)
    source: str = "the model"  # for messages

    def callable(self) -> Any:
        """The thing to call with input tensors."""
        if self.kind == EXPORTED_PROGRAM:
            return self.module.module()
        return self.module

    def forward(self, tensors: Any) -> Any:
        """The model's own output (tensor, tuple, dict, ModelOutput) for `tensors` in ONNX input order."""
        if self.binding is None:
            return self.callable()(*tensors)
        return self.binding.call(self.callable(), tensors)
