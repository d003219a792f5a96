"""The Vela driver against the real Vela in the venv: its supported-ops report, a compile with CPU fallback, a missing Vela."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecc.errors import EXIT_MISSING_DEPENDENCY, EXIT_USAGE, MissingDependencyError, UsageError
from edgecc.targets import ethos_u, vela


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("vela-ops")
    return vela.parse_supported_ops(vela.supported_ops_report(folder).read_text())


def _norm(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("family", ["ethos-u55", "ethos-u85"])
def test_every_op_edgecc_places_is_in_velas_table(report: dict, family: str) -> None:
    vela_ops = set(report[family]["ops"])
    assert len(vela_ops) > 40, "the report parser found too few operators"
    missing = sorted(set(ethos_u.SUPPORTED[family]) - vela_ops)
    assert not missing, f"edgecc places {missing} on {family}, Vela does not list them"


@pytest.mark.parametrize("family", ["ethos-u55", "ethos-u85"])
def test_every_check_is_velas_rule_text_for_that_op(report: dict, family: str) -> None:
    for op, checks in ethos_u.RULES[family].items():
        rules = [_norm(r) for r in report[family]["specific"].get(op, [])]
        for check in checks:
            text = _norm(check.__doc__ or "")
            assert text and any(text in rule for rule in rules), (
                f"{family} {op}: {text!r} is not among Vela's rules for {op}: {rules}"
            )


@pytest.mark.parametrize("family", ["ethos-u55", "ethos-u85"])
def test_every_vela_rule_of_an_op_edgecc_places_is_checked_or_holds_by_construction(report: dict, family: str) -> None:
    unhandled = []
    for op in ethos_u.SUPPORTED[family]:
        checks = [_norm(c.__doc__ or "") for c in ethos_u.RULES[family].get(op, ())]
        for rule in map(_norm, report[family]["specific"].get(op, [])):
            if any(text in rule for text in checks):
                continue
            if any(key in ("*", op) and rule.startswith(prefix) for key, prefix in ethos_u.BY_CONSTRUCTION):
                continue
            unhandled.append(f"{op}: {rule}")
    assert not unhandled, "Vela rules edgecc neither checks nor guarantees:\n" + "\n".join(unhandled)


def _sin_model(path: Path) -> Path:
    """A full-int8 Keras conv net with SIN (no NPU support) in the middle, converted by TensorFlow's own converter."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    inp = tf.keras.Input((16, 16, 3), batch_size=1)
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = tf.keras.layers.Lambda(lambda t: tf.math.sin(t))(x)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(4, bias_initializer="ones")(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.random((1, 16, 16, 3), dtype=np.float32)] for _ in range(4))
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def test_run_vela_reads_estimates_and_cpu_fallback(tmp_path: Path) -> None:
    tflite = _sin_model(tmp_path / "sin_net.tflite")
    result = vela.run_vela(tflite, tmp_path / "out", accelerator="ethos-u55-64")
    assert result.output.is_file() and result.output.name == "sin_net_vela.tflite"
    assert result.summary_csv is not None and result.summary_csv.name == "sin_net_summary_Ethos_U55_High_End_Embedded.csv"
    fallback = {entry["op"]: entry for entry in result.cpu_fallback}
    assert fallback["SIN"]["reason"] == "Unsupported opType"
    assert "Feature-map dataTypes" in fallback["QUANTIZE"]["rule"]  # the float -> int8 edge after SIN
    assert result.cpu_operators == len(result.cpu_fallback) and result.npu_operators >= 3
    est = result.estimates
    assert est["accelerator"] == "Ethos_U55_64" and est["core_clock_mhz"] == 500.0
    assert est["cycles_total"] > 0 and est["inferences_per_second"] == pytest.approx(500e6 / est["cycles_total"], rel=0.05)
    assert est["sram_used_kib"] > 0 and est["nn_macs"] > 0
    assert "--accelerator-config ethos-u55-64" in " ".join(result.command) and str(tmp_path) not in " ".join(result.command)
    assert "0 on CPU" not in result.summary("ethos-u55-64")


def test_vendor_options_pass_through_and_unknown_ones_are_usage_errors() -> None:
    args = vela.vela_arguments("ethos-u65-512", {"optimise": "Size", "memory-mode": "Sram_Only"})
    joined = " ".join(args)
    assert "--optimise Size" in joined and "--memory-mode Sram_Only" in joined and "--system-config Ethos_U65_High_End" in joined
    with pytest.raises(UsageError) as info:
        vela.vela_arguments("ethos-u55-128", {"speed": "max"})
    assert info.value.exit_code == EXIT_USAGE and "speed" in info.value.message


def test_missing_vela_is_exit_6_with_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(vela.VELA_ENV, str(tmp_path / "no-vela-here"))
    assert vela.vela_command() is None
    with pytest.raises(MissingDependencyError) as info:
        vela.run_vela(tmp_path / "m.tflite", tmp_path, accelerator="ethos-u55-128")
    assert info.value.exit_code == EXIT_MISSING_DEPENDENCY
    assert "edgecc[ethos-u]" in info.value.one_line() and "EDGECC_VELA" in info.value.one_line()
