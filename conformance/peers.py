"""`python -m conformance.peers onnxsim|onnxslim IN.onnx OUT.onnx`: the peer simplifiers, for node counts."""

from __future__ import annotations

import sys


def simplify(tool: str, source: str, out: str) -> None:
    """Simplify `source` with onnxsim or onnxslim (their defaults) and save it to `out`."""
    import onnx

    if tool == "onnxsim":
        import onnxsim

        model, ok = onnxsim.simplify(onnx.load(source))
        if not ok:
            raise RuntimeError("onnxsim could not validate its result")
        onnx.save(model, out)
    elif tool == "onnxslim":
        import onnxslim

        onnx.save(onnxslim.slim(onnx.load(source)), out)
    else:
        raise SystemExit(f"unknown tool {tool}")


if __name__ == "__main__":
    simplify(*sys.argv[1:4])
