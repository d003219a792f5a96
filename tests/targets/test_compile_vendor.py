"""Compile API for vendor-compiled targets: emit options and reports, prefix-only mapping, calibration demands, QDQ kept."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from edgecc.errors import InvalidInputError, UsageError
from edgecc.pipeline.compile import CompileOptions, compile_model
from edgecc.targets import get_target
from edgecc.targets.api import EmitOptions, Emitted, Target
from edgecc.targets.plan import check_support
from edgecc.targets.precision import convert_precision, is_quantized
from tests.targets.helpers import mixed_model


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    return onnx.load(mixed_model(tmp_path_factory.mktemp("m") / "mixed.onnx"))


class _RecordingTarget(Target):
    """hisilicon-npu's tables, emitting its usual artifact plus a report, and recording the options it was given."""

    seen: list[EmitOptions]

    def emit(
        self, model: Any, precision: str, directory: Path, stem: str, calibration: Any, options: EmitOptions | None = None
    ) -> Emitted:
        files = super().emit(model, precision, directory, stem, calibration, options).files
        assert options is not None
        self.seen.append(options)
        return Emitted(
            list(files),
            {
                "summary": f"{stem}: {len(options.feeds)} feeds",
                "conversions": [{"tensor": model.graph.input[0].name, "from_dtype": "float32", "to_dtype": "float32"}],
            },
        )


def _recording(**changes: Any) -> _RecordingTarget:
    base = get_target("hisilicon-npu")
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    fields.update(name="rec-npu", **changes)
    target = _RecordingTarget(**fields)
    target.seen = []
    return target


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bundles name their devices; the runtime finds 'rec-npu' in the target registry like a plug-in."""
    from edgecc.targets import load_targets

    monkeypatch.setitem(load_targets()._entries, "rec-npu", _recording())


def test_emit_options_and_vendor_report_reach_the_manifest(mixed: onnx.ModelProto, tmp_path: Path) -> None:
    target = _recording()
    out = tmp_path / "b.edgecc"
    options = CompileOptions(samples=3, vendor_compile=False, vendor_options={"memory-mode": "Shared_Sram"})
    result = compile_model(mixed, target, str(out), options=options, path="mixed.onnx")
    assert result.manifest["verification"]["passed"]
    npu_parts = [p for p in result.manifest["partitions"] if p["device"] == "rec-npu"]
    assert npu_parts and len(target.seen) == len(npu_parts)
    for seen, part in zip(target.seen, npu_parts):
        assert seen.vendor_compile is False and seen.vendor_options == {"memory-mode": "Shared_Sram"}
        assert len(seen.feeds) == 3 and set(seen.feeds[0]) == {t["name"] for t in part["inputs"]}
        assert part["vendor"]["summary"].endswith("3 feeds") and part["conversions"][0]["to_dtype"] == "float32"
    written = json.loads((out / "manifest.json").read_text())
    assert written["partitions"] == result.manifest["partitions"]


def test_prefix_only_target_maps_nothing_after_the_first_unsupported_node(mixed: onnx.ModelProto) -> None:
    graph, plain = check_support(mixed, _recording())
    _, prefix = check_support(mixed, _recording(maps_prefix_only=True))
    first = next(i for i, v in enumerate(plain) if not v.supported)
    assert graph.views[first].op_type == "Erf"
    assert [v.supported for v in prefix[: first + 1]] == [v.supported for v in plain[: first + 1]]
    assert any(v.supported for v in plain[first + 1 :]), "the model has supported nodes after Erf"
    for verdict in prefix[first + 1 :]:
        assert not verdict.supported and f"after '{graph.views[first].name}' (Erf)" in verdict.reason


def test_requires_calibration_refuses_a_float_model_without_data(mixed: onnx.ModelProto, tmp_path: Path) -> None:
    target = _recording(requires_calibration=True)
    out = tmp_path / "b.edgecc"
    with pytest.raises(InvalidInputError, match="calibration") as info:
        compile_model(mixed, target, str(out), options=CompileOptions(), path="mixed.onnx")
    assert "--calibration" in info.value.one_line() and info.value.exit_code == 3
    assert not out.exists()
    rng = np.random.default_rng(0)
    data = [{"x": rng.standard_normal((1, 3, 96, 96)).astype(np.float32)} for _ in range(2)]
    assert compile_model(mixed, target, str(out), options=CompileOptions(), path="mixed.onnx", calibration=data).manifest[
        "verification"
    ]["passed"]


def test_already_quantised_partition_keeps_its_scales(mixed: onnx.ModelProto) -> None:
    from edgecc.quantization.scheme import QuantScheme

    rng = np.random.default_rng(1)
    data = [{"x": rng.standard_normal((1, 3, 96, 96)).astype(np.float32)} for _ in range(2)]
    qdq = convert_precision(mixed, "int8", QuantScheme(), data)
    assert is_quantized(qdq) and not is_quantized(mixed)
    scales = [(i.name, i.raw_data) for i in qdq.graph.initializer if "scale" in i.name]
    kept = convert_precision(qdq, "int8", QuantScheme(activation_type="int8"), [])
    assert [(i.name, i.raw_data) for i in kept.graph.initializer if "scale" in i.name] == scales
    assert [n.op_type for n in kept.graph.node] == [n.op_type for n in qdq.graph.node]


def test_vendor_option_parsing() -> None:
    from edgecc.commands.compile import parse_vendor_options

    assert parse_vendor_options(("a=1", " b = x=y ")) == {"a": "1", "b": "x=y"}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_vendor_options(("novalue",))


def test_vendor_cpu_fallback_lands_in_the_placement_report(mixed: onnx.ModelProto, tmp_path: Path) -> None:
    """A vendor compiler's CPU-fallback entry (Vela names the operator by its output tensor) marks that node."""

    class _FallbackTarget(_RecordingTarget):
        def emit(
            self, model: Any, precision: str, directory: Path, stem: str, calibration: Any, options: EmitOptions | None = None
        ) -> Emitted:
            emitted = super().emit(model, precision, directory, stem, calibration, options)
            conv = next(n for n in model.graph.node if n.op_type == "Conv")
            emitted.info["cpu_fallback"] = [{"op": "CONV_2D", "tensor": conv.output[0], "reason": "too many weights", "rule": ""}]
            return emitted

    base = _recording()
    target = _FallbackTarget(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    target.seen = []
    result = compile_model(mixed, target, str(tmp_path / "b.edgecc"), options=CompileOptions(), path="mixed.onnx")
    marked = [p for p in result.manifest["placement"] if p.get("vendor_fallback")]
    npu_parts = [p for p in result.manifest["partitions"] if p["device"] == "rec-npu"]
    assert len(marked) == len(npu_parts) and all(p["op_type"] == "Conv" and p["device"] == "rec-npu" for p in marked)
    assert marked[0]["vendor_fallback"] == "CONV_2D left on the CPU by the vendor compiler: too many weights"
