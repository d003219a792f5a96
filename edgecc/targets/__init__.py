"""Targets: the accelerators edgecc compiles for (Target API in `api`, one module per built-in).

Targets come from three places, all loaded through `load_targets()`:
built-ins (this package), the Python entry-point group `edgecc.targets` (a third-party package
declares `[project.entry-points."edgecc.targets"] name = "module:TARGET"`, the object being a
`Target` or a callable returning one), and target description files (TOML, see `toml_target`)
named by `EDGECC_TARGET_FILES` (os.pathsep-separated) or passed as `--target FILE.toml`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from edgecc.errors import UsageError
from edgecc.registry import Registry
from edgecc.targets.api import Target

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "Target", "get_target", "load_targets"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "edgecc.targets"

#: built-in target name -> "module:attribute" (the same form as an entry point)
BUILTINS: dict[str, str] = {
    "cpu": "edgecc.targets.cpu:TARGET",
    "mali-gpu": "edgecc.targets.mali_gpu:TARGET",
    "qnn-htp": "edgecc.targets.qnn_htp:TARGET",
    "hisilicon-npu": "edgecc.targets.hisilicon_npu:TARGET",
    "ethos-u": "edgecc.targets.ethos_u:ETHOS_U",
    "ethos-u55-32": "edgecc.targets.ethos_u:ETHOS_U55_32",
    "ethos-u55-64": "edgecc.targets.ethos_u:ETHOS_U55_64",
    "ethos-u55-128": "edgecc.targets.ethos_u:ETHOS_U55_128",
    "ethos-u55-256": "edgecc.targets.ethos_u:ETHOS_U55_256",
    "ethos-u65-256": "edgecc.targets.ethos_u:ETHOS_U65_256",
    "ethos-u65-512": "edgecc.targets.ethos_u:ETHOS_U65_512",
    "ethos-u85-128": "edgecc.targets.ethos_u:ETHOS_U85_128",
    "ethos-u85-256": "edgecc.targets.ethos_u:ETHOS_U85_256",
    "ethos-u85-512": "edgecc.targets.ethos_u:ETHOS_U85_512",
    "ethos-u85-1024": "edgecc.targets.ethos_u:ETHOS_U85_1024",
    "ethos-u85-2048": "edgecc.targets.ethos_u:ETHOS_U85_2048",
    "edgetpu": "edgecc.targets.edgetpu:TARGET",
    "armnn": "edgecc.targets.armnn:ARMNN",
    "armnn-cpuacc": "edgecc.targets.armnn:ARMNN_CPUACC",
    "armnn-gpuacc": "edgecc.targets.armnn:ARMNN_GPUACC",
}

_CACHE: list[Registry[Target]] = []


def _resolve(spec: str) -> Target:
    import importlib

    module_name, _, attr = spec.partition(":")
    obj = getattr(importlib.import_module(module_name), attr or "TARGET")
    target = obj() if callable(obj) and not isinstance(obj, Target) else obj
    if not isinstance(target, Target):
        raise TypeError(f"{spec} is a {type(target).__name__}, not an edgecc Target")
    return target


def load_targets(*, refresh: bool = False) -> Registry[Target]:
    """Every target: built-ins, entry points, then description files from EDGECC_TARGET_FILES."""
    if _CACHE and not refresh:
        return _CACHE[0]
    from importlib.metadata import entry_points

    registry: Registry[Target] = Registry("target")
    for name, spec in BUILTINS.items():
        registry.register(name, _resolve(spec))
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.name in registry:
            continue  # a built-in declared again through pyproject's entry points
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
        raise UsageError(f"unknown target '{name}'", hint=f"known targets: {', '.join(registry.names())} (or a .toml description file)")
    return registry.get(name)


