"""The Target API: what an accelerator runs (constraint tables), what it costs, how it emits and runs artifacts.

Constraints follow Arm Vela's style (`ethosu/vela/tflite_supported_operators.py`): each is a
tiny function taking a `NodeView` and returning `(ok, detail)`; its docstring is the rule text
shown by `edgecc targets show` and in the generated support docs; every check runs (not only the
first failure) so that a user sees all reasons a node stays on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.quantization import QuantScheme

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = [
    "BYTES_PER_ELEMENT",
    "Check",
    "CheckResult",
    "CostModel",
    "EmitOptions",
    "Emitted",
    "Memory",
    "NodeView",
    "Target",
    "constraint",
    "restated",
]

log = logging.getLogger(__name__)

#: bytes of one tensor element when it crosses a device boundary in a given precision
BYTES_PER_ELEMENT: dict[str, int] = {"fp32": 4, "fp16": 2, "int8": 1, "int16": 2}

Shape = tuple[Any, ...]


@dataclass(frozen=True)
class NodeView:
    """What a constraint sees of one node: op, attributes, and the shapes/dtypes of its tensors."""

    name: str
    op_type: str
    domain: str
    attrs: Mapping[str, Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_shapes: tuple[Shape | None, ...]
    output_shapes: tuple[Shape | None, ...]
    input_dtypes: tuple[str | None, ...]
    output_dtypes: tuple[str | None, ...]
    constant_inputs: frozenset[str] = frozenset()
    #: per input, when a DequantizeLinear makes it: {"per_channel": bool, "axis": int, "zero_points": [int, ...]}
    input_quant: tuple[Mapping[str, Any] | None, ...] = ()
    #: the precision the node would run at on the target being checked (None: not known, e.g. `targets check`)
    precision: str | None = None

    @property
    def runs_integer(self) -> bool:
        """True when the node would compute in integers: an int8/int16 target precision, or quantised inputs."""
        return self.precision in ("int8", "int16") or any(q is not None for q in self.input_quant)

    def attr(self, key: str, default: Any = None) -> Any:
        """An attribute value, or `default`."""
        return self.attrs.get(key, default)

    def quant(self, index: int) -> Mapping[str, Any] | None:
        """How input `index` is quantised (it comes out of a DequantizeLinear), or None."""
        return self.input_quant[index] if index < len(self.input_quant) else None

    def is_constant(self, index: int) -> bool:
        """True when input `index` is an initializer (or absent)."""
        return index >= len(self.inputs) or not self.inputs[index] or self.inputs[index] in self.constant_inputs


Check = Callable[[NodeView], "tuple[bool, str]"]


def constraint(rule: str) -> Callable[[Check], Check]:
    """Give a generated check its rule text (the docstring Vela shows users)."""

    def decorate(func: Check) -> Check:
        func.__doc__ = rule
        return func

    return decorate


def restated(check: Check, rule: str) -> Check:
    """The same check under a vendor's own rule text (its docstring), leaving `check` itself untouched."""

    def wrapped(view: NodeView) -> tuple[bool, str]:
        return check(view)

    wrapped.__doc__ = rule
    wrapped.__name__ = getattr(check, "__name__", "check")
    return wrapped


@dataclass(frozen=True)
class CheckResult:
    """A node's verdict on one device: supported, and every reason when not."""

    supported: bool
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """All reasons in one line."""
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class Memory:
    """How a device reaches tensors: memory shared with the CPU, or its own memory over DMA."""

    kind: str = "shared"  # "shared" or "dma"
    sync_us: float = 0.0  # shared: cache maintenance/synchronisation per tensor handed over
    bandwidth_gbps: float = 0.0  # dma: GB/s
    setup_us: float = 0.0  # dma: per transfer

    def __post_init__(self) -> None:
        if self.kind not in ("shared", "dma", "host"):
            raise ValueError(f"memory kind must be shared, dma or host, not {self.kind!r}")
        if self.kind == "dma" and self.bandwidth_gbps <= 0:
            raise ValueError("a DMA memory model needs bandwidth_gbps > 0")

    def transfer_us(self, nbytes: int) -> float:
        """Estimated time to move `nbytes` between this device and the CPU (one direction)."""
        if self.kind == "host":
            return 0.0
        if self.kind == "shared":
            return self.sync_us
        return self.setup_us + nbytes / (self.bandwidth_gbps * 1e3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"kind": self.kind, "sync_us": self.sync_us, "bandwidth_gbps": self.bandwidth_gbps, "setup_us": self.setup_us}


@dataclass(frozen=True)
class CostModel:
    """Estimated latency of work on one device (microseconds)."""

    launch_us: float  # per partition: context switch / graph launch
    gmacs: Mapping[str, float]  # sustained multiply-accumulates per second (x1e9) by precision
    memory_gbps: float  # bandwidth for the bytes an op reads and writes
    op_overhead_us: float = 0.0  # per node (kernel dispatch)

    def node_us(self, macs: int, nbytes: int, precision: str) -> float:
        """Compute estimate of one node: dispatch + MACs at the precision's rate + memory traffic."""
        rate = self.gmacs.get(precision) or min(self.gmacs.values())
        scale = BYTES_PER_ELEMENT.get(precision, 4) / 4
        return self.op_overhead_us + macs / (rate * 1e3) + nbytes * scale / (self.memory_gbps * 1e3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "launch_us": self.launch_us,
            "gmacs": dict(self.gmacs),
            "memory_gbps": self.memory_gbps,
            "op_overhead_us": self.op_overhead_us,
        }


