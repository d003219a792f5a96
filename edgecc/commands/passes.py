"""`edgecc passes`: list the optimisation passes and the -O levels."""

from __future__ import annotations

import click

from edgecc.commands.common import common_options
from edgecc.ui import Ui

__all__ = ["command"]


@click.command("passes")
@common_options
def command(ui: Ui) -> None:
    """List every pass with its family, description and the levels that run it."""
    from edgecc.passes import LEVELS, load_passes

    registry = load_passes()
    rows = []
    for name, entry in registry.items():
        levels = ",".join(f"O{level}" for level, names in LEVELS.items() if name in names) or "-"
        rows.append({"name": name, "family": entry.family, "levels": levels, "description": entry.description})
    if ui.json_mode:
        ui.emit_json({"ok": True, "command": "passes", "passes": rows, "levels": {f"O{k}": list(v) for k, v in LEVELS.items()}})
        return
    ui.table(
        "passes",
        ["pass", "family", "levels", "description"],
        [[r["name"], r["family"], r["levels"], r["description"]] for r in rows],
    )
