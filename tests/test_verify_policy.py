"""edgecc.verify's one tolerance policy: tolerance_for, magnitude-relative bounds, quantisation steps, NaN/Inf reasons."""

from __future__ import annotations

import numpy as np
import pytest

from edgecc.errors import UsageError
from edgecc.verify import METRICS_ONLY, TOLERANCE_PRESETS, compare_outputs, compute_metrics, tolerance_for


def test_tolerance_for_by_precision_and_dtype():
    assert tolerance_for("fp32") == TOLERANCE_PRESETS["fp32"]
    assert tolerance_for("fp16") == TOLERANCE_PRESETS["fp16"]
    assert tolerance_for("int8") == tolerance_for("int16") == TOLERANCE_PRESETS["int8"]
    for dtype in ("int8", "uint8", "int16"):
        assert tolerance_for("int8", dtype) == TOLERANCE_PRESETS["steps"]
    assert tolerance_for("fp32", "int8") == TOLERANCE_PRESETS["steps"]  # integer outputs are compared in steps
    with pytest.raises(UsageError):
        tolerance_for("fp8")


def test_one_element_output_is_judged_against_its_magnitude():
    reference = np.array([[52.75]], np.float32)
    close = reference + np.float32(2e-4)  # float32 rounding of a large logit
    metrics = compute_metrics("logit", reference, close, tolerance_for("fp32"))
    assert metrics.reference_range == 0.0 and metrics.passed, metrics.reason
    far = compute_metrics("logit", reference, reference + np.float32(0.1), tolerance_for("fp32"))
    assert not far.passed and "scale 52.8" in far.reason
    # a constant output of several elements too: scale = max(range, max |reference|)
    constant = np.full((1, 8), -3.0, np.float32)
    assert compute_metrics("c", constant, constant + np.float32(2e-4), tolerance_for("fp32")).passed


def test_nan_reason_only_when_nan_or_inf_occur():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((4, 16)).astype(np.float32)
    off = compute_metrics("y", reference, reference + 1.0, tolerance_for("fp32"))
    assert not off.passed and "NaN" not in off.reason and "max abs error" in off.reason
    nan = reference.copy()
    nan[1, 3] = np.nan
    bad = compute_metrics("y", reference, nan, METRICS_ONLY)
    assert not bad.passed and "the reference has 0 non-finite value(s), the candidate 1" in bad.reason
    assert compute_metrics("y", nan, nan.copy(), tolerance_for("fp32")).passed


def test_quantisation_steps_rule():
    reference = np.arange(-100, 100, dtype=np.int8).reshape(1, 200).astype(np.int8)
    one = reference.copy()
    one[0, ::2] += 1
    metrics = compute_metrics("q", reference, one, tolerance_for("int8", "int8"))
    assert metrics.passed and metrics.step == 1.0 and metrics.max_steps == 1
    assert metrics.steps_histogram == {"0": 100, "1": 100, "2": 0, ">2": 0}
    two = reference.copy()
    two[0, 0] += 2  # one element of 200 two steps off: 99.5 % within one step (< 99.9 %)
    failed = compute_metrics("q", reference, two, tolerance_for("int8", "int8"))
    assert not failed.passed and "within 1 quantisation step" in failed.reason
    big = np.zeros((1, 5000), np.int8)
    rare = big.copy()
    rare[0, :3] = 2  # 3 of 5000 two steps off: allowed; one three steps off: not
    assert compute_metrics("q", big, rare, tolerance_for("int8", "int8")).passed
    rare[0, 4] = 3
    beyond = compute_metrics("q", big, rare, tolerance_for("int8", "int8"))
    assert not beyond.passed and "1 element(s) more than 2 quantisation step(s)" in beyond.reason


def test_float_outputs_with_a_step_are_measured_in_that_step():
    scale = 0.05
    reference = (np.arange(2000, dtype=np.float32) % 50) * scale
    candidate = reference + scale  # one step everywhere
    report = compare_outputs([{"y": reference}], [{"y": candidate}], {"y": tolerance_for("int8", "int8")}, steps={"y": scale})
    [metrics] = report.outputs
    assert report.passed and metrics.max_steps == 1 and metrics.within_one_step == 1.0
    assert "steps_histogram" in metrics.to_dict()
    plain = compare_outputs([{"y": reference}], [{"y": candidate}], tolerance_for("fp32"))
    assert not plain.passed and "steps_histogram" not in plain.outputs[0].to_dict()


def test_compare_outputs_stacks_samples_and_pairs_names():
    reference = [{"a": np.ones((1, 3), np.float32)}, {"a": np.zeros((1, 3), np.float32)}]
    candidate = [{"b": np.ones((1, 3), np.float32)}, {"b": np.zeros((1, 3), np.float32)}]
    report = compare_outputs(reference, candidate, tolerance_for("fp32"), names=[("a", "b")])
    assert report.passed and report.samples == 2 and report.outputs[0].shape == (2, 1, 3) and report.outputs[0].name == "b"
