"""Interleaved A/B re-measurement: a baseline bundle (or ONNX model) and the current one timed alternately in one
run, so that both see the same machine load; what makes a latency verdict valid on a shared machine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from edgecc.pipeline.benchmark import BenchSettings

__all__ = ["ab_measure", "with_measured"]


def _feed(runner: Any, seed: int) -> dict[str, np.ndarray]:
    """The first stored reference input of a bundle, else a seeded random one (latency, not numerics, is measured)."""
    from edgecc.data import random_feeds

    stored, _ = runner.reference()
    return dict(stored[0]) if stored else random_feeds(runner.inputs, seed=seed, count=1)[0]


def ab_measure(
    baseline: str | Path,
    current: str | Path,
    settings: BenchSettings,
    *,
    feed: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measured latency of `baseline` and `current`, interleaved (see `benchmark.measure_interleaved`); both get
    `feed`, or each its own first reference input."""
    from edgecc.ortrun import ort_threads
    from edgecc.pipeline.benchmark import measure_interleaved
    from edgecc.runtime import load

    with ort_threads(settings.threads):
        base = load(baseline)
    try:
        with ort_threads(settings.threads):
            cur = load(current)
        try:
            feeds = (feed, feed) if feed is not None else (_feed(base, seed), _feed(cur, seed))
            return measure_interleaved(base, cur, feeds, settings, seed=seed)
        finally:
            cur.close()
    finally:
        base.close()


def with_measured(record: Mapping[str, Any], measured: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a bench record whose measured latency is `measured` (the rest kept as it is)."""
    latency = dict(record.get("latency") or {})
    latency["measured"] = dict(measured)
    return {**record, "latency": latency}
