"""edgecc.inputs: --input specs, --data files, binding samples to inputs, random feeds."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from edgecc.errors import InvalidInputError, UsageError
from edgecc.inputs import (
    InputSpec,
    TensorInfo,
    concrete_shape,
    load_data_args,
    match_samples,
    parse_input_spec,
    parse_input_specs,
    random_feeds,
)

# ---------------------------------------------------------------- parse_input_spec


@pytest.mark.parametrize(
    ("text", "name", "shape", "dtype"),
    [
        ("data:1x3x224x224", "data", (1, 3, 224, 224), None),
        ("ids:1x128:int64", "ids", (1, 128), "int64"),
        ("input:0:1x224x224x3:uint8", "input:0", (1, 224, 224, 3), "uint8"),
        ("input:0:1x224x224x3", "input:0", (1, 224, 224, 3), None),
        ("scope/a:b:c:7x5:float16", "scope/a:b:c", (7, 5), "float16"),
        ("data:Nx3x?x224", "data", ("N", 3, None, 224), None),
        ("tokens:batch_size:int32", "tokens", ("batch_size",), "int32"),
        ("x:?x?", "x", (None, None), None),
        ("x:1x3:FP16", "x", (1, 3), "float16"),
        ("x:1x3:half", "x", (1, 3), "float16"),
        ("x:1x3:float", "x", (1, 3), "float32"),
        ("x:1x3:double", "x", (1, 3), "float64"),
        ("mask:1x8:bool", "mask", (1, 8), "bool"),
        ("x:float32", "x", None, "float32"),
        ("x:0x3", "x", (0, 3), None),
    ],
)
def test_parse_input_spec(text, name, shape, dtype):
    spec = parse_input_spec(text)
    assert spec == InputSpec(name=name, shape=shape, dtype=dtype)


def test_parse_scalar_spec():
    """`NAME:scalar[:DTYPE]` is a rank-0 input (the parser has an explicit branch for it)."""
    assert parse_input_spec("step:scalar:int64") == InputSpec("step", (), "int64")
    assert parse_input_spec("step:scalar") == InputSpec("step", (), None)


@pytest.mark.parametrize(
    "text",
    [
        "data",  # no dims, no dtype
        ":1x3",  # no name
        "data:",  # empty dims
        "data:1x3x",  # trailing x
        "data:-1x3",  # negative dim
        "data:1,3",
        "data:1 x 3",
        "",
        ":float32",
    ],
)
def test_bad_specs_are_usage_errors(text):
    with pytest.raises(UsageError) as info:
        parse_input_spec(text)
    assert info.value.exit_code == 2
    assert "NAME:DIMS" in (info.value.hint or "")


@pytest.mark.parametrize("text", ["data:1xx3", "data:Nxx3", "data:1x3xx"])
def test_empty_dimension_is_a_usage_error(text):
    """`1xx3` has an empty dimension between the two x's; it must not become a dim named ''."""
    with pytest.raises(UsageError):
        spec = parse_input_spec(text)
        raise AssertionError(f"parsed as {spec!r}")


@pytest.mark.parametrize("text", ["data:1x3x224x224:float99", "data:1x3x224x224:flaot32", "ids:1x128:int"])
def test_misspelt_dtype_is_a_usage_error(text):
    """A typo in the dtype must not silently turn the shape into part of the input name."""
    with pytest.raises(UsageError):
        spec = parse_input_spec(text)
        # what the parser currently returns instead, for the failure message
        raise AssertionError(f"parsed as {spec!r}")


def test_spec_text_roundtrip():
    for text in ["data:1x3x224x224", "ids:1x128:int64", "input:0:1x224x224x3:uint8", "x:Nx?x3"]:
        assert parse_input_spec(text).text() == text
    assert parse_input_spec("x:Nx3").is_static() is False
    assert parse_input_spec("x:2x3").is_static() is True
    assert parse_input_spec("x:float32").is_static() is False


def test_parse_input_specs_rejects_duplicates():
    specs = parse_input_specs(["a:1x2", "b:3:int64"])
    assert [s.name for s in specs] == ["a", "b"]
    with pytest.raises(UsageError) as info:
        parse_input_specs(["a:1x2", "a:1x3"])
    assert "'a'" in info.value.message


