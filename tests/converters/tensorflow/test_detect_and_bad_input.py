"""Content-based detection, and broken files: each a one-line InvalidInputError naming the format tried."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgecc.converters import tensorflow as frontend
from edgecc.converters.tensorflow import schema
from edgecc.errors import InvalidInputError
from tests.conftest import REPO, SAMPLES, Scratch, assert_clean_failure, make_conv_onnx
from tests.converters.tensorflow.helpers import TFOptions
from tests.zips import corrupt_deflate, unknown_compression

KWS = SAMPLES / "models" / "tf_kws_dnn_s" / "DNN_S.pb"
HELLO = SAMPLES / "models" / "tflite_hello_world_int8" / "hello_world_int8.tflite"
GENDER = SAMPLES / "models" / "keras_gender_mini_xception" / "gender_mini_XCEPTION.21-0.95.hdf5"


def _copy_as(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    return target


def test_formats_detected_from_content_not_suffix(tmp_path, cnn_files):
    assert schema.sniff(str(_copy_as(HELLO, tmp_path / "a.bin"))) == schema.TFLITE
    assert schema.sniff(str(_copy_as(GENDER, tmp_path / "b.model"))) == schema.KERAS_H5
    assert schema.sniff(str(_copy_as(KWS, tmp_path / "c.bin"))) == schema.GRAPHDEF
    assert schema.sniff(str(_copy_as(cnn_files["keras"], tmp_path / "d.zip"))) == schema.KERAS
    assert schema.sniff(str(cnn_files["saved"])) == schema.SAVED_MODEL
    assert schema.sniff(str(cnn_files["saved"] / "saved_model.pb")) == schema.SAVED_MODEL


def test_foreign_files_are_not_claimed(tmp_path):
    onnx_path = tmp_path / "m.pb"
    make_conv_onnx(onnx_path)
    assert not frontend.detect([str(onnx_path)])
    (tmp_path / "x.json").write_text('{"nodes": [], "arg_nodes": []}')  # an MXNet symbol
    assert not frontend.detect([str(tmp_path / "x.json")])
    (tmp_path / "t.txt").write_text("hello")
    assert not frontend.detect([str(tmp_path / "t.txt")])


def test_caffe2_netdef_is_not_a_graphdef():
    """A Caffe2 NetDef is also a .pb protobuf: the wire walk tells them apart."""
    from edgecc.converters.caffe2 import schema as caffe2_schema

    net = caffe2_schema.NetDef()
    net.name = "lenet"
    op = net.op.add()
    op.type, op.name = "Conv", "conv1"
    op.input.extend(["data", "conv1_w"])
    op.output.append("conv1")
    net.external_input.append("data")
    data = net.SerializeToString()
    assert not schema.looks_like_graphdef(data, complete=True)
    assert not schema.looks_like_graphdef(data[: len(data) // 2], complete=False)
    assert schema.looks_like_graphdef(KWS.read_bytes(), complete=True)


def test_detect_does_not_import_tensorflow(cnn_files):
    code = (
        "import sys; from edgecc.converters import tensorflow as t; "
        f"assert t.detect([{str(KWS)!r}]) and t.detect([{str(HELLO)!r}]) and t.detect([{str(cnn_files['saved'])!r}]); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize(
    ("source", "fraction", "kind"),
    [(HELLO, 0.5, "TFLite flatbuffer"), (KWS, 0.5, "TensorFlow frozen GraphDef"), (GENDER, 0.3, "Keras HDF5")],
)
def test_truncated_files(tmp_path, source, fraction, kind):
    path = tmp_path / source.name
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    assert frontend.detect([str(path)])
    frontend._load.cache_clear()
    with pytest.raises(InvalidInputError) as info:
        frontend.convert([str(path)], TFOptions())
    text = info.value.one_line()
    assert kind in text and str(path) in text and "\n" not in text


def test_saved_model_without_variables(tmp_path, cnn_files):
    broken = tmp_path / "saved"
    shutil.copytree(cnn_files["saved"], broken)
    shutil.rmtree(broken / "variables")
    frontend._load.cache_clear()
    with pytest.raises(InvalidInputError, match="TensorFlow SavedModel"):
        frontend.convert([str(broken)], TFOptions())


def test_input_conflicting_with_a_fixed_placeholder_is_a_usage_error(tmp_path):
    """A frozen graph's fixed placeholder shape cannot be changed with --input: exit 2, no output."""
    from tests.conftest import SAMPLES, run_edgecc

    pb = SAMPLES / "models" / "tf_kws_dnn_s" / "DNN_S.pb"
    out = tmp_path / "x.onnx"
    result = run_edgecc("convert", pb, "--input", "Reshape:0:2x250", "--output", "labels_softmax:0", "-o", out)
    assert result.returncode == 2, result.stderr
    assert "fixed to 1x250" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("damage", ["corrupt-deflate", "unknown-compression"])
def test_keras_archive_with_broken_compression(cnn_files, scratch: Scratch, damage):
    """zlib.error / NotImplementedError from the member check were internal errors (exit 1)."""
    import zipfile

    bad = _copy_as(cnn_files["keras"], scratch.files / "broken.keras")
    with zipfile.ZipFile(bad) as archive:
        member = max(archive.infolist(), key=lambda i: i.compress_size if i.compress_type == zipfile.ZIP_DEFLATED else -1)
    if member.compress_type != zipfile.ZIP_DEFLATED:  # Keras stores members: deflate them so they can be corrupted
        with zipfile.ZipFile(cnn_files["keras"]) as old, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as new:
            for info in old.infolist():
                new.writestr(info.filename, old.read(info))
        with zipfile.ZipFile(bad) as archive:
            member = max(archive.infolist(), key=lambda i: i.compress_size)
    (corrupt_deflate if damage == "corrupt-deflate" else unknown_compression)(bad, member.filename)
    before = scratch.snapshot()
    line = assert_clean_failure(scratch.run("convert", bad, "-o", scratch.files / "out.onnx"), 3, "broken.keras")
    assert ("corrupt" if damage == "corrupt-deflate" else "unsupported compression") in line
    assert scratch.snapshot() == before
    scratch.assert_nothing_left()
