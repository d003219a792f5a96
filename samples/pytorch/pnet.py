"""MTCNN P-Net as in timesler/facenet-pytorch, rebuilt from its state dict layout.

Used as `edgecc convert samples/pytorch/pnet.py:pnet pnet.pt --input input:1x3x12x12`.
Outputs: box regression (1x4xh'xw') and face probabilities (1x2xh'xw').
"""

from __future__ import annotations

import torch
from torch import nn


class PNet(nn.Module):
    """Fully convolutional proposal network of MTCNN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: A002 - the ONNX input name
        x = self.pool1(self.prelu1(self.conv1(input)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        probabilities = self.softmax4_1(self.conv4_1(x))
        boxes = self.conv4_2(x)
        return boxes, probabilities


def pnet() -> PNet:
    """P-Net with randomly initialised weights (load pnet.pt over them)."""
    return PNet()
