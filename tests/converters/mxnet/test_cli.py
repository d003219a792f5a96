"""`edgecc convert` / `inspect` on MXNet files end to end: real architectures, file naming, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_edgecc
from tests.converters.mxnet.helpers import FIXTURES, assert_close, files, reference, run_onnx


def _input_args(inputs: dict[str, np.ndarray]) -> list[str]:
    args: list[str] = []
    for name, value in inputs.items():
        args += ["--input", f"{name}:{'x'.join(map(str, value.shape))}"]
    return args


@pytest.mark.parametrize("case", ["mobilenet", "resnet"])
def test_real_architectures_convert_and_match_mxnet(case: str, tmp_path: Path) -> None:
    inputs, outputs = reference(case)
    symbol, params = files(case)
    out = tmp_path / f"{case}.onnx"
    result = run_edgecc("convert", symbol, params, *_input_args(inputs), "-o", out)
    assert result.returncode == 0, result.stderr
    got = run_onnx(out, inputs)
    for name, want in outputs.items():
        assert_close(got[name], want, f"{case}/{name}")


def test_prefix_and_epoch_find_the_files(tmp_path: Path) -> None:
    for path in files("mobilenet"):
        shutil.copy(path, tmp_path / path.name.replace("mobilenet", "net"))
    inputs, outputs = reference("mobilenet")
    out = tmp_path / "net.onnx"
    result = run_edgecc("convert", tmp_path / "net", "--epoch", "0", "-o", out)
    assert result.returncode == 0, result.stderr
    assert_close(run_onnx(out, inputs)["softmax_output"], outputs["softmax_output"], "prefix --epoch 0")
    # the symbol file with --epoch, and a prefix alone when one params file exists
    for args in (["net-symbol.json", "--epoch", "0"], ["net"]):
        result = run_edgecc("convert", *args, "-o", tmp_path / "again.onnx", cwd=tmp_path)
        assert result.returncode == 0, result.stderr


def test_missing_epoch_file_is_a_usage_error(tmp_path: Path) -> None:
    symbol, _ = files("mobilenet")
    result = run_edgecc("convert", symbol, "--epoch", "7", "-o", tmp_path / "x.onnx")
    assert result.returncode == 2
    assert "mobilenet-0007.params" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_input_shape_is_guessed_from_the_first_convolution(tmp_path: Path) -> None:
    """Without --input the data input gets a dynamic batch and spatial size (fully convolutional nets)."""
    inputs, outputs = reference("conv")
    symbol, params = files("conv")
    out = tmp_path / "conv.onnx"
    result = run_edgecc("convert", symbol, params, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    got = run_onnx(out, inputs)
    assert_close(got["conv_s2_output"], outputs["conv_s2_output"], "dynamic conv")
    bigger = np.random.default_rng(0).standard_normal((2, 4, 17, 13)).astype(np.float32)
    assert run_onnx(out, {"data": bigger})["conv_s2_output"].shape == (2, 6, 9, 7)


def test_inspect_describes_an_mxnet_model() -> None:
    symbol, params = files("resnet")
    result = run_edgecc("inspect", symbol, params, "--input", "data:1x3x32x32", "--json")
    assert result.returncode == 0, result.stderr
    assert "Convolution" in result.stdout or "Conv" in result.stdout


# --- bad input ------------------------------------------------------------------------------
def _assert_one_line_error(result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgecc: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _convert(tmp_path: Path, symbol: Path, params: Path, *extra: str):
    out = tmp_path / "out.onnx"
    result = run_edgecc("convert", symbol, params, *extra, "-o", out)
    assert not out.exists()
    return result


def test_truncated_params_is_exit_3(tmp_path: Path) -> None:
    symbol, params = files("mobilenet")
    cut = tmp_path / "mobilenet-0000.params"
    data = params.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _assert_one_line_error(_convert(tmp_path, symbol, cut), 3, str(cut), "truncated", "array #")


def test_bad_params_magic_is_exit_3(tmp_path: Path) -> None:
    symbol, params = files("mobilenet")
    bad = tmp_path / "bad.params"
    bad.write_bytes(b"\x13" + params.read_bytes()[1:])
    _assert_one_line_error(_convert(tmp_path, symbol, bad), 3, str(bad), "magic")


def test_missing_parameter_is_exit_3_naming_node_and_parameter(tmp_path: Path) -> None:
    symbol, params = files("resnet")
    doc = json.loads(symbol.read_text())
    for node in doc["nodes"]:
        if node["name"] == "fc_weight":
            node["name"] = "fc_weight_renamed"
    edited = tmp_path / "resnet-symbol.json"
    edited.write_text(json.dumps(doc))
    result = _convert(tmp_path, edited, params, "--input", "data:1x3x32x32")
    _assert_one_line_error(result, 3, str(edited), "'fc'", "fc_weight_renamed", str(params))


def test_shape_mismatch_is_exit_3_naming_node(tmp_path: Path) -> None:
    symbol, params = files("resnet")
    doc = json.loads(symbol.read_text())
    for node in doc["nodes"]:
        if node["name"] == "s1_a_conv":
            node["attrs"]["num_filter"] = "12"
    edited = tmp_path / "resnet-symbol.json"
    edited.write_text(json.dumps(doc))
    result = _convert(tmp_path, edited, params, "--input", "data:1x3x32x32")
    _assert_one_line_error(result, 3, str(edited), "s1_a_conv", "s1_a_conv_weight", "(16, 8, 3, 3)")


def test_params_of_another_model_are_a_shape_mismatch(tmp_path: Path) -> None:
    symbol, _ = files("mobilenet")
    _, params = files("resnet")
    doc = json.loads(symbol.read_text())
    result = _convert(tmp_path, symbol, params, "--input", "data:1x3x32x32")
    assert result.returncode == 3, result.stderr
    assert doc["nodes"]  # the symbol itself is fine
    assert "Traceback" not in result.stderr


def test_malformed_json_is_exit_3(tmp_path: Path) -> None:
    symbol, params = files("resnet")
    broken = tmp_path / "resnet-symbol.json"
    broken.write_text(symbol.read_text()[:500])
    _assert_one_line_error(_convert(tmp_path, broken, params), 3, str(broken), "JSON")


def test_dangling_input_reference_is_exit_3(tmp_path: Path) -> None:
    symbol, params = files("resnet")
    doc = json.loads(symbol.read_text())
    node = next(n for n in doc["nodes"] if n["op"] != "null")
    node["inputs"][0] = [9999, 0, 0]
    edited = tmp_path / "resnet-symbol.json"
    edited.write_text(json.dumps(doc))
    _assert_one_line_error(_convert(tmp_path, edited, params), 3, str(edited), node["name"])


def test_unknown_operators_are_all_listed_exit_4(tmp_path: Path) -> None:
    symbol, params = files("resnet")
    doc = json.loads(symbol.read_text())
    renamed = []
    for node in doc["nodes"]:
        if node["op"] == "Activation":
            node["op"] = "MadeUpActivation"
            renamed.append(node["name"])
        elif node["op"] == "FullyConnected":
            node["op"] = "MadeUpDense"
            renamed.append(node["name"])
    edited = tmp_path / "resnet-symbol.json"
    edited.write_text(json.dumps(doc))
    result = _convert(tmp_path, edited, params, "--input", "data:1x3x32x32")
    _assert_one_line_error(result, 4, "MadeUpActivation", "MadeUpDense", *renamed)


def test_sparse_params_are_exit_4(tmp_path: Path) -> None:
    symbol = tmp_path / "sparse-symbol.json"
    symbol.write_text(
        json.dumps(
            {
                "nodes": [
                    {"op": "null", "name": "data", "inputs": []},
                    {"op": "null", "name": "csr_weight", "inputs": []},
                    {
                        "op": "FullyConnected",
                        "name": "fc",
                        "attrs": {"num_hidden": "3", "no_bias": "True"},
                        "inputs": [[0, 0, 0], [1, 0, 0]],
                    },
                ],
                "arg_nodes": [0, 1],
                "heads": [[2, 0, 0]],
            }
        )
    )
    result = _convert(tmp_path, symbol, FIXTURES / "sparse.params")
    _assert_one_line_error(result, 4, "sparse", "csr_weight")


def test_symbol_shape_attribute_must_match_params(tmp_path: Path) -> None:
    symbol, params = files("resnet")
    doc = json.loads(symbol.read_text())
    for node in doc["nodes"]:
        if node["name"] == "fc_weight":
            node.setdefault("attrs", {})["__shape__"] = "(10, 99)"
    edited = tmp_path / "resnet-symbol.json"
    edited.write_text(json.dumps(doc))
    _assert_one_line_error(_convert(tmp_path, edited, params), 3, str(edited), "fc_weight", "(10, 99)", "(10, 32)")


def test_unknown_input_name_is_a_usage_error(tmp_path: Path) -> None:
    symbol, params = files("resnet")
    _assert_one_line_error(_convert(tmp_path, symbol, params, "--input", "image:1x3x32x32"), 2, "image", "data")


def test_input_without_a_known_shape_asks_for_input(tmp_path: Path) -> None:
    symbol, params = files("activation")
    _assert_one_line_error(_convert(tmp_path, symbol, params), 2, "data", "--input")


def test_conversion_is_byte_identical_across_runs(tmp_path: Path) -> None:
    symbol, params = files("mobilenet")
    outs = [tmp_path / "a.onnx", tmp_path / "b.onnx"]
    for out in outs:
        assert run_edgecc("convert", symbol, params, "--input", "data:1x3x32x32", "-q", "-o", out).returncode == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
