"""End-to-end tests of `edgecc verify`, with onnxruntime run here as the oracle."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import make_conv_onnx, run_edgecc

# --- models --------------------------------------------------------------------------------------


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def cnn(path: Path) -> Path:
    """make_conv_onnx saved at `path`."""
    make_conv_onnx(path)
    return path


def two_output_cnn(path: Path) -> Path:
    """make_conv_onnx that also outputs 'flat' (the input of the final Gemm)."""
    model = make_conv_onnx()
    model.graph.output.append(helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["N", 8]))
    return _save(model, path)


def perturb(src: Path, dst: Path, name: str, delta: float = 1.0, index: int = 0) -> Path:
    """A copy of `src` with one element of initializer `name` shifted by `delta`."""
    model = onnx.load(str(src))
    for position, tensor in enumerate(model.graph.initializer):
        if tensor.name == name:
            array = numpy_helper.to_array(tensor).copy()
            array.flat[index] += delta
            model.graph.initializer[position].CopyFrom(numpy_helper.from_array(array, name))
            return _save(model, dst)
    raise AssertionError(f"no initializer {name} in {src}")


def three_conv_cnn(path: Path) -> Path:
    """x -> conv1 -> relu1 -> conv2 -> relu2 -> conv3 -> y, static shapes."""
    rng = np.random.default_rng(3)
    inits, nodes = [], []
    prev, channels = "x", 3
    for i in (1, 2, 3):
        w = rng.standard_normal((4, channels, 3, 3)).astype(np.float32) * 0.3
        b = rng.standard_normal(4).astype(np.float32) * 0.1
        inits += [numpy_helper.from_array(w, f"conv{i}.w"), numpy_helper.from_array(b, f"conv{i}.b")]
        nodes.append(helper.make_node("Conv", [prev, f"conv{i}.w", f"conv{i}.b"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]))
        prev = f"c{i}"
        if i < 3:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"], name=f"relu{i}"))
            prev = f"r{i}"
        channels = 4
    graph = helper.make_graph(
        nodes,
        "three_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("c3", TensorProto.FLOAT, [1, 4, 8, 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, path)


def fp16_cast_copy(src: Path, dst: Path) -> Path:
    """The model computing in float16: initializers cast, Cast nodes at the float32 input and output."""
    model = onnx.load(str(src))
    graph = model.graph
    converted = [
        numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name) if t.data_type == TensorProto.FLOAT else t
        for t in graph.initializer
    ]
    del graph.initializer[:]
    graph.initializer.extend(converted)
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    rename = {n: f"{n}__fp16" for n in inputs + outputs}
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    casts_in = [helper.make_node("Cast", [n], [rename[n]], name=f"cast_in_{n}", to=TensorProto.FLOAT16) for n in inputs]
    casts_out = [helper.make_node("Cast", [rename[n]], [n], name=f"cast_out_{n}", to=TensorProto.FLOAT) for n in outputs]
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return _save(model, dst)


def fp16_io_copy(src: Path, dst: Path) -> Path:
    """The model entirely in float16, inputs and outputs included (what float16 converters emit by default)."""
    model = onnx.load(str(src))
    graph = model.graph
    converted = [numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name) for t in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(converted)
    for vi in list(graph.input) + list(graph.output):
        vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    return _save(model, dst)


def renamed_input_copy(src: Path, dst: Path, new: str = "image") -> Path:
    model = onnx.load(str(src))
    old = model.graph.input[0].name
    model.graph.input[0].name = new
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
    return _save(model, dst)


# --- oracle ----------------------------------------------------------------------------------------


def ort_run(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def oracle_metrics(ref: Path, cand: Path, feeds: list[dict[str, np.ndarray]], output: str) -> dict[str, float]:
    r = np.stack([ort_run(ref, f)[output] for f in feeds]).astype(np.float64).ravel()
    c = np.stack([ort_run(cand, f)[output] for f in feeds]).astype(np.float64).ravel()
    return {
        "max_abs": float(np.max(np.abs(r - c))),
        "mean_abs": float(np.mean(np.abs(r - c))),
        "cosine": float(np.dot(r, c) / (np.linalg.norm(r) * np.linalg.norm(c))),
        "range": float(r.max() - r.min()),
    }


def verify_json(*args) -> tuple[int, dict]:
    result = run_edgecc("verify", *args, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def outputs_by_name(doc: dict) -> dict[str, dict]:
    return {o["name"]: o for o in doc["outputs"]}


def sample(seed: int, shape=(1, 3, 16, 16)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --- identical / perturbed / tolerances --------------------------------------------------------------


def test_identical_models_pass_with_zero_error(conv_onnx, tmp_path):
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(conv_onnx.read_bytes())
    code, doc = verify_json(conv_onnx, copy, "--samples", "3")
    assert code == 0
    assert doc["ok"] is True and doc["passed"] is True
    assert doc["samples"] == 3
    assert [o["name"] for o in doc["outputs"]] == ["logits"]
    for out in doc["outputs"]:
        assert out["passed"] is True
        assert out["max_abs"] == 0.0 and out["mean_abs"] == 0.0 and out["rel_l2"] == 0.0
        assert out["cosine"] == pytest.approx(1.0, abs=1e-12)
        assert out["sqnr_db"] == "inf"
        assert out["top1"] == 1.0


def test_identical_models_text_mode(conv_onnx):
    result = run_edgecc("verify", conv_onnx, conv_onnx)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "logits" in result.stderr and "ok" in result.stderr
    assert "FAIL" not in result.stderr


def test_perturbed_weight_fails_naming_the_output(tmp_path):
    ref = two_output_cnn(tmp_path / "ref.onnx")
    cand = perturb(ref, tmp_path / "cand.onnx", "fc.b", 1.0)  # changes logits only, not flat
    result = run_edgecc("verify", ref, cand)
    assert result.returncode == 5
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecc: error:")]
    assert len(errors) == 1
    failing = errors[0].split("output(s)", 1)[1]
    assert "logits" in failing and "flat" not in failing

    code, doc = verify_json(ref, cand)
    assert code == 5
    assert doc["ok"] is False and doc["passed"] is False
    outs = outputs_by_name(doc)
    assert outs["logits"]["passed"] is False and outs["logits"]["reason"]
    assert outs["flat"]["passed"] is True and outs["flat"]["max_abs"] == 0.0
    assert outs["logits"]["max_abs"] == pytest.approx(1.0, rel=1e-5)  # a bias shift of exactly 1.0


def test_rtol_loosened_passes_and_tight_fails(tmp_path):
    ref = cnn(tmp_path / "ref.onnx")
    cand = perturb(ref, tmp_path / "cand.onnx", "conv.w", 0.5)
    x = sample(11)
    np.save(tmp_path / "x.npy", x)
    truth = oracle_metrics(ref, cand, [{"x": x}], "logits")
    assert truth["max_abs"] > 1e-6 + 1e-4 * truth["range"]  # outside the fp32 defaults
    needed = truth["max_abs"] / truth["range"]  # rtol at which max abs error == bound (with atol 0)

    code, doc = verify_json(ref, cand, "--data", f"x={tmp_path / 'x.npy'}")
    assert code == 5
    out = outputs_by_name(doc)["logits"]
    assert out["max_abs"] == pytest.approx(truth["max_abs"], rel=1e-5)
    assert out["reference_range"] == pytest.approx(truth["range"], rel=1e-6)

    code, doc = verify_json(ref, cand, "--data", f"x={tmp_path / 'x.npy'}", "--atol", "0", "--rtol", repr(needed * 2))
    assert code == 0, doc
    assert doc["tolerance"]["rtol"] == pytest.approx(needed * 2)

    code, doc = verify_json(ref, cand, "--data", f"x={tmp_path / 'x.npy'}", "--atol", "0", "--rtol", repr(needed * 0.5))
    assert code == 5


def test_min_cosine_option(tmp_path):
    ref = cnn(tmp_path / "ref.onnx")
    cand = perturb(ref, tmp_path / "cand.onnx", "fc.b", 0.5)
    x = sample(5)
    np.save(tmp_path / "x.npy", x)
    truth = oracle_metrics(ref, cand, [{"x": x}], "logits")
    base = ["--data", str(tmp_path / "x.npy"), "--rtol", "1e9"]
    below = 1 - (1 - truth["cosine"]) * 2
    above = 1 - (1 - truth["cosine"]) * 0.5
    assert run_edgecc("verify", ref, cand, *base, "--min-cosine", repr(below)).returncode == 0
    assert run_edgecc("verify", ref, cand, *base, "--min-cosine", repr(above)).returncode == 5


# --- fp16 --------------------------------------------------------------------------------------------


def test_fp16_cast_copy_passes_with_cosine(tmp_path):
    ref = cnn(tmp_path / "ref.onnx")
    cand = fp16_cast_copy(ref, tmp_path / "fp16.onnx")
    assert any(t.data_type == TensorProto.FLOAT16 for t in onnx.load(str(cand)).graph.initializer)
    x = sample(21, (4, 3, 16, 16))
    np.save(tmp_path / "x.npy", x)
    truth = oracle_metrics(ref, cand, [{"x": x}], "logits")
    assert truth["max_abs"] > 0  # float16 really changes the numbers
    assert truth["cosine"] >= 0.9999

    code, doc = verify_json(ref, cand, "--precision", "fp16", "--data", str(tmp_path / "x.npy"))
    assert code == 0, doc
    assert doc["tolerance"] == {"atol": None, "rtol": None, "min_cosine": 0.9999}
    out = outputs_by_name(doc)["logits"]
    assert out["cosine"] == pytest.approx(truth["cosine"], abs=1e-9)
    assert out["max_abs"] == pytest.approx(truth["max_abs"], rel=1e-5)

    # under the fp32 defaults the verdict follows the bit-close bound
    fp32_code, _ = verify_json(ref, cand, "--data", str(tmp_path / "x.npy"))
    fp32_ok = truth["max_abs"] <= 1e-6 + 1e-4 * truth["range"]
    assert fp32_code == (0 if fp32_ok else 5)


def test_fp16_fails_when_cosine_is_too_low(tmp_path):
    ref = cnn(tmp_path / "ref.onnx")
    broken = perturb(ref, tmp_path / "broken.onnx", "fc.w", 5.0)
    cand = fp16_cast_copy(broken, tmp_path / "fp16.onnx")
    x = sample(21, (4, 3, 16, 16))
    np.save(tmp_path / "x.npy", x)
    truth = oracle_metrics(ref, cand, [{"x": x}], "logits")
    assert truth["cosine"] < 0.9999
    code, doc = verify_json(ref, cand, "--precision", "fp16", "--data", str(tmp_path / "x.npy"))
    assert code == 5
    assert "cosine" in outputs_by_name(doc)["logits"]["reason"]


@pytest.mark.parametrize("order", ["fp32-ref", "fp16-ref"])
def test_fp16_model_with_fp16_inputs(tmp_path, order):
    """DESIGN's `edgecc verify model.onnx model_fp16.onnx --precision fp16` when the fp16 model also takes fp16 inputs."""
    fp32 = cnn(tmp_path / "fp32.onnx")
    fp16 = fp16_io_copy(fp32, tmp_path / "fp16io.onnx")
    ref, cand = (fp32, fp16) if order == "fp32-ref" else (fp16, fp32)
    code, doc = verify_json(ref, cand, "--precision", "fp16")
    assert code == 0, doc
    assert outputs_by_name(doc)["logits"]["cosine"] >= 0.9999


