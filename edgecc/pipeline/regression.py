"""Noise-aware regression checks of results against a baseline: the one comparison policy of `bench --baseline`,
`bench --ab` and `zoo compare`.

Per pair: a pair that passed in the baseline and fails now, a pair that disappeared, accuracy drops beyond fixed
thresholds (accuracy is deterministic for a given configuration), measured latency increases, and estimated latency
(a cost model or vendor estimator: deterministic) growing by more than `estimate_tolerance` (an exact comparison).

Measured latency is judged with a statistical test over the per-repeat medians of both runs (`repeat_p50_ms`), never
with the spread inside one run alone (load changes between runs, so that spread underestimates the noise): a pair
regressed when the current run is slower with p < `alpha` (Mann-Whitney U; Wilcoxon signed-rank when paired), the
bootstrap lower bound (confidence 1 - `alpha`) of the median ratio current/baseline exceeds 1 + `latency_floor`,
and the medians differ by more than the absolute floor (`latency_abs_floor_ms`, at least 1000 x the timer
resolution). Samples of an interleaved A/B run (both measured in the same run, alternating; `measured.interleaved`
names the session) are paired by round, which cancels load changes; samples of two separate runs are unpaired.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecc.errors import NumericsError
from edgecc.pipeline.latencystats import mann_whitney_greater, ratio_bounds, wilcoxon_greater

__all__ = ["Thresholds", "Finding", "CompareReport", "RegressionFound", "compare_entries", "latency_verdict"]


@dataclass(frozen=True)
class Thresholds:
    """When a change counts as a regression."""

    max_cosine_drop: float = 0.002
    max_sqnr_drop_db: float = 3.0
    max_top1_drop: float = 0.02
    max_accuracy_drop: float = 0.01
    latency_floor: float = 0.10  # relative increase never flagged below this (applied to the confident lower bound)
    latency_abs_floor_ms: float = 0.05  # absolute increase never flagged below this (timer, scheduler jitter)
    alpha: float = 0.01  # significance of the latency test; the ratio's lower bound has confidence 1 - alpha
    estimate_tolerance: float = 0.01  # relative increase of the estimated latency

    def to_dict(self) -> dict[str, float]:
        """JSON-ready."""
        return asdict(self)


@dataclass
class Finding:
    """One check of one pair: what was compared, the values, and whether it regressed."""

    pair: str
    check: str
    regression: bool
    message: str
    baseline: Any = None
    current: Any = None
    threshold: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass
class CompareReport:
    """Every finding, and the pairs compared."""

    thresholds: Thresholds
    findings: list[Finding] = field(default_factory=list)
    compared: int = 0

    @property
    def regressions(self) -> list[Finding]:
        """The findings that are regressions."""
        return [f for f in self.findings if f.regression]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready body of an `edgecc.pipeline.regression` document."""
        return {
            "thresholds": self.thresholds.to_dict(),
            "compared": self.compared,
            "regressions": len(self.regressions),
            "findings": [f.to_dict() for f in self.findings],
        }


class RegressionFound(NumericsError):
    """Results regressed against the baseline (exit 5, so that a Makefile or CI job fails)."""

    kind = "regression"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _accuracy(pair: str, base: Mapping[str, Any], cur: Mapping[str, Any], t: Thresholds) -> list[Finding]:
    findings = []
    checks = (
        ("cosine", "cosine_min", t.max_cosine_drop, ".6f"),
        ("SQNR", "sqnr_db_min", t.max_sqnr_drop_db, ".2f"),
        ("top-1 agreement", "top1_agreement", t.max_top1_drop, ".3f"),
    )
    for label, key, limit, fmt in checks:
        b, c = _num(base.get(key)), _num(cur.get(key))
        if b is None or c is None or (math.isinf(b) and math.isinf(c)):
            continue
        drop = b - c
        bad = drop > limit
        findings.append(
            Finding(
                pair,
                f"accuracy:{key}",
                bad,
                f"{label} {b:{fmt}} -> {c:{fmt}}" + (f" (drop {drop:{fmt}} > {limit})" if bad else ""),
                b,
                c,
                limit,
            )
        )
    btask, ctask = base.get("task") or {}, cur.get("task") or {}
    b, c = _num(btask.get("value")), _num(ctask.get("value"))
    if b is not None and c is not None:
        bad = b - c > t.max_accuracy_drop
        findings.append(
            Finding(
                pair,
                "accuracy:task",
                bad,
                f"{btask.get('metric', 'task metric')} {b:.4f} -> {c:.4f}"
                + (f" (drop {b - c:.4f} > {t.max_accuracy_drop})" if bad else ""),
                b,
                c,
                t.max_accuracy_drop,
            )
        )
    return findings


#: fewer per-repeat samples than this on either side: no test (the pair's latency is reported, not judged)
MIN_SAMPLES = 5


def _samples(measured: Mapping[str, Any]) -> list[float]:
    values = [_num(v) for v in measured.get("repeat_p50_ms") or []]
    return [v for v in values if v is not None and v > 0]


def _paired(bm: Mapping[str, Any], cm: Mapping[str, Any], nb: int, nc: int) -> bool:
    """Both sides come from one interleaved A/B session, round by round."""
    b, c = bm.get("interleaved") or {}, cm.get("interleaved") or {}
    return bool(b.get("session")) and b.get("session") == c.get("session") and nb == nc


