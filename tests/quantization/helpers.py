"""Run `edgecc quantize` as a user would (through the CLI, in this process: tests/conftest.py `run_edgecc`)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Result, run_edgecc

__all__ = ["run_quantize"]


def run_quantize(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300) -> Result:
    """`edgecc quantize ARGS...`."""
    return run_edgecc("quantize", *args, cwd=cwd, env=env, timeout=timeout)
