"""ONNX output names for what a PyTorch `forward` returns: tensors, tuples, lists, dicts, Hugging Face ModelOutputs.

Naming (stable; documented in the README):

- one tensor: `output`;
- a tuple or list: `output_0`, `output_1`, ...;
- a dict or ModelOutput: its keys (`last_hidden_state`, `pooler_output`, `logits`, ...);
- nested containers extend the name: `hidden_states_0`, `hidden_states_1` (a tuple under a key), `output_1_0`
  (a tuple inside a tuple), `outer_inner` (a dict under a key);
- None and other non-tensor leaves (numbers, cache objects) are left out, as torch.export leaves them out.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["flatten_outputs", "output_names"]

log = logging.getLogger(__name__)


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _leaves(value: Any, name: str | None) -> list[tuple[str | None, Any]]:
    if isinstance(value, dict):  # ModelOutput is an OrderedDict of the fields that are set
        out: list[tuple[str | None, Any]] = []
        for key, item in value.items():
            out.extend(_leaves(item, f"{name}_{key}" if name else str(key)))
        return out
    if isinstance(value, (tuple, list)):
        base = name or "output"
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{base}_{i}")]
    if value is None:
        return []
    if not _is_tensor(value):
        log.debug("output %s is a %s, not a tensor: left out of the ONNX outputs", name or "output", type(value).__name__)
        return []
    return [(name, value)]


def flatten_outputs(value: Any) -> list[tuple[str, Any]]:
    """The tensors of a module's output with their ONNX names, in the order the exporters flatten them."""
    leaves = _leaves(value, None)
    if len(leaves) == 1 and leaves[0][0] is None:
        return [("output", leaves[0][1])]
    return [(leaf_name or f"output_{i}", tensor) for i, (leaf_name, tensor) in enumerate(leaves)]


def output_names(value: Any) -> list[str]:
    """The ONNX output names of a module's output (see the module docstring)."""
    return [name for name, _ in flatten_outputs(value)]
