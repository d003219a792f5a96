"""What a compile produced: the placement plan and its scores, the partitions, every node's verdict, the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgecc.targets.api import CheckResult, Target
    from edgecc.targets.graph import ModelGraph
    from edgecc.targets.partition import Breakdown, Plan
    from edgecc.targets.plan import PartitionSpec

__all__ = ["CompileResult"]


@dataclass
class CompileResult:
    """The placement plan, its scores, the emitted files and the verification."""

    target: Target
    precision: str
    plan: Plan
    scores: dict[str, Breakdown]
    partitions: list[PartitionSpec]
    support: list[CheckResult]
    graph: ModelGraph
    manifest: dict[str, Any] = field(default_factory=dict)
    #: what compile did to the model before placing it (the manifest's `preparation`)
    preparation: dict[str, Any] = field(default_factory=dict)
