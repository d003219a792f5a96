"""Recognise PyTorch artefacts from their content, without importing torch."""

from __future__ import annotations

import zipfile
from pathlib import Path

__all__ = ["TORCHSCRIPT", "EXPORTED_PROGRAM", "TORCH_SAVE", "FACTORY", "sniff", "split_factory"]

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
        return {".pt2": EXPORTED_PROGRAM, ".ptl": TORCHSCRIPT}.get(path.suffix.lower(), TORCH_SAVE if path.suffix.lower() in (".pt", ".pth", ".th", ".bin", ".ckpt") else None)
    inner = [m.split("/", 1)[1] for m in members if "/" in m]
    if any(m.startswith("code/") for m in inner):
        return TORCHSCRIPT
    if any(m in ("archive_format", "archive_version") or (m.startswith("models/") and m.endswith(".json")) for m in inner):
        return EXPORTED_PROGRAM
    if "data.pkl" in inner:
        return TORCH_SAVE
    return None