# --- per layer -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["conv1", "conv2", "conv3"])
def test_per_layer_names_the_first_diverging_node(tmp_path, broken):
    ref = three_conv_cnn(tmp_path / "ref.onnx")
    cand = perturb(ref, tmp_path / "cand.onnx", f"{broken}.w", 2.0)
    code, doc = verify_json(ref, cand, "--per-layer")
    assert code == 5
    layers = doc["per_layer"]
    # every node output is shared (same graph, same names), in graph order
    assert [layer["tensor"] for layer in layers["layers"]] == ["c1", "r1", "c2", "r2", "c3"]
    assert layers["shared_tensors"] == 5
    first = layers["first_divergence"]
    assert first["node"] == broken
    assert first["op_type"] == "Conv"
    assert first["tensor"] == "c" + broken[-1]
    assert first["passed"] is False
    index = [layer["tensor"] for layer in layers["layers"]].index(first["tensor"])
    assert all(layer["passed"] and layer["max_abs"] == 0.0 for layer in layers["layers"][:index])


def test_per_layer_identical_has_no_divergence(tmp_path):
    ref = three_conv_cnn(tmp_path / "ref.onnx")
    code, doc = verify_json(ref, ref, "--per-layer")
    assert code == 0
    assert doc["per_layer"]["first_divergence"] is None
    assert doc["per_layer"]["shared_tensors"] == 5
    assert all(layer["max_abs"] == 0.0 for layer in doc["per_layer"]["layers"])


