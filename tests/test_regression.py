"""The latency verdict of the regression policy: its statistics and its floors, on known samples."""

from __future__ import annotations

import numpy as np
import pytest

from edgecc.pipeline.latencystats import mann_whitney_greater, ratio_bounds
from edgecc.pipeline.regression import Thresholds, compare_entries, latency_verdict


def _measured(samples, session: str | None = None) -> dict:
    samples = [float(v) for v in samples]
    return {
        "repeat_p50_ms": samples,
        "median_of_repeats_ms": float(np.median(samples)),
        "noise_ms": 0.0,
        "timer_resolution_ms": 1e-6,
        "interleaved": {"session": session} if session else None,
    }


def test_mann_whitney_matches_known_values() -> None:
    # every current sample above every baseline one: U = n1 n2; with n = 5 + 5 the normal approximation gives ~0.006
    assert mann_whitney_greater([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(0.0061, abs=5e-4)
    assert mann_whitney_greater([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]) > 0.99
    assert mann_whitney_greater([1.0] * 6, [1.0] * 6) == 1.0  # all tied: no evidence
    assert 0.3 < mann_whitney_greater([1, 3, 5, 7], [2, 4, 6, 8]) < 0.5


def test_ratio_bounds_paired_and_unpaired() -> None:
    rng = np.random.default_rng(1)
    base = 1.0 + 0.05 * rng.standard_normal(30)
    doubled = ratio_bounds(base, 2 * base, paired=True)
    assert doubled.ratio == pytest.approx(2.0) and doubled.low == pytest.approx(2.0)
    apart = ratio_bounds(base, 2 * base[::-1], paired=False)
    assert 1.8 < apart.low < apart.ratio < 2.2
    with pytest.raises(ValueError):
        ratio_bounds([1.0, 2.0], [1.0], paired=True)


def test_a_load_swing_common_to_both_sides_cancels_when_paired() -> None:
    # round i of both sides saw the same load (x1 .. x3): unpaired the spread hides a 20 % slowdown, paired it shows
    load = np.linspace(1.0, 3.0, 30)
    base, cur = load * 1.0, load * 1.2
    unpaired = latency_verdict("m@cpu", _measured(base), _measured(cur), Thresholds())
    paired = latency_verdict("m@cpu", _measured(base, "s"), _measured(cur, "s"), Thresholds())
    assert not unpaired.regression and paired.regression
    assert paired.threshold["paired"] and paired.threshold["ratio_low"] == pytest.approx(1.2)


def test_floors_keep_small_differences_unflagged() -> None:
    base = np.full(30, 0.040) + np.linspace(0, 1e-4, 30)
    tiny = latency_verdict("m@cpu", _measured(base, "s"), _measured(base * 1.8, "s"), Thresholds())
    assert not tiny.regression and "absolute floor" in tiny.message  # +32 us < 50 us: timer/scheduler territory
    base = np.full(30, 2.0) + np.linspace(0, 1e-3, 30)
    small = latency_verdict("m@cpu", _measured(base, "s"), _measured(base * 1.05, "s"), Thresholds())
    assert not small.regression and "10% floor" in small.message
    flagged = latency_verdict("m@cpu", _measured(base, "s"), _measured(base * 1.05, "s"), Thresholds(latency_floor=0.02))
    assert flagged.regression


def test_too_few_repeats_are_reported_not_judged() -> None:
    finding = latency_verdict("m@cpu", _measured([1.0, 1.1]), _measured([5.0, 5.1]), Thresholds())
    assert not finding.regression and "not judged" in finding.message


def test_estimates_stay_exact_comparisons() -> None:
    def entry(estimate: float) -> dict:
        return {"status": "ok", "record": {"latency": {"measured": None, "estimated": {"latency_ms": estimate}}}}

    report = compare_entries({"m@npu": entry(1.0)}, {"m@npu": entry(1.02)}, Thresholds())
    assert [(f.check, f.regression) for f in report.findings] == [("latency:estimated", True)]
    report = compare_entries({"m@npu": entry(1.0)}, {"m@npu": entry(1.005)}, Thresholds())
    assert not report.regressions


def test_wilcoxon_on_paired_ratios() -> None:
    from edgecc.pipeline.latencystats import wilcoxon_greater

    base = np.linspace(1.0, 3.0, 20)
    assert wilcoxon_greater(base, base * 1.1) < 1e-4  # every pair slower
    assert wilcoxon_greater(base, base) == 1.0  # no difference at all
    mixed = base * np.where(np.arange(20) % 2, 1.1, 1 / 1.1)
    assert 0.3 < wilcoxon_greater(base, mixed) < 0.7
