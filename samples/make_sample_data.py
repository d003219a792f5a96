"""Write the demo's inputs from the reference file shipped with the ResNet-20 sample.

`python samples/make_sample_data.py OUT_DIR [--calibration DIR]` writes OUT_DIR/cat_32x32.npy and
OUT_DIR/input.npy (the real CIFAR-10 image the original project fed its model) and, with
--calibration, 16 .npz calibration samples made from it by flips, shifts and noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    """Extract `in__input` of the ResNet-20 reference (and augmented calibration samples)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--calibration", default=None)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent / "models"
    with np.load(root / "resnet20_cifar10" / "ref" / "cat_32x32.npz", allow_pickle=False) as ref:
        image = ref["in__input"]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "cat_32x32.npy", image)
    np.save(out / "input.npy", image)
    if args.calibration:
        folder = Path(args.calibration)
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for index in range(16):
            sample = image[:, :, :, ::-1] if index % 2 else image
            sample = np.roll(sample, shift=(int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(2, 3))
            sample = sample + rng.normal(0.0, 0.1, sample.shape)
            np.savez(folder / f"sample_{index:02d}.npz", input=sample.astype(np.float32))


if __name__ == "__main__":
    main()
