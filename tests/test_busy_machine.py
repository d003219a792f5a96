"""The latency verdict on a busy machine: other CPU-heavy work runs (one busy loop per core) while both runs are
measured. A real 2x slowdown (the same MLP with its layers duplicated: twice the work) is reported every time; the
unchanged model compared with itself is never reported, 20 of 20 repetitions, interleaved (`bench --ab`,
`zoo compare --rerun-baseline`) and as separate runs (`bench --baseline`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecc.pipeline.abtest import ab_measure
from edgecc.pipeline.benchmark import BenchSettings, measure_latency
from edgecc.pipeline.regression import Thresholds, latency_verdict
from edgecc.runtime import load
from tests.conftest import make_mlp_onnx

pytestmark = pytest.mark.slow  # loads every core for ~25 s: not in the fast lane

REPETITIONS = 20
SETTINGS = BenchSettings(runs=3, repeats=20, warmup=3)  # ~0.3 ms a run: ~40 ms a side per repetition


def _models(folder: Path) -> tuple[Path, Path, Path]:
    base, same, doubled = folder / "base.onnx", folder / "same.onnx", folder / "doubled.onnx"
    make_mlp_onnx(base, layers=6)
    make_mlp_onnx(same, layers=6)  # the unchanged model, a file of its own (its own session)
    make_mlp_onnx(doubled, layers=12)  # every layer twice
    return base, same, doubled


def test_interleaved_verdict_under_load(tmp_path: Path, cpu_load: list) -> None:
    base, same, doubled = _models(tmp_path)
    alarms, missed, ratios = [], [], []
    for repetition in range(REPETITIONS):
        finding = latency_verdict("mlp@cpu", *ab_measure(base, same, SETTINGS, seed=repetition), Thresholds())
        assert finding.threshold["paired"]
        if finding.regression:
            alarms.append(finding.message)
        slow = latency_verdict("mlp@cpu", *ab_measure(base, doubled, SETTINGS, seed=repetition), Thresholds())
        if not slow.regression:
            missed.append(slow.message)
        ratios.append(slow.threshold["ratio"])
    assert all(proc.poll() is None for proc in cpu_load), "the load stopped during the test"
    assert alarms == [], alarms
    assert missed == [], missed
    assert min(ratios) > 1.5  # twice the work is measured as such (per-run overhead keeps it below 2)


def test_separate_runs_verdict_under_load(tmp_path: Path, cpu_load: list) -> None:
    base, same, doubled = _models(tmp_path)

    def measure(path: Path) -> dict:
        runner = load(path)
        try:
            return measure_latency(runner, {"x": _input()}, SETTINGS)
        finally:
            runner.close()

    from edgecc.ortrun import ort_threads

    alarms, missed = [], []
    with ort_threads(SETTINGS.threads):
        for _ in range(REPETITIONS):
            reference = measure(base)
            finding = latency_verdict("mlp@cpu", reference, measure(same), Thresholds())
            assert not finding.threshold["paired"]
            if finding.regression:
                alarms.append(finding.message)
            slow = latency_verdict("mlp@cpu", reference, measure(doubled), Thresholds())
            if not slow.regression:
                missed.append(slow.message)
    assert all(proc.poll() is None for proc in cpu_load), "the load stopped during the test"
    assert alarms == [], alarms
    assert missed == [], missed


def _input():
    import numpy as np

    return np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
