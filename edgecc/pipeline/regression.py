"""Noise-aware regression checks of results against a baseline.

Per pair: a pair that passed in the baseline and fails now, a pair that disappeared, accuracy drops beyond fixed
thresholds (accuracy is deterministic for a given configuration), and measured latency increases beyond a threshold
set by the noise both runs measured themselves: `max(floor x baseline, k x sqrt(noise_baseline^2 + noise_current^2))`,
where noise is 1.4826 x MAD of the per-repeat medians. Estimated latency (a cost model: deterministic) is flagged
when it grows by more than `estimate_tolerance`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecc.errors import NumericsError

__all__ = ["Thresholds", "Finding", "CompareReport", "RegressionFound", "compare_entries"]


@dataclass(frozen=True)
class Thresholds:
    """When a change counts as a regression."""

    max_cosine_drop: float = 0.002
    max_sqnr_drop_db: float = 3.0
    max_top1_drop: float = 0.02
    max_accuracy_drop: float = 0.01
    latency_floor: float = 0.10  # relative increase never flagged below this
    noise_k: float = 4.0  # sigmas of the combined run-to-run noise
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


def _latency(pair: str, base: Mapping[str, Any], cur: Mapping[str, Any], t: Thresholds) -> list[Finding]:
    findings = []
    bm, cm = base.get("measured") or {}, cur.get("measured") or {}
    b, c = _num(bm.get("median_of_repeats_ms")), _num(cm.get("median_of_repeats_ms"))
    if b is not None and c is not None:
        noise_b, noise_c = _num(bm.get("noise_ms")) or 0.0, _num(cm.get("noise_ms")) or 0.0
        combined = math.hypot(noise_b, noise_c)
        threshold = max(t.latency_floor * b, t.noise_k * combined)
        bad = c - b > threshold
        findings.append(
            Finding(
                pair,
                "latency:measured",
                bad,
                f"measured p50 {b:.4f} -> {c:.4f} ms ({(c - b) / b:+.1%}; threshold +{threshold:.4f} ms from noise "
                f"{noise_b:.4f}/{noise_c:.4f} ms, floor {t.latency_floor:.0%})",
                b,
                c,
                {"threshold_ms": round(threshold, 5), "noise_baseline_ms": noise_b, "noise_current_ms": noise_c},
            )
        )
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
