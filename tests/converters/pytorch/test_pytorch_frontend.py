"""End-to-end tests of the PyTorch frontend through the installed `edgecc` entry point, checked against torch."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tests.conftest import SAMPLES, Scratch, assert_clean_failure, run_edgecc
from tests.converters.pytorch import nets
from tests.zips import corrupt_deflate, unknown_compression

NETS = Path(nets.__file__)


def _ort(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _assert_close(got: np.ndarray, want: np.ndarray, rel: float = 1e-4) -> None:
    span = max(float(want.max() - want.min()), 1e-6)
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= rel * span, float(np.abs(got - want).max())


def _only_file(directory: Path, expected: set[str]) -> None:
    assert {p.name for p in directory.iterdir()} == expected


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A TorchScript archive, a torch.export program and a state dict of the same ConvNet."""
    root = tmp_path_factory.mktemp("torch_artefacts")
    net = nets.conv_net()
    example = torch.randn(1, 3, 16, 16)
    torch.jit.trace(net, example).save(str(root / "net_ts.pt"))
    torch.export.save(torch.export.export(net, (example,)), str(root / "net.pt2"))
    torch.save(net.state_dict(), str(root / "net_state.pth"))
    return {"torchscript": root / "net_ts.pt", "program": root / "net.pt2", "state": root / "net_state.pth"}


