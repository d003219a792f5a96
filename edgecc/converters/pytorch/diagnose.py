"""Turn an error raised by a model's own `forward` on the example inputs into a usage error users can act on.

The example inputs come from `--input`, so a model that raises on them (a TorchScript `RuntimeError` such as
"Expected 4-dimensional input for 4-dimensional weight [8, 3, 3, 3], but got 3-dimensional input of size [1, 3, 32]",
a shape mismatch in a factory's module) was given the wrong shapes or dtypes: exit 2, one line naming the inputs
and what the model said, instead of an internal error with a squashed traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from edgecc.errors import UsageError
from edgecc.inputs import TensorInfo

__all__ = ["forward_error", "key_line"]

# lines of a TorchScript interpreter traceback that are context, not the error
_CONTEXT = re.compile(r"^(Traceback|File |The following operation failed|Serialized|~+|\^+|[A-Za-z_.]+\s*=|return |def |\s*#)")
_ERROR_LINE = re.compile(r"^(?:[A-Za-z_.]*(?:Error|Exception)):\s*(.+)$")


def key_line(exc: BaseException) -> str:
    """The line of a (possibly TorchScript) error message that says what went wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [m.group(1) for m in (_ERROR_LINE.match(line) for line in lines) if m]
    if errors:
        return errors[-1][:300]
    plain = [line for line in lines if not _CONTEXT.match(line)]
    return (plain[0] if plain else lines[0] if lines else type(exc).__name__)[:300]


def _shapes(text: str) -> list[str]:
    return re.findall(r"\[[0-9, ]+\]", text)


def forward_error(exc: BaseException, inputs: Sequence[TensorInfo], source: str) -> UsageError:
    """The usage error for a forward() that failed on example inputs shaped by `--input`."""
    given = ", ".join(f"{i.name}:{i.shape_text()}:{i.dtype}" for i in inputs)
    line = key_line(exc)
    wanted = _shapes(line)
    hint = "give the shapes and dtypes the model was made for with --input NAME:DIMS[:DTYPE]"
    if wanted:
        hint += f" (the model's message mentions {', '.join(wanted[:3])})"
    return UsageError(f"{source} rejects the inputs --input gives ({given}): {line}", hint=hint)
