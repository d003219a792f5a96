"""edgecc: convert, optimise and compile neural networks for edge accelerators."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
