"""edgecc.errors: exit codes, one-line messages, unsupported-operator listings, JSON form."""

from __future__ import annotations

import json

import pytest

from edgecc import errors
from edgecc.errors import (
    EdgeccError,
    InvalidInputError,
    MissingDependencyError,
    NumericsError,
    UnsupportedError,
    UnsupportedNode,
    UnsupportedOperator,
    UsageError,
)


def test_exit_code_constants_match_design():
    assert (
        errors.EXIT_OK,
        errors.EXIT_INTERNAL,
        errors.EXIT_USAGE,
        errors.EXIT_INVALID_INPUT,
        errors.EXIT_UNSUPPORTED,
        errors.EXIT_NUMERICS,
        errors.EXIT_MISSING_DEPENDENCY,
    ) == (0, 1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize(
    ("error", "code", "kind"),
    [
        (EdgeccError("boom"), 1, "error"),
        (UsageError("bad option"), 2, "usage"),
        (InvalidInputError("corrupt"), 3, "invalid-input"),
        (UnsupportedError("no such feature"), 4, "unsupported"),
        (UnsupportedOperator([UnsupportedNode("n", "Foo")]), 4, "unsupported-operator"),
        (NumericsError("too far"), 5, "numerics"),
        (MissingDependencyError("torch", feature="PyTorch conversion"), 6, "missing-dependency"),
    ],
)
def test_exit_code_and_kind_per_class(error: EdgeccError, code: int, kind: str):
    assert error.exit_code == code
    assert error.kind == kind
    assert isinstance(error, EdgeccError)
    assert isinstance(error, Exception)
    assert error.to_dict()["exit_code"] == code
    assert error.to_dict()["kind"] == kind


def test_hierarchy():
    assert issubclass(UnsupportedOperator, UnsupportedError)
    for cls in (UsageError, InvalidInputError, UnsupportedError, NumericsError, MissingDependencyError):
        assert issubclass(cls, EdgeccError)
    # classes must not share exit codes except the unsupported family
    codes = {
        cls: cls.exit_code
        for cls in (EdgeccError, UsageError, InvalidInputError, UnsupportedError, NumericsError, MissingDependencyError)
    }
    assert len(set(codes.values())) == len(codes)


def test_one_line_is_single_line_with_hint_and_path():
    error = InvalidInputError("the file\nis truncated\n\tat byte 12", hint="re-export\nthe model", path="/tmp/model.onnx")
    line = error.one_line()
    assert "\n" not in line and "\t" not in line and "\r" not in line
    assert line == "/tmp/model.onnx: the file is truncated at byte 12 (hint: re-export the model)"


def test_one_line_does_not_repeat_a_path_already_in_the_message():
    error = InvalidInputError("'/tmp/m.onnx' is empty", path="/tmp/m.onnx")
    assert error.one_line() == "'/tmp/m.onnx' is empty"
    assert error.one_line().count("/tmp/m.onnx") == 1


def test_one_line_without_hint_or_path():
    assert UsageError("just this").one_line() == "just this"
    assert "hint" not in UsageError("just this").one_line()


def test_message_hint_path_attributes():
    error = UsageError("msg", hint="do this")
    assert error.message == "msg" and error.hint == "do this" and error.path is None
    assert str(error) == "msg"
    from pathlib import Path

    assert InvalidInputError("x", path=Path("/a/b")).path == "/a/b"


def test_unsupported_operator_lists_every_node_and_op_type():
    nodes = [
        UnsupportedNode("encoder/attn_0", "FancyAttention", "no converter"),
        UnsupportedNode("encoder/attn_1", "FancyAttention", "no converter"),
        UnsupportedNode("head/gelu", "Gelu2"),
        UnsupportedNode("", "Mystery", "why not"),
    ]
    error = UnsupportedOperator(nodes, where="model.pb", hint="upgrade", path="model.pb")
    line = error.one_line()
    assert "\n" not in line
    for name in ("encoder/attn_0", "encoder/attn_1", "head/gelu", "<unnamed>"):
        assert name in error.message
        assert name in line
    for op_type in ("FancyAttention", "Gelu2", "Mystery"):
        assert op_type in error.message
    assert "4 unsupported node(s)" in error.message
    # the op types are summarised once, sorted
    assert "op types FancyAttention, Gelu2, Mystery" in error.message
    assert error.message.startswith("model.pb: ")
    assert "(hint: upgrade)" in line
    assert tuple(error.nodes) == tuple(nodes)


def test_unsupported_operator_accepts_a_generator():
    error = UnsupportedOperator(UnsupportedNode(f"n{i}", "Op") for i in range(3))
    assert [n.node for n in error.nodes] == ["n0", "n1", "n2"]
    assert all(f"n{i} (Op)" in error.message for i in range(3))


def test_unsupported_node_describe():
    assert UnsupportedNode("conv1", "Conv", "too big").describe() == "conv1 (Conv): too big"
    assert UnsupportedNode("conv1", "Conv").describe() == "conv1 (Conv)"
    assert UnsupportedNode("", "Conv").describe() == "<unnamed> (Conv)"


def test_to_dict_is_json_ready():
    error = InvalidInputError("bad", hint="fix", path="/x/y.onnx")
    data = error.to_dict()
    assert data == {"kind": "invalid-input", "exit_code": 3, "message": "bad", "hint": "fix", "path": "/x/y.onnx"}
    assert json.loads(json.dumps(data)) == data


def test_unsupported_operator_to_dict_has_nodes():
    error = UnsupportedOperator([UnsupportedNode("a", "X", "r1"), UnsupportedNode("b", "Y")])
    data = error.to_dict()
    assert data["exit_code"] == 4
    assert data["nodes"] == [
        {"node": "a", "op_type": "X", "reason": "r1"},
        {"node": "b", "op_type": "Y", "reason": ""},
    ]
    json.dumps(data)


class _Report:
    def to_dict(self):
        return {"passed": False, "outputs": [{"name": "y", "max_abs": 0.5}]}


def test_numerics_error_to_dict_includes_report():
    error = NumericsError("outputs differ", report=_Report(), hint="loosen --atol")
    data = error.to_dict()
    assert data["exit_code"] == 5
    assert data["report"] == {"passed": False, "outputs": [{"name": "y", "max_abs": 0.5}]}
    assert error.report is not None
    assert NumericsError("x").to_dict()["report"] is None
    assert NumericsError("x", report=object()).to_dict()["report"] is None


def test_missing_dependency_message_says_what_to_install():
    plain = MissingDependencyError("caffe-proto", feature="Caffe conversion")
    assert "caffe-proto" in plain.message and "Caffe conversion" in plain.message
    assert plain.hint == "pip install caffe-proto"
    assert plain.package == "caffe-proto"
    extra = MissingDependencyError("torch", feature="PyTorch conversion", extra="torch")
    assert extra.hint == "pip install 'edgecc[torch]'"
    assert "pip install 'edgecc[torch]'" in extra.one_line()


def test_errors_are_raisable_and_catchable_by_base():
    with pytest.raises(EdgeccError) as info:
        raise UnsupportedOperator([UnsupportedNode("n", "Op")])
    assert info.value.exit_code == 4
