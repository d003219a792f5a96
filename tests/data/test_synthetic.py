"""edgecc.data.synthetic: deterministic random samples shaped and typed like the model's inputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgecc.data import concrete_shape, random_feeds
from edgecc.errors import UsageError
from edgecc.inputs import TensorInfo


def test_concrete_shape():
    assert concrete_shape(TensorInfo("x", ("N", 3, None, 7), "float32")) == (1, 3, 1, 7)
    assert concrete_shape(TensorInfo("x", ("N", 3), "float32"), default_dim=4) == (4, 3)
    assert concrete_shape(TensorInfo("x", (), "float32")) == ()
    with pytest.raises(UsageError):
        concrete_shape(TensorInfo("x", None, "float32"))


def test_random_feeds_deterministic_and_typed():
    inputs = [
        TensorInfo("f32", ("N", 3, 4), "float32"),
        TensorInfo("f16", (2, 2), "float16"),
        TensorInfo("f64", (3,), "float64"),
        TensorInfo("ids", (1, 7), "int64"),
        TensorInfo("u8", (50,), "uint8"),
        TensorInfo("i8", (50,), "int8"),
        TensorInfo("mask", (100,), "bool"),
        TensorInfo("s", (), "int32"),
    ]
    a = random_feeds(inputs, seed=3, count=2)
    b = random_feeds(inputs, seed=3, count=2)
    c = random_feeds(inputs, seed=4, count=2)
    assert len(a) == 2
    for sa, sb in zip(a, b):
        assert sorted(sa) == sorted(i.name for i in inputs)
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key])
    for info in inputs:
        value = a[0][info.name]
        assert value.dtype == np.dtype(info.dtype), info.name
        assert value.shape == concrete_shape(info)
    assert not np.array_equal(a[0]["f32"], c[0]["f32"])
    assert not np.array_equal(a[0]["f32"], a[1]["f32"])  # samples differ from each other
    for key in ("ids", "u8", "i8"):
        assert a[0][key].min() >= 0 and a[0][key].max() <= 10
    assert a[0]["mask"].any() and not a[0]["mask"].all()
    # floats are standard normal
    big = random_feeds([TensorInfo("z", (20000,), "float32")], seed=0)[0]["z"]
    assert abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1.0) < 0.05


def test_random_feeds_bfloat16_gives_float32():
    [feed] = random_feeds([TensorInfo("b", (2,), "bfloat16")])
    assert feed["b"].dtype == np.float32


def test_random_feeds_unknown_rank_and_unsupported_dtype():
    with pytest.raises(UsageError):
        random_feeds([TensorInfo("x", None, "float32")])
    with pytest.raises(UsageError):
        random_feeds([TensorInfo("s", (1,), "object")])


def test_random_feeds_refuse_a_seed_numpy_cannot_take():
    from edgecc.errors import UsageError

    with pytest.raises(UsageError, match="0..4294967295, got -1"):
        random_feeds([TensorInfo("x", (1, 2), "float32")], seed=-1)


def test_random_feeds_refuse_an_absurd_static_shape_before_allocating():
    from edgecc.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"random data for input 'x' \(1x3x100000x100000\) would need 112 GiB"):
        random_feeds([TensorInfo("x", (1, 3, 100000, 100000), "float32")])
