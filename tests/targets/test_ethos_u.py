"""ethos-u targets: Vela's constraints on ONNX nodes, and `edgecc compile` with the real Vela and the TFLite interpreter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecc.targets import get_target
from edgecc.targets.api import NodeView
from tests.conftest import run_edgecc
from tests.targets.helpers import convert_pnet, face_image, mixed_model


def view(op: str, inputs: list[tuple], outputs: list[tuple], *, const: tuple[int, ...] = (1, 2), **attrs) -> NodeView:
    names = tuple(f"t{i}" for i in range(len(inputs)))
    return NodeView(
        name=f"{op.lower()}0",
        op_type=op,
        domain="",
        attrs=attrs,
        inputs=names,
        outputs=tuple(f"o{i}" for i in range(len(outputs))),
        input_shapes=tuple(inputs),
        output_shapes=tuple(outputs),
        input_dtypes=("float32",) * len(inputs),
        output_dtypes=("float32",) * len(outputs),
        constant_inputs=frozenset(names[i] for i in const if i < len(names)),
    )


def conv(stride: int, pads: int = 1, group: int = 1, channels: int = 8) -> NodeView:
    out = (32 + 2 * pads - 3) // stride + 1
    return view(
        "Conv",
        [(1, channels, 32, 32), (8, channels // group, 3, 3), (8,)],
        [(1, 8, out, out)],
        strides=[stride, stride],
        pads=[pads] * 4,
        group=group,
    )


def test_conv_stride_above_3_needs_valid_padding_on_u55_not_on_u85() -> None:
    u55, u85 = get_target("ethos-u55-128"), get_target("ethos-u85-512")
    assert u55.check(conv(2)).supported
    verdict = u55.check(conv(4))
    assert not verdict.supported and "Stride>3 is only supported IF (dilation = 1 AND padding = VALID)" in verdict.reason
    assert "stride 4x4" in verdict.reason
    assert u55.check(conv(4, pads=0)).supported
    assert u85.check(conv(4)).supported


def test_depthwise_stride_range_and_dynamic_weights() -> None:
    u55 = get_target("ethos-u")
    assert u55.check(conv(2, group=8)).supported
    verdict = u55.check(conv(4, pads=0, group=8))
    assert (
        not verdict.supported
        and "DEPTHWISE_CONV_2D" in verdict.reason
        and "Kernel stride must be in the range (1,3)." in verdict.reason
    )
    dynamic = view("Conv", [(1, 8, 32, 32), (8, 8, 3, 3), (8,)], [(1, 8, 30, 30)], const=(2,))
    assert "weights 't1' are not constant" in u55.check(dynamic).reason


def test_pool_softmax_resize_and_mean_rules() -> None:
    u55 = get_target("ethos-u55-256")
    same_big = view("AveragePool", [(1, 8, 32, 32)], [(1, 8, 32, 32)], kernel_shape=[9, 9], pads=[4, 4, 4, 4])
    assert "kernel 9x9 with SAME padding" in u55.check(same_big).reason
    assert u55.check(view("AveragePool", [(1, 8, 32, 32)], [(1, 8, 4, 4)], kernel_shape=[8, 8], strides=[8, 8])).supported
    assert not u55.check(view("Softmax", [(1, 8, 300, 300)], [(1, 8, 300, 300)], axis=1)).supported
    assert u55.check(view("Softmax", [(1, 1000)], [(1, 1000)], axis=-1)).supported
    up3 = view(
        "Resize",
        [(1, 8, 10, 10), (0,), (4,)],
        [(1, 8, 30, 30)],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    up2 = view(
        "Resize",
        [(1, 8, 10, 10), (0,), (4,)],
        [(1, 8, 20, 20)],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    assert "scale factor 3, need 2, 4 or 8" in u55.check(up3).reason and u55.check(up2).supported
    assert u55.check(view("GlobalAveragePool", [(1, 8, 32, 32)], [(1, 8, 1, 1)])).supported
    assert "Batch must be 1." in u55.check(view("GlobalAveragePool", [(2, 8, 32, 32)], [(2, 8, 1, 1)])).reason


def test_ops_vela_lacks_and_dynamic_shapes_stay_off_the_npu() -> None:
    u55 = get_target("ethos-u55-64")
    assert "Erf is not in ethos-u55-64's operator list" in u55.check(view("Erf", [(1, 8)], [(1, 8)])).reason
    div = view("Div", [(1, 8), (1, 8)], [(1, 8)], const=())
    assert "Div is not in ethos-u55-64's operator list" in u55.check(div).reason  # Vela's U55 table has no DIV (U85's has)
    assert "Div" in get_target("ethos-u85-128").ops
    assert "dynamic shape" in u55.check(view("Relu", [(None, 8)], [(None, 8)])).reason


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mixed")
    model = mixed_model(folder / "mixed.onnx")
    rng = np.random.default_rng(1)
    (folder / "cal").mkdir()
    for i in range(3):
        np.save(folder / "cal" / f"s{i}.npy", rng.standard_normal((1, 3, 96, 96)).astype(np.float32))
    return model, folder / "cal"


def test_compile_mixed_model_runs_vela_and_splits_around_erf(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    model, cal = mixed
    out = tmp_path / "mixed.edgecc"
    result = run_edgecc("compile", model, "--target", "ethos-u55-128", "--calibration", f"x={cal}", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["device"] for p in manifest["partitions"]] == ["ethos-u55-128", "cpu", "ethos-u55-128"]
    erf = next(n for n in manifest["placement"] if n["node"] == "erf")
    assert erf["device"] == "cpu" and "Erf" in erf["reason"]
    for part in (manifest["partitions"][0], manifest["partitions"][2]):
        vendor = part["vendor"]
        files = {f["path"] for f in part["files"]}
        assert part["artifact"].endswith(".tflite") and any(p.endswith("_vela.tflite") for p in files)
        assert any("_summary_Ethos_U55_High_End_Embedded.csv" in p for p in files)
        assert vendor["verification"]["passed"] and vendor["verification"]["outputs"][0]["kind"] == "int8"
        assert vendor["cpu_fallback"] == [] and vendor["npu_operators"] >= 1
        assert vendor["estimates"]["cycles_total"] > 0 and vendor["estimates"]["inferences_per_second"] > 0
        assert vendor["vela_version"] and "--accelerator-config ethos-u55-128" in vendor["command"]
        assert {"tensor": "x", "from_dtype": "float32", "to_dtype": "int8", "from_layout": "NCHW", "to_layout": "NHWC"} in part[
            "conversions"
        ] or part["index"] == 2
        assert "pre-Vela int8 TFLite" in part["execution"]
    assert manifest["verification"]["passed"]
    assert manifest["partitions"][2]["vendor"]["tflite_operators"] == sorted(
        set(manifest["partitions"][2]["vendor"]["tflite_operators"]) & {"CONV_2D", "MEAN", "FULLY_CONNECTED", "RESHAPE", "RELU"}
    )
    ran = run_edgecc("run", out, "--data", f"x={next(cal.iterdir())}", "-o", tmp_path / "y.npz")
    assert ran.returncode == 0, ran.stderr
    assert np.load(tmp_path / "y.npz")["logits"].shape == (1, 10)


def test_without_vela_compile_exits_6_unless_no_vendor_compile(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    model, cal = mixed
    env = {"EDGECC_VELA": str(tmp_path / "missing" / "vela")}
    out = tmp_path / "b.edgecc"
    result = run_edgecc("compile", model, "--target", "ethos-u65-256", "--calibration", f"x={cal}", "-o", out, env=env)
    assert result.returncode == 6, result.stderr
    assert "pip install 'edgecc[ethos-u]'" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()  # no partial bundle
    fresh = tmp_path / "c.edgecc"
    result = run_edgecc(
        "compile", model, "--target", "ethos-u65-256", "--calibration", f"x={cal}", "-o", fresh, "--no-vendor-compile", env=env
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((fresh / "manifest.json").read_text())
    vendor = manifest["partitions"][0]["vendor"]
    assert "not run (--no-vendor-compile)" in vendor["vela"] and not list((fresh / "partitions").glob("*_vela.tflite"))


def test_float_model_without_calibration_is_exit_3(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = mixed
    result = run_edgecc("compile", model, "--target", "ethos-u", "-o", tmp_path / "x.edgecc")
    assert result.returncode == 3 and "--calibration" in result.stderr
    assert not (tmp_path / "x.edgecc").exists()


def test_unknown_vendor_option_is_a_usage_error(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    model, cal = mixed
    result = run_edgecc(
        "compile",
        model,
        "--target",
        "ethos-u85-256",
        "--calibration",
        f"x={cal}",
        "--vendor-option",
        "turbo=1",
        "-o",
        tmp_path / "x.edgecc",
    )
    assert result.returncode == 2 and "turbo" in result.stderr and "memory-mode" in result.stderr


def test_real_pnet_on_u85_with_vendor_options(tmp_path: Path) -> None:
    """MTCNN P-Net (real Caffe weights, real face crop as calibration) through Vela with pass-through options."""
    model = convert_pnet(tmp_path / "pnet.onnx")
    face = face_image(tmp_path / "data.npy")
    out = tmp_path / "pnet.edgecc"
    result = run_edgecc(
        "compile",
        model,
        "--target",
        "ethos-u85-256",
        "--calibration",
        f"data={face}",
        "--vendor-option",
        "optimise=Size",
        "--vendor-option",
        "memory-mode=Shared_Sram",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    vendor = manifest["partitions"][0]["vendor"]
    assert "--optimise Size" in vendor["command"] and vendor["estimates"]["memory_mode"] == "Shared_Sram"
    assert manifest["verification"]["passed"] and vendor["verification"]["passed"]
    # the quantiser leaves PReLU in float: Vela reports each such island as CPU fallback, and edgecc stores it
    floats = {op.split(":")[1] for op in vendor["float_operators"]}
    fallback = {entry["op"] for entry in vendor["cpu_fallback"]}
    assert fallback <= floats | {"QUANTIZE", "DEQUANTIZE"} and vendor["cpu_operators"] == len(vendor["cpu_fallback"])
    assert "p0 (ethos-u85-256): Vela" in result.stderr


def test_the_planned_op_map_comes_from_the_writer_and_covers_every_op_it_writes() -> None:
    from edgecc.targets.tflite.ops import load
    from edgecc.targets.tflite.rules import onnx_ops_for, tflite_op, tflite_variants

    for onnx_op, entry in load().items():
        if not entry.tflite:
            assert entry.planned is None and tflite_variants(onnx_op) == (), f"{onnx_op} writes no operator"
            continue
        assert entry.planned is not None, f"{onnx_op}: the writer emits {entry.tflite} but planning has no TFLite op for it"
        assert tflite_variants(onnx_op) == entry.planned.ops and onnx_op in onnx_ops_for(entry.planned.ops)
        refused = {"BATCH_MATMUL"} if onnx_op == "MatMul" else set()  # dynamic MatMul: the writer's check refuses it
        assert set(entry.planned.ops) - refused <= set(entry.tflite), (
            f"{onnx_op}: plans with {entry.planned.ops}, writes {entry.tflite}"
        )
    assert tflite_op(conv(1, group=8)) == "DEPTHWISE_CONV_2D" and tflite_op(conv(1)) == "CONV_2D"
    assert tflite_op(view("Erf", [(1, 8)], [(1, 8)])) is None
