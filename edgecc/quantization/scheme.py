"""The quantisation scheme a target requires: what `edgecc quantize --target T` and `edgecc compile` apply."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QuantScheme", "ACTIVATION_TYPES", "WEIGHT_TYPES"]

ACTIVATION_TYPES = ("int8", "uint8", "int16")
WEIGHT_TYPES = ("int8", "uint8")


@dataclass(frozen=True)
class QuantScheme:
    """How tensors are quantised (frozen: unknown keys are rejected).

    precision: "int8" (integer activations, see activation_type), "fp16" (cast), or "fp32" (no quantisation).
    """

    precision: str = "int8"
    activation_type: str = "uint8"
    weight_type: str = "int8"
    symmetric_activations: bool = False
    symmetric_weights: bool = True
    per_channel: bool = True
    integer_io: bool = False  # the target cannot take float at the edges: quantise inputs and outputs too

    def __post_init__(self) -> None:
        if self.precision not in ("int8", "fp16", "fp32"):
            raise ValueError(f"precision must be int8, fp16 or fp32, not {self.precision!r}")
        if self.activation_type not in ACTIVATION_TYPES:
            raise ValueError(f"activation_type must be one of {ACTIVATION_TYPES}, not {self.activation_type!r}")
        if self.weight_type not in WEIGHT_TYPES:
            raise ValueError(f"weight_type must be one of {WEIGHT_TYPES}, not {self.weight_type!r}")

    def describe(self) -> str:
        """One line for reports: `int8 (uint8 asym activations, int8 sym per-channel weights)`."""
        if self.precision != "int8":
            return self.precision
        activations = f"{self.activation_type} {'sym' if self.symmetric_activations else 'asym'} activations"
        weights = (
            f"{self.weight_type} {'sym' if self.symmetric_weights else 'asym'} "
            f"{'per-channel' if self.per_channel else 'per-tensor'} weights"
        )
        return f"int8 ({activations}, {weights}{', integer inputs/outputs' if self.integer_io else ''})"
