"""The reference for PyTorch conversions: the loaded model run by torch itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from edgecc.converters.pytorch.build import output_names
from edgecc.converters.pytorch.outputs import flatten_outputs
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np

    from edgecc.converters.pytorch.schema import LoadedModule

__all__ = ["TorchReference"]


class TorchReference:
    """The original PyTorch model, fed numpy arrays by ONNX input name."""

    def __init__(self, loaded: LoadedModule) -> None:
        self.name = f"PyTorch ({loaded.kind})"
        self._loaded = loaded
        self.inputs = list(loaded.inputs)
        self.outputs = [TensorInfo(n, None, "float32") for n in output_names(loaded)]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs of the model for `feeds` (numpy arrays by ONNX input name)."""
        import torch

        args = [torch.from_numpy(feeds[info.name].copy()) for info in self.inputs]
        with torch.no_grad():
            leaves = flatten_outputs(self._loaded.forward(args))
        return {info.name: value.detach().numpy() for info, (_, value) in zip(self.outputs, leaves)}