def test_per_layer_text_mode(tmp_path):
    ref = three_conv_cnn(tmp_path / "ref.onnx")
    cand = perturb(ref, tmp_path / "cand.onnx", "conv2.w", 2.0)
    result = run_edgecc("verify", ref, cand, "--per-layer")
    assert result.returncode == 5
    assert "per-layer comparison" in result.stderr
    assert "first divergence: tensor 'c2' from node 'conv2' (Conv)" in result.stderr


def test_without_per_layer_json_has_none(conv_onnx):
    code, doc = verify_json(conv_onnx, conv_onnx)
    assert code == 0
    assert doc["per_layer"] is None


# --- --data ---------------------------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path):
    ref = cnn(tmp_path / "ref.onnx")
    cand = perturb(ref, tmp_path / "cand.onnx", "conv.w", 0.3)
    return ref, cand


def _check_against_oracle(doc: dict, ref: Path, cand: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    truth = oracle_metrics(ref, cand, feeds, "logits")
    out = outputs_by_name(doc)["logits"]
    assert doc["samples"] == len(feeds)
    assert out["max_abs"] == pytest.approx(truth["max_abs"], rel=1e-5)
    assert out["mean_abs"] == pytest.approx(truth["mean_abs"], rel=1e-5)
    assert not any("random inputs" in note for note in doc["notes"])


def test_data_named_npy(pair, tmp_path):
    ref, cand = pair
    x = sample(100, (2, 3, 16, 16))
    np.save(tmp_path / "x.npy", x)
    code, doc = verify_json(ref, cand, "--data", f"x={tmp_path / 'x.npy'}")
    assert code == 5
    _check_against_oracle(doc, ref, cand, [{"x": x}])
    assert outputs_by_name(doc)["logits"]["shape"] == [2, 4]


def test_data_nameless_npy(pair, tmp_path):
    ref, cand = pair
    x = sample(101)
    np.save(tmp_path / "x.npy", x)
    code, doc = verify_json(ref, cand, "--data", str(tmp_path / "x.npy"))
    assert code == 5
    _check_against_oracle(doc, ref, cand, [{"x": x}])


def test_data_npz(pair, tmp_path):
    ref, cand = pair
    x = sample(102)
    np.savez(tmp_path / "inputs.npz", x=x)
    code, doc = verify_json(ref, cand, "--data", str(tmp_path / "inputs.npz"))
    assert code == 5
    _check_against_oracle(doc, ref, cand, [{"x": x}])


def test_data_directory_of_npy_samples(pair, tmp_path):
    ref, cand = pair
    folder = tmp_path / "samples"
    folder.mkdir()
    xs = [sample(200 + i) for i in range(3)]
    for i, x in enumerate(xs):
        np.save(folder / f"{i:03d}.npy", x)
    (folder / "README.txt").write_text("not a sample")
    code, doc = verify_json(ref, cand, "--data", str(folder))
    assert code == 5
    _check_against_oracle(doc, ref, cand, [{"x": x} for x in xs])
    assert outputs_by_name(doc)["logits"]["shape"] == [3, 1, 4]


def test_data_named_directory_of_npz_samples(pair, tmp_path):
    ref, cand = pair
    folder = tmp_path / "samples"
    folder.mkdir()
    xs = [sample(300 + i) for i in range(2)]
    for i, x in enumerate(xs):
        np.savez(folder / f"s{i}.npz", x=x)
    code, doc = verify_json(ref, cand, "--data", f"x={folder}")
    assert code == 5
    _check_against_oracle(doc, ref, cand, [{"x": x} for x in xs])


def test_data_identical_models_pass(conv_onnx, tmp_path):
    np.save(tmp_path / "x.npy", sample(7))
    code, doc = verify_json(conv_onnx, conv_onnx, "--data", f"x={tmp_path / 'x.npy'}")
    assert code == 0
    assert outputs_by_name(doc)["logits"]["max_abs"] == 0.0


def test_data_wrong_input_name_is_invalid_input(pair, tmp_path):
    ref, cand = pair
    np.save(tmp_path / "x.npy", sample(1))
    result = run_edgecc("verify", ref, cand, "--data", f"nosuch={tmp_path / 'x.npy'}")
    assert result.returncode == 3  # data that does not fit the model (edgecc.data): exit 3 in every command
    assert "nosuch" in result.stderr


def test_data_wrong_shape_is_invalid_input(pair, tmp_path):
    ref, cand = pair
    np.save(tmp_path / "x.npy", sample(1, (1, 3, 8, 8)))
    result = run_edgecc("verify", ref, cand, "--data", f"x={tmp_path / 'x.npy'}")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr


# --- --input --------------------------------------------------------------------------------------------


def test_input_spec_fixes_dynamic_batch(pair):
    ref, cand = pair
    code, doc = verify_json(ref, cand, "--input", "x:2x3x16x16")
    assert code == 5
    assert outputs_by_name(doc)["logits"]["shape"] == [2, 4]
    code, doc = verify_json(ref, cand)
    assert outputs_by_name(doc)["logits"]["shape"] == [1, 4]  # dynamic dims default to 1


def test_input_spec_with_matching_data(pair, tmp_path):
    ref, cand = pair
    x = sample(9, (2, 3, 16, 16))
    np.save(tmp_path / "x.npy", x)
    code, doc = verify_json(ref, cand, "--input", "x:2x3x16x16", "--data", f"x={tmp_path / 'x.npy'}")
    assert code == 5
    _check_against_oracle(doc, ref, cand, [{"x": x}])


def test_input_spec_conflicting_with_data_is_invalid_input(pair, tmp_path):
    ref, cand = pair
    np.save(tmp_path / "x.npy", sample(9, (3, 3, 16, 16)))
    result = run_edgecc("verify", ref, cand, "--input", "x:2x3x16x16", "--data", f"x={tmp_path / 'x.npy'}")
    assert result.returncode == 3  # data that does not fit the model: exit 3


def test_input_spec_for_unknown_input_is_usage_error(pair):
    ref, cand = pair
    result = run_edgecc("verify", ref, cand, "--input", "nosuch:1x3x16x16")
    assert result.returncode == 2
    assert "nosuch" in result.stderr


# --- mismatching models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("renamed_first", [False, True])
def test_models_with_different_inputs_are_usage_error(conv_onnx, tmp_path, renamed_first):
    other = renamed_input_copy(conv_onnx, tmp_path / "renamed.onnx", "image")
    args = (other, conv_onnx) if renamed_first else (conv_onnx, other)
    result = run_edgecc("verify", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecc: error:")]
    assert len(errors) == 1 and "image" in errors[0] and "x" in errors[0]
    code, doc = verify_json(*args)
    assert code == 2 and doc["ok"] is False and doc["error"]["exit_code"] == 2


def test_models_with_unpairable_outputs_are_usage_error(conv_onnx, tmp_path):
    other = two_output_cnn(tmp_path / "two.onnx")
    # reference has 2 outputs, candidate 1: cannot be paired
    result = run_edgecc("verify", other, conv_onnx)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_metrics_are_finite_json_numbers(pair):
    ref, cand = pair
    code, doc = verify_json(ref, cand)
    assert code == 5
    out = outputs_by_name(doc)["logits"]
    for key in ("max_abs", "mean_abs", "rel_l2", "cosine", "sqnr_db"):
        assert isinstance(out[key], float) and math.isfinite(out[key])
