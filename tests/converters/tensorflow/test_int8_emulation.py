"""Conversion checks of integer TFLite models on hosts where onnxruntime's int8 kernels are a float emulation
(`EDGECC_ORT_INT8=reference`, as on x86 CPUs without VNNI): the steps rule gives way to the int8 preset, said in a
note; exact kernels keep the steps rule; a caller's criteria are kept as given. The bound tells a conversion that is
off apart from the emulation's own rounding: the same test graph with one weight channel scaled fails it."""

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
        assert emulated and report.tolerance == TOLERANCE_PRESETS["emulated_integer"]
    else:
        assert not emulated and report.tolerance.max_steps == TOLERANCE_PRESETS["steps"].max_steps
    explicit = verify_conversion(conversion, TOLERANCE_PRESETS["steps"])
    assert not any("float emulation" in note for note in explicit.notes)


def test_the_emulated_bound_still_fails_wrong_weight_channels(cnn_tflite, monkeypatch):
    import dataclasses

    from onnx import helper, numpy_helper

    monkeypatch.setenv("EDGECC_ORT_INT8", "reference")
    conversion = convert([str(cnn_tflite["int8"])], ConvertOptions())
    bad = conversion.verifiable_model.__deepcopy__()
    initializers = {t.name: t for t in bad.graph.initializer}
    per_channel = [
        n
        for n in bad.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in initializers
        and initializers[n.input[0]].data_type == 3  # int8 weights
        and numpy_helper.to_array(initializers[n.input[1]]).size > 1  # per-channel scales
    ]
    last = per_channel[-1]  # the classifier: its output channels are the classes
    axis = next((helper.get_attribute_value(a) for a in last.attribute if a.name == "axis"), 1)
    for name, along in ((last.input[0], axis), (last.input[1], 0)):  # the channels in reverse order, scales with them
        tensor = initializers[name]
        tensor.CopyFrom(
            numpy_helper.from_array(
                numpy_helper.to_array(tensor)[::-1].copy()
                if along == 0
                else numpy_helper.to_array(tensor).swapaxes(0, along)[::-1].swapaxes(0, along).copy(),
                name,
            )
        )
    report = verify_conversion(dataclasses.replace(conversion, verifiable_model=bad))
    assert not report.passed, report.to_dict()
    assert report.tolerance == TOLERANCE_PRESETS["emulated_integer"]
