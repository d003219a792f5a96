"""MXNet frontend cost: convert time and peak memory vs simply reading the params file with numpy.fromfile.

For the largest MXNet model at hand (../shared/models/mxnet, tests/fixtures/mxnet) and a
synthetic large one (an MLP written in MXNet's params layout, --synthetic-mb, 0 to skip),
three fresh processes each measure wall time and peak RSS above their own baseline (the
RSS after imports, before any work):
  * fromfile : numpy.fromfile(params, uint8)         -- the floor
  * frontend : edgecc's MXNet frontend (read + build ONNX)
  * convert  : the whole `edgecc convert` pipeline, ONNX file written (verification off)
Goal: peak RSS of convert above baseline <= 3x the params file size.
Run: .venv/bin/python benchmarks/mxnet_convert.py [--synthetic-mb 64] [--repeat 3]
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
mode, symbol, params, out = sys.argv[1:5]
import numpy as np
if mode != "fromfile":
    from edgecc.converters.options import ConvertOptions
    from edgecc.pipeline.convert import convert
    from edgecc.converters.mxnet import convert as frontend_convert, supported_ops
    from edgecc.onnxutil import save_onnx
    supported_ops()
base = current_rss()
start = time.perf_counter()
if mode == "fromfile":
    data = np.fromfile(params, dtype=np.uint8)
    total = int(data[::4096].sum())
elif mode == "frontend":
    model = frontend_convert([symbol, params], ConvertOptions())
else:
    save_onnx(convert([symbol, params], ConvertOptions()).model, out)
elapsed = time.perf_counter() - start
peak = peak_rss()
print(json.dumps({"seconds": elapsed, "peak_above_base": max(peak - base, 0)}))
"""
)


def _write_params(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """MXNet's NDArray list layout (V2 dense records), as NDArray::Save writes it."""
    with open(path, "wb") as f:
        f.write(np.array([0x112, 0, len(arrays)], dtype="<u8").tobytes())
        for array in arrays.values():
            f.write(np.array([0xF993FAC9, 0, array.ndim], dtype="<u4").tobytes())
            f.write(np.array(array.shape, dtype="<i8").tobytes())
            f.write(np.array([1, 0, 0], dtype="<i4").tobytes())  # cpu(0), float32
            f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())
        f.write(np.array([len(arrays)], dtype="<u8").tobytes())
        for name in arrays:
            encoded = f"arg:{name}".encode()
            f.write(np.array([len(encoded)], dtype="<u8").tobytes() + encoded)


def synthetic(work: Path, megabytes: int) -> tuple[Path, Path]:
    """An MLP of `megabytes` of float32 weights: 4 FullyConnected layers with ReLU."""
    width = int((megabytes * 1024 * 1024 / 4 / 4) ** 0.5)
    nodes = [{"op": "null", "name": "data", "inputs": []}]
    arrays: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    last = [0, 0, 0]
    for i in range(4):
        for suffix, shape in (("weight", (width, width)), ("bias", (width,))):
            name = f"fc{i}_{suffix}"
            arrays[name] = rng.standard_normal(shape, dtype=np.float32) * 0.01
            nodes.append({"op": "null", "name": name, "inputs": []})
        nodes.append(
            {
                "op": "FullyConnected",
                "name": f"fc{i}",
                "attrs": {"num_hidden": str(width)},
                "inputs": [last, [len(nodes) - 2, 0, 0], [len(nodes) - 1, 0, 0]],
            }
        )
        nodes.append({"op": "Activation", "name": f"relu{i}", "attrs": {"act_type": "relu"}, "inputs": [[len(nodes) - 1, 0, 0]]})
        last = [len(nodes) - 1, 0, 0]
    symbol = work / "mlp-symbol.json"
    symbol.write_text(json.dumps({"nodes": nodes, "arg_nodes": [], "heads": [last]}))
    params = work / "mlp-0000.params"
    _write_params(params, arrays)
    return symbol, params


def largest_at_hand() -> tuple[Path, Path]:
    """The MXNet model with the largest params file in ../shared/models/mxnet and the fixtures."""
    candidates = []
    for folder in (SHARED / "mxnet", REPO / "tests" / "fixtures" / "mxnet"):
        for params in folder.rglob("*-[0-9][0-9][0-9][0-9].params"):
            symbol = params.with_name(params.name.rsplit("-", 1)[0] + "-symbol.json")
            if symbol.exists():
                candidates.append((params.stat().st_size, symbol, params))
    _size, symbol, params = max(candidates)
    return symbol, params


def measure(mode: str, symbol: Path, params: Path, work: Path, repeat: int) -> tuple[float, int]:
    """Median seconds and the largest peak-above-baseline bytes over `repeat` fresh processes."""
    times, peaks = [], []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(symbol), str(params), str(work / "out.onnx")],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        times.append(result["seconds"])
        peaks.append(result["peak_above_base"])
    return statistics.median(times), max(peaks)


def report(label: str, symbol: Path, params: Path, work: Path, repeat: int) -> None:
    size = params.stat().st_size
    base_t, base_m = measure("fromfile", symbol, params, work, repeat)
    print(f"{label}: {symbol.name} + {params.name} ({size / 2**20:.2f} MiB of params), median of {repeat}")
    print(f"  {'fromfile':9s} {base_t:8.4f} s  peak +{base_m / 2**20:8.1f} MiB")
    for mode in ("frontend", "convert"):
        t, m = measure(mode, symbol, params, work, repeat)
        print(
            f"  {mode:9s} {t:8.4f} s  peak +{m / 2**20:8.1f} MiB | time x{t / max(base_t, 1e-9):7.1f}"
            f" | peak RSS / params size {m / size:5.2f} (goal <= 3)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-mb", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report("largest at hand", *largest_at_hand(), work, args.repeat)
        if args.synthetic_mb > 0:
            report("synthetic", *synthetic(work, args.synthetic_mb), work, args.repeat)


if __name__ == "__main__":
    main()