# ---------------------------------------------------------------- load_data_args


def test_load_npy_nameless_and_named(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    [sample] = load_data_args([str(tmp_path / "x.npy")])
    assert list(sample) == [""]
    np.testing.assert_array_equal(sample[""], x)
    assert sample[""].dtype == np.float32
    [sample] = load_data_args([f"data={tmp_path / 'x.npy'}"])
    assert list(sample) == ["data"]
    np.testing.assert_array_equal(sample["data"], x)


def test_load_npz_keyed_by_name(tmp_path):
    a = np.ones((2, 2), np.float32)
    b = np.arange(5, dtype=np.int64)
    np.savez(tmp_path / "s.npz", a=a, b=b)
    [sample] = load_data_args([str(tmp_path / "s.npz")])
    assert sorted(sample) == ["a", "b"]
    np.testing.assert_array_equal(sample["a"], a)
    np.testing.assert_array_equal(sample["b"], b)
    [sample] = load_data_args([f"b={tmp_path / 's.npz'}"])
    assert list(sample) == ["b"]
    np.testing.assert_array_equal(sample["b"], b)


def test_load_npz_missing_name(tmp_path):
    np.savez(tmp_path / "s.npz", a=np.ones(2))
    with pytest.raises(InvalidInputError) as info:
        load_data_args([f"zz={tmp_path / 's.npz'}"])
    assert "'zz'" in info.value.message and "a" in info.value.message


def test_several_name_file_options_merge(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3, np.float32))
    np.save(tmp_path / "b.npy", np.ones(4, np.int64))
    [sample] = load_data_args([f"a={tmp_path / 'a.npy'}", f"b={tmp_path / 'b.npy'}"])
    assert sorted(sample) == ["a", "b"]
    assert sample["b"].dtype == np.int64 and sample["b"].shape == (4,)


