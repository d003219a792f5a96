"""Activation layers against OpenCV's Caffe importer, with in-place (top == bottom) and chained use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.converters.caffe.helpers import compare_with_opencv, converted_outputs, rand, write_net

HEAD = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'

CASES = {
    "relu": ('type: "ReLU"', -2, 2),
    "relu_leaky": ('type: "ReLU" relu_param { negative_slope: 0.1 }', -2, 2),
    "elu": ('type: "ELU" elu_param { alpha: 0.7 }', -3, 3),
    "sigmoid": ('type: "Sigmoid"', -6, 6),
    "tanh": ('type: "TanH"', -3, 3),
    "absval": ('type: "AbsVal"', -3, 3),
    "bnll": ('type: "BNLL"', -5, 5),
    "power": ('type: "Power" power_param { power: 2 scale: 0.5 shift: 1.5 }', -1, 1),
    "power_fraction": ('type: "Power" power_param { power: 0.5 scale: 2 shift: 0.1 }', 0, 2),
    "power_identity_scale": ('type: "Power" power_param { scale: -1.5 }', -1, 1),
    "exp": ('type: "Exp"', -2, 2),
    "exp_base": ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: -1 }', -2, 2),
    "log": ('type: "Log"', 0.1, 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("in_place", [False, True])
def test_activation(case: str, in_place: bool, tmp_path: Path) -> None:
    spec, low, high = CASES[case]
    top = "data" if in_place else "act"
    # a Power layer in front gives the activation a non-input blob to work on in place
    proto = HEAD + 'layer { name: "pre" type: "Power" bottom: "data" top: "x" }\n'
    proto += f'layer {{ name: "act" {spec} bottom: "x" top: "{"x" if in_place else top}" }}\n'
    paths = write_net(tmp_path, proto)
    compare_with_opencv(paths, {"data": rand(2, 3, 4, 5, seed=7, low=low, high=high)})


@pytest.mark.parametrize("shared", [False, True])
def test_prelu(shared: bool, tmp_path: Path) -> None:
    proto = HEAD + (
        f'layer {{ name: "prelu" type: "PReLU" bottom: "data" top: "prelu" '
        f"prelu_param {{ channel_shared: {str(shared).lower()} }} }}\n"
    )
    paths = write_net(tmp_path, proto, {"prelu": ("PReLU", [rand(1 if shared else 3, seed=1)])})
    compare_with_opencv(paths, {"data": rand(2, 3, 4, 5, seed=2)})


def test_log_with_base_scale_shift(tmp_path: Path) -> None:
    # OpenCV 4.14's Log layer ignores base/scale/shift (it computes ln(x)); the oracle is LogLayer's formula.
    proto = HEAD + 'layer { name: "log" type: "Log" bottom: "data" top: "log" log_param { base: 10 scale: 2 shift: 0.5 } }\n'
    x = rand(2, 3, 4, 5, seed=8, low=0.1, high=3)
    got = converted_outputs(write_net(tmp_path, proto), {"data": x}, ["log"])["log"]
    np.testing.assert_allclose(got, np.log(0.5 + 2.0 * x.astype(np.float64)) / np.log(10.0), rtol=1e-5, atol=1e-6)


def test_threshold(tmp_path: Path) -> None:
    # OpenCV 4.14 has no Threshold layer; the oracle is ThresholdLayer's formula (x > t ? 1 : 0).
    proto = HEAD + 'layer { name: "th" type: "Threshold" bottom: "data" top: "th" threshold_param { threshold: 0.2 } }\n'
    x = rand(2, 3, 4, 5, seed=9)
    got = converted_outputs(write_net(tmp_path, proto), {"data": x}, ["th"])["th"]
    np.testing.assert_array_equal(got, (x > 0.2).astype(np.float32))
