"""Caffe frontend cost: convert time and peak memory vs OpenCV's own load of the same prototxt + caffemodel.

For the largest Caffe model at hand (../shared/models/caffe, samples/models/caffe_*) and a
synthetic large one (fully connected layers in a caffemodel written with edgecc's schema,
--synthetic-mb, 0 to skip), fresh processes each measure wall time and peak RSS above their
own baseline (the RSS after imports, before any work):
  * opencv   : cv2.dnn.readNetFromCaffe(prototxt, caffemodel)      -- the yardstick
  * frontend : edgecc's Caffe frontend (parse + build the ONNX model)
  * convert  : the whole `edgecc convert` pipeline (shape inference, cleanup passes, checker, ONNX file
               written; no verification), after a warm-up conversion of a tiny net so lazy imports are not counted
Goals: convert time <= 3x the OpenCV load time; peak RSS above baseline <= 3x the caffemodel size.
Run: .venv/bin/python benchmarks/caffe_convert.py [--synthetic-mb 128] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from memory import CHILD_PRELUDE

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGECC_SHARED_MODELS", REPO.parent / "shared" / "models"))

CHILD = (
    CHILD_PRELUDE
    + r"""
import json, sys, time
mode, prototxt, caffemodel, out = sys.argv[1:5]
import numpy as np
if mode == "opencv":
    import cv2
else:
    import onnx
    from edgecc.converters.options import ConvertOptions
    from edgecc.pipeline.convert import convert
    from edgecc.converters.caffe import convert as frontend_convert, supported_layers
    from edgecc.onnxutil import save_onnx
    supported_layers()
    # warm up the lazily imported pipeline (passes, onnx_ir, shape inference) on a tiny net, as OpenCV's import is warm
    import tempfile, pathlib
    with tempfile.TemporaryDirectory() as warm:
        tiny = pathlib.Path(warm) / "tiny.prototxt"
        tiny.write_text('input: "x"\ninput_shape { dim: 1 dim: 2 }\nlayer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n')
        save_onnx(convert([str(tiny)], ConvertOptions()).model, str(pathlib.Path(warm) / "tiny.onnx"))
base = current_rss()
start = time.perf_counter()
if mode == "opencv":
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
elif mode == "frontend":
    model = frontend_convert([prototxt, caffemodel], ConvertOptions())
else:
    save_onnx(convert([prototxt, caffemodel], ConvertOptions()).model, out)
elapsed = time.perf_counter() - start
peak = peak_rss()
print(json.dumps({"seconds": elapsed, "peak_above_base": max(peak - base, 0)}))
"""
)


def _largest_at_hand() -> tuple[Path, Path] | None:
    pairs = []
    for root in (SHARED / "caffe", REPO / "samples" / "models"):
        for model in root.rglob("*.caffemodel") if root.is_dir() else ():
            protos = sorted(model.parent.glob("*.prototxt"))
            if protos:
                pairs.append((model.stat().st_size, protos[0], model))
    if not pairs:
        return None
    _, proto, model = max(pairs)
    return proto, model


def _synthetic(folder: Path, megabytes: int) -> tuple[Path, Path]:
    from edgecc.converters.caffe.writer import write_caffemodel

    width = 2048
    count = max(1, megabytes * 1024**2 // (width * width * 4))
    proto = f'name: "synthetic_mlp"\ninput: "data"\ninput_shape {{ dim: 1 dim: {width} }}\n'
    rng = np.random.default_rng(0)
    layers = []
    for i in range(count):
        bottom = "data" if i == 0 else f"fc{i - 1}"
        proto += (
            f'layer {{ name: "fc{i}" type: "InnerProduct" bottom: "{bottom}" top: "fc{i}" '
            f"inner_product_param {{ num_output: {width} }} }}\n"
        )
        proto += f'layer {{ name: "relu{i}" type: "ReLU" bottom: "fc{i}" top: "fc{i}" }}\n'
        layers.append(
            (
                f"fc{i}",
                "InnerProduct",
                [rng.standard_normal((width, width), dtype=np.float32) * 0.02, np.zeros(width, np.float32)],
            )
        )
    prototxt = folder / "synthetic.prototxt"
    prototxt.write_text(proto)
    return prototxt, write_caffemodel(folder / "synthetic.caffemodel", layers)


def _measure(mode: str, prototxt: Path, caffemodel: Path, out: Path, repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(prototxt), str(caffemodel), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"{mode} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs), "peak_above_base": max(r["peak_above_base"] for r in runs)}


def _report(label: str, prototxt: Path, caffemodel: Path, repeat: int, folder: Path) -> None:
    size = caffemodel.stat().st_size
    results = {
        mode: _measure(mode, prototxt, caffemodel, folder / f"{mode}.onnx", repeat) for mode in ("opencv", "frontend", "convert")
    }
    base = results["opencv"]["seconds"]
    print(f"{label}: {caffemodel} ({size / 1024**2:.1f} MiB)")
    for mode, numbers in results.items():
        print(
            f"  {mode:9s} {numbers['seconds'] * 1000:9.1f} ms  time x{numbers['seconds'] / base:5.2f} of OpenCV   "
            f"peak RSS +{numbers['peak_above_base'] / 1024**2:8.1f} MiB = "
            f"x{numbers['peak_above_base'] / size:5.2f} of the caffemodel"
        )
    convert = results["convert"]
    print(
        f"  goals: convert <= 3x OpenCV time: {'met' if convert['seconds'] <= 3 * base else 'NOT met'} "
        f"(x{convert['seconds'] / base:.2f}); convert peak RSS <= 3x caffemodel: "
        f"{'met' if convert['peak_above_base'] <= 3 * size else 'NOT met'} (x{convert['peak_above_base'] / size:.2f}); "
        f"frontend alone x{results['frontend']['seconds'] / base:.2f} time, "
        f"x{results['frontend']['peak_above_base'] / size:.2f} RSS"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-mb", type=int, default=128, help="size of the synthetic caffemodel (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median time, max RSS)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-caffe-") as tmp:
        folder = Path(tmp)
        at_hand = _largest_at_hand()
        if at_hand is None:
            print(f"no Caffe model found in {SHARED / 'caffe'} or samples/models")
        else:
            _report("largest Caffe model at hand", *at_hand, args.repeat, folder)
        if args.synthetic_mb > 0:
            _report(f"synthetic {args.synthetic_mb} MiB MLP", *_synthetic(folder, args.synthetic_mb), args.repeat, folder)


if __name__ == "__main__":
    main()
