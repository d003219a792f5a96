"""The zoo's entry files (`*.toml` here): read and checked strictly (see CONTRACT.md)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["load_entries", "default_cache", "FORMATS", "ENTRY_KEYS"]

FORMATS = ("factory", "torchscript", "pt2", "onnx", "keras", "h5", "savedmodel", "tflite", "tflite-int8")
ENTRY_KEYS = {
    "name": str,
    "family": str,
    "source": str,
    "format": str,
    "tags": list,
    "build": dict,
    "targets": list,
    "expect": str,
    "expect_exit": int,
    "expect_names": list,
    "notes": str,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def default_cache() -> Path:
    """The download cache shared by reruns: $EDGECC_CONFORMANCE_CACHE, else ~/.cache/edgecc-conformance."""
    return Path(os.environ.get("EDGECC_CONFORMANCE_CACHE") or Path.home() / ".cache" / "edgecc-conformance")


def load_entries(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every [[entry]] of the folder's .toml files, in file then table order; a bad entry is a ValueError naming it."""
    folder = Path(folder or Path(__file__).parent)
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in sorted(folder.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        unknown = set(data) - {"entry"}
        if unknown:
            raise ValueError(f"{path}: unknown table(s) {sorted(unknown)}: an entry file holds [[entry]] tables")
        for index, entry in enumerate(data.get("entry", [])):
            where = f"{path.name} [[entry]] #{index + 1} ({entry.get('name', '?')})"
            for key, value in entry.items():
                if key not in ENTRY_KEYS:
                    raise ValueError(f"{where}: unknown key '{key}' (known: {', '.join(ENTRY_KEYS)})")
                if not isinstance(value, ENTRY_KEYS[key]) or isinstance(value, bool) and ENTRY_KEYS[key] is int:
                    raise ValueError(f"{where}: '{key}' must be {ENTRY_KEYS[key].__name__}")
            for key in ("name", "family", "source", "format"):
                if key not in entry:
                    raise ValueError(f"{where}: no '{key}'")
            if not _NAME.match(entry["name"]) or entry["name"] in seen:
                raise ValueError(f"{where}: name is a duplicate or not plain")
            if entry["format"] not in FORMATS:
                raise ValueError(f"{where}: format must be one of {', '.join(FORMATS)}")
            expect = entry.setdefault("expect", "match")
            if expect not in ("match", "refuse"):
                raise ValueError(f"{where}: expect must be 'match' or 'refuse'")
            if expect == "refuse" and "expect_exit" not in entry:
                raise ValueError(f"{where}: expect = 'refuse' needs expect_exit")
            entry.setdefault("tags", [])
            entry.setdefault("build", {})
            entry["file"] = path.name
            seen.add(entry["name"])
            entries.append(entry)
    return entries