def test_directory_gives_one_sample_per_file_in_sorted_order(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    for index in (2, 0, 1):
        np.save(folder / f"s{index}.npy", np.full((2,), index, np.float32))
    (folder / "README.txt").write_text("not data")
    samples = load_data_args([f"x={folder}"])
    assert len(samples) == 3
    assert [float(s["x"][0]) for s in samples] == [0.0, 1.0, 2.0]


def test_directory_of_npz_and_broadcast_of_single_file(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    for index in range(3):
        np.savez(folder / f"{index}.npz", x=np.full(2, index, np.float32))
    np.save(tmp_path / "mask.npy", np.array([True, False]))
    samples = load_data_args([str(folder), f"mask={tmp_path / 'mask.npy'}"])
    assert len(samples) == 3
    for index, sample in enumerate(samples):
        assert sorted(sample) == ["mask", "x"]
        assert float(sample["x"][0]) == index
        np.testing.assert_array_equal(sample["mask"], [True, False])


def test_directories_of_different_sizes(tmp_path):
    for name, count in (("a", 2), ("b", 3)):
        (tmp_path / name).mkdir()
        for index in range(count):
            np.save(tmp_path / name / f"{index}.npy", np.zeros(1))
    with pytest.raises(UsageError):
        load_data_args([f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}"])


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError):
        load_data_args([str(tmp_path / "empty")])


def test_no_data_options():
    assert load_data_args([]) == []


def test_empty_name_is_usage_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(1))
    with pytest.raises(UsageError):
        load_data_args([f"={tmp_path / 'x.npy'}"])


def test_missing_data_file_is_usage_error(tmp_path):
    with pytest.raises(UsageError):
        load_data_args([f"x={tmp_path / 'nope.npy'}"])


def test_empty_data_file_is_invalid_input(tmp_path):
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(InvalidInputError):
        load_data_args([str(tmp_path / "e.npy")])


class _Trap:
    """Unpickling this object creates a marker file: proof that the data was unpickled."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _trap(tmp_path):
    trap = _Trap()
    trap.marker = str(tmp_path / "UNPICKLED")
    return trap


def test_pickled_object_npy_is_refused_and_never_unpickled(tmp_path):
    array = np.empty(2, dtype=object)
    array[0] = _trap(tmp_path)
    array[1] = 1
    np.save(tmp_path / "obj.npy", array, allow_pickle=True)
    with pytest.raises(InvalidInputError) as info:
        load_data_args([f"x={tmp_path / 'obj.npy'}"])
    assert info.value.exit_code == 3
    assert "pickle" in info.value.message
    assert not (tmp_path / "UNPICKLED").exists()


def test_raw_pickle_named_npy_is_refused_and_never_unpickled(tmp_path):
    with open(tmp_path / "raw.npy", "wb") as handle:
        pickle.dump(_trap(tmp_path), handle)
    with pytest.raises(InvalidInputError):
        load_data_args([str(tmp_path / "raw.npy")])
    assert not (tmp_path / "UNPICKLED").exists()


def test_pickled_object_inside_npz_is_refused_and_never_unpickled(tmp_path):
    array = np.empty(1, dtype=object)
    array[0] = _trap(tmp_path)
    np.savez(tmp_path / "obj.npz", x=array)
    with pytest.raises(InvalidInputError):
        load_data_args([str(tmp_path / "obj.npz")])
    assert not (tmp_path / "UNPICKLED").exists()


def test_truncated_npz_is_invalid_input(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.arange(100.0), y=np.zeros(10))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError) as info:
        load_data_args([str(tmp_path / "trunc.npz")])
    assert info.value.exit_code == 3


def test_npz_with_corrupt_member_is_invalid_input(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.arange(100.0))
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    # flip bytes inside the stored member's payload: the zip directory stays readable, the CRC does not match
    for index in range(200, 260):
        data[index] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with pytest.raises(InvalidInputError):
        load_data_args([str(tmp_path / "bad.npz")])


def test_truncated_and_garbage_npy_are_invalid_input(tmp_path):
    np.save(tmp_path / "ok.npy", np.ones(1000, np.float32))
    data = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(data[:300])
    (tmp_path / "garbage.npy").write_bytes(b"this is not numpy at all" * 3)
    for name in ("trunc.npy", "garbage.npy"):
        with pytest.raises(InvalidInputError):
            load_data_args([f"x={tmp_path / name}"])


# ---------------------------------------------------------------- match_samples

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
    with pytest.raises(UsageError):
        match_samples([{"": np.zeros((1, 3, 4))}], INPUTS)


def test_match_samples_unknown_and_missing_names():
    with pytest.raises(UsageError) as info:
        match_samples([{"x": np.zeros((1, 3, 4)), "ids": np.zeros(2), "extra": np.zeros(1)}], INPUTS)
    assert "extra" in info.value.message
    with pytest.raises(UsageError) as info:
        match_samples([{"x": np.zeros((1, 3, 4))}], INPUTS)
    assert "ids" in info.value.message


@pytest.mark.parametrize(
    "x",
    [np.zeros((1, 3, 5)), np.zeros((1, 4, 4)), np.zeros((3, 4)), np.zeros((1, 1, 3, 4))],
)
def test_match_samples_shape_errors(x):
    with pytest.raises(UsageError) as info:
        match_samples([{"x": x, "ids": np.zeros(2, np.int64)}], INPUTS)
    assert "'x'" in info.value.message
    assert "Nx3x4" in info.value.message


def test_match_samples_unknown_rank_accepts_any_shape():
    [feed] = match_samples([{"t": np.zeros((2, 2, 2))}], [TensorInfo("t", None, "float32")])
    assert feed["t"].shape == (2, 2, 2)


# ---------------------------------------------------------------- random_feeds / concrete_shape


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


def test_tensor_info_helpers():
    assert TensorInfo("x", ("N", 3, None), "float32").shape_text() == "Nx3x?"
    assert TensorInfo("x", None, "float32").shape_text() == "?"
    assert TensorInfo("x", (), "float32").shape_text() == "scalar"
    assert TensorInfo("x", (1, 2), "float32").is_static()
    assert not TensorInfo("x", (1, "N"), "float32").is_static()
    assert not TensorInfo("x", None, "float32").is_static()
