"""Scale-out of `edgecc zoo run`: wall time with 1 vs 2 local workers vs local Ray with 2 workers on the same zoo,
and edgecc's orchestration overhead (run wall time minus the sum of stage times, 1 worker) vs the stage times.

Goals (issue 12): 2 workers <= 0.6x the wall time of 1 worker on 2 cores; overhead <= 10 % of the stage times.
Usage: .venv/bin/python benchmarks/zoo_scale.py [--zoo samples/zoo/zoo.toml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGECC = str(Path(sys.executable).with_name("edgecc"))


def run(zoo: Path, out: Path, *extra: str) -> tuple[float, dict]:
    """One fresh zoo run from the command line; (wall seconds of the process, run.json)."""
    start = time.perf_counter()
    proc = subprocess.run([EDGECC, "zoo", "run", str(zoo), "-o", str(out), "-q", *extra], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"zoo run {' '.join(extra)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads((out / "run.json").read_text())


def main() -> None:
    """Run the zoo three ways and print the ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo", default=str(ROOT / "samples" / "zoo" / "zoo.toml"))
    zoo = Path(parser.parse_args().zoo)
    if zoo == ROOT / "samples" / "zoo" / "zoo.toml":
        subprocess.run([sys.executable, str(ROOT / "samples" / "zoo" / "make_zoo_data.py")], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, extra in (
            ("1 worker", ("--workers", "1")),
            ("2 workers", ("--workers", "2")),
            ("ray, 2 workers", ("--ray", "--workers", "2")),
        ):
            results[label] = run(zoo, Path(tmp) / label.replace(" ", "_").replace(",", ""), *extra)
            wall, index = results[label]
            print(
                f"{label:>15}: {wall:7.2f} s process wall, {index['wall_seconds']:7.2f} s run, "
                f"{index['stage_seconds']:7.2f} s in stages, "
                f"{index['counts']['ok']} ok / {index['counts']['failed']} failed of {len(index['pairs'])} pairs"
            )
    one, two, ray = (results[k][0] for k in ("1 worker", "2 workers", "ray, 2 workers"))
    index = results["1 worker"][1]
    overhead = index["wall_seconds"] - index["stage_seconds"]
    print(f"2 local workers / 1 worker: {two / one:.2f}x (goal <= 0.6)")
    print(f"Ray 2 workers / 1 worker:   {ray / one:.2f}x (includes Ray's start)")
    print(
        f"orchestration overhead, 1 worker: {overhead:.2f} s = {overhead / index['stage_seconds']:.1%} of the stage times "
        f"(goal <= 10%); with the CLI start: {(one - index['stage_seconds']) / index['stage_seconds']:.1%}"
    )


if __name__ == "__main__":
    main()
