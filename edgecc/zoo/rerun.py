"""`zoo compare --rerun-baseline`: re-measure every pair's baseline bundle interleaved with its current bundle.

Two zoo runs made at different times saw different machine load; measuring both bundles alternately in one run
(`pipeline.abtest`) gives paired samples whose comparison that load cannot bias. Only the measured latency is
replaced; statuses, accuracy and estimates stay those of the two result folders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgecc.pipeline.benchmark import BenchSettings

__all__ = ["rerun_baseline"]

Progress = Callable[[str, int, int], None]


def _bundle(folder: str | Path, pair: Mapping[str, Any]) -> Path | None:
    name = (pair.get("files") or {}).get("bundle")
    path = Path(folder) / name if name else None
    return path if path is not None and path.exists() else None


def rerun_baseline(
    baseline_dir: str | Path,
    baseline: Mapping[str, Mapping[str, Any]],
    results_dir: str | Path,
    current: Mapping[str, Mapping[str, Any]],
    settings: BenchSettings,
    *,
    progress: Progress | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[str]]:
    """Copies of both pair sets with the measured latency of every pair that is ok on both sides and whose bundles
    are there replaced by an interleaved A/B measurement, and the ids of the pairs re-measured."""
    from edgecc.pipeline.abtest import ab_measure, with_measured

    base = {k: dict(v) for k, v in baseline.items()}
    cur = {k: dict(v) for k, v in current.items()}
    todo = []
    for pid in sorted(set(base) & set(cur)):
        b, c = base[pid], cur[pid]
        if b.get("status") != "ok" or c.get("status") != "ok" or not b.get("record") or not c.get("record"):
            continue
        bundles = _bundle(baseline_dir, b), _bundle(results_dir, c)
        if bundles[0] is not None and bundles[1] is not None:
            todo.append((pid, bundles))
    for index, (pid, (base_bundle, cur_bundle)) in enumerate(todo):
        if progress:
            progress(pid, index, len(todo))
        measured_b, measured_c = ab_measure(base_bundle, cur_bundle, settings)
        base[pid]["record"] = with_measured(base[pid]["record"], measured_b)
        cur[pid]["record"] = with_measured(cur[pid]["record"], measured_c)
    return base, cur, [pid for pid, _ in todo]
