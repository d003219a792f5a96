"""Helpers for the targets/compile/run tests: run the commands, build models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import REPO, SAMPLES, Result, run_edgecc

__all__ = ["FIXTURES", "convert_pnet", "convert_resnet20", "dynamic_model", "mixed_model", "run_cmd"]

FIXTURES = REPO / "tests" / "fixtures" / "targets"

def run_cmd(*args: str | Path, env: dict[str, str] | None = None, timeout: int = 300) -> Result:
    """`edgecc ARGS...` through the CLI, run from the repository root (tests/conftest.py `run_edgecc`)."""
    return run_edgecc(*args, cwd=REPO, env=env, timeout=timeout)


def mixed_model(path: Path, *, seed: int = 0, batch: int | str = 1, size: int = 96, width: int = 32) -> Path:
    """A real conv net with Erf (not on the NPU/GPU lists) in the middle: Conv-Relu-Conv-Erf-Conv-Relu-GAP-Flatten-Gemm
    on `size` x `size` inputs, the last conv `width` channels wide."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32), name)

    inits = [
        w("w1", 16, 3, 3, 3),
        w("b1", 16),
        w("w2", 32, 16, 3, 3),
        w("b2", 32),
        w("w3", width, 32, 3, 3),
        w("b3", width),
        w("fw", 10, width),
        w("fb", 10),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Erf", ["c2"], ["e"], name="erf"),
        helper.make_node("Conv", ["e", "w3", "b3"], ["c3"], name="conv3", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def dynamic_model(path: Path) -> Path:
    """The mixed model with a symbolic batch dimension."""
    return mixed_model(path, batch="N")


def convert_resnet20(out: Path) -> Path:
    """ResNet-20 (CIFAR-10, real weights) converted with `edgecc convert`."""
    from tests.conftest import run_edgecc

    result = run_edgecc(
        "convert",
        SAMPLES / "pytorch" / "resnet20.py:resnet20",
        SAMPLES / "models" / "resnet20_cifar10" / "resnet20-12fca82f.th",
        "--input",
        "x:1x3x32x32",
        "--no-verify",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    return out


def convert_pnet(out: Path) -> Path:
    """MTCNN PNet (Caffe, real weights) converted with `edgecc convert` at 75x100."""
    from tests.conftest import run_edgecc

    folder = SAMPLES / "models" / "caffe_mtcnn_pnet"
    result = run_edgecc(
        "convert", folder / "det1.prototxt", folder / "det1.caffemodel", "--input", "data:1x3x100x75", "--no-verify", "-o", out
    )
    assert result.returncode == 0, result.stderr
    return out


def cat_image(out: Path) -> Path:
    """The real CIFAR image ResNet-20's reference data was made from, as x.npy."""
    data = np.load(SAMPLES / "models" / "resnet20_cifar10" / "ref" / "cat_32x32.npz")
    np.save(out, data["in__input"])
    return out


def face_image(out: Path) -> Path:
    """The real face crop PNet's reference data was made from, as data.npy."""
    data = np.load(SAMPLES / "models" / "caffe_mtcnn_pnet" / "ref" / "face_100x75.npz")
    np.save(out, data["in__data"])
    return out
