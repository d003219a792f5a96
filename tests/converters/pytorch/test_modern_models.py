"""Modern PyTorch models through `edgecc convert`: small Hugging Face transformers, TorchScript with non-tensor
arguments and recurrent state, nested outputs, keyword-only inputs, wrong shapes; checked against torch itself
and onnxruntime."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tests.conftest import run_edgecc
from tests.converters.pytorch import nets

NETS = Path(nets.__file__)

# torchvision's PyPI wheel is a CUDA build whose detection operators cannot register beside CPU torch; transformers
# imports torchvision, so the generated factory skips that registration as conformance/site/sitecustomize.py does
_BERT_PY = """
import sys, types

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import torch
import transformers


def make():
    torch.manual_seed(0)
    config = transformers.{config}(**{kwargs!r})
    return transformers.{model}(config).eval()
"""

_MODELS = {
    "bert": (
        "BertConfig",
        "BertModel",
        dict(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
        ),
    ),
    "gpt2": (
        "GPT2Config",
        "GPT2LMHeadModel",
        dict(vocab_size=100, n_positions=32, n_embd=32, n_layer=1, n_head=2, use_cache=False, bos_token_id=99, eos_token_id=99),
    ),
}


def _factory(tmp_path: Path, key: str) -> Path:
    config, model, kwargs = _MODELS[key]
    path = tmp_path / f"{key}.py"
    path.write_text(_BERT_PY.format(config=config, model=model, kwargs=kwargs))
    return path


def _make(path: Path) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location(f"test_factory_{path.stem}_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.make()


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _close(got: np.ndarray, want: np.ndarray, rel: float = 1e-4) -> None:
    assert got.shape == want.shape
    span = max(float(want.max() - want.min()), 1e-6)
    assert float(np.abs(got - want).max()) <= rel * span


def test_bert_with_dynamic_batch_and_sequence_and_attention_mask(tmp_path: Path) -> None:
    factory = _factory(tmp_path, "bert")
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 100, size=(1, 8), dtype=np.int64)
    mask = np.ones((1, 8), dtype=np.int64)
    mask[0, 6:] = 0
    np.savez(tmp_path / "data.npz", input_ids=ids, attention_mask=mask)
    out = tmp_path / "bert.onnx"
    result = run_edgecc(
        "convert", f"{factory}:make", "--input", "input_ids:BxS:int64", "--input", "attention_mask:BxS:int64",
        "--data", tmp_path / "data.npz", "-o", out, "--json", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["verification"]["passed"] is True
    assert "dynamo" in report["exporter"]
    model = onnx.load(out)
    assert [o.name for o in model.graph.output] == ["last_hidden_state", "pooler_output"]
    assert "dynamo" in {p.key: p.value for p in model.metadata_props}["edgecc.pytorch_exporter"]
    torch_model = _make(factory)
    session = _session(out)
    for batch, seq in ((2, 5), (3, 11)):  # other shapes than the export's: the axes are dynamic
        ids = rng.integers(1, 100, size=(batch, seq), dtype=np.int64)
        mask = (np.arange(seq)[None, :] < rng.integers(1, seq + 1, size=(batch, 1))).astype(np.int64)
        with torch.no_grad():
            want = torch_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})
        _close(got[0], want.last_hidden_state.numpy())
        _close(got[1], want.pooler_output.numpy())


def test_gpt2_lm_head_through_the_python_api(tmp_path: Path) -> None:
    from edgecc.converters.options import ConvertOptions
    from edgecc.inputs import parse_input_specs
    from edgecc.pipeline.convert import convert, verify_conversion

    factory = _factory(tmp_path, "gpt2")
    options = ConvertOptions(inputs=parse_input_specs(["input_ids:1x12:int64"]), args={"return_dict": True})
    conversion = convert([f"{factory}:make"], options)
    assert [o.name for o in conversion.model.graph.output] == ["logits"]
    ids = np.random.default_rng(1).integers(0, 100, size=(1, 12), dtype=np.int64)
    report = verify_conversion(conversion, data=[{"input_ids": ids}])
    assert report is not None and report.passed
    with torch.no_grad():
        want = _make(factory)(input_ids=torch.from_numpy(ids)).logits.numpy()
    got = ort.InferenceSession(conversion.model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": ids}
    )[0]
    _close(got, want)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scripted")
    torch.jit.script(nets.rate_dependent()).save(str(root / "rate.pt"))
    torch.jit.script(nets.recurrent()).save(str(root / "recurrent.pt"))
    torch.jit.trace(nets.conv_net(), torch.randn(1, 3, 16, 16)).save(str(root / "conv.pt"))
    return {"rate": root / "rate.pt", "recurrent": root / "recurrent.pt", "conv": root / "conv.pt"}


@pytest.mark.parametrize("sr", [16000, 8000])
def test_scripted_module_with_an_int_argument(scripted: dict[str, Path], tmp_path: Path, sr: int) -> None:
    out = tmp_path / f"rate{sr}.onnx"
    result = run_edgecc("convert", scripted["rate"], "--input", "x:2x8", "--arg", f"sr={sr}", "-o", out)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(sr).standard_normal((2, 8)).astype(np.float32)
    with torch.no_grad():
        want = torch.jit.load(str(scripted["rate"]))(torch.from_numpy(x), sr).numpy()
    _close(_session(out).run(None, {"x": x})[0], want)


def test_missing_non_tensor_argument_is_a_usage_error_naming_it(scripted: dict[str, Path], tmp_path: Path) -> None:
    result = run_edgecc("convert", scripted["rate"], "--input", "x:2x8", "-o", tmp_path / "x.onnx")
    assert result.returncode == 2
    assert "sr (int)" in result.stderr and "--arg sr=" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_scripted_recurrent_state_in_and_out(scripted: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "recurrent.onnx"
    result = run_edgecc("convert", scripted["recurrent"], "--input", "x:1x4x6", "--input", "h:1x1x5", "-o", out)
    assert result.returncode == 0, result.stderr
    session = _session(out)
    assert [o.name for o in session.get_outputs()] == ["output_0", "output_1"]
    module = torch.jit.load(str(scripted["recurrent"]))
    rng = np.random.default_rng(9)
    h = np.zeros((1, 1, 5), dtype=np.float32)
    h_torch = torch.from_numpy(h)
    for _ in range(3):  # the state carried over steps agrees with torch's
        x = rng.standard_normal((1, 4, 6)).astype(np.float32)
        y, h = session.run(None, {"x": x, "h": h})
        with torch.no_grad():
            y_torch, h_torch = module(torch.from_numpy(x), h_torch)
        _close(y, y_torch.numpy())
        _close(h, h_torch.numpy())


def test_wrong_torchscript_shape_is_a_usage_error_on_one_line(scripted: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    result = run_edgecc("convert", scripted["conv"], "--input", "x:1x4x16x16", "-o", out)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "x:1x4x16x16" in line and "3 channels" in line and "--input" in line
    assert "Traceback" not in line and not out.exists()


def test_keyword_only_input_and_nested_dict_outputs(tmp_path: Path) -> None:
    out = tmp_path / "nested.onnx"
    result = run_edgecc(
        "convert", f"{NETS}:nested_outputs", "--input", "x:2x3x4", "--input", "mask:2x3", "--arg", "scale=0.5",
        "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    session = _session(out)
    assert [o.name for o in session.get_outputs()] == ["scores", "features_0", "features_1"]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    mask = (rng.random((2, 3)) > 0.3).astype(np.float32)
    with torch.no_grad():
        want = nets.nested_outputs()(torch.from_numpy(x), mask=torch.from_numpy(mask), scale=0.5)
    got = session.run(None, {"x": x, "mask": mask})
    _close(got[0], want["scores"].numpy())
    _close(got[1], want["features"][0].numpy())
    _close(got[2], want["features"][1].numpy())


class _Scaled(torch.nn.Module):
    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return x * n


def test_pt2_non_tensor_input_must_match_the_exported_value(tmp_path: Path) -> None:
    path = tmp_path / "scaled.pt2"
    torch.export.save(torch.export.export(_Scaled(), (torch.randn(2, 3), 3)), str(path))
    out = tmp_path / "scaled.onnx"
    result = run_edgecc("convert", path, "--arg", "n=3", "-o", out)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    with torch.no_grad():
        want = torch.export.load(str(path)).module()(torch.from_numpy(x), 3).numpy()
    _close(_session(out).run(None, {"x": x})[0], want)
    refused = run_edgecc("convert", path, "--arg", "n=4", "-o", tmp_path / "n4.onnx")
    assert refused.returncode == 2 and "n=3" in refused.stderr
