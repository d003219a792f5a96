"""edgecc -O3 against onnxsim and onnxslim, and onnxruntime latency before/after, on converted real models.

(a) node count after `edgecc optimize -O3` vs onnxsim and onnxslim on the same input (installed into
    build/bench-tools for this script only; never dependencies of edgecc);
(b) onnxruntime latency (ORT_ENABLE_ALL on both) of edgecc's output vs the unoptimised model,
    interleaved runs in this process; goal: never slower;
(c) pass-pipeline time on a generated 10,000-node graph (goal < 10 s).
Run: .venv/bin/python benchmarks/optimize.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "build" / "bench-tools"
SHARED = Path(os.environ.get("EDGECC_SHARED_MODELS", REPO.parent / "shared" / "models"))
SAMPLES = REPO / "samples"

#: (label, edgecc convert arguments) of the real models; a model whose frontend is missing is reported and left out
MODELS = [
    (
        "ResNet-20 (PyTorch)",
        [
            f"{SAMPLES}/pytorch/resnet20.py:resnet20",
            f"{SAMPLES}/models/resnet20_cifar10/resnet20-12fca82f.th",
            "--input",
            "input:1x3x32x32",
        ],
    ),
    (
        "MTCNN P-Net (PyTorch)",
        [f"{SAMPLES}/pytorch/pnet.py:pnet", f"{SAMPLES}/models/facenet_pnet/pnet.pt", "--input", "input:1x3x12x12"],
    ),
    (
        "MTCNN P-Net (Caffe)",
        [f"{SHARED}/caffe/mtcnn_pnet/det1.prototxt", f"{SHARED}/caffe/mtcnn_pnet/det1.caffemodel", "--input", "data:1x3x12x12"],
    ),
    (
        "LeNet (Caffe)",
        [
            f"{SHARED}/caffe/lenet_mnist/lenet.prototxt",
            f"{SHARED}/caffe/lenet_mnist/lenet_iter_10000.caffemodel",
            "--input",
            "data:1x1x28x28",
        ],
    ),
    (
        "MTCNN det1 (MXNet)",
        [
            f"{SHARED}/mxnet/mtcnn_det1/det1-symbol.json",
            f"{SHARED}/mxnet/mtcnn_det1/det1-0001.params",
            "--input",
            "data:1x3x12x12",
        ],
    ),
    (
        "LeNet (Caffe2)",
        [f"{SHARED}/caffe2/lenet_mnist/predict_net.pb", f"{SHARED}/caffe2/lenet_mnist/init_net.pb", "--input", "1:1x1x28x28"],
    ),
]


def _tools() -> None:
    if not (TOOLS / "onnxslim").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(TOOLS), "onnxslim", "onnxsim"],
            check=True,
        )
    sys.path.insert(0, str(TOOLS))


def _convert(args: list[str], out: Path) -> str | None:
    edgecc = Path(sys.executable).with_name("edgecc")
    proc = subprocess.run(
        [str(edgecc), "convert", *args, "--no-optimize", "--no-verify", "-q", "-o", str(out)], capture_output=True, text=True
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]


def _latency(path: bytes, feeds: dict[str, np.ndarray]) -> "object":
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def compare_models(repeat: int = 200) -> None:
    """Print node counts and latency ratios for every convertible real model."""
    import onnx
    import onnxsim
    import onnxslim

    from edgecc.data import random_feeds
    from edgecc.onnxutil import graph_inputs
    from edgecc.passes import LEVELS
    from edgecc.passes.manager import run_passes

    print(f"{'model':24} {'raw':>5} {'edgecc -O3':>10} {'onnxsim':>8} {'onnxslim':>8} {'latency opt/raw':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, args in MODELS:
            path = Path(tmp) / "model.onnx"
            failure = _convert(args, path)
            if failure:
                print(f"{label:24} not converted here: {failure}")
                continue
            model = onnx.load(str(path))
            ours, _ = run_passes(model, LEVELS[3])
            simplified, _ = onnxsim.simplify(model)
            slimmed = onnxslim.slim(model)
            feeds = random_feeds(graph_inputs(model))[0]
            raw_session, opt_session = _latency(model.SerializeToString(), feeds), _latency(ours.SerializeToString(), feeds)
            raw_times, opt_times = [], []
            for _ in range(repeat):
                for session, times in ((raw_session, raw_times), (opt_session, opt_times)):
                    start = time.perf_counter()
                    session.run(None, feeds)
                    times.append(time.perf_counter() - start)
            ratio = statistics.median(opt_times) / statistics.median(raw_times)
            print(
                f"{label:24} {len(model.graph.node):5d} {len(ours.graph.node):10d} {len(simplified.graph.node):8d} "
                f"{len(slimmed.graph.node):8d} {ratio:16.3f}"
            )


def large_graph(blocks: int = 2500):  # noqa: ANN201
    """A 10,000-node graph: MatMul + Add + Relu + Identity blocks on a 1x16 tensor."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(blocks):
        inits.append(numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32) * 0.1, f"w{i}"))
        inits.append(numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), f"b{i}"))
        nodes += [
            helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
            helper.make_node("Relu", [f"a{i}"], [f"r{i}"]),
            helper.make_node("Identity", [f"r{i}"], [f"i{i}"]),
        ]
        current = f"i{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = helper.make_graph(
        nodes,
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def time_large_graph() -> None:
    """Print the -O3 pipeline time on the 10,000-node graph."""
    from edgecc.passes import LEVELS
    from edgecc.passes.manager import run_passes

    model = large_graph()
    start = time.perf_counter()
    optimized, report = run_passes(model, LEVELS[3])
    seconds = time.perf_counter() - start
    print(
        f"10,000-node graph: -O3 took {seconds:.1f} s (goal < 10 s), {report.nodes_before} -> {report.nodes_after} nodes, "
        f"{report.iterations} iteration(s)"
    )


def main() -> None:
    """Run all three measurements."""
    _tools()
    compare_models()
    time_large_graph()


if __name__ == "__main__":
    main()
