"""The `.params` and symbol readers on files written by MXNet 1.9.1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecc.converters.mxnet.reader import read_params, read_symbol
from edgecc.errors import InvalidInputError, UnsupportedError
from tests.converters.mxnet.helpers import FIXTURES, files


def test_every_dtype_reads_back_exactly() -> None:
    params = read_params(FIXTURES / "dtypes.params")
    with np.load(FIXTURES / "dtypes.npz") as expected:
        assert len(params.arrays) == len(expected.files)
        for key in expected.files:
            kind, name = key.split("__")
            assert params.kinds[name] == kind
            got = params.arrays[name]
            assert got.dtype == expected[key].dtype, name
            np.testing.assert_array_equal(got, expected[key])


def test_numpy_shape_semantics_file_reads() -> None:
    params = read_params(FIXTURES / "npshape.params")
    with np.load(FIXTURES / "dtypes.npz") as expected:
        np.testing.assert_array_equal(params.arrays["w"], expected["arg__f32"])
    assert (FIXTURES / "npshape.params").read_bytes()[24:28] == bytes.fromhex("cafa93f9")  # V3 magic


def test_sparse_arrays_are_unsupported() -> None:
    with pytest.raises(UnsupportedError, match="csr_weight"):
        read_params(FIXTURES / "sparse.params")


def test_arg_and_aux_prefixes_are_split() -> None:
    params = read_params(files("resnet")[1])
    assert params.kinds["stem_bn_moving_var"] == "aux"
    assert params.kinds["fc_weight"] == "arg"
    assert params.arrays["fc_weight"].shape == (10, 32)


@pytest.mark.parametrize("cut", [1, 15, 17, 30, 200, -9, -1])
def test_every_truncation_is_an_invalid_input(cut: int, tmp_path: Path) -> None:
    data = files("conv")[1].read_bytes()
    path = tmp_path / "cut.params"
    path.write_bytes(data[:cut])
    with pytest.raises(InvalidInputError, match="cut.params"):
        read_params(path)


def test_huge_counts_do_not_allocate(tmp_path: Path) -> None:
    path = tmp_path / "huge.params"
    header = np.array([0x112, 0, 2**60], dtype="<u8").tobytes()
    path.write_bytes(header + bytes(64))
    with pytest.raises(InvalidInputError, match="count"):
        read_params(path)
    # an array claiming a giant shape
    shape = np.array([0xF993FAC9, 0, 2], dtype="<u4").tobytes() + np.array([2**40, 2**40], dtype="<i8").tobytes()
    path.write_bytes(np.array([0x112, 0, 1], dtype="<u8").tobytes() + shape + bytes(64))
    with pytest.raises(InvalidInputError, match="truncated"):
        read_params(path)


def test_symbol_attribute_spellings(tmp_path: Path) -> None:
    """`param` (0.8), `attr` (0.9) and `attrs` (1.x) all reach the converters."""
    doc = {
        "nodes": [
            {"op": "null", "name": "data", "inputs": []},
            {"op": "Pooling", "name": "p08", "param": {"kernel": "(2,2)", "global_pool": "False"}, "inputs": [[0, 0]]},
            {"op": "Pooling", "name": "p09", "attr": {"kernel": "[3, 3]", "global_pool": "0"}, "inputs": [[0, 0, 0]]},
            {"op": "Pooling", "name": "p1x", "attrs": {"kernel": "(4, 4)", "global_pool": "true"}, "inputs": [[0, 0, 0]]},
        ],
        "arg_nodes": [0],
        "heads": [[1, 0, 0], [2, 0, 0], [3, 0, 0]],
    }
    path = tmp_path / "x-symbol.json"
    path.write_text(json.dumps(doc))
    symbol = read_symbol(path)
    kernels = [n.attrs.ints("kernel") for n in symbol.nodes[1:]]
    assert kernels == [(2, 2), (3, 3), (4, 4)]
    assert [n.attrs.bool("global_pool") for n in symbol.nodes[1:]] == [False, False, True]


def test_old_symbol_of_the_real_format_parses() -> None:
    symbol = read_symbol(files("resnet")[0])
    assert symbol.heads and symbol.nodes[0].is_var


def test_names_without_prefixes_convert_alike(tmp_path: Path) -> None:
    """Gluon's save_parameters writes bare names; they are parameters all the same."""
    from tests.conftest import run_edgecc
    from tests.converters.mxnet.helpers import assert_close, reference, run_onnx

    params = read_params(FIXTURES / "conv1d-noprefix.params")
    assert set(params.kinds.values()) == {""}
    inputs, outputs = reference("conv1d")
    out = tmp_path / "conv1d.onnx"
    result = run_edgecc("convert", files("conv1d")[0], FIXTURES / "conv1d-noprefix.params", "--input", "data:2x3x11", "-o", out)
    assert result.returncode == 0, result.stderr
    assert_close(run_onnx(out, inputs)["conv1d_output"], outputs["conv1d_output"], "conv1d without prefixes")
