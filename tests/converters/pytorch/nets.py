"""Small real PyTorch models for the frontend tests (also loaded as `nets.py:function` factories)."""

from __future__ import annotations

import torch
from torch import nn


class ConvNet(nn.Module):
    """Conv + BatchNorm + ReLU, a residual add, max pooling and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(y + self.bn2(self.conv2(y)))
        y = self.pool(y)
        return self.head(y.flatten(1))


def conv_net() -> ConvNet:
    """A ConvNet with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(0)
    net = ConvNet()
    with torch.no_grad():
        for bn in (net.bn1, net.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


class TwoHeads(nn.Module):
    """Returns a dict of two outputs: names come from the keys."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.body(x)
        return {"scores": torch.softmax(y.mean((2, 3)), dim=1), "features": y}


def two_heads() -> TwoHeads:
    """TwoHeads with fixed weights."""
    torch.manual_seed(1)
    return TwoHeads().eval()


class Noisy(nn.Module):
    """Adds fresh random noise at every call: its ONNX export cannot match torch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)


def noisy() -> Noisy:
    """A model whose outputs are not reproducible."""
    return Noisy()


class SpecialFunctions(nn.Module):
    """Uses two operations torch.onnx has no ONNX translation for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x) + torch.special.bessel_j1(x)


def special_functions() -> SpecialFunctions:
    """A model that cannot be exported to ONNX."""
    return SpecialFunctions()


def not_a_module() -> int:
    """A factory that returns the wrong thing."""
    return 42


class RateDependent(nn.Module):
    """A scripted-friendly module whose forward takes a non-tensor `sr: int` (like Silero VAD's)."""

    def __init__(self) -> None:
        super().__init__()
        self.fast = nn.Linear(8, 4)
        self.slow = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, sr: int) -> torch.Tensor:
        if sr == 16000:
            return torch.tanh(self.fast(x))
        return torch.sigmoid(self.slow(x)) * float(sr) / 8000.0


def rate_dependent() -> RateDependent:
    """RateDependent with fixed weights."""
    torch.manual_seed(3)
    return RateDependent().eval()


class Recurrent(nn.Module):
    """A GRU with its state as input and output: (x, h) -> (y, h_new)."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(6, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_new = self.gru(x, h)
        return self.head(y), h_new


def recurrent() -> Recurrent:
    """Recurrent with fixed weights."""
    torch.manual_seed(4)
    return Recurrent().eval()


class NestedOutputs(nn.Module):
    """Keyword-only mask, a defaulted flag, and a dict output with a tuple inside."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor, scale: float = 1.0, debug: bool = False) -> dict:
        y = self.proj(x) * mask.unsqueeze(-1) * scale
        return {"scores": y.softmax(-1), "features": (y, y.sum(-1)), "unused": None}


def nested_outputs() -> NestedOutputs:
    """NestedOutputs with fixed weights."""
    torch.manual_seed(5)
    return NestedOutputs().eval()
