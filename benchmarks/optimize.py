"""edgecc -O3 against onnxsim, onnxslim and onnxruntime's offline optimisation, node counts and latency, per graph.

(a) node count after `edgecc optimize -O3` vs onnxsim 0.8.1 and onnxslim 0.1.98 (both pinned in requirements.lock,
    never dependencies of edgecc itself) and vs onnxruntime's own offline optimisation (`ORT_ENABLE_EXTENDED`, the
    optimised model saved with `optimized_model_filepath`, i.e. what `onnxruntime.tools` would ship);
(b) onnxruntime latency (ORT_ENABLE_ALL, one thread, interleaved runs in this process, medians) of edgecc's output
    and of the ORT-offline file against the unoptimised model; goal for edgecc: never slower (ratio <= 1.0 + noise);
(c) pass-pipeline time on a generated 10,000-node graph (goal < 10 s).
Graphs: the shared real models converted here, a PyTorch-1.x-style export (IR 4, opset 9, weights also inputs), and,
with `--zoo DIR` (default build/conformance/work when it exists), every `converted.onnx` the conformance run left.
Run: .venv/bin/python benchmarks/optimize.py [--zoo build/conformance/work] [--repeat 100] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
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


def _convert(args: list[str], out: Path) -> str | None:
    edgecc = Path(sys.executable).with_name("edgecc")
    proc = subprocess.run(
        [str(edgecc), "convert", *args, "--no-optimize", "--no-verify", "-q", "-o", str(out)], capture_output=True, text=True
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]


def _session(data: bytes, level: str = "ORT_ENABLE_ALL", save_to: str | None = None) -> "object":
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if save_to:
        options.optimized_model_filepath = save_to
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _ort_offline(model: "object", tmp: Path) -> "object":
    """onnxruntime's offline optimisation of `model` (ORT_ENABLE_EXTENDED, saved), loaded back."""
    import onnx

    out = tmp / "ort_offline.onnx"
    _session(model.SerializeToString(), "ORT_ENABLE_EXTENDED", str(out))
    return onnx.load(str(out))


def _interleaved_medians(sessions: list["object"], feeds: dict[str, np.ndarray], repeat: int) -> list[float]:
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeat):
        for session, record in zip(sessions, times):
            start = time.perf_counter()
            session.run(None, feeds)
            record.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _graphs(tmp: Path, zoo: Path | None) -> list[tuple[str, Path | str]]:
    """(label, converted .onnx path or the reason it is missing) for every graph measured."""
    from tests.legacy_models import ultraface_like

    graphs: list[tuple[str, Path | str]] = []
    for index, (label, args) in enumerate(MODELS):
        path = tmp / f"shared_{index}.onnx"
        failure = _convert(args, path)
        graphs.append((label, failure or path))
    graphs.append(("UltraFace-like, PyTorch 1.x form", ultraface_like(tmp / "legacy.onnx")))
    if zoo is not None and zoo.is_dir():
        for converted in sorted(zoo.glob("*/converted.onnx")):
            graphs.append((converted.parent.name, converted))
    return graphs


def compare_models(zoo: Path | None, repeat: int = 100, markdown: bool = False) -> None:
    """Print node counts and latency ratios for every graph."""
    import onnx
    import onnxsim
    import onnxslim

    from edgecc.data import random_feeds
    from edgecc.onnxutil import graph_inputs
    from edgecc.passes import LEVELS
    from edgecc.passes.manager import run_passes

    header = [
        "graph",
        "raw",
        "edgecc -O3",
        "onnxsim",
        "onnxslim",
        "ORT offline",
        "edgecc vs best",
        "latency -O3/raw",
        "latency ORT-offline/raw",
    ]
    print("| " + " | ".join(header) + " |" if markdown else "  ".join(header))
    if markdown:
        print("|" + "---|" * len(header))
    wins = losses = 0
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for label, path in _graphs(tmp, zoo):
            if not isinstance(path, Path):
                print(f"{label}: not converted here: {path}")
                continue
            model = onnx.load(str(path))
            try:
                ours, _ = run_passes(model, LEVELS[3])
            except Exception as exc:  # noqa: BLE001 -- a benchmark row, not a product path
                print(f"{label}: -O3 failed: {exc}")
                continue
            counts = {"ours": len(ours.graph.node)}
            for tool, run in (("onnxsim", lambda m: onnxsim.simplify(m)[0]), ("onnxslim", onnxslim.slim)):
                try:
                    counts[tool] = len(run(onnx.load(str(path))).graph.node)
                except Exception:  # noqa: BLE001 -- a peer that cannot take the graph gets no count
                    counts[tool] = None
            offline = _ort_offline(model, tmp)
            peers = [n for n in (counts["onnxsim"], counts["onnxslim"]) if n is not None]
            best = min(peers, default=None)
            verdict = "-" if best is None else ("=" if counts["ours"] == best else f"{counts['ours'] - best:+d}")
            wins += best is not None and counts["ours"] < best
            losses += best is not None and counts["ours"] > best
            try:
                feeds = random_feeds(graph_inputs(model))[0]
                medians = _interleaved_medians(
                    [
                        _session(model.SerializeToString()),
                        _session(ours.SerializeToString()),
                        _session(offline.SerializeToString()),
                    ],
                    feeds,
                    repeat,
                )
                ratios = f"{medians[1] / medians[0]:.3f}", f"{medians[2] / medians[0]:.3f}"
            except Exception as exc:  # noqa: BLE001 -- e.g. a graph whose inputs random data cannot feed
                ratios = (f"not run ({type(exc).__name__})", "-")
            row = [
                label,
                len(model.graph.node),
                counts["ours"],
                counts["onnxsim"] or "-",
                counts["onnxslim"] or "-",
                len(offline.graph.node),
                verdict,
                *ratios,
            ]
            print("| " + " | ".join(map(str, row)) + " |" if markdown else "  ".join(map(str, row)), flush=True)
    print(f"edgecc -O3 below the best simplifier on {wins} graph(s), above it on {losses}")


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
    """Run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_zoo = REPO / "build" / "conformance" / "work"
    parser.add_argument("--zoo", type=Path, default=default_zoo if default_zoo.is_dir() else None)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    compare_models(args.zoo, args.repeat, args.markdown)
    time_large_graph()


if __name__ == "__main__":
    main()
