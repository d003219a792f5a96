"""Caffe2 frontend cost: convert time and peak RSS vs a plain protobuf parse of the same predict_net + init_net.

Models: the largest Caffe2 model at hand (../shared/models/caffe2/*) and a synthetic one
(an MLP written as GivenTensorFill ops, --synthetic-mb of float weights, 0 to skip).
Each mode runs in a fresh process that reports wall time (best of --repeat runs: the machine is shared) and
peak RSS above the RSS after imports (VmHWM, reset through /proc/self/clear_refs before any work):
  * parse    : NetDef.ParseFromString of both files (edgecc's schema, upb) -- the floor
  * frontend : edgecc's Caffe2 frontend (parse + initializers + ONNX graph)
  * convert  : the whole in-process conversion pipeline (opset, cleanup, shape inference, checker), no verification
Goal: convert <= 5x parse.
Run: .venv/bin/python benchmarks/caffe2_convert.py [--synthetic-mb 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
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
import json, statistics, sys, time
mode, predict, init, spec, repeat = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
from edgecc.converters.caffe2 import schema
from edgecc.converters.caffe2.build import build_model
from edgecc.converters.caffe2.reader import load_files
from edgecc.converters.options import ConvertOptions
from edgecc.pipeline.convert import convert
from edgecc.inputs import parse_input_spec
options = ConvertOptions(inputs=(parse_input_spec(spec),))
reset_peak()  # imports do not count
base = current_rss()
times = []
for _ in range(repeat):
    start = time.perf_counter()
    if mode == "parse":
        for path in (predict, init):
            net = schema.NetDef()
            net.ParseFromString(open(path, "rb").read())
    elif mode == "frontend":
        model = build_model(load_files([predict, init]), options)
    else:
        model = convert([predict, init], options).model
    times.append(time.perf_counter() - start)
    model = net = None
peak = peak_rss()
print(json.dumps({"seconds": min(times), "peak_rss_above_base": peak - base, "peak_rss": peak}))
"""
)


def _synthetic(directory: Path, megabytes: int) -> tuple[Path, Path, str]:
    """An MLP of FC + Relu layers whose GivenTensorFill weights total about `megabytes` MiB."""
    sys.path.insert(0, str(REPO))
    from tests.converters.caffe2.netdefs import net, op

    width = 1024
    layers = max(1, megabytes * 1024 * 1024 // (4 * width * width))
    rng = np.random.default_rng(0)
    ops, fills, blob = [], [], "data"
    for i in range(layers):
        w = rng.standard_normal((width, width)).astype(np.float32) * 0.03
        fills.append(op("GivenTensorFill", [], [f"fc{i}_w"], shape=[width, width], values=w.reshape(-1).tolist()))
        fills.append(op("GivenTensorFill", [], [f"fc{i}_b"], shape=[width], values=[0.0] * width))
        ops += [op("FC", [blob, f"fc{i}_w", f"fc{i}_b"], [f"fc{i}"]), op("Relu", [f"fc{i}"], [f"fc{i}"])]
        blob = f"fc{i}"
    predict = net(ops, ["data"] + [o.output[0] for o in fills], [blob])
    init = net(fills)
    (directory / "predict_net.pb").write_bytes(predict.SerializeToString())
    (directory / "init_net.pb").write_bytes(init.SerializeToString())
    return directory / "predict_net.pb", directory / "init_net.pb", f"data:1x{width}"


def _measure(mode: str, predict: Path, init: Path, spec: str, repeat: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(predict), str(init), spec, str(repeat)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-mb", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    models: list[tuple[str, Path, Path, str]] = []
    shared = sorted(SHARED.glob("caffe2/*/init_net.pb"), key=lambda p: p.stat().st_size)
    if shared:
        largest = shared[-1]
        models.append((f"shared {largest.parent.name}", largest.with_name("predict_net.pb"), largest, "1:1x1x28x28"))
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic_mb > 0:
            predict, init, spec = _synthetic(Path(tmp), args.synthetic_mb)
            models.append((f"synthetic MLP {args.synthetic_mb} MiB", predict, init, spec))
        print(
            f"{'model':<26} {'files MiB':>9} {'parse s':>8} {'frontend s':>10} {'convert s':>9} {'convert/parse':>13} "
            f"{'peak RSS above imports MiB (parse/frontend/convert)':>52}"
        )
        worst = 0.0
        for name, predict, init, spec in models:
            size = (predict.stat().st_size + init.stat().st_size) / 2**20
            parse = _measure("parse", predict, init, spec, args.repeat)
            frontend = _measure("frontend", predict, init, spec, args.repeat)
            full = _measure("convert", predict, init, spec, args.repeat)
            ratio = full["seconds"] / parse["seconds"]
            worst = max(worst, ratio)
            print(
                f"{name:<26} {size:>9.1f} {parse['seconds']:>8.4f} {frontend['seconds']:>10.4f} {full['seconds']:>9.4f} "
                f"{ratio:>13.2f} {parse['peak_rss_above_base'] / 2**20:>22.1f} / {frontend['peak_rss_above_base'] / 2**20:.1f}"
                f" / {full['peak_rss_above_base'] / 2**20:.1f}"
            )
            print(
                f"{'':<26} frontend/parse {frontend['seconds'] / parse['seconds']:.2f}x; "
                f"absolute peak RSS of the convert process {full['peak_rss'] / 2**20:.0f} MiB"
            )
    print(f"goal: convert <= 5x parse -> worst {worst:.2f}x: {'met' if worst <= 5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
