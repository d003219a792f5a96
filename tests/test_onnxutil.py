"""edgecc.onnxutil: loading (bad files, external data), input specs, cutting, saving."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.errors import EdgeccError, InvalidInputError, UsageError
from edgecc.inputs import InputSpec, TensorInfo, parse_input_spec
from edgecc.onnxutil import (
    apply_input_specs,
    default_opset,
    extract_outputs,
    graph_inputs,
    graph_outputs,
    infer_shapes,
    load_onnx,
    node_output_names,
    parse_onnx_bytes,
    save_onnx,
    serialize_onnx,
    with_outputs,
)
from tests.conftest import make_conv_onnx


def _run(model: onnx.ModelProto, feeds: dict, outputs=None) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds)


def _x(batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 16, 16)).astype(np.float32)


# ---------------------------------------------------------------- load_onnx


def test_load_onnx_roundtrip(conv_onnx):
    model = load_onnx(conv_onnx)
    reference = make_conv_onnx()
    assert serialize_onnx(model) == serialize_onnx(reference)
    assert [i.name for i in graph_inputs(model)] == ["x"]
    assert graph_inputs(model)[0] == TensorInfo("x", ("N", 3, 16, 16), "float32")
    assert graph_outputs(model)[0] == TensorInfo("logits", ("N", 4), "float32")
    assert default_opset(model) == 17


@pytest.mark.parametrize("fraction", [0.002, 0.05, 0.25, 0.5, 0.9, 0.999])
def test_truncated_model_is_invalid_input(tmp_path, conv_onnx, fraction):
    data = conv_onnx.read_bytes()
    cut = max(1, int(len(data) * fraction))
    if cut >= len(data):
        cut = len(data) - 1
    path = tmp_path / "trunc.onnx"
    path.write_bytes(data[:cut])
    with pytest.raises(InvalidInputError) as info:
        load_onnx(path)
    assert info.value.exit_code == 3
    assert "trunc.onnx" in info.value.one_line()


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is certainly not an ONNX model\n",
        b"\x00" * 256,
        b"\xff" * 64,
        b"PK\x03\x04" + b"zip-like garbage" * 10,
        bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        b"\x08\x08",  # a lone ir_version field: parses, but has no graph
    ],
)
def test_garbage_is_invalid_input(tmp_path, content):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError):
        load_onnx(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(InvalidInputError):
        load_onnx(tmp_path / "empty.onnx")
    with pytest.raises(UsageError):
        load_onnx(tmp_path / "missing.onnx")
    with pytest.raises(InvalidInputError):
        load_onnx(tmp_path)  # a directory


def test_parse_onnx_bytes_errors():
    with pytest.raises(InvalidInputError):
        parse_onnx_bytes(b"\xff\xff\xff", path="x.onnx")
    with pytest.raises(InvalidInputError):
        parse_onnx_bytes(b"", path="x.onnx")  # parses as an empty message: no graph


def test_invalid_graph_is_invalid_input(tmp_path):
    model = make_conv_onnx()
    model.graph.node[1].input[0] = "does_not_exist"  # a dangling edge: the checker rejects it
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(InvalidInputError) as info:
        load_onnx(path)
    assert "\n" not in info.value.one_line()
    model = load_onnx(path, check=False)  # the check can be skipped
    assert model.graph.node[1].input[0] == "does_not_exist"


def _save_external(model: onnx.ModelProto, path: Path, location: str) -> None:
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location, size_threshold=0
    )


def test_external_data_is_loaded(tmp_path):
    reference = make_conv_onnx(seed=5)
    _save_external(make_conv_onnx(seed=5), tmp_path / "ext.onnx", "ext.onnx.data")
    # the weights really are outside the .onnx file
    assert (tmp_path / "ext.onnx.data").stat().st_size >= 4 * (8 * 3 * 3 * 3 + 8 + 8 * 4 + 4)
    stored = onnx.load_model(str(tmp_path / "ext.onnx"), load_external_data=False)
    assert all(t.data_location == TensorProto.EXTERNAL for t in stored.graph.initializer)

    model = load_onnx(tmp_path / "ext.onnx")
    assert len(model.graph.initializer) == len(reference.graph.initializer) == 4
    for expected, got in zip(reference.graph.initializer, model.graph.initializer):
        assert got.name == expected.name
        assert got.data_location != TensorProto.EXTERNAL
        np.testing.assert_array_equal(numpy_helper.to_array(got), numpy_helper.to_array(expected))
    x = _x()
    np.testing.assert_array_equal(_run(model, {"x": x})[0], _run(reference, {"x": x})[0])


def test_external_data_in_a_subfolder_is_loaded(tmp_path):
    (tmp_path / "weights").mkdir()
    _save_external(make_conv_onnx(seed=2), tmp_path / "m.onnx", "weights/w.bin")
    model = load_onnx(tmp_path / "m.onnx")
    for expected, got in zip(make_conv_onnx(seed=2).graph.initializer, model.graph.initializer):
        np.testing.assert_array_equal(numpy_helper.to_array(got), numpy_helper.to_array(expected))


def _point_external_at(model_path: Path, location: str) -> None:
    model = onnx.load_model(str(model_path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    model_path.write_bytes(model.SerializeToString())


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    _save_external(make_conv_onnx(), folder / "m.onnx", "m.data")
    # the data file really exists at the escaping location, so only the location check can refuse it
    (tmp_path / "m.data").write_bytes((folder / "m.data").read_bytes())
    for location in ("../m.data", str(tmp_path / "m.data"), "sub/../../m.data"):
        _point_external_at(folder / "m.onnx", location)
        with pytest.raises(InvalidInputError) as info:
            load_onnx(folder / "m.onnx")
        assert info.value.exit_code == 3
        assert "outside" in info.value.message


def test_external_data_through_an_escaping_symlink_is_refused(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    _save_external(make_conv_onnx(), folder / "m.onnx", "m.data")
    (folder / "m.data").rename(tmp_path / "secret.data")
    (folder / "m.data").symlink_to(tmp_path / "secret.data")
    with pytest.raises(InvalidInputError):
        load_onnx(folder / "m.onnx")


def test_missing_external_data_file(tmp_path):
    _save_external(make_conv_onnx(), tmp_path / "m.onnx", "m.data")
    (tmp_path / "m.data").unlink()
    with pytest.raises(InvalidInputError) as info:
        load_onnx(tmp_path / "m.onnx")
    assert "m.data" in info.value.message


def test_truncated_external_data_file(tmp_path):
    _save_external(make_conv_onnx(), tmp_path / "m.onnx", "m.data")
    data = (tmp_path / "m.data").read_bytes()
    (tmp_path / "m.data").write_bytes(data[: len(data) // 3])
    with pytest.raises(InvalidInputError):
        load_onnx(tmp_path / "m.onnx")


# ---------------------------------------------------------------- apply_input_specs


def _dims(value_info: onnx.ValueInfoProto) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in value_info.type.tensor_type.shape.dim]


def test_apply_input_specs_fixes_batch_and_shapes_propagate():
    model = make_conv_onnx()
    fixed = apply_input_specs(model, [parse_input_spec("x:2x3x16x16:float32")])
    assert graph_inputs(fixed) == [TensorInfo("x", (2, 3, 16, 16), "float32")]
    assert graph_outputs(fixed) == [TensorInfo("logits", (2, 4), "float32")]
    shapes = {vi.name: _dims(vi) for vi in fixed.graph.value_info}
    assert shapes["conv"] == [2, 8, 16, 16]
    assert shapes["pool"] == [2, 8, 8, 8]
    assert shapes["flat"] == [2, 8]
    # the original is untouched
    assert graph_inputs(model)[0].shape == ("N", 3, 16, 16)
    # and the fixed model still computes the same thing
    x = _x(2)
    np.testing.assert_array_equal(_run(fixed, {"x": x})[0], _run(model, {"x": x})[0])
    session = ort.InferenceSession(fixed.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [2, 3, 16, 16]
    assert session.get_outputs()[0].shape == [2, 4]


def test_apply_input_specs_symbolic_and_empty():
    model = make_conv_onnx(batch=1)
    assert apply_input_specs(model, []) is model
    renamed = apply_input_specs(make_conv_onnx(), [InputSpec("x", ("batch", 3, 16, 16))])
    assert graph_inputs(renamed)[0].shape == ("batch", 3, 16, 16)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("y:1x3x16x16", ["'y'", "inputs: x"]),
        ("conv.w:8x3x3x3", ["'conv.w'"]),  # an initializer is not an input
        ("x:1x3x16", ["rank 3", "rank 4"]),
        ("x:1x3x16x16x1", ["rank 5"]),
        ("x:1x3x16x16:int64", ["int64", "float32"]),
        ("x:1x3x16x16:float16", ["float16"]),
        ("x:1x4x16x16", ["dimension 1", "3"]),
    ],
)
def test_apply_input_specs_errors(spec, words):
    with pytest.raises(UsageError) as info:
        apply_input_specs(make_conv_onnx(), [parse_input_spec(spec)])
    assert info.value.exit_code == 2
    for word in words:
        assert word in info.value.message


# ---------------------------------------------------------------- extract_outputs


def test_extract_outputs_cuts_at_intermediate_tensor():
    model = make_conv_onnx(seed=3)
    cut = extract_outputs(model, ["relu"])
    assert [n.name for n in cut.graph.node] == ["conv", "relu"]
    assert [o.name for o in cut.graph.output] == ["relu"]
    assert [i.name for i in cut.graph.input] == ["x"]
    assert sorted(i.name for i in cut.graph.initializer) == ["conv.b", "conv.w"]
    assert default_opset(cut) == default_opset(model)
    assert cut.ir_version == model.ir_version
    onnx.checker.check_model(cut)
    x = _x(3, seed=1)
    [got] = _run(cut, {"x": x})
    [expected] = _run(with_outputs(infer_shapes(model), ["relu"]), {"x": x}, ["relu"])
    assert got.shape == (3, 8, 16, 16)
    np.testing.assert_array_equal(got, expected)
    # and it really is the ReLU of the convolution: non-negative, not all zero
    assert got.min() >= 0 and got.max() > 0


def test_extract_outputs_several_and_unused_input_dropped():
    # y = Relu(a @ W); z = b + 1: cutting at y keeps only input a
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "W")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["a", "W"], ["mm"], name="mm"),
            helper.make_node("Relu", ["mm"], ["y"], name="relu"),
            helper.make_node("Add", ["b", "one"], ["z"], name="add"),
        ],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [5]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [5]),
        ],
        initializer=[w, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    cut = extract_outputs(model, ["mm", "y"])
    assert [i.name for i in cut.graph.input] == ["a"]
    assert [o.name for o in cut.graph.output] == ["mm", "y"]
    a = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    mm, y = _run(cut, {"a": a})
    full_mm, full_y = _run(with_outputs(infer_shapes(model), ["mm"]), {"a": a, "b": np.zeros(5, np.float32)}, ["mm", "y"])
    np.testing.assert_array_equal(mm, full_mm)
    np.testing.assert_array_equal(y, full_y)


def test_extract_outputs_unknown_name_suggests():
    with pytest.raises(UsageError) as info:
        extract_outputs(make_conv_onnx(), ["rleu", "nothing_like_it"])
    assert "'rleu'" in info.value.message and "relu" in info.value.message
    assert "nothing_like_it" in info.value.message


def test_extract_outputs_nothing_returns_model():
    model = make_conv_onnx()
    assert extract_outputs(model, []) is model


def test_node_output_names_and_with_outputs():
    model = make_conv_onnx()
    assert node_output_names(model) == ["conv", "relu", "pool", "gap", "flat", "logits"]
    extended = with_outputs(infer_shapes(model), ["pool", "logits"])
    assert [o.name for o in extended.graph.output] == ["logits", "pool"]
    assert [o.name for o in model.graph.output] == ["logits"]
    x = _x(1)
    pool, logits = _run(extended, {"x": x}, ["pool", "logits"])
    assert pool.shape == (1, 8, 8, 8)
    np.testing.assert_array_equal(logits, _run(model, {"x": x})[0])


# ---------------------------------------------------------------- save_onnx


def test_save_onnx_is_byte_deterministic(tmp_path):
    model = make_conv_onnx()
    model.metadata_props.add(key="b", value="2")
    model.metadata_props.add(key="a", value="1")
    assert save_onnx(model, tmp_path / "a.onnx") == [tmp_path / "a.onnx"]
    save_onnx(make_conv_onnx(), tmp_path / "b.onnx")
    reloaded = load_onnx(tmp_path / "a.onnx")
    save_onnx(reloaded, tmp_path / "c.onnx")
    save_onnx(model, tmp_path / "a2.onnx")
    first = (tmp_path / "a.onnx").read_bytes()
    assert first == (tmp_path / "a2.onnx").read_bytes()
    assert first == (tmp_path / "c.onnx").read_bytes()
    assert first == serialize_onnx(model)
    # the file is a loadable model equal to the original
    assert onnx.load_model(str(tmp_path / "b.onnx")).SerializeToString(deterministic=True) == serialize_onnx(make_conv_onnx())
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp files left


def test_save_onnx_replaces_existing_file_atomically(tmp_path):
    path = tmp_path / "out.onnx"
    path.write_bytes(b"old" * 1000)
    save_onnx(make_conv_onnx(seed=7), path)
    assert path.read_bytes() == serialize_onnx(make_conv_onnx(seed=7))
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"]


class _UnserialisableModel:
    """A model whose serialisation fails half-way, like a >2 GiB protobuf would."""

    def __init__(self) -> None:
        self.graph = make_conv_onnx().graph

    def SerializeToString(self, deterministic: bool = False) -> bytes:  # noqa: N802 (protobuf's name)
        raise ValueError("Message onnx.ModelProto exceeds maximum protobuf size of 2GB")


def test_save_onnx_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.onnx"
    save_onnx(make_conv_onnx(seed=1), path)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_onnx(_UnserialisableModel(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"]
    with pytest.raises(ValueError):
        save_onnx(_UnserialisableModel(), tmp_path / "new.onnx")
    assert not (tmp_path / "new.onnx").exists()


def test_save_onnx_to_missing_folder_is_usage_error(tmp_path):
    with pytest.raises(EdgeccError) as info:
        save_onnx(make_conv_onnx(), tmp_path / "missing" / "m.onnx")
    assert info.value.exit_code == 2


@pytest.mark.parametrize("kind", ["loop", "not-utf8", "device"])
def test_external_data_that_loops_is_not_utf8_or_is_a_device_is_invalid_input(tmp_path, kind):
    folder = tmp_path / "models"
    folder.mkdir()
    _save_external(make_conv_onnx(), folder / "m.onnx", "m.data")
    (folder / "m.data").unlink()
    if kind == "loop":
        (folder / "m.data").symlink_to("n.data")
        (folder / "n.data").symlink_to("m.data")
    elif kind == "device":
        os.mkfifo(folder / "m.data")
    else:
        data = (folder / "m.onnx").read_bytes()
        assert data.count(b"m.data") == 4
        (folder / "m.onnx").write_bytes(data.replace(b"m.data", b"\xff\xfe.bin"))
    with pytest.raises(InvalidInputError) as info:
        load_onnx(folder / "m.onnx")
    assert info.value.exit_code == 3 and "m.onnx" in info.value.one_line()
    problem = {"loop": "loop of symbolic links", "not-utf8": "not valid UTF-8", "device": "not a regular file"}[kind]
    assert problem in info.value.message


def test_an_output_without_a_shape_field_is_valid_as_onnxruntime_takes_it(tmp_path):
    # exporters write graph outputs with a tensor type and no shape ("rank unknown"); onnx's checker wants the field,
    # onnxruntime runs the file: edgecc takes it too, and never writes the checker's placeholder into the model
    from edgecc.onnxutil import check_model, load_onnx

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )
    path = tmp_path / "shapeless_output.onnx"
    path.write_bytes(model.SerializeToString())
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # the oracle accepts it
    loaded = load_onnx(str(path))
    check_model(loaded, path=path)
    assert not loaded.graph.output[0].type.tensor_type.HasField("shape")


def test_unnamed_nodes_get_unique_names_and_named_ones_keep_theirs() -> None:
    from onnx import TensorProto, helper

    from edgecc.onnxutil import name_unnamed_nodes

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Relu", ["a"], ["b"], name="Relu_0"),
            helper.make_node("Neg", ["b"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = name_unnamed_nodes(helper.make_model(graph))
    assert [n.name for n in model.graph.node] == ["Relu_0_", "Relu_0", "Neg_2"]
