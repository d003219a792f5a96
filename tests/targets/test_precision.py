"""convert_precision: edgecc's quantiser only, its failures reported as they are (no silent fallback to another quantiser)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnx
import pytest

from edgecc import quantization
from edgecc.errors import UnsupportedError
from edgecc.quantization.scheme import QuantScheme
from edgecc.targets.precision import convert_precision
from tests.targets.helpers import mixed_model


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> tuple[onnx.ModelProto, list[dict[str, np.ndarray]]]:
    model = onnx.load(mixed_model(tmp_path_factory.mktemp("p") / "mixed.onnx"))
    model.graph.name = "p0_rec-npu"
    rng = np.random.default_rng(0)
    return model, [{"x": rng.standard_normal((1, 3, 96, 96)).astype(np.float32)} for _ in range(2)]


def _failing(exc: Exception) -> Any:
    def quantize_model(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return quantize_model


def test_an_edgecc_error_of_the_quantiser_propagates_unchanged(partition: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    model, feeds = partition
    error = UnsupportedError("the quantiser cannot handle it")
    monkeypatch.setattr(quantization, "quantize_model", _failing(error))
    with pytest.raises(UnsupportedError) as info:
        convert_precision(model, "int8", QuantScheme(), feeds)
    assert info.value is error and info.value.exit_code == 4


def test_any_other_quantiser_exception_stays_a_visible_bug_naming_the_partition(
    partition: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, feeds = partition
    monkeypatch.setattr(quantization, "quantize_model", _failing(ZeroDivisionError("scale of 0")))
    with pytest.raises(ZeroDivisionError, match="scale of 0") as info:
        convert_precision(model, "int8", QuantScheme(), feeds)
    assert any("partition 'p0_rec-npu'" in note for note in getattr(info.value, "__notes__", []))


def test_quantising_uses_edgeccs_quantiser_and_leaves_the_root_logger_alone(partition: tuple) -> None:
    model, feeds = partition
    root = logging.getLogger()
    before = root.level
    quantized = convert_precision(model, "int8", QuantScheme(), feeds)
    assert root.level == before
    stamp = {p.key: p.value for p in quantized.metadata_props}["edgecc.precision_converter"]
    assert stamp == "edgecc.quantization.quantize_model (minmax, QDQ)"
