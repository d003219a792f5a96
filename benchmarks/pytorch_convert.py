"""`edgecc convert` with verification vs a bare `torch.onnx.export(dynamo=True)`, in one process, on conformance models.

Models (built by the conformance zoo's own builders, seeded weights, nothing downloaded): transformers-bert,
transformers-gpt2, timm-lcnet_050 (each a `model.py:make` factory, as users hold them). Per model, interleaved,
median of --repeat runs, torch already imported:
  * export  : make() + torch.onnx.export(model, args, dynamo=True) + save -- the peer
  * convert : edgecc's conversion API (binding, export, opset, cleanup, shape inference, checker), no verification
  * verified: convert + verify_conversion against torch on the entry's first sample (what `edgecc convert` does)
Goal (issue 19): verified <= 1.3x export.
Run: .venv/bin/python benchmarks/pytorch_convert.py [--repeat 3] [--models a,b]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "conformance" / "site"), str(REPO)]
import conformance.site.sitecustomize  # noqa: E402,F401 -- torchvision's CUDA wheel beside CPU torch (see that file)

MODELS = ("transformers-bert", "transformers-gpt2", "timm-lcnet_050")


def _build(name: str, out: Path) -> tuple[Path, dict]:
    from conformance.build import build_entry
    from conformance.entries import default_cache, load_entries

    entries = {e["name"]: e for e in load_entries(REPO / "conformance" / "entries")}
    folder = out / name
    return folder, build_entry(entries[name], folder, default_cache())


def _make(folder: Path):
    spec = importlib.util.spec_from_file_location(f"bench_{folder.name.replace('-', '_')}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make


def _median_seconds(funcs: dict[str, object], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in funcs}
    for func in funcs.values():  # warm-up
        func()
    for _ in range(repeat):  # interleaved so that machine noise hits all alike
        for key, func in funcs.items():
            start = time.perf_counter()
            func()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_model(name: str, work: Path, repeat: int) -> dict[str, float]:
    """Median seconds of the three modes on one model."""
    import numpy as np
    import torch

    from edgecc.converters.options import ConvertOptions
    from edgecc.inputs import parse_input_specs
    from edgecc.onnxutil import save_onnx
    from edgecc.pipeline.convert import convert, verify_conversion

    folder, built = _build(name, work)
    make = _make(folder)
    with np.load(folder / "samples.npz", allow_pickle=False) as samples:
        feeds = {k: samples[k][0] for k in built["inputs"]}
    specs = [built["convert_args"][i + 1] for i, a in enumerate(built["convert_args"]) if a == "--input"]
    options = ConvertOptions(inputs=parse_input_specs(specs))
    source = [str(folder / built["files"][0])]

    def export() -> None:
        model = make()
        kwargs = {k: torch.from_numpy(v) for k, v in feeds.items()}
        program = torch.onnx.export(model, (), kwargs=kwargs, dynamo=True, verbose=False)
        program.save(str(work / f"{name}-export.onnx"))

    def edgecc_convert() -> None:
        save_onnx(convert(source, options).model, work / f"{name}-edgecc.onnx")

    def edgecc_verified() -> None:
        conversion = convert(source, options)
        report = verify_conversion(conversion, data=[feeds])
        assert report is None or report.passed, report
        save_onnx(conversion.model, work / f"{name}-verified.onnx")

    return _median_seconds({"export": export, "convert": edgecc_convert, "verified": edgecc_verified}, repeat)


def main() -> None:
    """Print per-model seconds and ratios against the bare export."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    print(f"in process, torch imported, median of {args.repeat} interleaved runs")
    header = f"{'model':24s} {'export s':>9s} {'convert s':>10s} {'verified s':>11s}"
    print(f"{header} {'convert/export':>15s} {'verified/export':>16s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            t = bench_model(name, Path(tmp), args.repeat)
            print(
                f"{name:24s} {t['export']:9.2f} {t['convert']:10.2f} {t['verified']:11.2f} "
                f"{t['convert'] / t['export']:15.2f} {t['verified'] / t['export']:16.2f}"
            )
    print("goal: verified/export <= 1.3")


if __name__ == "__main__":
    main()
