"""The EdgeccError hierarchy: every failure a user can meet, with its exit code and a hint.

Exit codes (DESIGN.md): 0 ok, 1 internal error, 2 usage, 3 invalid or corrupt
input, 4 unsupported operator/feature, 5 numerics outside tolerance (or another measured goal the user set, e.g.
`--min-offload`, not met), 6 optional dependency or external tool missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXIT_OK",
    "EXIT_INTERNAL",
    "EXIT_USAGE",
    "EXIT_INVALID_INPUT",
    "EXIT_UNSUPPORTED",
    "EXIT_NUMERICS",
    "EXIT_MISSING_DEPENDENCY",
    "EdgeccError",
    "UsageError",
    "InvalidInputError",
    "UnsupportedError",
    "UnsupportedOperator",
    "UnsupportedNode",
    "NumericsError",
    "GoalNotMetError",
    "MissingDependencyError",
]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INVALID_INPUT = 3
EXIT_UNSUPPORTED = 4
EXIT_NUMERICS = 5
EXIT_MISSING_DEPENDENCY = 6


class EdgeccError(Exception):
    """Base of every error edgecc reports to users; `exit_code` and `hint` drive the CLI."""

    exit_code: int = EXIT_INTERNAL
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = str(path) if path is not None else None

    def one_line(self) -> str:
        """The message as a single line: where, what, and what to do."""
        where = f"{self.path}: " if self.path and self.path not in self.message else ""
        text = f"{where}{self.message}"
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return " ".join(text.split())

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description of the error."""
        return {
            "kind": self.kind,
            "exit_code": self.exit_code,
            "message": self.message,
            "hint": self.hint,
            "path": self.path,
        }


class UsageError(EdgeccError):
    """Bad command-line usage: wrong option value, missing argument, conflicting flags."""

    exit_code = EXIT_USAGE
    kind = "usage"


class InvalidInputError(EdgeccError):
    """A model or data file that is missing, empty, corrupt, truncated or of an unknown format."""

    exit_code = EXIT_INVALID_INPUT
    kind = "invalid-input"


class UnsupportedError(EdgeccError):
    """A valid model that uses a feature edgecc (or the target) cannot handle."""

    exit_code = EXIT_UNSUPPORTED
    kind = "unsupported"


@dataclass(frozen=True)
class UnsupportedNode:
    """One node that cannot be handled: its name, op type and the reason."""

    node: str
    op_type: str
    reason: str = ""

    def describe(self) -> str:
        """`name (OpType): reason` for messages."""
        text = f"{self.node or '<unnamed>'} ({self.op_type})"
        return f"{text}: {self.reason}" if self.reason else text


class UnsupportedOperator(UnsupportedError):
    """Every unsupported operator of a model, reported at once with node names."""

    kind = "unsupported-operator"

    def __init__(
        self,
        nodes: Iterable[UnsupportedNode],
        *,
        where: str = "",
        hint: str | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.nodes: Sequence[UnsupportedNode] = tuple(nodes)
        op_types = sorted({n.op_type for n in self.nodes})
        listed = "; ".join(n.describe() for n in self.nodes)
        prefix = f"{where}: " if where else ""
        message = f"{prefix}{len(self.nodes)} unsupported node(s), op types {', '.join(op_types)}: {listed}"
        super().__init__(message, hint=hint, path=path)

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["nodes"] = [{"node": n.node, "op_type": n.op_type, "reason": n.reason} for n in self.nodes]
        return data


class NumericsError(EdgeccError):
    """Outputs differ from the reference beyond the tolerance."""

    exit_code = EXIT_NUMERICS
    kind = "numerics"

    def __init__(self, message: str, *, report: object = None, hint: str | None = None) -> None:
        """`report`: a verification report (anything with `to_dict`) or its JSON-ready dict."""
        super().__init__(message, hint=hint)
        self.report = report

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        to_dict = getattr(self.report, "to_dict", None)
        data["report"] = to_dict() if callable(to_dict) else dict(self.report) if isinstance(self.report, Mapping) else None
        return data


class GoalNotMetError(EdgeccError):
    """A measured goal the user set is not met (e.g. `--min-offload`): exit 5, like numerics outside tolerance."""

    exit_code = EXIT_NUMERICS
    kind = "goal-not-met"


class MissingDependencyError(EdgeccError):
    """An optional Python package or external tool is not installed."""

    exit_code = EXIT_MISSING_DEPENDENCY
    kind = "missing-dependency"

    def __init__(self, package: str, *, feature: str, extra: str | None = None) -> None:
        install = f"pip install 'edgecc[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the Python package '{package}', which is not installed", hint=install)
        self.package = package
