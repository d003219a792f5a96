"""merge-parallel-convs: RepVGG/MobileOne branches merged into one Conv, checked against torch and onnxruntime."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch

from edgecc.passes import LEVELS
from tests.passes.helpers import check_rewrite, check_unchanged, const, make_model, node, ops, optimize, rand


class _MobileOneBlock(torch.nn.Module):
    """MobileOne's training-time block: k over-parameterised kxk Conv+BN branches, a 1x1 Conv+BN branch and (stride 1,
    equal channels) a BatchNorm identity branch, summed, then ReLU; `groups` = channels makes it depthwise."""

    def __init__(self, channels: int, out: int, stride: int, groups: int, branches: int = 3, kernel: int = 3) -> None:
        super().__init__()

        def conv_bn(size: int) -> torch.nn.Sequential:
            return torch.nn.Sequential(
                torch.nn.Conv2d(channels, out, size, stride, size // 2, groups=groups, bias=False), torch.nn.BatchNorm2d(out)
            )

        self.kxk = torch.nn.ModuleList(conv_bn(kernel) for _ in range(branches))
        self.scale = conv_bn(1)
        self.skip = torch.nn.BatchNorm2d(channels) if stride == 1 and channels == out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.scale(x)
        for branch in self.kxk:
            total = total + branch(x)
        if self.skip is not None:
            total = total + self.skip(x)
        return torch.relu(total)


def _mobileone_stage() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        _MobileOneBlock(3, 16, stride=2, groups=1),  # stem: no identity branch
        _MobileOneBlock(16, 16, stride=1, groups=16),  # depthwise with identity
        _MobileOneBlock(16, 24, stride=1, groups=1, kernel=1),  # pointwise, channels change: no identity
        _MobileOneBlock(24, 24, stride=1, groups=1, kernel=1),  # pointwise with identity
        _MobileOneBlock(24, 24, stride=2, groups=24, branches=2),  # depthwise downsample
    )
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 1.5)
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.uniform_(-0.5, 0.5)
    return model.eval()


def test_mobileone_blocks_become_one_conv_each_and_match_torch() -> None:
    model = _mobileone_stage()
    x = torch.randn(2, 3, 32, 32)
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["x"], output_names=["y"], opset_version=17)
    exported = onnx.load_from_string(buffer.getvalue())
    assert ops(exported)["BatchNormalization"] + ops(exported)["Conv"] > 5 * 3, ops(exported)
    result, report = optimize(exported, LEVELS[2])
    assert ops(result) == {"Conv": 5, "Relu": 5}, ops(result)
    merges = next(p for p in report.passes if p.name == "merge-parallel-convs")
    assert merges.rewrites > 0
    import onnxruntime as ort

    session = ort.InferenceSession(result.SerializeToString(), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))


def _branches(extra: list[onnx.NodeProto], initializers: list[onnx.TensorProto], *, out_shape: list[int]) -> onnx.ModelProto:
    return make_model(extra, [("x", [1, 4, 8, 8])], [("y", out_shape)], initializers)


def test_repvgg_identity_without_batchnorm_is_merged() -> None:
    model = _branches(
        [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), node("Add", ["x", "c"], ["y"])],
        [const("w", rand((4, 4, 3, 3))), const("b", rand((4,), 1))],
        out_shape=[1, 4, 8, 8],
    )
    check_rewrite(model, "merge-parallel-convs", {"Conv": 1})


def test_one_sided_padding_is_aligned() -> None:
    """A 3x3 conv padded only at the end and a 1x1 conv: same output size, the 1x1 tap lands on the first row/column."""
    model = _branches(
        [
            node("Conv", ["x", "w3"], ["a"], pads=[0, 0, 2, 2]),
            node("Conv", ["x", "w1", "b1"], ["c"]),
            node("Add", ["a", "c"], ["y"]),
        ],
        [const("w3", rand((4, 4, 3, 3))), const("w1", rand((4, 4, 1, 1), 1)), const("b1", rand((4,), 2))],
        out_shape=[1, 4, 8, 8],
    )
    merged = check_rewrite(model, "merge-parallel-convs", {"Conv": 1})
    conv = merged.graph.node[0]
    assert {a.name: list(a.ints) for a in conv.attribute if a.name == "pads"} == {"pads": [0, 0, 2, 2]}


@pytest.mark.parametrize("case", ["shared branch", "dilated", "groups differ", "weights not constant", "strides on identity"])
def test_branches_that_are_not_one_convolution_stay(case: str) -> None:
    w3, w1 = const("w3", rand((4, 4, 3, 3))), const("w1", rand((4, 4, 1, 1), 1))
    outputs: list = [("y", [1, 4, 8, 8])]
    inputs: list = [("x", [1, 4, 8, 8])]
    nodes = [
        node("Conv", ["x", "w3"], ["a"], pads=[1, 1, 1, 1]),
        node("Conv", ["x", "w1"], ["c"]),
        node("Add", ["a", "c"], ["y"]),
    ]
    initializers = [w3, w1]
    if case == "shared branch":
        outputs.append(("c", [1, 4, 8, 8]))
    elif case == "dilated":
        nodes[0] = node("Conv", ["x", "w3"], ["a"], pads=[2, 2, 2, 2], dilations=[2, 2])
    elif case == "groups differ":
        initializers[0] = const("w3", rand((4, 1, 3, 3)))
        nodes[0] = node("Conv", ["x", "w3"], ["a"], pads=[1, 1, 1, 1], group=4)
    elif case == "weights not constant":
        initializers = [w1]
        inputs.append(("w3", [4, 4, 3, 3]))
    else:  # a stride-2 conv plus a stride-2 pooled input is not an identity branch
        nodes = [
            node("Conv", ["x", "w3"], ["a"], pads=[1, 1, 1, 1], strides=[2, 2]),
            node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            node("Add", ["a", "p"], ["y"]),
        ]
        initializers = [w3]
        outputs = [("y", [1, 4, 4, 4])]
    model = make_model(nodes, inputs, outputs, initializers)
    shapes = {"w3": [4, 4, 3, 3]} if case == "weights not constant" else None
    check_unchanged(model, "merge-parallel-convs", shapes=shapes)
