"""Options every command takes (--json, -q, -v, --debug) and shared option parsers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from edgecc.ui import Ui

__all__ = ["common_options", "active_ui", "tolerance_options", "split_names"]

_ACTIVE: list[Ui] = []


def active_ui() -> Ui | None:
    """The Ui of the command now running (for error reporting in `edgecc.cli.main`)."""
    return _ACTIVE[-1] if _ACTIVE else None


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --json/-q/-v/--debug and pass a configured `ui` to the command."""

    @click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout and nothing else.")
    @click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
    @click.option("-v", "--verbose", count=True, help="More detail (-vv for debug logging).")
    @click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
    @functools.wraps(func)
    def wrapper(*args: Any, json_mode: bool, quiet: bool, verbose: int, debug: bool, **kwargs: Any) -> Any:
        ui = Ui(json_mode=json_mode, quiet=quiet, verbose=verbose, debug=debug)
        ui.setup_logging()
        _ACTIVE.append(ui)
        return func(*args, ui=ui, **kwargs)

    return wrapper


def tolerance_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --atol/--rtol/--min-cosine."""
    func = click.option("--min-cosine", type=float, default=None, help="Minimum cosine similarity per output.")(func)
    func = click.option("--rtol", type=float, default=None, help="Max abs error allowed relative to the reference output range (fp32 default 1e-4).")(func)
    func = click.option("--atol", type=float, default=None, help="Absolute max abs error allowed on top of rtol (fp32 default 1e-6).")(func)
    return func


def split_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Flatten repeated and comma-separated option values."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())
