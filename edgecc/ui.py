"""Terminal output for the CLI: rich tables and messages on stderr, one JSON document on stdout."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Ui"]


@dataclass
class Ui:
    """How a command talks to the user: `--json`, `-q`, `-v`, `--debug`."""

    json_mode: bool = False
    quiet: bool = False
    verbose: int = 0
    debug: bool = False

    def __post_init__(self) -> None:
        self._console = None
        self.json_emitted = False

    @property
    def console(self) -> Any:
        """A rich console on stderr (created on first use: rich is imported lazily)."""
        if self._console is None:
            from rich.console import Console

            width = None if sys.stderr.isatty() else 140  # pipes and CI logs get full tables
            self._console = Console(stderr=True, highlight=False, soft_wrap=False, width=width)
        return self._console

    def setup_logging(self) -> None:
        """Route edgecc's loggers to stderr at the level -q/-v/--debug ask for."""
        level = logging.WARNING
        if self.quiet:
            level = logging.ERROR
        if self.verbose == 1:
            level = logging.INFO
        if self.verbose >= 2 or self.debug:
            level = logging.DEBUG
        logger = logging.getLogger("edgecc")
        logger.setLevel(level)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("edgecc: %(levelname)s: %(message)s"))
            logger.addHandler(handler)
        logger.propagate = False

    def show(self, renderable: Any) -> None:
        """Print a rich renderable on stderr unless quiet or in JSON mode."""
        if not self.quiet and not self.json_mode:
            self.console.print(renderable)

    def message(self, text: str) -> None:
        """Print a line on stderr unless quiet or in JSON mode."""
        if not self.quiet and not self.json_mode:
            self.console.print(text)

    def warn(self, text: str) -> None:
        """Print a warning on stderr unless quiet."""
        if not self.quiet:
            print(f"edgecc: warning: {text}", file=sys.stderr)

    def emit_json(self, document: dict[str, Any]) -> None:
        """Write the one JSON document of this command on stdout."""
        self.json_emitted = True
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=_json_default) + "\n")
        sys.stdout.flush()

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        """A spinner on stderr while work runs, only on a terminal."""
        if self.quiet or self.json_mode or not sys.stderr.isatty():
            yield
            return
        with self.console.status(text):
            yield

    def table(
        self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, justify: Sequence[str] | None = None
    ) -> None:
        """Show a simple table."""
        if self.quiet or self.json_mode:
            return
        if not rows:  # an empty table wraps its title to the width of its headers: say the title alone
            if title:
                self.console.print(title)
            return
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_lines=False, show_header=any(columns))
        for index, column in enumerate(columns):
            table.add_column(column, justify=(justify[index] if justify else "left"))  # type: ignore[arg-type]
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        self.console.print(table)


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
