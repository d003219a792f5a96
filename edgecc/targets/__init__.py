"""Targets: the accelerators edgecc compiles for (Target API in `api`, one module per built-in).

Targets come from three places, all loaded through `load_targets()`:
built-ins (the modules of this package named in BUILTIN_MODULES, each declaring its targets in a
`TARGETS` dict: name -> `Target` or a callable returning one), the Python entry-point group
`edgecc.targets` (a third-party package declares `[project.entry-points."edgecc.targets"] name =
"module:TARGET"`, the object being a `Target` or a callable returning one), and target description
files (TOML, see `toml_target`) named by `EDGECC_TARGET_FILES` (os.pathsep-separated) or passed as
`--target FILE.toml`. Importing this package imports no target module: the first `load_targets()` does.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgecc.errors import UsageError
from edgecc.registry import Registry
from edgecc.targets.api import Target

__all__ = ["BUILTINS", "BUILTIN_MODULES", "ENTRY_POINT_GROUP", "Target", "builtin_targets", "get_target", "load_targets"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "edgecc.targets"

#: the modules of the built-in targets, in listing order: the one list of built-ins (BUILTINS derives from it)
BUILTIN_MODULES = ("cpu", "mali_gpu", "qnn_htp", "hisilicon_npu", "ethos_u", "edgetpu", "armnn")

_CACHE: list[Registry[Target]] = []


def _declared() -> Iterator[tuple[str, str, object]]:
    """(module, target name, Target or factory) for every target the built-in modules declare."""
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        for name, entry in module.TARGETS.items():
            yield module.__name__, name, entry


def builtin_targets() -> dict[str, Target | Callable[[], Target]]:
    """Every built-in target name -> its `Target` (or factory), from the `TARGETS` of each of BUILTIN_MODULES."""
    found: dict[str, Target | Callable[[], Target]] = {}
    for module, name, entry in _declared():
        if name in found:
            raise ValueError(f"built-in target '{name}' is declared twice (again in {module})")
        found[name] = entry
    return found


def __getattr__(name: str) -> Any:
    if name == "BUILTINS":  # built-in target name -> the module declaring it (derived from BUILTIN_MODULES; imports them)
        return {target: module for module, target, _ in _declared()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _built(entry: object, what: str) -> Target:
    target = entry() if callable(entry) and not isinstance(entry, Target) else entry
    if not isinstance(target, Target):
        raise TypeError(f"{what} is a {type(target).__name__}, not an edgecc Target")
    return target


def _resolve(spec: str) -> Target:
    module_name, _, attr = spec.partition(":")
    return _built(getattr(importlib.import_module(module_name), attr or "TARGET"), spec)


def load_targets(*, refresh: bool = False) -> Registry[Target]:
    """Every target: built-ins, entry points, then description files from EDGECC_TARGET_FILES."""
    if _CACHE and not refresh:
        return _CACHE[0]
    from importlib.metadata import entry_points

    registry: Registry[Target] = Registry("target")
    for name, entry in builtin_targets().items():
        target = _built(entry, f"built-in target '{name}'")
        if target.name != name:
            raise ValueError(f"built-in target '{name}' is named '{target.name}'")
        registry.register(name, target)
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.name in registry:
            continue  # a plug-in never replaces a built-in (nor do stale installed entry points naming built-ins)
        try:
            target = _resolve(entry.value)
        except Exception as exc:  # noqa: BLE001 -- a broken plug-in must not break every command
            log.warning("target plug-in '%s' (%s) failed to load: %s", entry.name, entry.value, exc)
            continue
        target.source = f"entry point {entry.value}"
        registry.register(entry.name, target)
    for file in filter(None, os.environ.get("EDGECC_TARGET_FILES", "").split(os.pathsep)):
        from edgecc.targets.toml_target import load_target_file

        target = load_target_file(Path(file))
        if target.name not in registry:
            registry.register(target.name, target)
    _CACHE[:] = [registry]
    return registry


def get_target(name: str) -> Target:
    """A target by name, or from a `.toml` description file; unknown names list the known ones (exit 2)."""
    if name.endswith(".toml") or os.sep in name:
        from edgecc.targets.toml_target import load_target_file

        path = Path(name)
        if not path.exists():
            raise UsageError(f"target description file '{name}' does not exist")
        return load_target_file(path)
    registry = load_targets()
    if name not in registry:
        raise UsageError(
            f"unknown target '{name}'", hint=f"known targets: {', '.join(registry.names())} (or a .toml description file)"
        )
    return registry.get(name)
