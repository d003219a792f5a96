"""End-to-end tests of `edgecc inspect` on ONNX models, checked against values computed here with onnx + numpy."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import make_conv_onnx, run_edgecc

# --- independent oracles -------------------------------------------------------------------------


def _io_oracle(values, initializers=()) -> list[dict]:
    skip = set(initializers)
    result = []
    for vi in values:
        if vi.name in skip:
            continue
        tensor_type = vi.type.tensor_type
        shape = [d.dim_param if d.HasField("dim_param") else int(d.dim_value) for d in tensor_type.shape.dim]
        dtype = str(np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)))
        result.append({"name": vi.name, "shape": shape, "dtype": dtype})
    return result


def _oracle(path: Path) -> dict:
    model = onnx.load(str(path))
    graph = model.graph
    arrays = [numpy_helper.to_array(t) for t in graph.initializer]
    return {
        "inputs": _io_oracle(graph.input, [t.name for t in graph.initializer]),
        "outputs": _io_oracle(graph.output),
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "op_histogram": dict(
            Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in graph.node)
        ),
        "nodes": len(graph.node),
        "parameters": int(sum(a.size for a in arrays)),
        "parameter_bytes": int(sum(a.nbytes for a in arrays)),
        "ir_version": model.ir_version,
    }


def _conv_out(size: int, kernel: int, stride: int = 1, pad_begin: int = 0, pad_end: int = 0) -> int:
    return (size + pad_begin + pad_end - kernel) // stride + 1


def _conv_cnn_macs(batch: int) -> dict[str, int]:
    """MACs of make_conv_onnx by hand: Conv 3->8, 3x3, pad 1 on 16x16; Gemm 8->4."""
    h = w = _conv_out(16, 3, 1, 1, 1)
    assert (h, w) == (16, 16)
    conv = batch * 8 * h * w * (3 * 3 * 3)
    gemm = batch * 4 * 8
    return {"Conv": conv, "Gemm": gemm}


def _inspect_json(*args) -> dict:
    result = run_edgecc("inspect", *args, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["command"] == "inspect"
    return doc


def _assert_matches_oracle(doc: dict, oracle: dict) -> None:
    for key in ("inputs", "outputs", "opsets", "op_histogram", "nodes", "parameters", "parameter_bytes", "ir_version"):
        assert doc[key] == oracle[key], f"{key}: edgecc says {doc[key]!r}, onnx/numpy say {oracle[key]!r}"


# --- models ------------------------------------------------------------------------------------------


def make_mixed_model(path: Path) -> None:
    """Grouped strided Conv, Reshape, MatMul and a transA Gemm: every MAC formula gets a non-trivial case."""
    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 2, 3, 3)).astype(np.float32), "gconv.w"),
        numpy_helper.from_array(np.array([1, 216], dtype=np.int64), "flat.shape"),
        numpy_helper.from_array(rng.standard_normal((216, 10)).astype(np.float32), "mm.w"),
        numpy_helper.from_array(rng.standard_normal((10, 5)).astype(np.float32), "gemm.w"),
        numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "gemm.b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "gconv.w"], ["c"], name="gconv", group=2, strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "flat.shape"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "mm.w"], ["m"], name="mm"),
        helper.make_node("Transpose", ["m"], ["mt"], name="tr", perm=[1, 0]),
        helper.make_node("Gemm", ["mt", "gemm.w", "gemm.b"], ["y"], name="gemm", transA=1),
        helper.make_node("Relu", ["y"], ["out"], name="relu_out"),
    ]
    graph = helper.make_graph(
        nodes,
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 12, 12])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _mixed_macs() -> dict[str, int]:
    h = _conv_out(12, 3, 2, 1, 1)
    conv = 1 * 6 * h * h * (4 // 2) * 3 * 3
    matmul = 1 * 10 * 216
    gemm = 1 * 5 * 10  # A is [10, 1] transposed: M=1, K=10, N=5
    return {"Conv": conv, "Gemm": gemm, "MatMul": matmul}


# --- tests ---------------------------------------------------------------------------------------------


def test_json_matches_onnx_for_the_dynamic_cnn(conv_onnx):
    doc = _inspect_json(conv_onnx)
    oracle = _oracle(conv_onnx)
    _assert_matches_oracle(doc, oracle)
    assert doc["inputs"] == [{"name": "x", "shape": ["N", 3, 16, 16], "dtype": "float32"}]
    assert doc["outputs"] == [{"name": "logits", "shape": ["N", 4], "dtype": "float32"}]
    assert doc["opsets"] == {"ai.onnx": 17}
    assert doc["parameters"] == 8 * 3 * 3 * 3 + 8 + 8 * 4 + 4
    # the batch is symbolic: MACs of Conv and Gemm cannot be counted and are listed as unknown
    assert sorted(doc["macs_unknown_nodes"]) == ["conv", "fc"]
    assert doc["macs"] == 0


def test_macs_of_a_static_cnn(tmp_path):
    path = tmp_path / "static.onnx"
    make_conv_onnx(path, batch=1)
    doc = _inspect_json(path)
    _assert_matches_oracle(doc, _oracle(path))
    expected = _conv_cnn_macs(1)
    assert doc["macs_by_op"] == expected
    assert doc["macs"] == sum(expected.values()) == 55328
    assert doc["macs_unknown_nodes"] == []


def test_input_spec_fixes_batch_for_macs(conv_onnx):
    doc = _inspect_json(conv_onnx, "--input", "x:2x3x16x16")
    assert doc["inputs"] == [{"name": "x", "shape": [2, 3, 16, 16], "dtype": "float32"}]
    assert doc["outputs"] == [{"name": "logits", "shape": [2, 4], "dtype": "float32"}]
    expected = _conv_cnn_macs(2)
    assert doc["macs_by_op"] == expected
    assert doc["macs"] == sum(expected.values())
    assert doc["macs_unknown_nodes"] == []


def test_mixed_model_macs_and_histogram(tmp_path):
    path = tmp_path / "mixed.onnx"
    make_mixed_model(path)
    doc = _inspect_json(path)
    oracle = _oracle(path)
    _assert_matches_oracle(doc, oracle)
    assert doc["op_histogram"] == {"Conv": 1, "Relu": 2, "Reshape": 1, "MatMul": 1, "Transpose": 1, "Gemm": 1}
    expected = _mixed_macs()
    assert doc["macs_by_op"] == expected
    assert doc["macs"] == sum(expected.values())


@pytest.mark.parametrize("opset", [13, 17])
def test_opset_is_the_files_own(tmp_path, opset):
    path = tmp_path / f"cnn{opset}.onnx"
    make_conv_onnx(path, opset=opset)
    doc = _inspect_json(path)
    assert doc["opsets"] == {"ai.onnx": opset}
    _assert_matches_oracle(doc, _oracle(path))


def test_custom_domain_op_is_counted_with_its_domain(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu0"),
        helper.make_node("Foo", ["r"], ["y"], name="my_foo", domain="com.example"),
        helper.make_node("Foo", ["y"], ["z"], name="my_foo2", domain="com.example"),
    ]
    graph = helper.make_graph(
        nodes,
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    doc = _inspect_json(path)
    assert doc["op_histogram"] == {"Relu": 1, "com.example.Foo": 2}
    assert doc["opsets"] == {"ai.onnx": 17, "com.example": 1}
    _assert_matches_oracle(doc, _oracle(path))


def test_reports_the_files_producer_and_metadata(tmp_path):
    """inspect describes the file: its own producer and metadata, not what a conversion would stamp on it."""
    model = make_conv_onnx()
    model.producer_name = "pytorch"
    model.producer_version = "2.3.0"
    entry = model.metadata_props.add()
    entry.key, entry.value = "author", "tests"
    path = tmp_path / "produced.onnx"
    onnx.save(model, str(path))
    doc = _inspect_json(path)
    assert doc["producer"] == "pytorch 2.3.0"
    assert doc["metadata"] == {"author": "tests"}


def test_inspect_leaves_the_model_untouched(conv_onnx):
    before = conv_onnx.read_bytes()
    assert run_edgecc("inspect", conv_onnx).returncode == 0
    assert conv_onnx.read_bytes() == before
    assert sorted(p.name for p in conv_onnx.parent.iterdir()) == [conv_onnx.name]


def test_text_mode_prints_tables_on_stderr(tmp_path):
    make_conv_onnx(tmp_path / "static.onnx", batch=1)
    # a short relative path keeps rich from wrapping the title
    result = run_edgecc("inspect", "static.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    err = result.stderr
    assert "static.onnx (onnx)" in err
    for text in ("input", "output", "x", "logits", "1x3x16x16", "1x4", "float32"):
        assert text in err
    for op in ("Conv", "Relu", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"):
        assert op in err
    assert "ai.onnx 17" in err
    assert "(260)" in err  # parameters
    assert "(55328)" in err  # MACs
    assert "operators" in err and "MACs" in err


def test_text_mode_dynamic_shape_uses_symbol(conv_onnx):
    result = run_edgecc("inspect", conv_onnx.name, cwd=conv_onnx.parent)
    assert result.returncode == 0, result.stderr
    assert "Nx3x16x16" in result.stderr
    assert "Nx4" in result.stderr
    assert "unknown shapes" in result.stderr
