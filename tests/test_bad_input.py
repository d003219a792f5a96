"""Every command fed broken files: the right exit code, one clean error line naming the file, nothing written."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import Result, make_conv_onnx, run_edgecc

KNOWN_OUTPUT = b"previous output, must survive a failed run\n"

# --- bad files -------------------------------------------------------------------------------------


def _png_bytes() -> bytes:
    """A real 1x1 grey PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x80")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _torchscript_like_zip(path: Path) -> bytes:
    """A zip laid out like a TorchScript archive, written with zipfile."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("model/version", "3\n")
        archive.writestr("model/code/__torch__.py", "class Net(Module):\n    def forward(self, x):\n        return x\n" * 20)
        archive.writestr("model/data.pkl", bytes(range(256)) * 8)
        archive.writestr("model/constants.pkl", b"\x80\x02)." * 64)
    return path.read_bytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _link(path: Path, target: str | Path) -> Path:
    path.symlink_to(target)
    return path


def _link_loop(path: Path) -> Path:
    _link(path.with_name("other.onnx"), path.name)
    return _link(path, "other.onnx")


BAD_MODELS: dict[str, Callable[[Path], Path]] = {
    "empty": lambda d: _write(d / "empty.onnx", b""),
    "truncated-onnx": lambda d: _write(
        d / "truncated.onnx", make_conv_onnx().SerializeToString()[: len(make_conv_onnx().SerializeToString()) // 2]
    ),
    "garbage-onnx": lambda d: _write(d / "garbage.onnx", np.random.default_rng(1234).bytes(4096)),
    "png-onnx": lambda d: _write(d / "picture.onnx", _png_bytes()),
    "text-onnx": lambda d: _write(
        d / "notes.onnx", b'ir_version: 8\ngraph {\n  node { op_type: "Relu" input: "x" output: "y" }\n}\n'
    ),
    "png-unknown-suffix": lambda d: _write(d / "picture.dat", _png_bytes()),
    "text-unknown-suffix": lambda d: _write(d / "readme.txt", b"just some text, not a model\n" * 10),
    "device-onnx": lambda d: _link(d / "zero.onnx", "/dev/zero"),
    "device-unknown-suffix": lambda d: _link(d / "urandom", "/dev/urandom"),
    "symlink-loop": lambda d: _link_loop(d / "loop.onnx"),
    "truncated-pt": lambda d: _write(d / "scripted.pt", (lambda b: b[: len(b) // 2])(_torchscript_like_zip(d / "whole.zip"))),
}


def _corrupt_npz_not_zip(d: Path) -> Path:
    return _write(d / "notzip.npz", b"PK\x03\x04" + np.random.default_rng(5).bytes(200))


def _corrupt_npz_truncated(d: Path) -> Path:
    np.savez(d / "whole.npz", x=np.ones((1, 3, 16, 16), np.float32))
    data = (d / "whole.npz").read_bytes()
    (d / "whole.npz").unlink()
    return _write(d / "truncated.npz", data[: len(data) // 2])


def _corrupt_npz_bad_crc(d: Path) -> Path:
    np.savez(d / "whole.npz", x=np.ones((1, 3, 16, 16), np.float32))
    data = bytearray((d / "whole.npz").read_bytes())
    (d / "whole.npz").unlink()
    start = data.index(b"\x93NUMPY") + 256
    for i in range(start, start + 64):
        data[i] ^= 0xFF
    return _write(d / "badcrc.npz", bytes(data))


def _corrupt_npy_truncated(d: Path) -> Path:
    np.save(d / "whole.npy", np.ones((1, 3, 16, 16), np.float32))
    data = (d / "whole.npy").read_bytes()
    (d / "whole.npy").unlink()
    return _write(d / "truncated.npy", data[: len(data) // 2])


def _pickled_npy(d: Path) -> Path:
    np.save(d / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return d / "objects.npy"


def _npz_with_raw_member(d: Path) -> Path:
    """An .npz whose member 'x' is not an .npy array (numpy returns such members as bytes)."""
    with zipfile.ZipFile(d / "raw.npz", "w") as archive:
        archive.writestr("x", b"just bytes, no .npy header")
    return d / "raw.npz"


BAD_DATA: dict[str, Callable[[Path], Path]] = {
    "npz-member-not-npy": _npz_with_raw_member,
    "npz-not-a-zip": _corrupt_npz_not_zip,
    "npz-truncated": _corrupt_npz_truncated,
    "npz-bad-crc": _corrupt_npz_bad_crc,
    "npy-truncated": _corrupt_npy_truncated,
    "npy-pickled": _pickled_npy,
}


# --- checks ------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_clean_failure(result: Result, code: int, named: str) -> str:
    """Exit `code`, stderr exactly one `edgecc: error:` line naming `named`, no traceback, nothing on stdout."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, f"exit {result.returncode}, expected {code}: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgecc: error:"), lines[0]
    assert named in lines[0], f"the error does not name {named}: {lines[0]}"
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder with a good model `good.onnx` and an existing output `existing.onnx` of known content."""
    folder = tmp_path / "work"
    folder.mkdir()
    make_conv_onnx(folder / "good.onnx")
    (folder / "existing.onnx").write_bytes(KNOWN_OUTPUT)
    return folder


COMMANDS = ["convert-new", "convert-existing", "inspect", "verify-reference", "verify-candidate"]


def _run_command(command: str, bad: Path, work: Path, extra: tuple[str, ...] = ()) -> Result:
    good = work / "good.onnx"
    if command == "convert-new":
        return run_edgecc("convert", bad, "-o", work / "new.onnx", *extra)
    if command == "convert-existing":
        return run_edgecc("convert", bad, "-o", work / "existing.onnx", *extra)
    if command == "inspect":
        return run_edgecc("inspect", bad, *extra)
    if command == "verify-reference":
        return run_edgecc("verify", bad, good, *extra)
    if command == "verify-candidate":
        return run_edgecc("verify", good, bad, *extra)
    raise AssertionError(command)


# --- bad model files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_bad_model_file(kind, command, work):
    bad = BAD_MODELS[kind](work)
    before = _snapshot(work)
    result = _run_command(command, bad, work)
    _assert_clean_failure(result, 3, bad.name)
    # nothing created, nothing changed, no temporary file left behind
    assert _snapshot(work) == before
    assert (work / "existing.onnx").read_bytes() == KNOWN_OUTPUT
    assert not (work / "new.onnx").exists()


@pytest.mark.parametrize("kind", ["truncated-onnx", "png-unknown-suffix"])
def test_bad_model_file_json_error(kind, work):
    bad = BAD_MODELS[kind](work)
    result = run_edgecc("convert", bad, "-o", work / "existing.onnx", "--json")
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["error"]["exit_code"] == 3 and doc["error"]["kind"] == "invalid-input"
    assert bad.name in doc["error"]["message"]
    assert (work / "existing.onnx").read_bytes() == KNOWN_OUTPUT


def test_directory_as_model(work):
    folder = work / "model.onnx"
    folder.mkdir()
    for command in ("inspect", "verify-candidate", "convert-existing"):
        _assert_clean_failure(_run_command(command, folder, work), 3, "model.onnx")
    assert (work / "existing.onnx").read_bytes() == KNOWN_OUTPUT


# --- missing files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", ["missing.onnx", "missing.pt", "missing_model"])
def test_missing_model_file_is_usage_error(name, command, work):
    before = _snapshot(work)
    result = _run_command(command, work / name, work)
    _assert_clean_failure(result, 2, name)
    assert _snapshot(work) == before


@pytest.mark.parametrize("command", ["verify", "convert"])
def test_missing_data_file_is_usage_error(command, work):
    before = _snapshot(work)
    good = work / "good.onnx"
    if command == "verify":
        result = run_edgecc("verify", good, good, "--data", f"x={work / 'nope.npy'}")
    else:
        result = run_edgecc("convert", good, "-o", work / "existing.onnx", "--data", f"x={work / 'nope.npy'}")
    _assert_clean_failure(result, 2, "nope.npy")
    assert _snapshot(work) == before


def test_convert_into_missing_directory_is_usage_error(work):
    result = run_edgecc("convert", work / "good.onnx", "-o", work / "no" / "such" / "out.onnx", "-q")
    _assert_clean_failure(result, 2, "no")
    assert not (work / "no").exists()


# --- corrupt tensor data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["verify-named", "verify-nameless", "convert-named"])
@pytest.mark.parametrize("kind", list(BAD_DATA))
def test_corrupt_data_file(kind, form, work):
    bad = BAD_DATA[kind](work)
    before = _snapshot(work)
    good = work / "good.onnx"
    if form == "verify-named":
        result = run_edgecc("verify", good, good, "--data", f"x={bad}")
    elif form == "verify-nameless":
        result = run_edgecc("verify", good, good, "--data", str(bad))
    else:
        result = run_edgecc("convert", good, "-o", work / "existing.onnx", "--data", f"x={bad}")
    _assert_clean_failure(result, 3, bad.name)
    assert _snapshot(work) == before
    assert (work / "existing.onnx").read_bytes() == KNOWN_OUTPUT


def test_corrupt_file_inside_data_directory(work):
    folder = work / "samples"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    bad = _corrupt_npz_truncated(folder)
    good = work / "good.onnx"
    _assert_clean_failure(run_edgecc("verify", good, good, "--data", str(folder)), 3, bad.name)


# --- options ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["convert", "inspect"])
def test_unknown_framework_is_usage_error(command, work):
    good = work / "good.onnx"
    before = _snapshot(work)
    if command == "convert":
        result = run_edgecc("convert", good, "--framework", "caffe9", "-o", work / "existing.onnx")
    else:
        result = run_edgecc("inspect", good, "--framework", "caffe9")
    line = _assert_clean_failure(result, 2, "caffe9")
    assert "onnx" in line  # the known frameworks are listed
    assert _snapshot(work) == before


# --- operators onnxruntime cannot run ------------------------------------------------------------------------


def _custom_op_model(path: Path) -> Path:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu0"),
        helper.make_node("Foo", ["r"], ["y"], name="my_foo", domain="com.example"),
    ]
    graph = helper.make_graph(
        nodes,
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _relu_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu0")],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _det_double_model(path: Path) -> Path:
    """Det on float64: a standard operator with no onnxruntime CPU kernel for that type."""
    graph = helper.make_graph(
        [helper.make_node("Det", ["x"], ["y"], name="my_det")],
        "det",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("custom_first", [False, True])
def test_custom_domain_operator_is_unsupported(custom_first, work):
    custom = _custom_op_model(work / "custom.onnx")
    plain = _relu_model(work / "plain.onnx")
    args = (custom, plain) if custom_first else (plain, custom)
    line = _assert_clean_failure(run_edgecc("verify", *args), 4, "my_foo")
    assert "Foo" in line
    result = run_edgecc("verify", *args, "--json")
    assert result.returncode == 4
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["error"]["exit_code"] == 4
    assert [n["node"] for n in doc["error"]["nodes"]] == ["my_foo"]


def test_operator_without_cpu_kernel_is_unsupported(work):
    det = _det_double_model(work / "det.onnx")
    line = _assert_clean_failure(run_edgecc("verify", det, det), 4, "my_det")
    assert "Det" in line


@pytest.mark.parametrize("kind", ["device-onnx", "device-unknown-suffix"])
def test_device_as_model_is_not_a_regular_file(kind, work):
    """Inputs must be regular files: a link to /dev/zero is refused as such, never read (it would never end)."""
    bad = BAD_MODELS[kind](work)
    line = _assert_clean_failure(run_edgecc("convert", bad, "-o", work / "new.onnx", timeout=60), 3, bad.name)
    assert "not a regular file" in line
    assert not (work / "new.onnx").exists()


# --- absurd shapes: refused before anything is allocated -------------------------------------------------------


@pytest.mark.parametrize("command", ["convert", "verify"])
@pytest.mark.parametrize(
    "spec, code, words",
    [
        ("x:1x3x100000x100000", 2, ("112 GiB", "x:1x3x100000x100000")),
        ("x:1000000000x3x16x16", 2, ("2.8 TiB",)),
        ("x:99999999999999999999x3x16x16", 2, ("beyond the int64 range",)),
    ],
)
def test_absurd_input_dimensions_are_refused(command, spec, code, words, work):
    """Once a MemoryError or a protobuf ValueError (exit 1) after trying to allocate terabytes."""
    before = _snapshot(work)
    good = work / "good.onnx"
    if command == "convert":
        result = run_edgecc("convert", good, "--input", spec, "-o", work / "new.onnx", timeout=60)
    else:
        result = run_edgecc("verify", good, good, "--input", spec, timeout=60)
    line = _assert_clean_failure(result, code, words[0])
    assert all(word in line for word in words)
    assert _snapshot(work) == before


def test_model_declaring_an_absurd_static_input_gets_no_random_data(work):
    model = make_conv_onnx(batch=100000)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 100000
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 100000
    onnx.save(model, str(work / "huge.onnx"))
    line = _assert_clean_failure(run_edgecc("verify", work / "huge.onnx", work / "huge.onnx", timeout=60), 3, "'x'")
    assert "random data" in line and "PiB" in line
