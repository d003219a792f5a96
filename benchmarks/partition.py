"""Partitioner benchmark: optimal vs greedy vs first-split estimated latency, partitioner wall time, and the
error of the CPU cost model against measured onnxruntime latency.

    python benchmarks/partition.py [--sizes 100,1000,10000] [--graphs 20] [--json]

Real models: ResNet-20 (PyTorch) and MTCNN PNet (Caffe) converted with `edgecc convert`, plus a conv net
with an unsupported op in the middle; generated graphs: random DAGs with random support masks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgecc.targets import get_target  # noqa: E402 -- after the sys.path insert above, so the script runs from a checkout
from edgecc.targets.partition import random_problem, solve  # noqa: E402 -- after the sys.path insert above
from edgecc.targets.plan import plan_model  # noqa: E402 -- after the sys.path insert above

ACCELERATORS = ("mali-gpu", "qnn-htp", "hisilicon-npu")


def _edgecc(*args: str) -> None:
    exe = Path(sys.executable).with_name("edgecc")
    result = subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"edgecc {' '.join(args)} failed: {result.stderr.strip()[-400:]}")


def real_models(folder: Path) -> dict[str, Path]:
    """Convert the sample models (and build the mixed one) into `folder`."""
    from tests.targets.helpers import mixed_model

    samples = REPO / "samples"
    _edgecc(
        "convert",
        str(samples / "pytorch" / "resnet20.py:resnet20"),
        str(samples / "models" / "resnet20_cifar10" / "resnet20-12fca82f.th"),
        "--input",
        "x:1x3x32x32",
        "--no-verify",
        "-o",
        str(folder / "resnet20.onnx"),
    )
    pnet = samples / "models" / "caffe_mtcnn_pnet"
    _edgecc(
        "convert",
        str(pnet / "det1.prototxt"),
        str(pnet / "det1.caffemodel"),
        "--input",
        "data:1x3x100x75",
        "--no-verify",
        "-o",
        str(folder / "pnet.onnx"),
    )
    return {"resnet20": folder / "resnet20.onnx", "pnet": folder / "pnet.onnx", "mixed": mixed_model(folder / "mixed.onnx")}


def bench_real(models: dict[str, Path]) -> list[dict[str, object]]:
    import onnx

    from edgecc.passes import pipeline_for
    from edgecc.passes.manager import run_passes

    rows = []
    for name, path in models.items():
        model, _ = run_passes(onnx.load(path), pipeline_for(2))
        for target in ACCELERATORS:
            start = time.perf_counter()
            _, _, _, plan, scores = plan_model(model, get_target(target))
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "model": name,
                    "target": target,
                    "nodes": len(plan.assignment),
                    "partitions": plan.cost.partitions,
                    "optimal_us": round(scores["optimal"].total_us, 1),
                    "greedy_us": round(scores["greedy"].total_us, 1),
                    "first_split_us": round(scores["first-split"].total_us, 1),
                    "opt_over_greedy": round(scores["optimal"].total_us / scores["greedy"].total_us, 4),
                    "opt_over_first_split": round(scores["optimal"].total_us / scores["first-split"].total_us, 4),
                    "plan_s": round(elapsed, 3),
                }
            )
    return rows


def bench_generated(sizes: list[int], graphs: int) -> list[dict[str, object]]:
    rows = []
    for n in sizes:
        vs_greedy, vs_first, times, exact = [], [], [], 0
        count = graphs if n <= 1000 else max(3, graphs // 5)
        for seed in range(count):
            problem = random_problem(n, seed, support=0.5 + 0.4 * (seed % 5) / 4, window=6, fan_in=3, dma=seed % 2 == 0)
            start = time.perf_counter()
            plan, scores = solve(problem)
            times.append(time.perf_counter() - start)
            exact += plan.exact
            vs_greedy.append(plan.cost.total_us / scores["greedy"].total_us)
            vs_first.append(plan.cost.total_us / scores["first-split"].total_us)
        rows.append(
            {
                "nodes": n,
                "graphs": count,
                "exact_dp": exact,
                "max_opt_over_greedy": round(max(vs_greedy), 4),
                "mean_opt_over_greedy": round(statistics.mean(vs_greedy), 4),
                "max_opt_over_first_split": round(max(vs_first), 4),
                "mean_opt_over_first_split": round(statistics.mean(vs_first), 4),
                "max_wall_s": round(max(times), 3),
                "mean_wall_s": round(statistics.mean(times), 3),
            }
        )
    return rows


def bench_cpu_cost_model(models: dict[str, Path], folder: Path, runs: int) -> list[dict[str, object]]:
    """Compile for `cpu`, run the bundle with the runtime, compare estimated and measured latency (p50)."""
    from edgecc.runtime import load

    rows = []
    for name, path in models.items():
        out = folder / f"{name}_cpu.edgecc"
        launch = [
            sys.executable,
            "-c",
            "from edgecc.cli import COMMANDS, main; COMMANDS.setdefault('compile', ('edgecc.commands.compile', '')); main()",
        ]
        result = subprocess.run(
            [*launch, "compile", str(path), "--target", "cpu", "-o", str(out), "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(result.stderr)
        manifest = json.loads((out / "manifest.json").read_text())
        runner = load(out)
        inputs, _ = runner.reference()
        bench = runner.benchmark(inputs[0], runs)
        estimated_ms = manifest["estimates"]["optimal"]["total_us"] / 1e3
        measured_ms = bench.total["p50"]
        rows.append(
            {
                "model": name,
                "estimated_ms": round(estimated_ms, 3),
                "measured_p50_ms": measured_ms,
                "error": round((estimated_ms - measured_ms) / measured_ms, 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--graphs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-") as tmp:
        models = real_models(Path(tmp))
        report = {
            "real": bench_real(models),
            "generated": bench_generated([int(s) for s in args.sizes.split(",")], args.graphs),
            "cpu_cost_model": bench_cpu_cost_model(models, Path(tmp), args.runs),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, rows in report.items():
        print(f"\n== {section}")
        if rows:
            keys = list(rows[0])
            print("  ".join(f"{k:>14}" for k in keys))
            for row in rows:
                print("  ".join(f"{row[k]!s:>14}" for k in keys))


if __name__ == "__main__":
    main()
