"""TensorFlow frontend overhead: `edgecc convert` (no verification) vs tf2onnx's Python API on the same models.

Models: the Keras HDF5 mini-Xception and the uint8 MobileNet v1 TFLite from samples/models.
In one warm process (TensorFlow, tf2onnx and the pipeline imported and exercised once first),
each side runs --repeat times and the median is compared:
  * tf2onnx : keras.models.load_model + tf2onnx.convert.from_keras  /  tf2onnx.convert.from_tflite
  * edgecc  : edgecc.pipeline.convert.convert (load, tf2onnx, checks, opset, -O1 cleanup,
              shape inference, checker), as `edgecc convert --no-verify` does before writing
Goal: ratio <= 1.2. Peak RSS of a whole `edgecc convert --no-verify` process (VmHWM) is reported too.
Run: .venv/bin/python benchmarks/tf_convert_overhead.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memory import CHILD_PRELUDE

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "samples" / "models"
KERAS_H5 = MODELS / "keras_gender_mini_xception" / "gender_mini_XCEPTION.21-0.95.hdf5"
TFLITE = MODELS / "tflite_mobilenet_v1_025_128_uint8" / "mobilenet_v1_0.25_128_quant.tflite"

PEAK_CHILD = (
    CHILD_PRELUDE
    + r"""
from edgecc.cli import main
try:
    main(["convert", sys.argv[1], "-o", sys.argv[2], "--no-verify", "-q"])
except SystemExit as done:
    if done.code:
        raise
print(peak_rss())
"""
)


def _edgecc_convert(path: Path):
    from edgecc.converters import tensorflow as frontend
    from edgecc.converters.options import ConvertOptions
    from edgecc.pipeline.convert import convert

    frontend._load.cache_clear()
    return convert([str(path)], ConvertOptions(framework="tensorflow")).model


def _tf2onnx_keras(path: Path):
    import keras
    import tf2onnx

    model = keras.models.load_model(path, compile=False)
    return tf2onnx.convert.from_keras(model, opset=17)[0]


def _tf2onnx_tflite(path: Path):
    import tf2onnx

    return tf2onnx.convert.from_tflite(str(path), opset=17)[0]


def _median(function, path: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_rss(path: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-c", PEAK_CHILD, str(path), str(Path(tmp) / "out.onnx")],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode:
        raise SystemExit(f"edgecc convert failed: {done.stderr.strip()[-500:]}")
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per side (median)")
    args = parser.parse_args()
    from edgecc.converters.tensorflow.runtime import quiet

    cases = [("Keras .h5 mini-Xception", KERAS_H5, _tf2onnx_keras), ("TFLite uint8 MobileNet v1 0.25", TFLITE, _tf2onnx_tflite)]
    with quiet():  # warm-up: imports, tracing machinery, pipeline passes
        for _, path, direct in cases:
            direct(path)
            _edgecc_convert(path)
    for label, path, direct in cases:
        with quiet():
            base = _median(direct, path, args.repeat)
            ours = _median(_edgecc_convert, path, args.repeat)
        ratio = ours / base
        print(
            f"{label}: tf2onnx {base * 1000:8.1f} ms   edgecc convert {ours * 1000:8.1f} ms   "
            f"ratio {ratio:4.2f} (goal <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})"
        )
    for label, path, _ in cases:
        print(f"peak RSS of `edgecc convert --no-verify` ({label}): {_peak_rss(path) / 1024**2:.0f} MiB")


if __name__ == "__main__":
    main()
