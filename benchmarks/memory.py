"""Memory measurement shared by the benchmarks (Linux /proc): current RSS, peak RSS (VmHWM), peak reset.

Child measurement scripts start with `CHILD_PRELUDE`, which makes these functions importable in a
`python -c` subprocess. VmHWM belongs to the child's own address space; `ru_maxrss` would also count
the forked parent's peak from before exec.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHILD_PRELUDE", "current_rss", "peak_rss", "reset_peak"]

CHILD_PRELUDE = (
    f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
    "from memory import current_rss, peak_rss, reset_peak\n"
)


def _status(key: str) -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key + ":"))


def current_rss() -> int:
    """Resident set size of this process, in bytes."""
    return _status("VmRSS")


def peak_rss() -> int:
    """Peak resident set size of this process (VmHWM), in bytes."""
    return _status("VmHWM")


def reset_peak() -> None:
    """Reset VmHWM to the current RSS, so that what ran before (imports) does not count."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
