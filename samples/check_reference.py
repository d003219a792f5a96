"""Run an ONNX model on a reference file's inputs (in__NAME) and compare with its outputs (out__NAME).

The reference files hold what the ORIGINAL framework produced, so this checks a
conversion end to end: `python samples/check_reference.py model.onnx ref.npz`.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort


def main(model: str, reference: str) -> int:
    """Print per-output max abs error relative to the output range; exit 1 if above 1e-4."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    with np.load(reference, allow_pickle=False) as ref:
        feeds = {i.name: ref[f"in__{i.name}"] for i in session.get_inputs()}
        expected = [ref[k] for k in ref.files if k.startswith("out__")]
    results = session.run(None, feeds)
    worst = 0.0
    for output, got, want in zip(session.get_outputs(), results, expected):
        error = float(np.abs(got - want).max()) / max(float(want.max() - want.min()), 1e-12)
        worst = max(worst, error)
        print(
            f"{output.name}: max abs error / output range = {error:.2e}; "
            f"argmax {int(got.argmax())} (reference {int(want.argmax())})"
        )
    print("matches the original framework" if worst <= 1e-4 else "DIFFERS from the original framework")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
