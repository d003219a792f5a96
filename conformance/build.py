"""`python -m conformance.build NAME [--entries DIR] [--out DIR]`: build one zoo entry into its folder.

Writes `<out>/<name>/` (the model files, samples.npz, reference.npz) and `built.json` last, so a folder with
`built.json` is complete. Run by the harness in its own process per entry; usable by hand to debug a builder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from conformance.builders import builder_for
from conformance.entries import default_cache, load_entries

ROOT = Path(__file__).resolve().parent


def build_entry(entry: dict, folder: Path, cache: Path) -> dict:
    """Build one entry into `folder` (emptied first) and write built.json."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    cache.mkdir(parents=True, exist_ok=True)
    built = builder_for(entry["source"])(entry, folder, cache)
    for key in ("files", "inputs", "outputs", "runtime", "origin"):
        if key not in built:
            raise ValueError(f"builder of '{entry['name']}' returned no '{key}'")
    built.setdefault("convert_args", [])
    for name in ("samples.npz", "reference.npz"):
        if not (folder / name).is_file() and entry.get("expect") != "refuse":
            raise ValueError(f"builder of '{entry['name']}' wrote no {name}")
    tmp = folder / "built.json.tmp"
    tmp.write_text(json.dumps(built, indent=1))
    os.replace(tmp, folder / "built.json")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--entries", default=str(ROOT / "entries"))
    parser.add_argument("--out", default="build/conformance/models")
    args = parser.parse_args(argv)
    entries = {e["name"]: e for e in load_entries(Path(args.entries))}
    if args.name not in entries:
        print(f"error: no entry '{args.name}' in {args.entries}", file=sys.stderr)
        return 2
    built = build_entry(entries[args.name], Path(args.out) / args.name, default_cache())
    print(json.dumps(built))
    return 0


if __name__ == "__main__":
    sys.exit(main())
