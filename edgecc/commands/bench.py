"""`edgecc bench MODEL_OR_BUNDLE [--target T ...]`: latency, throughput, memory, size, accuracy and speed-up per target."""

from __future__ import annotations

from typing import Any

import click

from edgecc.commands.common import SEED, common_options, data_option
from edgecc.pipeline.benchmark import COUNT_BOUNDS
from edgecc.pipeline.offload import low_offload_warning, share_cell
from edgecc.ui import Ui

__all__ = ["command", "threshold_options", "show_records", "show_compare"]


def threshold_options(func: Any) -> Any:
    """Regression thresholds shared by `bench --baseline` and `zoo compare`."""
    from edgecc.pipeline.regression import Thresholds

    d = Thresholds()
    options = [
        click.option(
            "--max-cosine-drop",
            type=float,
            default=d.max_cosine_drop,
            show_default=True,
            help="Flag a worst-output cosine drop above this.",
        ),
        click.option(
            "--max-sqnr-drop",
            "max_sqnr_drop_db",
            type=float,
            default=d.max_sqnr_drop_db,
            show_default=True,
            help="Flag an SQNR drop (dB) above this.",
        ),
        click.option(
            "--max-top1-drop",
            type=float,
            default=d.max_top1_drop,
            show_default=True,
            help="Flag a top-1 agreement drop above this.",
        ),
        click.option(
            "--max-accuracy-drop",
            type=float,
            default=d.max_accuracy_drop,
            show_default=True,
            help="Flag a task accuracy (labels) drop above this.",
        ),
        click.option(
            "--latency-floor",
            type=float,
            default=d.latency_floor,
            show_default=True,
            help="Flag a measured latency increase only when its lower confidence bound exceeds this fraction.",
        ),
        click.option(
            "--latency-abs-floor",
            "latency_abs_floor_ms",
            type=float,
            default=d.latency_abs_floor_ms,
            show_default=True,
            help="Never flag a measured latency increase below this many ms.",
        ),
        click.option(
            "--alpha",
            type=click.FloatRange(1e-6, 0.5),
            default=d.alpha,
            show_default=True,
            help="Significance of the latency test (Mann-Whitney; bootstrap bound at confidence 1-alpha).",
        ),
        click.option(
            "--estimate-tolerance",
            type=float,
            default=d.estimate_tolerance,
            show_default=True,
            help="Flag estimated latency increases above this fraction.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def show_records(ui: Ui, title: str, records: list[dict[str, Any]]) -> None:
    """The bench table: one row per target."""
    rows = []
    for r in records:
        m, e, acc = r["latency"]["measured"], r["latency"]["estimated"] or {}, r["accuracy"] or {}
        task = acc.get("task") or {}
        offload = r.get("offload")
        rows.append(
            [
                r["target"],
                r["precision"],
                share_cell(offload),
                _fmt(m["p50_ms"], ".3f"),
                _fmt(m["p90_ms"], ".3f"),
                _fmt(m["p99_ms"], ".3f"),
                _fmt(m["noise_ms"], ".4f"),
                _fmt(e.get("latency_ms"), ".4f"),
                _fmt(e.get("speedup_vs_cpu"), ".2f") + ("x" if e.get("speedup_vs_cpu") else ""),
                _fmt(acc.get("cosine_min"), ".5f"),
                _fmt(acc.get("top1_agreement"), ".0%"),
                _fmt(task.get("value"), ".1%"),
                f"{(r['memory']['peak_rss_bytes'] or 0) / 2**20:.0f} MiB",
                f"{r['memory']['artifact_bytes'] / 1024:.0f} KiB",
            ]
        )
    ui.table(
        title,
        [
            "target",
            "prec.",
            "on target",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "noise",
            "est. ms",
            "speed-up",
            "cosine",
            "top-1",
            "accuracy",
            "peak RSS",
            "size",
        ],
        rows,
        justify=["left", "left"] + ["right"] * 12,
    )
    ui.message(
        "p50/p90/p99, noise (ms): measured with onnxruntime on this host (accelerator numerics emulated); "
        "est.: estimated by the target's cost model (or its vendor estimator); speed-up: estimated vs the all-CPU placement; "
        "on target: the share of the MACs the target itself runs (CPU-only: nothing offloaded)"
    )
    for r in records:
        warning = low_offload_warning(r["offload"]) if r.get("offload") else None
        if warning:
            ui.warn(warning)


def show_compare(ui: Ui, report: Any, *, verbose: bool = False) -> None:
    """The findings of a regression check: regressions, statuses and every measured-latency verdict (all with -v)."""
    rows = [
        [f.pair, f.check, "[red]REGRESSION[/red]" if f.regression else "ok", f.message]
        for f in report.findings
        if f.regression or verbose or f.check in ("status", "latency:measured")
    ]
    ui.table(
        f"compared with the baseline: {report.compared} pair(s), {len(report.regressions)} regression(s)",
        ["pair", "check", "result", "detail"],
        rows,
    )


@click.command("bench")
@click.argument("model")
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="T",
    help="Compile for this target and bench the bundle (repeatable; default cpu).",
)
@data_option("--data", "data_args", what="Inputs to measure on")
@click.option(
    "--eval",
    "eval_path",
    default=None,
    metavar="FILE.npz",
    help="Labelled evaluation data: an array per input (sample axis first) and int 'labels'.",
)
@click.option("--label-output", default=None, help="Output whose argmax is compared with the labels (default: the first).")
@data_option("--calibration", "calibration_args", what="Calibration samples for compiling (default: the measured inputs)")
@click.option(
    "--reference",
    "reference_path",
    default=None,
    metavar="FLOAT.onnx",
    help="Bundle: the float model to compare with on --data/--eval.",
)
@click.option("--input", "input_specs", multiple=True, metavar="NAME:DIMS[:DTYPE]", help="Fix dynamic input shapes.")
@click.option("--runs", type=click.IntRange(*COUNT_BOUNDS["runs"]), default=10, show_default=True, help="Timed runs per repeat.")
@click.option(
    "--repeats",
    type=click.IntRange(*COUNT_BOUNDS["repeats"]),
    default=30,
    show_default=True,
    help="Repeats (their medians are the samples the regression test compares).",
)
@click.option("--warmup", type=click.IntRange(*COUNT_BOUNDS["warmup"]), default=3, show_default=True, help="Untimed runs first.")
@click.option(
    "--threads",
    type=click.IntRange(*COUNT_BOUNDS["threads"]),
    default=1,
    show_default=True,
    help="onnxruntime intra-op threads while measuring (0: its default, every core; unstable on a loaded machine).",
)
@click.option(
    "--samples",
    type=click.IntRange(*COUNT_BOUNDS["samples"]),
    default=8,
    show_default=True,
    help="Random samples when no data is given.",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "-o", "--out", "out_path", default=None, type=click.Path(dir_okay=False), help="Write the result document (JSON) here."
)
@click.option(
    "--baseline",
    "baseline_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Compare with an earlier result document; exit 5 on regression.",
)
@click.option(
    "--ab",
    "ab_path",
    default=None,
    metavar="OTHER",
    help="Baseline model or bundle re-measured interleaved with MODEL in this run (valid on a busy machine); exit 5 on "
    "regression. With --baseline, accuracy is compared with that document and latency with OTHER.",
)
@threshold_options
@common_options
def command(
    model: str,
    targets: tuple[str, ...],
    data_args: tuple[str, ...],
    eval_path: str | None,
    label_output: str | None,
    calibration_args: tuple[str, ...],
    reference_path: str | None,
    input_specs: tuple[str, ...],
    runs: int,
    repeats: int,
    warmup: int,
    threads: int,
    samples: int,
    seed: int,
    out_path: str | None,
    baseline_path: str | None,
    ab_path: str | None,
    ui: Ui,
    **thresholds: float,
) -> None:
    """Benchmark MODEL (ONNX, compiled for each --target) or a BUNDLE: latency, throughput, memory, size, accuracy, speed-up.

    Latency p50/p90/p99 is measured with onnxruntime here; accelerator latency and the speed-up vs the CPU are
    estimated (cost model or vendor estimator) and labelled so.

    \b
    Examples:
      edgecc bench model.onnx --target hisilicon-npu --target mali-gpu --data input=x.npy
      edgecc bench model.onnx --target qnn-htp --eval eval.npz --calibration calib/ -o bench.json
      edgecc bench model.edgecc --baseline last_bench.json
      edgecc bench new.edgecc --ab old.edgecc     # both re-measured interleaved: a verdict valid on a busy machine
    """
    from edgecc.pipeline.bench import bench_command
    from edgecc.pipeline.benchmark import BenchSettings
    from edgecc.pipeline.regression import Thresholds

    settings = BenchSettings(runs=runs, repeats=repeats, warmup=warmup, threads=threads)
    document, report = bench_command(
        model,
        targets=targets,
        data=data_args,
        eval_path=eval_path,
        label_output=label_output,
        calibration=calibration_args,
        reference_path=reference_path,
        input_specs=input_specs,
        settings=settings,
        samples=samples,
        seed=seed,
        baseline_path=baseline_path,
        ab_path=ab_path,
        thresholds=Thresholds(**thresholds),
        status=ui.status,
    )
    show_records(ui, f"bench of {model}", document["records"])
    if out_path:
        from edgecc.pipeline.documents import write_document

        write_document(out_path, document)
        ui.message(f"[green]wrote[/green] {out_path}")
    if report is not None:
        show_compare(ui, report, verbose=ui.verbose > 0)
    if ui.json_mode:
        ui.emit_json(
            {
                "ok": report is None or not report.regressions,
                "command": "bench",
                "output": out_path,
                **document,
                "comparison": report.to_dict() if report is not None else None,
            }
        )
    if report is not None and report.regressions:
        from edgecc.pipeline.regression import RegressionFound

        ui.json_emitted = True
        raise RegressionFound(
            f"{len(report.regressions)} regression(s) against {ab_path or baseline_path}: "
            + "; ".join(f"{f.pair} {f.check}" for f in report.regressions[:5])
        )
