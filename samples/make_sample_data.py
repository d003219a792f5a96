"""Write the demo's input tensors (.npy) from the reference files shipped with the sample models."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(out_dir: str) -> None:
    """Extract `in__input` of the ResNet-20 reference into OUT_DIR/cat_32x32.npy."""
    root = Path(__file__).resolve().parent / "models"
    with np.load(root / "resnet20_cifar10" / "ref" / "cat_32x32.npz", allow_pickle=False) as ref:
        np.save(Path(out_dir) / "cat_32x32.npy", ref["in__input"])


if __name__ == "__main__":
    main(sys.argv[1])
