"""Conversion checks of integer TFLite models on hosts where onnxruntime's int8 kernels are a float emulation
(`EDGECC_ORT_INT8=reference`, as on x86 CPUs without VNNI): the steps rule gives way to the int8 preset, said in a
note; exact kernels keep the steps rule; a caller's criteria are kept as given."""

from __future__ import annotations

import pytest

from edgecc.pipeline.convert import ConvertOptions, convert, verify_conversion
from edgecc.verify import TOLERANCE_PRESETS


@pytest.mark.parametrize("mode", ["reference", "fused"])
def test_integer_outputs_are_judged_by_how_onnxruntime_runs_int8(cnn_tflite, monkeypatch, mode):
    monkeypatch.setenv("EDGECC_ORT_INT8", mode)
    conversion = convert([str(cnn_tflite["int8"])], ConvertOptions())
    report = verify_conversion(conversion)
    assert report.passed, report.to_dict()
    emulated = any("float emulation" in note for note in report.notes)
    if mode == "reference":
        assert emulated and report.tolerance == TOLERANCE_PRESETS["int8"]
    else:
        assert not emulated and report.tolerance.max_steps == TOLERANCE_PRESETS["steps"].max_steps
    explicit = verify_conversion(conversion, TOLERANCE_PRESETS["steps"])
    assert not any("float emulation" in note for note in explicit.notes)
