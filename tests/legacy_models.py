"""Models written the way PyTorch 1.x exported them (and UltraFace, MTCNN ports and many published ONNX files still
are): opset 9, IR version 4, every weight listed as a graph input as well as an initializer
(`keep_initializers_as_inputs=True`). Built by torch's TorchScript-based exporter here, with seeded weights and
randomised BatchNorm statistics, so that nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _net():  # noqa: ANN202 -- a torch module, built lazily so that importing this file imports no torch
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, stride: int, groups: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )

    def depthwise_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            conv_bn(cin, cin, stride, groups=cin),
            nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UltraFaceLike(nn.Module):
        """UltraFace-slim's layout in small: a depthwise-separable backbone, then box and score heads, softmax."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Sequential(
                conv_bn(3, 8, 2), depthwise_separable(8, 16, 1), depthwise_separable(16, 32, 2), depthwise_separable(32, 32, 1)
            )
            self.scores = nn.Conv2d(32, 2 * 2, 3, 1, 1)
            self.boxes = nn.Conv2d(32, 2 * 4, 3, 1, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.backbone(x)
            scores = self.scores(features).permute(0, 2, 3, 1).contiguous().view(x.shape[0], -1, 2)
            boxes = self.boxes(features).permute(0, 2, 3, 1).contiguous().view(x.shape[0], -1, 4)
            return torch.softmax(scores, dim=2), boxes

    torch.manual_seed(0)
    net = UltraFaceLike().eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.rand(module.num_features, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(module.num_features, generator=generator) - 0.5)
    return net


INPUT_SHAPE = (1, 3, 48, 64)


def ultraface_like(path: Path) -> Path:
    """Write the PyTorch-1.x-style (IR 4, opset 9, weights also inputs) UltraFace-like detector to `path`."""
    import io
    import warnings

    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _net(),
            (torch.zeros(INPUT_SHAPE),),
            buffer,
            opset_version=9,
            keep_initializers_as_inputs=True,
            do_constant_folding=False,
            input_names=["input"],
            output_names=["scores", "boxes"],
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = 4  # what PyTorch 1.2 wrote at opset 9
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def sample_input(seed: int = 0) -> np.ndarray:
    """One image-like input for the detector."""
    return np.random.default_rng(seed).uniform(-1, 1, INPUT_SHAPE).astype(np.float32)