@dataclass(frozen=True)
class EmitOptions:
    """How `edgecc compile` asks a target to emit a partition (vendor compiler use, samples for verification)."""

    vendor_compile: bool = True  # False with --no-vendor-compile: write what the vendor compiler takes, do not run it
    vendor_options: Mapping[str, str] = field(default_factory=dict)  # --vendor-option KEY=VALUE, passed through
    feeds: Sequence[Mapping[str, Any]] = ()  # float sample inputs of this partition, for verifying the artifact


@dataclass
class Emitted:
    """What a target emitted for one partition: files (the first is what `runner` loads) and a JSON-ready report.

    `info` lands in the manifest as the partition's `vendor` entry; its optional `summary` is the one line
    `edgecc compile` prints, `conversions` the host-side boundary conversions the runner performs.
    """

    files: list[Path]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    """One accelerator (or the CPU): precisions, memory, costs, operator support, emitter and runner.

    `ops` maps op type -> checks specific to it; an op type missing from `ops` is unsupported
    (unless `supports_any_op`); `generic` checks apply to every node.
    """

    name: str
    description: str
    precisions: tuple[str, ...]
    memory: Memory
    cost: CostModel
    ops: Mapping[str, Sequence[Check]] = field(default_factory=dict)
    generic: Sequence[Check] = ()
    quant_scheme: QuantScheme = field(default_factory=lambda: QuantScheme(precision="fp32"))
    static_shapes: bool = True
    supports_any_op: bool = False
    requires_calibration: bool = False  # integer precisions of a float model need real --calibration data
    maps_prefix_only: bool = False  # the vendor compiler maps nothing after the first unsupported node (Edge TPU)
    domains: tuple[str, ...] = ("", "ai.onnx")
    references: tuple[str, ...] = ()
    source: str = "built-in"

    @property
    def default_precision(self) -> str:
        """The precision compile uses unless told otherwise (the first listed)."""
        return self.precisions[0]

    def scheme_for(self, precision: str) -> QuantScheme:
        """The quantisation scheme for `precision` (the target's own for int8)."""
        if precision == "int8":
            return self.quant_scheme if self.quant_scheme.precision == "int8" else QuantScheme()
        return QuantScheme(precision=precision)

    def check(self, view: NodeView) -> CheckResult:
        """Run every check that applies to `view` and collect all failures."""
        reasons: list[str] = []
        if view.domain not in self.domains:
            return CheckResult(False, (f"custom domain '{view.domain}' is not supported by {self.name}",))
        if view.op_type not in self.ops and not self.supports_any_op:
            return CheckResult(False, (f"{view.op_type} is not in {self.name}'s operator list",))
        for check in [*self.generic, *self.ops.get(view.op_type, ())]:
            ok, detail = check(view)
            if not ok:
                reasons.append(detail or (check.__doc__ or check.__name__).strip())
        return CheckResult(not reasons, tuple(reasons))

    def support_table(self) -> list[dict[str, Any]]:
        """Rows (op type, rule texts) for docs and `edgecc targets show`."""
        rows = [{"op_type": "*", "rules": [_rule(c) for c in self.generic]}]
        for op_type in sorted(self.ops):
            rows.append({"op_type": op_type, "rules": [_rule(c) for c in self.ops[op_type]]})
        return rows

    # -- emitter and runner -------------------------------------------------------------------------
    def emit(
        self,
        model: onnx.ModelProto,
        precision: str,
        directory: Path,
        stem: str,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: EmitOptions | None = None,
    ) -> Emitted:
        """Write the artifact(s) of one partition (the ONNX partition in `precision` by default); the first
        file is what the runner loads."""
        from edgecc.onnxutil import save_onnx
        from edgecc.targets.precision import convert_precision

        converted = convert_precision(model, precision, self.scheme_for(precision), calibration)
        path = directory / f"{stem}.onnx"
        save_onnx(converted, path)
        return Emitted([path])

    def runner(self, artifact: Path, *, name: str) -> Any:
        """A runnable session over an artifact this target emitted (onnxruntime emulation by default)."""
        from edgecc.ortrun import OrtRunner

        return OrtRunner(artifact, name=name)

    def execution(self, precision: str) -> str:
        """How `runner` executes artifacts here (recorded per partition in the manifest)."""
        if self.name == "cpu":
            return f"onnxruntime CPU ({precision})"
        return f"onnxruntime CPU emulating {self.name} numerics ({precision} artifact)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for `edgecc targets show --json`)."""
        return {
            "name": self.name,
            "description": self.description,
            "precisions": list(self.precisions),
            "memory": self.memory.to_dict(),
            "cost": self.cost.to_dict(),
            "static_shapes": self.static_shapes,
            "requires_calibration": self.requires_calibration,
            "maps_prefix_only": self.maps_prefix_only,
            "quant_scheme": self.quant_scheme.describe(),
            "supports_any_op": self.supports_any_op,
            "references": list(self.references),
            "source": self.source,
            "ops": self.support_table(),
        }


def _rule(check: Check) -> str:
    return " ".join((check.__doc__ or getattr(check, "__name__", "check")).split())
