"""edgecc.logs: third-party noise kept off the terminal without touching the root logger; -q and --json stay clean."""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import pytest

from edgecc.logs import captured_records, native_stderr, quiet_loggers, quiet_root_records
from tests.conftest import make_conv_onnx, run_installed_edgecc


def test_quiet_root_records_drops_only_the_packages_records_and_leaves_the_root_logger_alone(caplog):
    import onnxruntime.quantization.quant_utils as ort_utils

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    foreign = logging.LogRecord("root", logging.WARNING, ort_utils.__file__, 1, "from onnxruntime", None, None)
    mine = logging.LogRecord("root", logging.WARNING, __file__, 1, "from elsewhere", None, None)
    severe = logging.LogRecord("root", logging.ERROR, ort_utils.__file__, 1, "onnxruntime error", None, None)
    with caplog.at_level(logging.WARNING), quiet_root_records("onnxruntime"):
        for record in (foreign, mine, severe):
            root.handle(record)
        assert logging.getLogger("onnxruntime").level >= logging.ERROR
    assert [r.getMessage() for r in caplog.records] == ["from elsewhere", "onnxruntime error"]
    assert root.level == level and root.handlers == handlers and not root.filters


def test_quiet_loggers_refuses_root():
    with pytest.raises(ValueError), quiet_loggers("root"):
        pass


def test_native_stderr_drops_known_noise_and_forwards_the_rest(capfd, caplog):
    log = logging.getLogger("edgecc.test.native")
    with caplog.at_level(logging.WARNING, logger="edgecc.test.native"), native_stderr(log):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"I0000 00:00:1796245303.633420    7154 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"something actually wrong\n")
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records] == ["something actually wrong"]
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "after\n"  # descriptor 2 is restored


@pytest.mark.slow
def test_quiet_and_json_print_nothing_extra(tmp_path):
    """Through the installed entry point: TFLite's XNNPACK line, onnxruntime's quantiser warnings and Vela stay hidden."""
    model = tmp_path / "cnn.onnx"
    make_conv_onnx(model, batch=1)
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).standard_normal((8, 1, 3, 16, 16)).astype(np.float32))
    bundle = tmp_path / "cnn.edgecc"
    compiled = run_installed_edgecc(
        "compile", model, "--target", "ethos-u55-128", "--calibration", f"x={tmp_path / 'cal.npy'}", "-o", bundle, "-q"
    )
    assert compiled.returncode == 0, compiled.stderr
    assert compiled.stderr == "" and compiled.stdout == ""
    ran = run_installed_edgecc("run", bundle, "-q")
    assert ran.returncode == 0 and ran.stderr == "" and ran.stdout == ""
    quantized = run_installed_edgecc(
        "quantize", model, "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "q.onnx", "--json", "-q"
    )
    assert quantized.returncode == 0 and quantized.stderr == ""
    assert json.loads(quantized.stdout)["ok"] is True


def test_captured_records_keeps_a_librarys_own_handler_quiet_and_restores_it(capsys):
    library = logging.getLogger("edgecc.test.library")
    handler = logging.StreamHandler(sys.stderr)
    library.addHandler(handler)
    library.propagate = False
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers))
    try:
        with captured_records("edgecc.test.library") as records:
            try:
                raise RuntimeError("the real cause")
            except RuntimeError:
                library.warning("Ran into the following error", exc_info=True)
        assert capsys.readouterr().err == ""
        assert [str(r.exc_info[1]) for r in records] == ["the real cause"]
        assert library.handlers == [handler] and library.propagate is False
        assert (root.level, list(root.handlers)) == root_state
        library.warning("printed again")
        assert "printed again" in capsys.readouterr().err
    finally:
        library.removeHandler(handler)
        library.propagate = True
    with pytest.raises(ValueError), captured_records(""):
        pass
