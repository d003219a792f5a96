"""Every MXNet operator converter against the outputs MXNet 1.9.1 computed (tests/fixtures/mxnet)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecc.converters.mxnet import supported_ops
from edgecc.converters.mxnet.graph import OPS
from edgecc.converters.options import ConvertOptions
from edgecc.inputs import InputSpec
from edgecc.pipeline.convert import convert
from tests.converters.mxnet.helpers import CASES, FIXTURES, assert_close, files, reference, run_onnx


@pytest.mark.parametrize("case", CASES)
def test_case_matches_mxnet(case: str) -> None:
    inputs, outputs = reference(case)
    symbol, params = files(case)
    specs = tuple(InputSpec(name, tuple(value.shape)) for name, value in inputs.items())
    # optimize=False: these tests judge the converters, not the cleanup passes
    conversion = convert([str(symbol), str(params)], ConvertOptions(inputs=specs, optimize=False))
    assert sorted(i.name for i in conversion.model.graph.input) == sorted(inputs)
    got = run_onnx(conversion.model.SerializeToString(), inputs)
    assert list(got) == list(outputs), "graph outputs must carry MXNet's output names, in order"
    for name, want in outputs.items():
        assert_close(got[name], want, f"{case}/{name}")


def _fixture_ops() -> set[str]:
    ops: set[str] = set()
    for case in CASES:
        doc = json.loads((FIXTURES / f"{case}-symbol.json").read_text())
        ops.update(node["op"] for node in doc["nodes"] if node["op"] != "null")
    return ops


def test_every_converter_has_a_fixture() -> None:
    """Each converter function is exercised by at least one MXNet-made fixture (aliases share a function)."""
    supported_ops()
    covered = {id(OPS.get(op)) for op in _fixture_ops() if op in OPS}
    untested = sorted(name for name, fn in OPS.items() if id(fn) not in covered)
    assert not untested, f"converters without an MXNet fixture: {untested}"


def test_every_fixture_op_has_a_converter() -> None:
    assert _fixture_ops() <= set(supported_ops())


def test_every_converter_has_a_docstring() -> None:
    supported_ops()
    assert all(fn.__doc__ and fn.__doc__.strip() for _, fn in OPS.items())


def test_fixtures_stay_small() -> None:
    total = sum(p.stat().st_size for p in FIXTURES.iterdir() if p.is_file())
    assert total < 2 * 1024 * 1024, f"fixtures hold {total} bytes"


def test_mxnet_reshape_codes_follow_mxnet() -> None:
    """The reshape rule itself, on the examples of MXNet's Reshape documentation."""
    from edgecc.converters.mxnet.ops_tensor import mx_reshape_shape

    assert mx_reshape_shape((2, 3, 4), (4, 0, 2)) == [4, 3, 2]
    assert mx_reshape_shape((2, 3, 4), (2, 0, 0)) == [2, 3, 4]
    assert mx_reshape_shape((2, 3, 4), (6, 1, -1)) == [6, 1, 4]
    assert mx_reshape_shape((2, 3, 4), (3, -1, 8)) == [3, 1, 8]
    assert mx_reshape_shape((2, 3, 4), (-1,)) == [24]
    assert mx_reshape_shape((2, 3, 4), (-2,)) == [2, 3, 4]
    assert mx_reshape_shape((2, 3, 4), (2, -2)) == [2, 3, 4]
    assert mx_reshape_shape((2, 3, 4), (-2, 1, 1)) == [2, 3, 4, 1, 1]
    assert mx_reshape_shape((2, 3, 4), (-3, 4)) == [6, 4]
    assert mx_reshape_shape((2, 3, 4, 5), (-3, -3)) == [6, 20]
    assert mx_reshape_shape((2, 3, 4), (0, -3)) == [2, 12]
    assert mx_reshape_shape((2, 3, 4), (-3, -2)) == [6, 4]
    assert mx_reshape_shape((2, 3, 4), (-4, 1, 2, -2)) == [1, 2, 3, 4]
    assert mx_reshape_shape((2, 3, 4), (2, -4, -1, 3, -2)) == [2, 1, 3, 4]
    assert mx_reshape_shape((10, 5, 4), (-1, 0), reverse=True) == [50, 4]
    assert mx_reshape_shape((10, 5, 4), (-1, 0)) == [40, 5]
    assert np.prod(mx_reshape_shape((2, 3, 4, 6), (0, -4, -1, 1, 0, 0))) == 144


@pytest.mark.parametrize("case", ["reshape", "shape_ops", "softmax", "reduce"])
def test_dynamic_batch_gives_the_same_numbers(case: str) -> None:
    """With a symbolic batch the special reshape codes are computed from Shape() at run time."""
    inputs, outputs = reference(case)
    symbol, params = files(case)
    specs = tuple(InputSpec(name, ("N", *value.shape[1:])) for name, value in inputs.items())
    conversion = convert([str(symbol), str(params)], ConvertOptions(inputs=specs, optimize=False))
    assert conversion.model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    got = run_onnx(conversion.model.SerializeToString(), inputs)
    for name, want in outputs.items():
        assert_close(got[name], want, f"{case}/{name} (dynamic batch)")


@pytest.mark.parametrize("case", CASES)
def test_case_survives_the_default_cleanup(case: str) -> None:
    """What `edgecc convert` writes (with the -O1 cleanup) still gives MXNet's numbers under its names."""
    inputs, outputs = reference(case)
    symbol, params = files(case)
    specs = tuple(InputSpec(name, tuple(value.shape)) for name, value in inputs.items())
    conversion = convert([str(symbol), str(params)], ConvertOptions(inputs=specs))
    got = run_onnx(conversion.model.SerializeToString(), inputs)
    for name, want in outputs.items():
        assert name in got, f"{case}: output {name} lost by the cleanup"
        assert_close(got[name], want, f"{case}/{name} after cleanup")
