"""edgecc.inputs: --input specs and tensor descriptions."""

from __future__ import annotations

import pytest

from edgecc.errors import UsageError
from edgecc.inputs import InputSpec, TensorInfo, parse_input_spec, parse_input_specs

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


def test_tensor_info_helpers():
    assert TensorInfo("x", ("N", 3, None), "float32").shape_text() == "Nx3x?"
    assert TensorInfo("x", None, "float32").shape_text() == "?"
    assert TensorInfo("x", (), "float32").shape_text() == "scalar"
    assert TensorInfo("x", (1, 2), "float32").is_static()
    assert not TensorInfo("x", (1, "N"), "float32").is_static()
    assert not TensorInfo("x", None, "float32").is_static()
