"""edgecc.data.bind: samples checked against model inputs (names, shapes, dtypes), exit 3 naming the option and input."""

from __future__ import annotations

import numpy as np
import pytest

from edgecc.data import bind
from edgecc.errors import InvalidInputError
from edgecc.inputs import TensorInfo


def match_samples(samples, inputs):
    return bind(samples, inputs)


INPUTS = [TensorInfo("x", ("N", 3, 4), "float32"), TensorInfo("ids", (2,), "int64")]


def test_match_samples_binds_and_casts():
    x = np.random.default_rng(0).standard_normal((5, 3, 4))  # float64 on purpose
    ids = np.array([1, 2], np.int32)
    [feed] = match_samples([{"x": x, "ids": ids}], INPUTS)
    assert feed["x"].dtype == np.float32 and feed["ids"].dtype == np.int64
    np.testing.assert_allclose(feed["x"], x, rtol=1e-6)
    assert feed["x"].flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(feed["ids"], [1, 2])


def test_match_samples_makes_contiguous():
    x = np.asfortranarray(np.ones((2, 3, 4), np.float32))
    [feed] = match_samples([{"x": x, "ids": np.zeros(2, np.int64)}], INPUTS)
    assert feed["x"].flags["C_CONTIGUOUS"]


def test_nameless_sample_goes_to_the_only_input():
    [feed] = match_samples([{"": np.zeros((1, 3), np.float32)}], [TensorInfo("data", (1, 3), "float32")])
    assert list(feed) == ["data"]


def test_nameless_sample_needs_single_input():
    with pytest.raises(InvalidInputError):
        match_samples([{"": np.zeros((1, 3, 4))}], INPUTS)


def test_match_samples_unknown_and_missing_names():
    with pytest.raises(InvalidInputError) as info:
        match_samples([{"x": np.zeros((1, 3, 4)), "ids": np.zeros(2), "extra": np.zeros(1)}], INPUTS)
    assert "extra" in info.value.message
    with pytest.raises(InvalidInputError) as info:
        match_samples([{"x": np.zeros((1, 3, 4))}], INPUTS)
    assert "ids" in info.value.message


@pytest.mark.parametrize(
    "x",
    [np.zeros((1, 3, 5)), np.zeros((1, 4, 4)), np.zeros((3, 4)), np.zeros((1, 1, 3, 4))],
)
def test_match_samples_shape_errors(x):
    with pytest.raises(InvalidInputError) as info:
        match_samples([{"x": x, "ids": np.zeros(2, np.int64)}], INPUTS)
    assert "'x'" in info.value.message
    assert "Nx3x4" in info.value.message


def test_match_samples_unknown_rank_accepts_any_shape():
    [feed] = match_samples([{"t": np.zeros((2, 2, 2))}], [TensorInfo("t", None, "float32")])
    assert feed["t"].shape == (2, 2, 2)


def test_whole_number_floats_bind_to_integer_inputs_and_the_rest_is_refused():
    pixels = [TensorInfo("image", (1, 4), "uint8")]
    [feed] = bind([{"image": np.array([[0.0, 17.0, 128.0, 255.0]], np.float32)}], pixels)
    assert feed["image"].dtype == np.uint8 and feed["image"].tolist() == [[0, 17, 128, 255]]
    with pytest.raises(InvalidInputError, match="dtype float32"):
        bind([{"image": np.array([[0.5, 1.0, 2.0, 3.0]], np.float32)}], pixels)
    with pytest.raises(InvalidInputError, match="outside the range of uint8"):
        bind([{"image": np.array([[0.0, 1.0, 2.0, 300.0]], np.float32)}], pixels)
    with pytest.raises(InvalidInputError, match="dtype int64"):
        bind([{"x": np.zeros((5, 3, 4), np.int64), "ids": np.zeros(2, np.int64)}], INPUTS)
