"""Run `edgecc quantize` as a user would, before and after it is registered in edgecc/cli.py COMMANDS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Result

__all__ = ["run_quantize"]

_LAUNCH = (
    "from edgecc.cli import COMMANDS, main; "
    "COMMANDS.setdefault('quantize', ('edgecc.commands.quantize', 'Quantise a model')); main()"
)


def run_quantize(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300) -> Result:
    """`edgecc quantize ARGS...` in a subprocess (switch to run_edgecc("quantize", ...) once registered)."""
    full_env = dict(os.environ)
    full_env.pop("EDGECC_DEBUG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCH, "quantize", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
