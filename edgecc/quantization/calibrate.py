"""Activation statistics over calibration data and range selection: minmax, percentile, entropy (KL), MSE search."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["METHODS", "TensorStats", "collect_statistics", "float_activations", "select_range"]

log = logging.getLogger(__name__)

METHODS = ("minmax", "percentile", "entropy", "mse")
BINS = 2048

Progress = Callable[[int, int], None]


@dataclass
class TensorStats:
    """Streaming statistics of one activation tensor."""

    name: str
    lowest: float = float("inf")
    highest: float = float("-inf")
    count: int = 0
    channel_sum: np.ndarray | None = None  # sums along axis 1 (rank >= 2), for bias correction
    last_sum: np.ndarray | None = None  # sums along the last axis
    rows: int = 0
    last_rows: int = 0
    hist: np.ndarray | None = None  # BINS counts over [-absmax, absmax]
    absmax: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def channel_mean(self) -> np.ndarray | None:
        return None if self.channel_sum is None or not self.rows else self.channel_sum / self.rows

    def last_mean(self) -> np.ndarray | None:
        return None if self.last_sum is None or not self.last_rows else self.last_sum / self.last_rows


def float_activations(model: onnx.ModelProto) -> list[str]:
    """Names of float graph inputs and float node outputs (after shape inference), in graph order."""
    import onnx

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    typed = {
        vi.name: vi.type.tensor_type.elem_type
        for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    }
    initializers = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers and typed.get(i.name) in floats]
    for node in model.graph.node:
        if node.op_type in ("Constant", "Shape", "Size"):
            continue
        names.extend(o for o in node.output if o and typed.get(o) in floats)
    seen: set[str] = set()
    return [n for n in names if not (n in seen or seen.add(n))]


def _session(model: onnx.ModelProto, names: Sequence[str]):
    from edgecc.onnxutil import with_outputs
    from edgecc.ortrun import OrtRunner

    return OrtRunner(with_outputs(model, list(names)), name="calibration model", optimize=False)


def _run(runner, feed, names):
    try:
        return runner.run(feed, names)
    except Exception as exc:  # noqa: BLE001 -- onnxruntime / user code raise errors of many types
        raise InvalidInputError(f"the model fails on calibration data: {' '.join(str(exc).split())[:300]}") from None


def collect_statistics(
    model: onnx.ModelProto,
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    histograms: bool,
    progress: Progress | None = None,
) -> dict[str, TensorStats]:
    """Run the float model over `feeds` and gather min/max/means (and histograms when asked) of every float activation."""
    import numpy as np

    names = float_activations(model)
    runner = _session(model, names)
    stats = {n: TensorStats(n) for n in names}
    total = len(feeds) * (2 if histograms else 1)
    done = 0
    for feed in feeds:
        values = _run(runner, feed, names)
        for name, value in zip(names, (values[n] for n in names)):
            s = stats[name]
            v = np.asarray(value, dtype=np.float32)
            if not v.size:
                continue
            finite = v[np.isfinite(v)]
            if finite.size:
                s.lowest = min(s.lowest, float(finite.min()))
                s.highest = max(s.highest, float(finite.max()))
            s.count += v.size
            if v.ndim >= 2:
                moved = np.moveaxis(v, 1, 0).reshape(v.shape[1], -1).astype(np.float64)
                s.channel_sum = moved.sum(axis=1) + (
                    s.channel_sum if s.channel_sum is not None and s.channel_sum.shape == (v.shape[1],) else 0
                )
                s.rows += moved.shape[1]
                flat = v.reshape(-1, v.shape[-1]).astype(np.float64)
                s.last_sum = flat.sum(axis=0) + (
                    s.last_sum if s.last_sum is not None and s.last_sum.shape == (v.shape[-1],) else 0
                )
                s.last_rows += flat.shape[0]
        done += 1
        if progress:
            progress(done, total)
    if histograms:
        for s in stats.values():
            finite = s.count and np.isfinite(s.lowest) and np.isfinite(s.highest)
            s.absmax = max(abs(s.lowest), abs(s.highest)) if finite else 0.0
            s.hist = np.zeros(BINS, dtype=np.int64)
        for feed in feeds:
            values = _run(runner, feed, names)
            for name in names:
                s = stats[name]
                if s.absmax <= 0:
                    continue
                v = np.asarray(values[name], dtype=np.float64).ravel()  # float32 would overflow on 2 * absmax
                v = v[np.isfinite(v)]
                counts, _ = np.histogram(v, bins=BINS, range=(-s.absmax, s.absmax))
                s.hist += counts
            done += 1
            if progress:
                progress(done, total)
    return stats


def _centres(absmax: float) -> np.ndarray:
    import numpy as np

    edges = np.linspace(-absmax, absmax, BINS + 1)
    return (edges[:-1] + edges[1:]) / 2


def _percentile_range(s: TensorStats, percentile: float, symmetric: bool) -> tuple[float, float]:
    import numpy as np

    hist = s.hist.astype(np.float64)
    total = hist.sum()
    if total <= 0:
        return s.lowest, s.highest
    centres = _centres(s.absmax)
    if symmetric:
        half = BINS // 2
        folded = hist[half:] + hist[:half][::-1]
        cdf = np.cumsum(folded) / total
        index = int(np.searchsorted(cdf, percentile / 100.0))
        t = float(centres[half + min(index, half - 1)]) + s.absmax / BINS
        return max(s.lowest, -t), min(s.highest, t)
    cdf = np.cumsum(hist) / total
    lo_index = int(np.searchsorted(cdf, 1 - percentile / 100.0))
    hi_index = int(np.searchsorted(cdf, percentile / 100.0))
    step = s.absmax / BINS
    return max(s.lowest, float(centres[min(lo_index, BINS - 1)]) - step), min(
        s.highest, float(centres[min(hi_index, BINS - 1)]) + step
    )


def _quant_mse(centres: np.ndarray, hist: np.ndarray, lo: float, hi: float, levels: int) -> float:
    import numpy as np

    step = (hi - lo) / (levels - 1) if hi > lo else 1e-12
    clipped = np.clip(centres, lo, hi)
    rounded = np.round((clipped - lo) / step) * step + lo
    return float(np.sum(hist * (centres - rounded) ** 2))


def _mse_range(s: TensorStats, symmetric: bool, levels: int) -> tuple[float, float]:
    import numpy as np

    hist = s.hist.astype(np.float64)
    if hist.sum() <= 0:
        return s.lowest, s.highest
    centres = _centres(s.absmax)
    lo0, hi0 = min(s.lowest, 0.0), max(s.highest, 0.0)
    if symmetric:
        t0 = max(-lo0, hi0)
        lo0, hi0 = -t0, t0
    best = (float("inf"), lo0, hi0)
    for alpha in np.linspace(0.02, 1.0, 99):
        lo, hi = lo0 * alpha, hi0 * alpha
        err = _quant_mse(centres, hist, lo, hi, levels)
        if err < best[0] * (1 - 1e-9):
            best = (err, lo, hi)
    return float(best[1]), float(best[2])


def _entropy_range(s: TensorStats, symmetric: bool, levels: int) -> tuple[float, float]:
    """TensorRT-style KL threshold on the |x| histogram."""
    import numpy as np

    hist = s.hist.astype(np.float64)
    if hist.sum() <= 0:
        return s.lowest, s.highest
    half = BINS // 2
    folded = hist[half:] + hist[:half][::-1]
    folded[0] = 0.0  # exact zeros (ReLU, padding) are represented exactly: they must not pull the threshold down
    quant_bins = 128 if symmetric or s.lowest < 0 else 256
    quant_bins = min(quant_bins, levels // 2 if symmetric else levels)
    best_kl, best_i = float("inf"), half
    for i in range(quant_bins, half + 1, 8):
        p = folded[:i].copy()
        p[i - 1] += folded[i:].sum()
        nonzero = p > 0
        chunks = np.array_split(np.arange(i), quant_bins)
        q = np.zeros(i)
        for idx in chunks:
            part = folded[idx]
            used = (part > 0).sum()
            if used:
                q[idx] = np.where(part > 0, part.sum() / used, 0)
        p_n = p / p.sum()
        q_sum = q.sum()
        if q_sum <= 0:
            continue
        q_n = q / q_sum
        mask = nonzero & (q_n > 0)
        kl = float(np.sum(p_n[mask] * np.log(p_n[mask] / q_n[mask]))) + (float(p_n[nonzero & ~(q_n > 0)].sum()) * 10.0)
        if kl < best_kl:
            best_kl, best_i = kl, i
    t = best_i * s.absmax / half
    return max(s.lowest, -t), min(s.highest, t)


def select_range(
    s: TensorStats, method: str, *, symmetric: bool, bits: int = 8, percentile: float = 99.999
) -> tuple[float, float]:
    """The (low, high) clipping range of one tensor for a calibration method."""
    if not s.count or s.lowest == float("inf"):
        return 0.0, 0.0
    levels = 2**bits
    if method == "minmax" or s.hist is None or s.absmax <= 0:
        lo, hi = s.lowest, s.highest
    elif method == "percentile":
        lo, hi = _percentile_range(s, percentile, symmetric)
    elif method == "entropy":
        lo, hi = _entropy_range(s, symmetric, levels)
    elif method == "mse":
        lo, hi = _mse_range(s, symmetric, levels)
    else:
        raise ValueError(f"unknown calibration method {method!r}")
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        t = max(-lo, hi)
        lo, hi = (-t, t) if s.lowest < 0 else (0.0, hi)
    return float(lo), float(hi)
