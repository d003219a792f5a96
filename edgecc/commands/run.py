"""`edgecc run BUNDLE_OR_MODEL --data x=a.npy -o out.npz`: execute a bundle partition by partition, optionally benchmark."""

from __future__ import annotations

import click

from edgecc.commands.common import SEED, common_options, data_option
from edgecc.ui import Ui

__all__ = ["command"]


@click.command("run")
@click.argument("bundle")
@data_option("--data", "data_args", what="Inputs")
@click.option(
    "-o",
    "--out",
    "out_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the outputs here (.npz keyed by output name).",
)
@click.option(
    "--input", "input_specs", multiple=True, metavar="NAME:DIMS[:DTYPE]", help="Fix dynamic input shapes of an .onnx model."
)
@click.option(
    "--benchmark", "runs", type=click.IntRange(1, 100_000), default=None, help="Time N runs: per-partition and total p50/p90/p99."
)
@click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seed of random inputs (when neither --data nor bundle reference inputs exist).",
)
@common_options
def command(
    bundle: str,
    data_args: tuple[str, ...],
    out_path: str | None,
    input_specs: tuple[str, ...],
    runs: int | None,
    seed: int,
    ui: Ui,
) -> None:
    """Run BUNDLE (directory or .edgecc archive) or an .onnx model on inputs.

    Without --data a bundle runs on its stored reference inputs.

    \b
    Examples:
      edgecc run model.edgecc --data input=x.npy -o outputs.npz
      edgecc run model.edgecc --benchmark 100
      edgecc run model.onnx --data input=x.npy -o outputs.npz
    """

    import numpy as np

    from edgecc.bundle import npz_bytes
    from edgecc.data import DataOptions, load_samples, parse_data_values, random_feeds
    from edgecc.fileio import atomic_write_bytes
    from edgecc.inputs import parse_input_specs
    from edgecc.runtime import load

    data = parse_data_values(data_args, "--data")
    runner = load(bundle, specs=parse_input_specs(input_specs))
    try:
        source = "--data"
        if data:
            feeds = load_samples(data, runner.inputs, DataOptions(option="--data", seed=seed, random_count=1)).feeds
        else:
            feeds, _ = runner.reference()
            source = "bundle reference inputs"
            if not feeds:
                feeds, source = random_feeds(runner.inputs, seed=seed), f"random inputs (seed {seed})"
        results = [runner.run(feed) for feed in feeds]
        names = [o.name for o in runner.outputs]
        if out_path:
            if len(results) == 1:
                arrays = results[0]
            else:
                arrays = {n: np.stack([r[n] for r in results]) for n in names}
            atomic_write_bytes(out_path, npz_bytes(arrays))
        ui.table(
            f"outputs of {bundle} ({len(feeds)} sample(s), {source})",
            ["output", "shape", "dtype", "min", "max"],
            [
                [
                    n,
                    "x".join(map(str, results[0][n].shape)),
                    str(results[0][n].dtype),
                    f"{float(np.min(results[0][n])):.4g}" if results[0][n].size else "-",
                    f"{float(np.max(results[0][n])):.4g}" if results[0][n].size else "-",
                ]
                for n in names
            ],
        )
        bench = None
        if runs:
            with ui.status(f"benchmarking {runs} runs"):
                bench = runner.benchmark(feeds[0], runs)
            rows = [[p["name"], p["device"], p["precision"], p["p50"], p["p90"], p["p99"]] for p in bench.partitions]
            rows.append(["total", "", "", bench.total["p50"], bench.total["p90"], bench.total["p99"]])
            ui.table(
                f"latency over {runs} runs (ms)",
                ["partition", "device", "precision", "p50", "p90", "p99"],
                rows,
                justify=["left", "left", "left", "right", "right", "right"],
            )
            ui.message(f"bytes moved between partitions per run: {bench.bytes_between_partitions}")
            offload = (runner.manifest or {}).get("offload")
            if offload:
                from edgecc.pipeline.offload import describe_offload

                ui.message(describe_offload(offload))
        if out_path:
            ui.message(f"[green]wrote[/green] {out_path}")
        if ui.json_mode:
            ui.emit_json(
                {
                    "ok": True,
                    "command": "run",
                    "bundle": bundle,
                    "samples": len(feeds),
                    "inputs_from": source,
                    "output": out_path,
                    "outputs": {n: {"shape": list(results[0][n].shape), "dtype": str(results[0][n].dtype)} for n in names},
                    "benchmark": bench.to_dict() if bench else None,
                }
            )
    finally:
        runner.close()
