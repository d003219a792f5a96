"""Small real models for the quantisation tests: a digits conv net trained here, and hand-built hostile graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["digits_data", "make_bias_model", "make_cle_model", "make_hostile_model", "run_model", "train_digits"]


def digits_data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1797 images) as float32 [N, 1, 8, 8] in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32)[:, None], digits.target.astype(np.int64)


def train_digits(path: Path, *, depthwise: bool = True, epochs: int = 12, seed: int = 0) -> float:
    """Train a small conv net on the first 1400 digits for a few seconds, export it to ONNX at `path`; returns float accuracy."""
    import torch

    x, y = digits_data()
    torch.manual_seed(seed)
    layers = [
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1, stride=2),
        torch.nn.ReLU(),
    ]
    if depthwise:
        layers += [torch.nn.Conv2d(32, 32, 3, padding=1, groups=32), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 1), torch.nn.ReLU()]
    layers += [torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 10)]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    train_x, train_y = torch.from_numpy(x[:1400]), torch.from_numpy(y[:1400])
    net.train()
    for _ in range(epochs):
        for i in range(0, 1400, 100):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(train_x[i : i + 100]), train_y[i : i + 100])
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(torch.from_numpy(x[1400:])).argmax(1).numpy() == y[1400:]).mean())
        torch.onnx.export(
            net,
            (train_x[:1],),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )
    return accuracy


def run_model(path: Path, x: np.ndarray) -> np.ndarray:
    """Run an ONNX model with onnxruntime on CPU over a batch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]


def _save(nodes, inits, path: Path, in_shape, out_shape, *, name: str) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_cle_model(path: Path, *, seed: int = 0) -> Path:
    """Conv -> Relu -> Conv -> Relu -> Conv whose first conv's output channels are scaled by 1e-3..1e2 and the second
    conv compensates: the function is ordinary, but per-tensor int8 weights/activations of the first pair collapse."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    c = 16
    scales = np.logspace(-3, 2, c)
    w1 = rng.standard_normal((c, 3, 3, 3)) * 0.3 * scales[:, None, None, None]
    b1 = rng.standard_normal(c) * 0.1 * scales
    w2 = rng.standard_normal((c, c, 3, 3)) * 0.1 / scales[None, :, None, None]
    b2 = rng.standard_normal(c) * 0.1
    w3 = rng.standard_normal((8, c, 1, 1)) * 0.3
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["h2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3"], ["y"], name="conv3"),
    ]
    return _save(nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3}, path, ["N", 3, 12, 12], ["N", 8, 12, 12], name="cle")


def make_hostile_model(path: Path, *, seed: int = 0) -> Path:
    """Gemm -> Relu -> Gemm(hostile) -> Relu -> Gemm. The hostile Gemm gives every output channel a weight of 1000 on an
    input feature that is always 0 (its unit in the first Gemm is dead), so int8 per-channel weights round all its
    useful weights to zero; keeping exactly that layer in float restores the output."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((16, 32)) * 0.3  # [out, in] (transB=1)
    b1 = rng.standard_normal(16) * 0.1
    w1[0] = 0.0
    b1[0] = -1.0  # unit 0 is always 0 after the Relu
    w2 = rng.standard_normal((16, 16)) * 0.3
    w2[:, 0] = 1000.0
    b2 = rng.standard_normal(16) * 0.1
    w3 = rng.standard_normal((10, 16)) * 0.3
    b3 = np.zeros(10)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
        helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], name="fc2_hostile", transB=1),
        helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
        helper.make_node("Gemm", ["r2", "w3", "b3"], ["y"], name="fc3", transB=1),
    ]
    return _save(nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3}, path, ["N", 32], ["N", 10], name="hostile")


def make_bias_model(path: Path, *, seed: int = 0) -> Path:
    """Depthwise conv (4 channels): channel 0 has zero-sum weights of +-3, channels 1-3 small positive weights
    (0.01-0.03). Per-tensor int8 rounds the small weights to 0 or one step, shifting those outputs by
    sum(w_q - w) * E[x] (inputs have mean 5); bias correction removes the shift."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    w = rng.uniform(0.01, 0.03, (4, 1, 3, 3))
    w[0, 0] = np.array([[3, -3, 3], [-3, 0, 3], [-3, 3, -3]])
    b = np.zeros(4)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="dw", group=4, pads=[1, 1, 1, 1])]
    return _save(nodes, {"w": w, "b": b}, path, ["N", 4, 16, 16], ["N", 4, 16, 16], name="bias")
