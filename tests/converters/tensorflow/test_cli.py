"""End to end through the installed `edgecc` entry point (needs the frontend registered in edgecc.converters)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from tests.conftest import SAMPLES, run_edgecc
from tests.converters.tensorflow import nets

MODELS = SAMPLES / "models"
KWS = MODELS / "tf_kws_dnn_s" / "DNN_S.pb"
MOBILENET = MODELS / "tflite_mobilenet_v1_025_128_uint8" / "mobilenet_v1_0.25_128_quant.tflite"


def _props(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgecc: error:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_keras_cnn_converts_and_verifies(cnn_files, tmp_path):
    out = tmp_path / "cnn.onnx"
    result = run_edgecc("convert", cnn_files["keras"], "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert data["frontend"] == "tensorflow" and data["verification"]["passed"]
    props = _props(out)
    assert props["edgecc.frontend"] == "tensorflow" and "NHWC" in props["edgecc.input_layout"]


def test_int8_tflite_verified_in_quantised_steps(cnn_tflite, tmp_path):
    out = tmp_path / "q.onnx"
    result = run_edgecc("convert", cnn_tflite["int8"], "-o", out, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    (output,) = result.json()["verification"]["outputs"]
    assert output["max_abs"] <= 1.0
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_byte_identical_across_hash_seeds(cnn_tflite, tmp_path):
    outs = [tmp_path / "a.onnx", tmp_path / "b.onnx"]
    for seed, out in zip(("1", "2"), outs):
        result = run_edgecc("convert", cnn_tflite["int8"], "-o", out, "--no-verify", env={"PYTHONHASHSEED": seed})
        assert result.returncode == 0, result.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_mobilenet_uint8_with_reference_data(tmp_path):
    refs = sorted((MODELS / "tflite_mobilenet_v1_025_128_uint8" / "ref").glob("*.npz"))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for ref in refs:
        with np.load(ref) as arrays:
            np.savez(data_dir / ref.name, input=arrays["in__input"])
    out = tmp_path / "m.onnx"
    result = run_edgecc("convert", MOBILENET, "-o", out, "--data", data_dir, "--json")
    assert result.returncode == 0, result.stderr
    verification = result.json()["verification"]
    assert verification["samples"] == 3 and verification["outputs"][0]["max_abs"] <= 1.0


def test_unsupported_ops_listed_with_node_names(tmp_path):
    out = tmp_path / "kws.onnx"
    result = run_edgecc("convert", KWS, "-o", out)
    assert result.returncode == 4
    line = _one_error_line(result)
    for text in ("decoded_sample_data (DecodeWav)", "AudioSpectrogram (AudioSpectrogram)", "Mfcc (Mfcc)"):
        assert text in line
    assert not out.exists()


def test_graphdef_cut_at_input(tmp_path):
    out = tmp_path / "kws.onnx"
    result = run_edgecc("convert", KWS, "--input", "Reshape:0:1x250", "-o", out)
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == ["Reshape:0"]


def _bad_inputs(tmp_path, cnn_files):
    """name -> (path, words the message must hold)."""
    cases = {}
    for name, source, kind in (
        ("tflite", MOBILENET, "TFLite"),
        ("pb", KWS, "GraphDef"),
        ("h5", MODELS / "keras_gender_mini_xception" / "gender_mini_XCEPTION.21-0.95.hdf5", "HDF5"),
    ):
        path = tmp_path / f"truncated_{source.name}"
        path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        cases[name] = (path, kind)
    saved = tmp_path / "novars"
    shutil.copytree(cnn_files["saved"], saved)
    shutil.rmtree(saved / "variables")
    cases["saved"] = (saved, "SavedModel")
    return cases


@pytest.mark.parametrize("case", ["tflite", "pb", "h5", "saved", "missing_shard", "short_shard"])
def test_bad_input_exit_3(case, tmp_path, cnn_files):
    if case in ("missing_shard", "short_shard"):
        import keras

        model_json = nets.write_tfjs_layers(keras.models.load_model(cnn_files["keras"], compile=False), tmp_path / "js")
        shard = tmp_path / "js" / json.loads(model_json.read_text())["weightsManifest"][0]["paths"][0]
        if case == "missing_shard":
            shard.unlink()
        else:
            shard.write_bytes(shard.read_bytes()[:-8])
        path, words = model_json, "shard"
    else:
        path, words = _bad_inputs(tmp_path, cnn_files)[case]
    out = tmp_path / "out.onnx"
    result = run_edgecc("convert", path, "-o", out)
    assert result.returncode == 3, result.stderr
    line = _one_error_line(result)
    assert words in line and str(path) in line
    assert not out.exists()


def test_inspect_tflite_int8():
    result = run_edgecc("inspect", MODELS / "tflite_hello_world_int8" / "hello_world_int8.tflite", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert data["inputs"][0]["dtype"] == "int8"


def test_signature_nchw_and_dequantize_options(custom_saved, cnn_files, cnn_tflite, tmp_path):
    """The TensorFlow options (--signature, --nchw-inputs, --dequantize) requested for the shared CLI."""
    out = tmp_path / "s.onnx"
    result = run_edgecc("convert", custom_saved, "--signature", "scaled", "-o", out)
    assert result.returncode == 0, result.stderr
    assert sorted(i.name for i in onnx.load(str(out)).graph.input) == ["a", "b"]
    result = run_edgecc("convert", cnn_files["h5"], "--nchw-inputs", "image", "-o", out)
    assert result.returncode == 0, result.stderr
    assert [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim][1:] == [3, 16, 16]
    assert _props(out)["edgecc.input_layout"].startswith("image=NCHW")
    result = run_edgecc("convert", cnn_tflite["int8"], "--dequantize", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "DequantizeLinear" not in {n.op_type for n in onnx.load(str(out)).graph.node}
