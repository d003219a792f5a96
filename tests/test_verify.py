"""edgecc.verify: metrics against independent numpy formulas, tolerance verdicts, sample and per-layer comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.errors import UsageError
from edgecc.ortrun import OrtRunner
from edgecc.verify import (
    TOLERANCE_PRESETS,
    Tolerance,
    compare_samples,
    compute_metrics,
    per_layer,
    run_samples,
)

LOOSE = Tolerance(atol=None, rtol=None, min_cosine=None)


def _pair(seed: int = 0, shape=(4, 10), noise: float = 0.01):
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal(shape).astype(np.float32)
    candidate = (reference + noise * rng.standard_normal(shape)).astype(np.float32)
    return reference, candidate


# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_independent_formulas(seed):
    reference, candidate = _pair(seed, shape=(3, 5, 7), noise=0.05 * (seed + 1))
    m = compute_metrics("out", reference, candidate, LOOSE)
    r = reference.astype(np.float64).ravel()
    c = candidate.astype(np.float64).ravel()
    e = r - c
    assert m.name == "out"
    assert m.shape == (3, 5, 7)
    assert m.reference_dtype == "float32" and m.candidate_dtype == "float32"
    assert m.max_abs == pytest.approx(np.max(np.abs(e)), rel=1e-12)
    assert m.mean_abs == pytest.approx(np.mean(np.abs(e)), rel=1e-12)
    assert m.rel_l2 == pytest.approx(math.sqrt(np.sum(e**2)) / math.sqrt(np.sum(r**2)), rel=1e-10)
    assert m.cosine == pytest.approx(np.sum(r * c) / math.sqrt(np.sum(r**2) * np.sum(c**2)), rel=1e-10)
    assert m.sqnr_db == pytest.approx(10 * math.log10(np.sum(r**2) / np.sum(e**2)), rel=1e-10)
    assert m.reference_range == pytest.approx(r.max() - r.min(), rel=1e-12)
    assert m.passed


def test_identical_arrays():
    reference, _ = _pair()
    m = compute_metrics("y", reference, reference.copy(), Tolerance(atol=0.0, rtol=0.0, min_cosine=1.0))
    assert m.max_abs == 0.0 and m.mean_abs == 0.0 and m.rel_l2 == 0.0
    assert m.cosine == pytest.approx(1.0)
    assert m.sqnr_db == float("inf")
    assert m.passed, m.reason
    assert m.to_dict()["sqnr_db"] == "inf"
    json.dumps(m.to_dict())


def test_zero_reference():
    zeros = np.zeros((2, 3), np.float32)
    same = compute_metrics("z", zeros, zeros, Tolerance())
    assert same.passed and same.cosine == 1.0 and same.rel_l2 == 0.0
    other = compute_metrics("z", zeros, np.ones((2, 3), np.float32), Tolerance())
    assert not other.passed
    assert other.rel_l2 == float("inf") and other.cosine == 0.0 and other.max_abs == 1.0


def test_metrics_across_dtypes():
    reference = np.arange(12, dtype=np.float32).reshape(3, 4)
    candidate = reference.astype(np.float16)
    m = compute_metrics("y", reference, candidate, Tolerance())
    assert m.candidate_dtype == "float16"
    assert m.passed  # small integers are exact in fp16
    ints = compute_metrics("i", np.array([1, 2, 3], np.int64), np.array([1, 2, 4], np.int32), Tolerance(atol=0.5, rtol=0.0))
    assert ints.max_abs == 1.0 and not ints.passed


def test_string_outputs():
    a = np.array(["cat", "dog"], dtype=object)
    assert compute_metrics("s", a, np.array(["cat", "dog"], dtype=object), Tolerance()).passed
    diff = compute_metrics("s", a, np.array(["cat", "cow"], dtype=object), Tolerance())
    assert not diff.passed and diff.reason


# ---------------------------------------------------------------- tolerance verdicts


def test_atol_rtol_bound_uses_reference_range():
    reference = np.linspace(-5.0, 5.0, 101)  # range 10
    tolerance = Tolerance(atol=1e-3, rtol=1e-2, min_cosine=None)  # bound = 0.001 + 0.01 * 10 = 0.101
    below = reference.copy()
    below[17] += 0.1
    above = reference.copy()
    above[17] += 0.102
    assert compute_metrics("y", reference, below, tolerance).passed
    failed = compute_metrics("y", reference, above, tolerance)
    assert not failed.passed
    assert "max abs error" in failed.reason


def test_atol_only_and_rtol_only():
    reference = np.linspace(0.0, 100.0, 11)
    candidate = reference + 0.5
    assert not compute_metrics("y", reference, candidate, Tolerance(atol=0.4, rtol=None)).passed
    assert compute_metrics("y", reference, candidate, Tolerance(atol=0.6, rtol=None)).passed
    assert compute_metrics("y", reference, candidate, Tolerance(atol=None, rtol=0.006)).passed  # 0.6
    assert not compute_metrics("y", reference, candidate, Tolerance(atol=None, rtol=0.004)).passed  # 0.4


def test_min_cosine():
    reference, candidate = _pair(5, shape=(1000,), noise=0.1)
    cosine = float(
        np.dot(reference.astype(np.float64), candidate)
        / (np.linalg.norm(reference.astype(np.float64)) * np.linalg.norm(candidate.astype(np.float64)))
    )
    assert 0.99 < cosine < 0.9999
    assert compute_metrics("y", reference, candidate, Tolerance(atol=None, rtol=None, min_cosine=cosine - 1e-6)).passed
    failed = compute_metrics("y", reference, candidate, Tolerance(atol=None, rtol=None, min_cosine=cosine + 1e-6))
    assert not failed.passed and "cosine" in failed.reason


def test_presets():
    reference, candidate = _pair(6, shape=(1000,), noise=0.05)  # cosine about 0.9988
    assert not compute_metrics("y", reference, candidate, TOLERANCE_PRESETS["fp32"]).passed
    assert not compute_metrics("y", reference, candidate, TOLERANCE_PRESETS["fp16"]).passed
    assert compute_metrics("y", reference, candidate, TOLERANCE_PRESETS["int8"]).passed
    fp16_like = reference.astype(np.float16).astype(np.float32)
    assert compute_metrics("y", reference, fp16_like, TOLERANCE_PRESETS["fp16"]).passed
    assert not compute_metrics("y", reference, fp16_like, TOLERANCE_PRESETS["fp32"]).passed
    assert compute_metrics("y", reference, reference.copy(), TOLERANCE_PRESETS["fp32"]).passed
    assert TOLERANCE_PRESETS["fp16"].atol is None and TOLERANCE_PRESETS["fp16"].min_cosine == 0.9999
    assert TOLERANCE_PRESETS["int8"].min_cosine == 0.99


def test_with_overrides():
    base = TOLERANCE_PRESETS["fp32"]
    changed = base.with_overrides(atol=0.5, min_cosine=0.9)
    assert changed == Tolerance(atol=0.5, rtol=base.rtol, min_cosine=0.9)
    assert base.with_overrides() == base


def test_nan_position_mismatch_fails():
    reference = np.array([1.0, np.nan, 3.0, 4.0], np.float32)
    candidate = np.array([1.0, 2.0, np.nan, 4.0], np.float32)
    m = compute_metrics("y", reference, candidate, LOOSE)
    assert not m.passed
    assert "NaN" in m.reason
    # same NaN positions, equal elsewhere: passes, metrics over the finite values
    same = compute_metrics("y", reference, np.array([1.0, np.nan, 3.0, 4.5], np.float32), Tolerance(atol=0.6, rtol=0.0))
    assert same.passed and same.max_abs == pytest.approx(0.5)


def test_nan_only_in_candidate_fails():
    reference = np.ones(5, np.float32)
    candidate = reference.copy()
    candidate[3] = np.nan
    assert not compute_metrics("y", reference, candidate, LOOSE).passed


def test_inf_sign_mismatch_fails():
    reference = np.array([np.inf, 1.0])
    assert compute_metrics("y", reference, np.array([np.inf, 1.0]), Tolerance()).passed
    assert not compute_metrics("y", reference, np.array([-np.inf, 1.0]), Tolerance()).passed


def test_shape_mismatch_fails():
    m = compute_metrics("y", np.zeros((2, 3)), np.zeros((3, 2)), LOOSE)
    assert not m.passed
    assert "shape" in m.reason
    assert m.shape == (2, 3)
    assert not compute_metrics("y", np.zeros((1, 4)), np.zeros(4), LOOSE).passed


# ---------------------------------------------------------------- top-k


def test_top1_top5():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((4, 10))
    candidate = reference.copy()
    ref_top = reference.argmax(axis=1)
    # row 1: the reference's best class is demoted to 3rd place (top-1 wrong, top-5 right)
    order = np.argsort(-reference[1])
    candidate[1, order[0]] = (reference[1, order[2]] + reference[1, order[3]]) / 2
    # row 2: the reference's best class is demoted to last place (top-1 and top-5 wrong)
    candidate[2, ref_top[2]] = reference[2].min() - 1
    m = compute_metrics("logits", reference, candidate, LOOSE)
    assert m.top1 == pytest.approx(2 / 4)
    assert m.top5 == pytest.approx(3 / 4)
    # independent check of the same definitions
    cand_top5 = np.argsort(-candidate, axis=1)[:, :5]
    assert m.top1 == np.mean(candidate.argmax(axis=1) == ref_top)
    assert m.top5 == np.mean([ref_top[i] in cand_top5[i] for i in range(4)])


def test_topk_availability():
    few = compute_metrics("y", np.array([[0.1, 0.9, 0.0]]), np.array([[0.1, 0.9, 0.0]]), LOOSE)
    assert few.top1 == 1.0 and few.top5 is None  # fewer than 5 classes
    nchw = compute_metrics("y", np.zeros((2, 1, 1, 6)) + np.arange(6), np.zeros((2, 1, 1, 6)) + np.arange(6), LOOSE)
    assert nchw.top1 == 1.0 and nchw.top5 == 1.0
    spatial = compute_metrics("y", np.ones((2, 3, 4, 6)), np.ones((2, 3, 4, 6)), LOOSE)
    assert spatial.top1 is None and spatial.top5 is None
    ints = compute_metrics("y", np.arange(10).reshape(2, 5), np.arange(10).reshape(2, 5), LOOSE)
    assert ints.top1 is None


# ---------------------------------------------------------------- real models


def _mlp(perturb: float = 0.0, *, rename_output: str | None = None) -> onnx.ModelProto:
    """x -> fc1 -> relu1 -> fc2 -> relu2 -> fc3 -> y; `perturb` is added to one column of fc2's weight."""
    rng = np.random.default_rng(42)
    w1 = rng.standard_normal((6, 8)).astype(np.float32)
    w2 = rng.standard_normal((8, 8)).astype(np.float32)
    w3 = rng.standard_normal((8, 5)).astype(np.float32)
    w2 = w2.copy()
    w2[:, 4] += perturb
    out = rename_output or "y"
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
            helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
            helper.make_node("MatMul", ["a1", "w2"], ["h2"], name="fc2"),
            helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
            helper.make_node("MatMul", ["a2", "w3"], [out], name="fc3"),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 5])],
        initializer=[numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _feeds(count: int = 3) -> list[dict[str, np.ndarray]]:
    # batch 16 so that the perturbed unit of fc2 sees many different activations
    return [{"x": np.random.default_rng(i).standard_normal((16, 6)).astype(np.float32)} for i in range(count)]


def _w1() -> np.ndarray:
    return numpy_helper.to_array(_mlp().graph.initializer[0])


def test_compare_samples_identical_models_pass():
    feeds = _feeds()
    report = compare_samples(OrtRunner(_mlp(), name="A"), OrtRunner(_mlp(), name="B"), feeds, TOLERANCE_PRESETS["fp32"])
    assert report.passed
    assert report.samples == 3
    assert [o.name for o in report.outputs] == ["y"]
    assert report.outputs[0].shape == (3, 16, 5)  # samples stacked
    assert report.outputs[0].max_abs == 0.0
    assert report.to_dict()["passed"] is True
    json.dumps(report.to_dict())


def test_compare_samples_perturbed_model_fails_with_correct_metrics():
    feeds = _feeds()
    reference, candidate = OrtRunner(_mlp(), name="A"), OrtRunner(_mlp(0.5), name="B")
    report = compare_samples(reference, candidate, feeds, TOLERANCE_PRESETS["fp32"])
    assert not report.passed
    assert [f.name for f in report.failures()] == ["y"]
    ref = np.stack([r["y"] for r in run_samples(reference, feeds)]).astype(np.float64)
    cand = np.stack([r["y"] for r in run_samples(candidate, feeds)]).astype(np.float64)
    assert report.outputs[0].max_abs == pytest.approx(np.abs(ref - cand).max(), rel=1e-12)
    assert report.outputs[0].max_abs > 1e-3
    assert report.to_dict()["passed"] is False


def test_compare_samples_pairs_outputs_by_position_when_names_differ():
    feeds = _feeds(1)
    report = compare_samples(OrtRunner(_mlp(), name="A"), OrtRunner(_mlp(rename_output="logits"), name="B"), feeds, Tolerance())
    assert report.passed
    assert any("position" in note for note in report.notes)
    assert report.outputs[0].name == "logits"


def test_compare_samples_unpairable_outputs():
    two = _mlp()
    two.graph.output.append(helper.make_tensor_value_info("a1", TensorProto.FLOAT, ["N", 8]))
    renamed = _mlp(rename_output="z")
    with pytest.raises(UsageError):
        compare_samples(OrtRunner(two, name="A"), OrtRunner(renamed, name="B"), _feeds(1), Tolerance())


def test_per_layer_names_the_perturbed_layer():
    feeds = _feeds(2)
    report = per_layer(_mlp(), _mlp(0.5), feeds, TOLERANCE_PRESETS["fp32"])
    assert [layer.tensor for layer in report.layers] == ["h1", "a1", "h2", "a2", "y"]
    assert [layer.node for layer in report.layers] == ["fc1", "relu1", "fc2", "relu2", "fc3"]
    passed = {layer.node: layer.metrics.passed for layer in report.layers}
    assert passed["fc1"] and passed["relu1"]
    assert not passed["fc2"]
    assert report.first_divergence is not None
    assert report.first_divergence.node == "fc2"
    assert report.first_divergence.op_type == "MatMul"
    assert report.first_divergence.tensor == "h2"
    # the per-layer metrics are those of the real intermediate tensors
    h1 = np.stack([f["x"] @ _w1() for f in feeds])
    np.testing.assert_allclose(report.layers[0].metrics.reference_range, float(h1.max() - h1.min()), rtol=1e-5)
    data = report.to_dict()
    assert data["first_divergence"]["node"] == "fc2"
    assert data["shared_tensors"] == 5
    json.dumps(data)


def test_per_layer_identical_models_no_divergence():
    report = per_layer(_mlp(), _mlp(), _feeds(1), TOLERANCE_PRESETS["fp32"])
    assert report.first_divergence is None
    assert len(report.layers) == 5
    assert all(layer.metrics.passed and layer.metrics.max_abs == 0.0 for layer in report.layers)


def test_per_layer_without_shared_tensors():
    other = _mlp()
    for node in other.graph.node:
        node.output[0] = "other_" + node.output[0]
        for index, name in enumerate(node.input):
            if name in {"h1", "a1", "h2", "a2"}:
                node.input[index] = "other_" + name
    other.graph.output[0].name = "other_y"
    report = per_layer(_mlp(), other, _feeds(1), Tolerance())
    assert report.layers == [] and report.first_divergence is None


def _feeds_of_varying_batch() -> list[dict[str, np.ndarray]]:
    """Samples of a dynamic-batch model need not share a shape (e.g. a --data directory of sequences)."""
    return [{"x": np.random.default_rng(b).standard_normal((b, 6)).astype(np.float32)} for b in (3, 5)]


def test_compare_samples_with_samples_of_different_shapes():
    feeds = _feeds_of_varying_batch()
    same = compare_samples(OrtRunner(_mlp(), name="A"), OrtRunner(_mlp(), name="B"), feeds, TOLERANCE_PRESETS["fp32"])
    assert same.passed and same.samples == 2
    differs = compare_samples(OrtRunner(_mlp(), name="A"), OrtRunner(_mlp(0.5), name="B"), feeds, TOLERANCE_PRESETS["fp32"])
    assert not differs.passed
    # the metric covers every sample's values
    expected = max(
        float(np.abs(OrtRunner(_mlp()).run(f)["y"].astype(np.float64) - OrtRunner(_mlp(0.5)).run(f)["y"]).max()) for f in feeds
    )
    assert differs.outputs[0].max_abs == pytest.approx(expected, rel=1e-12)


def test_per_layer_with_samples_of_different_shapes():
    report = per_layer(_mlp(), _mlp(0.5), _feeds_of_varying_batch(), TOLERANCE_PRESETS["fp32"])
    assert report.first_divergence is not None and report.first_divergence.node == "fc2"
