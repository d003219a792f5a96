"""edgecc.data.sources: reading DATA values (.npy, .npz, folders) without pickle, merging values, errors and exit codes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from edgecc.data import read_samples
from edgecc.errors import InvalidInputError, UsageError


def load_data_args(values):
    """The samples of DATA values read without a model (no sample-axis split)."""
    return read_samples(values).feeds


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
    with pytest.raises(InvalidInputError):  # data that does not fit together: exit 3
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
