"""The ONNX frontend end to end: opset conversion, shapes, cuts, external data; checked with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import make_conv_onnx, run_edgecc


def _run(path: Path, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(outputs, feeds)


def _x(batch: int = 1) -> np.ndarray:
    return np.random.default_rng(5).standard_normal((batch, 3, 16, 16)).astype(np.float32)


def test_downgrade_to_opset_13_keeps_numerics(conv_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "op13.onnx"
    result = run_edgecc("convert", conv_onnx, "--opset", "13", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    assert result.json()["opset"] == 13
    assert result.json()["verification"]["passed"] is True
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 13 and model.producer_name == "edgecc"
    np.testing.assert_array_equal(_run(out, {"x": _x(2)})[0], _run(conv_onnx, {"x": _x(2)})[0])


def test_opset_keep_and_format_detected_from_content(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"  # no .onnx suffix: recognised from the protobuf content
    make_conv_onnx(source, opset=15)
    out = tmp_path / "same.onnx"
    result = run_edgecc("convert", source, "--opset", "keep", "-o", out)
    assert result.returncode == 0, result.stderr
    assert onnx.load(str(out)).opset_import[0].version == 15


def test_input_spec_fixes_the_dynamic_batch(conv_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "b2.onnx"
    result = run_edgecc("convert", conv_onnx, "--input", "x:2x3x16x16", "-o", out)
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 16, 16]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [2, 4]


def test_output_cut_at_an_intermediate_tensor(conv_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut.onnx"
    result = run_edgecc("convert", conv_onnx, "--output", "relu", "-o", out)
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["relu"]
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu"]
    full = onnx.load(str(conv_onnx))
    full.graph.output.append(onnx.ValueInfoProto(name="relu"))
    onnx.save(full, str(tmp_path / "full_with_relu.onnx"))
    want = _run(tmp_path / "full_with_relu.onnx", {"x": _x()}, ["relu"])[0]
    np.testing.assert_array_equal(_run(out, {"x": _x()})[0], want)


def test_unknown_output_name_suggests_close_matches(conv_onnx: Path, tmp_path: Path) -> None:
    result = run_edgecc("convert", conv_onnx, "--output", "rellu", "-o", tmp_path / "x.onnx")
    assert result.returncode == 2
    assert "did you mean relu" in result.stderr


def test_external_data_becomes_one_self_contained_file(tmp_path: Path) -> None:
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    model = make_conv_onnx()
    onnx.save(model, str(source_dir / "big.onnx"), save_as_external_data=True, location="big.onnx.data", size_threshold=0)
    assert (source_dir / "big.onnx.data").exists()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_edgecc("convert", source_dir / "big.onnx", "-o", out_dir / "small.onnx")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out_dir.iterdir()] == ["small.onnx"]
    np.testing.assert_array_equal(_run(out_dir / "small.onnx", {"x": _x()})[0], _run(source_dir / "big.onnx", {"x": _x()})[0])


def test_missing_external_data_is_invalid_input(tmp_path: Path) -> None:
    model = make_conv_onnx()
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    (tmp_path / "m.onnx.data").unlink()
    result = run_edgecc("convert", tmp_path / "m.onnx", "-o", tmp_path / "out.onnx")
    assert result.returncode == 3
    assert "m.onnx.data" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "out.onnx").exists()


def _pad18_model(path: Path) -> None:
    """Two Pad-18 nodes that use the `axes` input, which opset 17 does not have."""
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    pads = numpy_helper.from_array(np.array([1, 1], dtype=np.int64), "pads")
    nodes = [
        helper.make_node("Pad", ["x", "pads", "", "axes"], ["p1"], name="pad_one"),
        helper.make_node("Pad", ["p1", "pads", "", "axes"], ["y"], name="pad_two"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 7])],
        initializer=[axes, pads],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_ops_that_cannot_be_lowered_are_all_listed(tmp_path: Path) -> None:
    _pad18_model(tmp_path / "pad.onnx")
    result = run_edgecc("convert", tmp_path / "pad.onnx", "--opset", "17", "-o", tmp_path / "out.onnx")
    assert result.returncode == 4
    assert "pad_one (Pad)" in result.stderr and "pad_two (Pad)" in result.stderr
    assert "--opset 18" in result.stderr
    assert not (tmp_path / "out.onnx").exists()


def test_onnx_takes_no_weights_file(conv_onnx: Path, tmp_path: Path) -> None:
    result = run_edgecc("convert", conv_onnx, conv_onnx, "-o", tmp_path / "x.onnx")
    assert result.returncode == 2
    assert "no weights file" in result.stderr


def test_verification_uses_user_data(conv_onnx: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "sample.npz", x=_x(3))
    result = run_edgecc(
        "convert", conv_onnx, "--data", tmp_path / "sample.npz", "-o", tmp_path / "o.onnx", "--opset", "12", "--json"
    )
    assert result.returncode == 0, result.stderr
    verification = result.json()["verification"]
    assert verification["samples"] == 1 and verification["outputs"][0]["shape"] == [3, 4]
    assert not any("random" in note for note in verification["notes"])


def test_lowering_uses_edgecc_adapters_where_onnx_has_none(tmp_path: Path) -> None:
    """Relu-14 and Reshape-14 (allowzero=1, as torch emits) have no onnx down-adapter to opset 13."""
    shape = numpy_helper.from_array(np.array([2, 12], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["y"], name="flatten", allowzero=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 12])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m17.onnx"))
    result = run_edgecc("convert", tmp_path / "m17.onnx", "--opset", "13", "-o", tmp_path / "m13.onnx")
    assert result.returncode == 0, result.stderr
    lowered = onnx.load(str(tmp_path / "m13.onnx"))
    assert lowered.opset_import[0].version == 13
    assert not [a for n in lowered.graph.node for a in n.attribute if a.name == "allowzero"]
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(_run(tmp_path / "m13.onnx", {"x": x})[0], _run(tmp_path / "m17.onnx", {"x": x})[0])


def test_lowering_batchnorm_and_reducesum_below_13(tmp_path: Path) -> None:
    """BatchNormalization-15 and ReduceSum-13 (axes as an input) down to opset 11, numerics unchanged."""
    rng = np.random.default_rng(1)
    params = [
        numpy_helper.from_array(v.astype(np.float32), n)
        for n, v in (
            ("scale", rng.uniform(0.5, 1.5, 3)),
            ("bias", rng.normal(size=3)),
            ("mean", rng.normal(size=3)),
            ("var", rng.uniform(0.5, 2, 3)),
        )
    ]
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["bn"], name="bn", epsilon=1e-3),
        helper.make_node("ReduceSum", ["bn", "axes"], ["y"], name="sum", keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[*params, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m15.onnx"))
    result = run_edgecc("convert", tmp_path / "m15.onnx", "--opset", "11", "-o", tmp_path / "m11.onnx", "--no-optimize")
    assert result.returncode == 0, result.stderr
    lowered = onnx.load(str(tmp_path / "m11.onnx"))
    assert lowered.opset_import[0].version == 11
    reduce_node = next(n for n in lowered.graph.node if n.op_type == "ReduceSum")
    assert len(reduce_node.input) == 1 and [a.name for a in reduce_node.attribute if a.name == "axes"] == ["axes"]
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(
        _run(tmp_path / "m11.onnx", {"x": x})[0], _run(tmp_path / "m15.onnx", {"x": x})[0], rtol=1e-6, atol=1e-6
    )


def test_dim_value_minus_one_is_a_dynamic_dimension(tmp_path: Path) -> None:
    """Paddle writes dynamic dimensions as dim_value -1: --input fixes them like dim_param ones."""
    model = make_conv_onnx(batch=1)
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = -1
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_value = -1
    src = tmp_path / "paddle_style.onnx"
    onnx.save(model, src)
    inspected = run_edgecc("inspect", src, "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.json()["inputs"][0]["shape"] == [None, 3, None, None]
    out = tmp_path / "fixed.onnx"
    result = run_edgecc("convert", src, "--input", "x:2x3x16x16", "-o", out)
    assert result.returncode == 0, result.stderr
    converted = onnx.load(out)
    assert [d.dim_value for d in converted.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 16, 16]
    x = _x(2)
    original = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(_run(out, {"x": x})[0], original[0], rtol=1e-5, atol=1e-6)


def test_nested_if_model_at_opset_12_converts_with_input_specs(tmp_path: Path) -> None:
    """Up-conversion through subgraphs whose outputs declare no shape, with --input fixing the batch."""
    from tests.converters.control_flow import nested_if_model

    src = tmp_path / "nested_if12.onnx"
    model = nested_if_model(12)
    onnx.save(model, src)
    out = tmp_path / "nested_if17.onnx"
    result = run_edgecc("convert", src, "--input", "x:3x4", "-o", out)
    assert result.returncode == 0, result.stderr
    converted = onnx.load(out)
    assert converted.opset_import[0].version == 17
    original = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(11)
    for shift in (-5.0, 0.3, 1.0):
        x = (0.1 * rng.standard_normal((3, 4)) + shift).astype(np.float32)
        np.testing.assert_allclose(_run(out, {"x": x})[0], original.run(None, {"x": x})[0], rtol=1e-6, atol=1e-6)


def test_upconversion_with_shapeless_inferred_values(tmp_path: Path) -> None:
    """Squeeze without axes on a dynamic input has no inferable rank: value-info with a type but no shape
    (the checker refuses it) must not block opset 12 -> 17, and the declared output shape stays."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [
        helper.make_node("Squeeze", ["x"], ["squeezed"], name="squeeze"),
        helper.make_node("Relu", ["squeezed"], ["r"], name="relu"),
        helper.make_node("Softmax", ["r"], ["y"], axis=-1, name="softmax"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 8
    src = tmp_path / "squeeze12.onnx"
    onnx.save(model, src)
    out = tmp_path / "squeeze17.onnx"
    feeds = {"x": np.random.default_rng(2).standard_normal((3, 1, 4)).astype(np.float32)}
    np.save(tmp_path / "x.npy", feeds["x"])
    result = run_edgecc("convert", src, "--input", "x:Bx1x4", "--data", f"x={tmp_path / 'x.npy'}", "-o", out)
    assert result.returncode == 0, result.stderr
    converted = onnx.load(out)
    assert converted.opset_import[0].version == 17
    assert len(converted.graph.output[0].type.tensor_type.shape.dim) == 2
    original = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_allclose(_run(out, feeds)[0], original[0], rtol=1e-6, atol=1e-7)
