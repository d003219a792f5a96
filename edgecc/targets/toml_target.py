"""Targets from a description file (TOML), for vendors who only describe operator support and costs.

```toml
name = "acme-npu"
description = "ACME NPU, int8, own memory"
precisions = ["int8"]          # first = default
static_shapes = true
[memory]                       # kind = "shared" (sync_us) or "dma" (bandwidth_gbps, setup_us)
kind = "dma"
bandwidth_gbps = 4.0
setup_us = 20.0
[cost]
launch_us = 200.0
memory_gbps = 10.0
op_overhead_us = 1.0
gmacs = { int8 = 300.0 }
[quant_scheme]                 # fields of edgecc.quantization.scheme.QuantScheme
activation_type = "uint8"
[generic]                      # checks on every node
max_rank = 4
batch_one = true
[ops.Conv]                     # one table per supported op; keys are constraints
kernel = [1, 7]
stride = [1, 2]
constant_weights = true
[ops.Relu]
```
Constraint keys: kernel=[lo,hi], stride=[lo,hi], max_rank=N, max_channels=N, constant_weights, dilation_one,
conv_2d, axis_last, no_ceil_mode, depthwise_or_dense, symmetric_pads, batch_one, static_shapes, float_tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecc.errors import InvalidInputError
from edgecc.quantization import QuantScheme
from edgecc.targets import constraints as c
from edgecc.targets.api import Check, CostModel, Memory, Target

__all__ = ["CONSTRAINT_KEYS", "load_target_file", "target_from_dict"]

#: TOML key -> factory(value) -> check (flags take `true`)
CONSTRAINT_KEYS: dict[str, Callable[[Any], Check]] = {
    "kernel": lambda v: c.kernel_range(int(v[0]), int(v[1])),
    "stride": lambda v: c.stride_range(int(v[0]), int(v[1])),
    "max_rank": lambda v: c.max_rank(int(v)),
    "max_channels": lambda v: c.max_channels(int(v)),
    "constant_weights": lambda v: c.constant_weights,
    "dilation_one": lambda v: c.dilation_one,
    "conv_2d": lambda v: c.conv_2d,
    "axis_last": lambda v: c.axis_last,
    "no_ceil_mode": lambda v: c.no_ceil_mode,
    "depthwise_or_dense": lambda v: c.group_is_one_or_depthwise,
    "symmetric_pads": lambda v: c.symmetric_pads,
    "batch_one": lambda v: c.batch_one,
    "static_shapes": lambda v: c.static_shapes,
    "float_tensors": lambda v: c.float_tensors,
}
_TOP_KEYS = {
    "name",
    "description",
    "precisions",
    "static_shapes",
    "memory",
    "cost",
    "quant_scheme",
    "generic",
    "ops",
    "references",
}


def _checks(table: dict[str, Any], where: str) -> tuple[Check, ...]:
    checks: list[Check] = []
    for key, value in table.items():
        if key not in CONSTRAINT_KEYS:
            raise ValueError(f"{where}: unknown constraint '{key}' (known: {', '.join(CONSTRAINT_KEYS)})")
        if value is False:
            continue
        checks.append(CONSTRAINT_KEYS[key](value))
    return tuple(checks)


def _check_numbers(value: Any, where: str) -> None:
    """Every number finite (TOML reads 1e309 as infinity, and `inf`/`nan` are TOML too) and within int64."""
    import math

    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_numbers(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"'{where}' is {value}, not a finite number (a float beyond ±1.8e308 overflows to infinity)")
    elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError(f"'{where}' is {value}, beyond the 64-bit integer range")


def target_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Target:
    """Build a Target from a parsed description; ValueError/TypeError/KeyError on bad content."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}")
    _check_numbers(data, "")
    precisions = tuple(data.get("precisions", ("fp32",)))
    cost = data["cost"]
    scheme = dict(data.get("quant_scheme", {}))
    scheme.setdefault(
        "precision", "int8" if "int8" in precisions else precisions[0] if precisions[0] in ("fp16", "fp32") else "int8"
    )
    generic = _checks(dict(data.get("generic", {})), "generic")
    if data.get("static_shapes", True) and c.static_shapes not in generic:
        generic = (c.static_shapes, *generic)
    return Target(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        precisions=precisions,
        memory=Memory(**data.get("memory", {"kind": "shared"})),
        cost=CostModel(
            launch_us=float(cost["launch_us"]),
            gmacs={k: float(v) for k, v in cost["gmacs"].items()},
            memory_gbps=float(cost["memory_gbps"]),
            op_overhead_us=float(cost.get("op_overhead_us", 0.0)),
        ),
        ops={op: _checks(dict(table), f"ops.{op}") for op, table in data.get("ops", {}).items()},
        generic=(*generic, c.float_tensors) if c.float_tensors not in generic else generic,
        quant_scheme=QuantScheme(**scheme),
        static_shapes=bool(data.get("static_shapes", True)),
        references=tuple(data.get("references", ())),
        source=source,
    )


def load_target_file(path: Path) -> Target:
    """Read a TOML target description; content errors are exit 3 naming the file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    from edgecc.fileio import read_bytes

    raw = read_bytes(path, what="target description file")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
        return target_from_dict(data, source=f"file {path}")
    except (ValueError, TypeError, KeyError, OverflowError, UnicodeDecodeError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise InvalidInputError(f"target description file '{path}' is invalid: {detail}", path=path) from None
