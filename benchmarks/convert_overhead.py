"""How much time `edgecc convert` adds to torch.onnx.export on the same model (goal: ratio <= 1.3 without verification).

Two comparisons, each run side by side in this script:
  * command line: `edgecc convert ... --no-verify` vs a Python process that calls torch.onnx.export
    (both pay interpreter start-up and the torch import);
  * in process: edgecc's conversion API vs torch.onnx.export, with torch already imported.
Run: .venv/bin/python benchmarks/convert_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FACTORY = REPO / "samples" / "pytorch" / "resnet20.py"
WEIGHTS = REPO / "samples" / "models" / "resnet20_cifar10" / "resnet20-12fca82f.th"
EDGECC = Path(sys.executable).with_name("edgecc")

DIRECT_SCRIPT = f"""
import sys, torch
sys.path.insert(0, {str(FACTORY.parent)!r})
from resnet20 import resnet20
model = resnet20()
state = torch.load({str(WEIGHTS)!r}, map_location="cpu", weights_only=True)["state_dict"]
model.load_state_dict({{k.removeprefix("module."): v for k, v in state.items()}}, strict=False)
model.eval()
program = torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), dynamo=True, input_names=["input"], verbose=False)
program.save(sys.argv[1])
"""


def _time(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def command_line(repeat: int, work: Path) -> tuple[float, float]:
    """Median seconds of the edgecc CLI and of a plain torch.onnx.export script."""
    edgecc_cmd = [
        str(EDGECC),
        "convert",
        f"{FACTORY}:resnet20",
        str(WEIGHTS),
        "--input",
        "input:1x3x32x32",
        "--no-verify",
        "-q",
        "-o",
        str(work / "edgecc.onnx"),
    ]
    direct_cmd = [sys.executable, "-c", DIRECT_SCRIPT, str(work / "direct.onnx")]
    edgecc_times, direct_times = [], []
    for _ in range(repeat):  # interleaved so that machine noise hits both alike
        edgecc_times.append(_time(lambda: subprocess.run(edgecc_cmd, check=True, capture_output=True)))
        direct_times.append(_time(lambda: subprocess.run(direct_cmd, check=True, capture_output=True)))
    return statistics.median(edgecc_times), statistics.median(direct_times)


def in_process(repeat: int, work: Path) -> tuple[float, float]:
    """Median seconds of edgecc's conversion API and of torch.onnx.export, both in this process."""
    import logging

    import torch

    from edgecc.converters.options import ConvertOptions
    from edgecc.converters.pytorch import _load
    from edgecc.inputs import parse_input_specs
    from edgecc.onnxutil import save_onnx
    from edgecc.pipeline.convert import convert

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    sys.path.insert(0, str(FACTORY.parent))
    from resnet20 import resnet20

    options = ConvertOptions(inputs=parse_input_specs(["input:1x3x32x32"]))

    def run_edgecc() -> None:
        _load.cache_clear()
        save_onnx(convert([f"{FACTORY}:resnet20", str(WEIGHTS)], options).model, work / "api.onnx")

    def run_direct() -> None:
        model = resnet20()
        state = torch.load(str(WEIGHTS), map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=False)
        model.eval()
        program = torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), dynamo=True, input_names=["input"], verbose=False)
        program.save(str(work / "direct_api.onnx"))

    run_edgecc(), run_direct()  # warm up both paths
    edgecc_times, direct_times = [], []
    for _ in range(repeat):
        edgecc_times.append(_time(run_edgecc))
        direct_times.append(_time(run_direct))
    return statistics.median(edgecc_times), statistics.median(direct_times)


def main() -> None:
    """Print both comparisons and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cli_edgecc, cli_direct = command_line(args.repeat, work)
        api_edgecc, api_direct = in_process(args.repeat, work)
    print("model: ResNet-20 (CIFAR-10, real checkpoint), verification off, median of", args.repeat)
    print(
        f"command line : edgecc convert {cli_edgecc:6.2f} s | torch.onnx.export script {cli_direct:6.2f} s | "
        f"ratio {cli_edgecc / cli_direct:.2f} (goal <= 1.3)"
    )
    print(
        f"in process   : edgecc API     {api_edgecc:6.2f} s | torch.onnx.export        {api_direct:6.2f} s | "
        f"ratio {api_edgecc / api_direct:.2f} (goal <= 1.3)"
    )


if __name__ == "__main__":
    main()