def test_torchscript_archive_converts_and_matches_torch(artefacts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ts.onnx"
    result = run_edgecc("convert", artefacts["torchscript"], "--input", "x:1x3x16x16", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["frontend"] == "pytorch" and report["opset"] == 17
    assert report["verification"]["passed"] is True
    assert report["verification"]["outputs"][0]["max_abs"] <= 1e-4
    _only_file(tmp_path, {"ts.onnx"})  # one self-contained file, no stray .data
    x = np.random.default_rng(7).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = nets.conv_net()(torch.from_numpy(x)).numpy()
    _assert_close(_ort(out, {"x": x})[0], want)


def test_exported_program_converts_without_input_shapes(artefacts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ep.onnx"
    result = run_edgecc("convert", artefacts["program"], "-o", out)
    assert result.returncode == 0, result.stderr
    assert "verification" in result.stderr and "ok" in result.stderr
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == ["x"]
    assert model.opset_import[0].version == 17
    _only_file(tmp_path, {"ep.onnx"})
    x = np.random.default_rng(8).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = nets.conv_net()(torch.from_numpy(x)).numpy()
    _assert_close(_ort(out, {"x": x})[0], want)


def test_factory_with_dynamic_batch_and_dict_outputs(tmp_path: Path) -> None:
    out = tmp_path / "heads.onnx"
    result = run_edgecc("convert", f"{NETS}:two_heads", "--input", "x:Nx3x8x8", "-o", out, "--opset", "18")
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["scores", "features"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    x = np.random.default_rng(3).standard_normal((3, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = nets.two_heads()(torch.from_numpy(x))
    scores, features = _ort(out, {"x": x})
    _assert_close(scores, want["scores"].numpy())
    _assert_close(features, want["features"].numpy())


def test_real_resnet20_checkpoint_matches_original_outputs(tmp_path: Path) -> None:
    """A real CIFAR-10 ResNet-20 checkpoint (`module.` prefixes, no num_batches_tracked) against the project's reference."""
    model_dir = SAMPLES / "models" / "resnet20_cifar10"
    ref = np.load(model_dir / "ref" / "cat_32x32.npz")
    np.save(tmp_path / "cat.npy", ref["in__input"])
    out = tmp_path / "resnet20.onnx"
    result = run_edgecc(
        "convert",
        f"{SAMPLES / 'pytorch' / 'resnet20.py'}:resnet20",
        model_dir / "resnet20-12fca82f.th",
        "--input",
        "input:1x3x32x32",
        "--data",
        f"input={tmp_path / 'cat.npy'}",
        "-o",
        out,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert result.json()["verification"]["outputs"][0]["top1"] == 1.0
    (logits,) = _ort(out, {"input": ref["in__input"]})
    _assert_close(logits, ref["out__logits"])
    assert int(logits.argmax()) == int(ref["out__logits"].argmax()) == 3  # CIFAR-10 class 3 is "cat"


def test_real_pnet_state_dict_matches_original_outputs(tmp_path: Path) -> None:
    model_dir = SAMPLES / "models" / "facenet_pnet"
    ref = np.load(model_dir / "ref" / "face_resized.npz")
    out = tmp_path / "pnet.onnx"
    result = run_edgecc(
        "convert", f"{SAMPLES / 'pytorch' / 'pnet.py'}:pnet", model_dir / "pnet.pt", "--input", "input:1x3x12x12", "-o", out
    )
    assert result.returncode == 0, result.stderr
    boxes, probabilities = _ort(out, {"input": ref["in__input"]})
    _assert_close(boxes, ref["out__out0"])
    _assert_close(probabilities, ref["out__out1"])


def test_conversion_is_deterministic(artefacts: dict[str, Path], tmp_path: Path) -> None:
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    for out in (first, second):
        result = run_edgecc("convert", artefacts["program"], "-o", out, "--no-verify")
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()


def test_state_dict_alone_asks_for_an_architecture(artefacts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    result = run_edgecc("convert", artefacts["state"], "-o", out)
    assert result.returncode == 2
    assert "state dict" in result.stderr and "architecture" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_state_dict_is_used_with_an_architecture(artefacts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "net.onnx"
    result = run_edgecc("convert", f"{NETS}:ConvNet", artefacts["state"], "--input", "x:1x3x16x16", "-o", out)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(9).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = nets.conv_net()(torch.from_numpy(x)).numpy()
    _assert_close(_ort(out, {"x": x})[0], want)


def test_weights_that_do_not_fit_are_invalid_input(artefacts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    result = run_edgecc("convert", f"{NETS}:two_heads", artefacts["state"], "--input", "x:1x3x8x8", "-o", out)
    assert result.returncode == 3
    assert (
        "do not fit" in result.stderr
        and "missing 2 (body.bias, body.weight)" in result.stderr
        and "unexpected 16" in result.stderr
    )
    assert not out.exists()


class _WritesAFile:
    """Unpickling this object creates a file: proof that a loader unpickled arbitrary data."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


def test_pickled_objects_in_weights_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _WritesAFile(marker)}, str(evil), pickle_module=pickle)
    out = tmp_path / "x.onnx"
    result = run_edgecc("convert", f"{NETS}:ConvNet", evil, "--input", "x:1x3x16x16", "-o", out)
    assert result.returncode == 3
    assert "weights_only" in result.stderr
    assert not marker.exists()
    assert not out.exists()


def test_torchscript_without_shapes_is_a_usage_error(artefacts: dict[str, Path], tmp_path: Path) -> None:
    result = run_edgecc("convert", artefacts["torchscript"], "-o", tmp_path / "x.onnx")
    assert result.returncode == 2
    assert "--input" in result.stderr and "x" in result.stderr


def test_numerics_failure_exits_5_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "noisy.onnx"
    out.write_bytes(b"previous content")
    result = run_edgecc("convert", f"{NETS}:noisy", "--input", "x:1x64", "-o", out)
    assert result.returncode == 5, result.stderr
    assert "beyond tolerance" in result.stderr
    assert out.read_bytes() == b"previous content"
    assert {p.name for p in tmp_path.iterdir()} == {"noisy.onnx"}


def test_unsupported_operators_are_all_listed(tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    result = run_edgecc("convert", f"{NETS}:special_functions", "--input", "x:4", "-o", out)
    assert result.returncode == 4, result.stderr
    assert "bessel_j0" in result.stderr and "bessel_j1" in result.stderr
    # one error line (besides the warning that a factory without a weights file keeps its initial weights)
    assert [line for line in result.stderr.strip().splitlines() if "WARNING" not in line] == [
        result.stderr.strip().splitlines()[-1]
    ]
    assert not out.exists()


def test_factory_returning_a_non_module_is_a_usage_error(tmp_path: Path) -> None:
    result = run_edgecc("convert", f"{NETS}:not_a_module", "--input", "x:1", "-o", tmp_path / "x.onnx")
    assert result.returncode == 2
    assert "nn.Module" in result.stderr


def test_inspect_state_dict_and_torchscript(artefacts: dict[str, Path]) -> None:
    state = run_edgecc("inspect", artefacts["state"], "--json")
    assert state.returncode == 0, state.stderr
    details = state.json()["details"]
    expected = sum(t.numel() for t in nets.conv_net().state_dict().values())
    assert details["parameters"] == expected
    script = run_edgecc("inspect", artefacts["torchscript"], "--input", "x:1x3x16x16", "--json")
    assert script.returncode == 0, script.stderr
    info = script.json()
    assert info["inputs"] == [{"name": "x", "shape": [1, 3, 16, 16], "dtype": "float32"}]
    # MACs of the two 3x3 convs on 16x16 and the 512->5 linear layer
    assert info["macs"] == 16 * 16 * 8 * (3 * 9) + 16 * 16 * 8 * (8 * 9) + 512 * 5


def test_exported_program_rejects_conflicting_input_shapes(artefacts: dict[str, Path], tmp_path: Path) -> None:
    result = run_edgecc("convert", artefacts["program"], "--input", "x:2x3x16x16", "-o", tmp_path / "x.onnx")
    assert result.returncode == 2
    assert "exported for input x:1x3x16x16" in result.stderr


def test_verify_compares_a_torch_program_with_its_onnx(artefacts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ep.onnx"
    assert run_edgecc("convert", artefacts["program"], "-o", out, "--no-verify").returncode == 0
    result = run_edgecc("verify", artefacts["program"], out, "--samples", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["samples"] == 3 and report["outputs"][0]["max_abs"] < 1e-4


def test_wrong_rank_input_for_torchscript_names_the_input_and_the_rank(artefacts: dict[str, Path], scratch: Scratch) -> None:
    out = scratch.files / "x.onnx"
    result = scratch.run("convert", artefacts["torchscript"], "--input", "x:1x3x16", "-o", out)
    line = assert_clean_failure(result, 2, "net_ts.pt", "x:1x3x16")
    assert "4-dimensional" in line  # the rank the model wanted
    assert not out.exists()
    scratch.assert_nothing_left()


def _rezip(source: Path, out: Path, change) -> Path:
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info))
            if data is not None:
                new.writestr(info.filename, data)
    return out


@pytest.mark.parametrize("damage", ["corrupt-deflate", "unknown-compression", "missing-weight", "bit-flip"])
def test_corrupt_exported_program_is_one_clean_line(artefacts: dict[str, Path], scratch: Scratch, damage: str) -> None:
    """zlib.error / NotImplementedError were exit 1; a missing weight made torch's logger print a traceback."""
    bad = scratch.files / "bad.pt2"
    weight = "net/data/weights/weight_8"
    if damage == "missing-weight":
        _rezip(artefacts["program"], bad, lambda name, data: None if name == weight else data)
    elif damage == "bit-flip":
        _rezip(artefacts["program"], bad, lambda name, data: data)
        raw = bytearray(bad.read_bytes())
        with __import__("zipfile").ZipFile(bad) as archive:
            info = archive.getinfo(weight)
        at = info.header_offset + 30 + len(weight) + 10
        raw[at] ^= 0xFF  # inside the deflated data: a CRC mismatch or an invalid stream
        bad.write_bytes(bytes(raw))
    else:
        _rezip(artefacts["program"], bad, lambda name, data: data)
        (corrupt_deflate if damage == "corrupt-deflate" else unknown_compression)(bad, weight)
    before = scratch.snapshot()
    result = scratch.run("convert", bad, "-o", scratch.files / "out.onnx")
    line = assert_clean_failure(result, 3, "bad.pt2")
    assert "W1" not in result.stderr and "Ran into" not in result.stderr  # no logger output
    if damage != "bit-flip":
        assert weight.split("/", 1)[1] in line or "weight_8" in line or "corrupt" in line
    assert scratch.snapshot() == before
    scratch.assert_nothing_left()


def test_torch_export_load_keeps_inductor_cache_out_of_tmpdir(monkeypatch, tmp_path):
    # torch.export.load may create $TMPDIR/torchinductor_<user> (seen under load in the hostile-input test above):
    # during the load the cache is a temporary folder edgecc removes after; a user's own choice is kept
    import os

    from edgecc.converters.pytorch.reader import _inductor_cache_in_scratch

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    with _inductor_cache_in_scratch():
        folder = os.environ["TORCHINDUCTOR_CACHE_DIR"]
        os.makedirs(os.path.join(folder, "made_by_torch"))
    assert not os.path.exists(folder) and "TORCHINDUCTOR_CACHE_DIR" not in os.environ
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    with _inductor_cache_in_scratch():
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)
