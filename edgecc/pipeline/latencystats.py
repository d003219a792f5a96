"""Statistics of latency samples (numpy only): is one set of per-repeat medians slower than another?

Deterministic tools (a fixed seed) used by the one comparison policy in `regression.py`:

- `mann_whitney_greater`: the one-sided Mann-Whitney U test (normal approximation with tie and continuity
  correction) that the current samples tend to be larger than the baseline's (unpaired: two separate runs);
- `wilcoxon_greater`: the one-sided Wilcoxon signed-rank test that paired ratios current/baseline exceed 1 (an
  interleaved A/B run, where a load swing shared by both sides of a round cancels in its ratio);
- `ratio_bounds`: the ratio current/baseline of the medians with a one-sided bootstrap lower bound. Unpaired samples
  (two runs made at different times) are resampled independently; paired samples (an interleaved A/B run, where
  round i of both was measured back to back under the same load) are resampled by round, on the per-round ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RatioBounds", "mann_whitney_greater", "wilcoxon_greater", "ratio_bounds"]


@dataclass(frozen=True)
class RatioBounds:
    """Median latency ratio current/baseline and its one-sided bootstrap lower bound at `confidence`."""

    ratio: float
    low: float
    confidence: float
    paired: bool


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    import numpy as np

    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1, dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def mann_whitney_greater(baseline: Sequence[float], current: Sequence[float]) -> float:
    """One-sided p-value of 'current is stochastically larger than baseline' (1.0 when either side is empty)."""
    import numpy as np

    base = np.asarray(baseline, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    n1, n2 = len(cur), len(base)
    if n1 == 0 or n2 == 0:
        return 1.0
    both = np.concatenate([cur, base])
    ranks = _ranks(both)
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    n = n1 + n2
    _, counts = np.unique(both, return_counts=True)
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:  # every value equal
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def wilcoxon_greater(baseline: Sequence[float], current: Sequence[float]) -> float:
    """One-sided p-value of 'current/baseline > 1' over pairs (Wilcoxon signed-rank on the log ratios, normal
    approximation with tie and continuity correction; equal pairs dropped; 1.0 without any difference)."""
    import numpy as np

    base = np.asarray(baseline, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if len(base) != len(cur):
        raise ValueError(f"paired samples need equal lengths (got {len(base)} and {len(cur)})")
    diff = np.round(np.log(cur / base), 9)  # float noise of the ratio must neither break ties nor make differences
    diff = diff[diff != 0]
    n = len(diff)
    if n == 0:
        return 1.0
    magnitude = np.abs(diff)
    ranks = _ranks(magnitude)
    w_plus = float(ranks[diff > 0].sum())
    _, counts = np.unique(magnitude, return_counts=True)
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = n * (n + 1) * (2 * n + 1) / 24 - ties / 48
    if variance <= 0:
        return 1.0
    z = (w_plus - n * (n + 1) / 4 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def ratio_bounds(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    paired: bool,
    confidence: float = 0.99,
    resamples: int = 2000,
    seed: int = 0,
) -> RatioBounds:
    """Ratio of the medians (paired: median of the per-round ratios) and its bootstrap lower bound."""
    import numpy as np

    base = np.asarray(baseline, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if len(base) == 0 or len(cur) == 0 or np.any(base <= 0) or np.any(cur <= 0):
        raise ValueError("latency samples must be non-empty and positive")
    if paired and len(base) != len(cur):
        raise ValueError(f"paired samples need equal lengths (got {len(base)} and {len(cur)})")
    rng = np.random.default_rng(seed)
    if paired:
        ratios = cur / base
        point = float(np.median(ratios))
        picks = rng.integers(0, len(ratios), size=(resamples, len(ratios)))
        boot = np.median(ratios[picks], axis=1)
    else:
        point = float(np.median(cur) / np.median(base))
        boot_b = np.median(base[rng.integers(0, len(base), size=(resamples, len(base)))], axis=1)
        boot_c = np.median(cur[rng.integers(0, len(cur), size=(resamples, len(cur)))], axis=1)
        boot = boot_c / boot_b
    low = float(np.quantile(boot, 1 - confidence))
    return RatioBounds(ratio=point, low=min(low, point), confidence=confidence, paired=paired)
