"""The harness's own comparison, on outputs of a real model run by torch and by onnxruntime."""

from __future__ import annotations

import io

import numpy as np
import pytest

from conformance.compare import RULES, compare, rule_for


@pytest.fixture(scope="module")
def torch_and_ort_outputs() -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Flatten()).eval()
    x = torch.randn(4, 3, 16, 16)
    buffer = io.BytesIO()
    torch.onnx.export(model, (x[:1],), buffer, dynamo=False, input_names=["x"])
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    ort_out = np.stack([session.run(None, {"x": x[i : i + 1].numpy()})[0] for i in range(4)])
    with torch.no_grad():
        torch_out = np.stack([model(x[i : i + 1]).numpy() for i in range(4)])
    return torch_out, ort_out


def test_onnxruntime_matches_torch_under_the_float_rule(torch_and_ort_outputs):
    reference, outputs = torch_and_ort_outputs
    verdict = compare([reference], [outputs], "fp32")
    assert verdict["match"], verdict
    assert verdict["cosine"] > 0.99999


def test_a_perturbed_output_is_wrong_and_says_which(torch_and_ort_outputs):
    reference, outputs = torch_and_ort_outputs
    broken = outputs.copy()
    broken[2] *= 1.05  # one sample off by 5 %
    verdict = compare([reference], [broken], "fp32")
    assert not verdict["match"]
    assert "output 0" in verdict["why"] and "float rule" in verdict["why"]


def test_nan_shape_and_count_are_always_wrong(torch_and_ort_outputs):
    reference, outputs = torch_and_ort_outputs
    nan = outputs.copy()
    nan.flat[0] = np.nan
    assert "NaN" in compare([reference], [nan], "int8")["why"]
    assert "shape" in compare([reference], [outputs[..., :10]], "fp32")["why"]
    assert "output(s)" in compare([reference, reference], [outputs], "fp32")["why"]


def test_rules_by_precision_and_reference_dtype():
    assert rule_for("fp32", np.dtype("float32")) is RULES["float"]
    assert rule_for("fp16", np.dtype("float32")) is RULES["fp16"]
    assert rule_for("int8", np.dtype("float32")) is RULES["int8"]
    assert rule_for("fp32", np.dtype("int8")) is RULES["integer"]


def test_int8_rule_accepts_quantisation_noise_but_not_a_wrong_sign(torch_and_ort_outputs):
    reference, _ = torch_and_ort_outputs
    rng = np.random.default_rng(0)
    step = float(np.abs(reference).max()) / 127
    noisy = reference + rng.uniform(-step / 2, step / 2, reference.shape).astype(np.float32)
    assert compare([reference], [noisy], "int8")["match"]
    assert not compare([reference], [-reference], "int8")["match"]


def test_the_references_own_spread_widens_the_relative_rule(torch_and_ort_outputs):
    """A difference as large as the original runtime's own kernel sets disagree by is not held against edgecc."""
    torch_out, _ = torch_and_ort_outputs
    scale = float(np.max(np.abs(torch_out)))
    moved = torch_out.copy()
    moved.flat[0] += 1.5e-3 * scale  # beyond the float rule's 1e-3 relative
    assert not compare([torch_out], [moved], "fp32")["match"]
    assert compare([torch_out], [moved], "fp32", spread=[1e-3 * scale])["match"]  # 2 x spread = 2e-3 relative
    verdict = compare([torch_out], [moved], "fp32", spread=[0.5e-3 * scale])
    assert not verdict["match"] and "widened" not in verdict["why"]  # 2 x spread = the rule itself: not widened
