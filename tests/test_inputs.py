"""edgecc.inputs: --input specs and tensor descriptions."""

from __future__ import annotations

import pytest

from edgecc.errors import UsageError
from edgecc.inputs import InputSpec, TensorInfo, parse_arg_value, parse_arg_values, parse_input_spec, parse_input_specs

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


# ---------------------------------------------------------------- --arg NAME=VALUE


@pytest.mark.parametrize(
    "text, value",
    [
        ("16000", 16000),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("true", True),
        ("False", False),
        ("None", None),
        ("null", None),
        ("greedy", "greedy"),
        ('"1"', "1"),
        ("'none'", "none"),
    ],
)
def test_parse_arg_value(text, value):
    parsed = parse_arg_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_parse_arg_values_keeps_order_and_rejects_bad_ones():
    assert parse_arg_values(["sr=16000", "use_cache=false", "mode=a=b"]) == (
        ("sr", 16000),
        ("use_cache", False),
        ("mode", "a=b"),
    )
    for bad in (["sr"], ["=3"], ["1x=2"]):
        with pytest.raises(UsageError):
            parse_arg_values(bad)
    with pytest.raises(UsageError, match="twice"):
        parse_arg_values(["sr=1", "sr=2"])


# ---------------------------------------------------------------- dimension bounds


def test_absurd_input_dims_are_refused_naming_the_size():
    with pytest.raises(UsageError, match=r"112 GiB .*float32.*16 GiB limit") as info:
        parse_input_spec("x:1x3x100000x100000")
    assert info.value.exit_code == 2 and "x:1x3x100000x100000" in info.value.message
    with pytest.raises(UsageError, match="224 GiB"):
        parse_input_spec("x:1x3x100000x100000:float64")
    assert parse_input_spec("x:Nx3x1024x1024").shape == ("N", 3, 1024, 1024)  # symbols do not count


def test_dimension_beyond_int64_is_refused():
    with pytest.raises(UsageError, match="dimension 1 is 9223372036854775808, beyond the int64 range"):
        parse_input_spec(f"x:1x{2**63}:int8")


def test_tensor_limit_is_an_environment_variable(monkeypatch):
    monkeypatch.setenv("EDGECC_MAX_TENSOR_BYTES", "1000")
    assert parse_input_spec("x:250").shape == (250,)
    with pytest.raises(UsageError, match="1004 bytes .* 1000 bytes limit"):
        parse_input_spec("x:251")