def latency_verdict(
    pair: str, bm: Mapping[str, Any], cm: Mapping[str, Any], t: Thresholds
) -> Finding | None:
    """The measured-latency finding of one pair (None when a side has no measurement)."""
    b, c = _num(bm.get("median_of_repeats_ms")), _num(cm.get("median_of_repeats_ms"))
    if b is None or c is None:
        return None
    base, cur = _samples(bm), _samples(cm)
    resolution = max(_num(bm.get("timer_resolution_ms")) or 0.0, _num(cm.get("timer_resolution_ms")) or 0.0)
    floor_ms = max(t.latency_abs_floor_ms, 1000 * resolution)
    change = f"measured p50 {b:.4f} -> {c:.4f} ms ({(c - b) / b:+.1%})" if b else f"measured p50 {b} -> {c} ms"
    if len(base) < MIN_SAMPLES or len(cur) < MIN_SAMPLES:
        return Finding(
            pair,
            "latency:measured",
            False,
            f"{change}; not judged: {len(base)}/{len(cur)} repeats, the test needs {MIN_SAMPLES} on each side",
            b,
            c,
            {"test": None, "repeats": [len(base), len(cur)]},
        )
    paired = _paired(bm, cm, len(base), len(cur))
    bounds = ratio_bounds(base, cur, paired=paired, confidence=1 - t.alpha)
    p_value = wilcoxon_greater(base, cur) if paired else mann_whitney_greater(base, cur)
    delta = _median(cur) - _median(base)
    significant = p_value < t.alpha
    beyond_floor = bounds.low > 1 + t.latency_floor
    beyond_abs = delta > floor_ms
    bad = significant and beyond_floor and beyond_abs
    how = f"interleaved A/B, {len(cur)} paired rounds" if paired else f"separate runs, {len(base)}/{len(cur)} repeats"
    detail = (
        f"{change}; x{bounds.ratio:.3f}, {bounds.confidence:.0%} lower bound x{bounds.low:.3f}, "
        f"{'Wilcoxon' if paired else 'Mann-Whitney'} p={p_value:.2g} ({how})"
    )
    if bad:
        detail += f": slower by more than {t.latency_floor:.0%} and {floor_ms:.3f} ms"
    elif significant and not beyond_floor:
        detail += f": the lower bound is within the {t.latency_floor:.0%} floor"
    elif significant and not beyond_abs:
        detail += f": +{delta:.4f} ms is within the {floor_ms:.3f} ms absolute floor"
    return Finding(
        pair,
        "latency:measured",
        bad,
        detail,
        b,
        c,
        {
            "test": "Wilcoxon signed-rank + paired bootstrap" if paired else "Mann-Whitney U + bootstrap",
            "paired": paired,
            "ratio": round(bounds.ratio, 5),
            "ratio_low": round(bounds.low, 5),
            "confidence": bounds.confidence,
            "p_value": p_value,
            "alpha": t.alpha,
            "floor": t.latency_floor,
            "abs_floor_ms": floor_ms,
            "repeats": [len(base), len(cur)],
            "noise_baseline_ms": _num(bm.get("noise_ms")),
            "noise_current_ms": _num(cm.get("noise_ms")),
        },
    )


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _latency(pair: str, base: Mapping[str, Any], cur: Mapping[str, Any], t: Thresholds) -> list[Finding]:
    findings = []
    measured = latency_verdict(pair, base.get("measured") or {}, cur.get("measured") or {}, t)
    if measured is not None:
        findings.append(measured)
    be, ce = base.get("estimated") or {}, cur.get("estimated") or {}
    b, c = _num(be.get("latency_ms")), _num(ce.get("latency_ms"))
    if b is not None and c is not None:
        bad = c > b * (1 + t.estimate_tolerance)
        findings.append(
            Finding(
                pair,
                "latency:estimated",
                bad,
                f"estimated {b:.4f} -> {c:.4f} ms ({(c - b) / b:+.1%})" if b else f"estimated {b} -> {c} ms",
                b,
                c,
                t.estimate_tolerance,
            )
        )
    return findings


def compare_entries(
    baseline: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]], thresholds: Thresholds
) -> CompareReport:
    """Compare entries keyed by pair id; each has `status` ("ok"/"failed"), `failure` and a bench `record`."""
    report = CompareReport(thresholds)
    for pair in sorted(set(baseline) | set(current)):
        base, cur = baseline.get(pair), current.get(pair)
        if cur is None:
            report.findings.append(
                Finding(pair, "status", True, "missing from the current results", base.get("status") if base else None, None)
            )
            continue
        if base is None:
            report.findings.append(Finding(pair, "status", False, f"new pair ({cur.get('status')})", None, cur.get("status")))
            continue
        report.compared += 1
        bstat, cstat = base.get("status"), cur.get("status")
        if cstat != "ok":
            failure = cur.get("failure") or {}
            detail = f"{failure.get('stage', '?')} exit {failure.get('exit_code', '?')}: {failure.get('message', '')}"
            report.findings.append(
                Finding(
                    pair,
                    "status",
                    bstat == "ok",
                    ("newly failing: " if bstat == "ok" else "still failing: ") + detail,
                    bstat,
                    cstat,
                )
            )
            continue
        if bstat != "ok":
            report.findings.append(Finding(pair, "status", False, "fixed: failed in the baseline, passes now", bstat, cstat))
            continue
        brec, crec = base.get("record") or {}, cur.get("record") or {}
        report.findings += _accuracy(pair, brec.get("accuracy") or {}, crec.get("accuracy") or {}, thresholds)
        report.findings += _latency(pair, brec.get("latency") or {}, crec.get("latency") or {}, thresholds)
    return report
