"""Fixtures: the digits conv net trained once per test worker, with its calibration and test data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.quantization.models import digits_data, train_digits


@dataclass
class Digits:
    model: Path
    float_accuracy: float
    calibration: Path  # one .npz, x: [200, 1, 1, 8, 8] from the training split
    test_x: np.ndarray  # the 397 held-out digits
    test_y: np.ndarray


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    folder = tmp_path_factory.mktemp("digits")
    model = folder / "digits.onnx"
    accuracy = train_digits(model)
    x, y = digits_data()
    calibration = folder / "calib.npz"
    np.savez(calibration, x=x[:200][:, None])
    return Digits(model, accuracy, calibration, x[1400:], y[1400:])
