"""`edgecc zoo run|report|compare`: model-zoo runs over targets, their summary, and regression checks against a baseline."""

from __future__ import annotations

import sys
from typing import Any

import click

from edgecc.commands.bench import show_compare, threshold_options
from edgecc.commands.common import common_options
from edgecc.ui import Ui

__all__ = ["command"]


@click.group("zoo", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Run a model zoo (models x targets), report it, compare it with a baseline.

    \b
    Examples:
      edgecc zoo run samples/zoo/zoo.toml -o build/zoo --workers 2
      edgecc zoo report build/zoo
      edgecc zoo compare build/zoo --baseline baseline/
    """


class _Progress:
    """Progress of a zoo run on stderr: a rich bar on a terminal, one line per pair otherwise."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.bar: Any = None
        self.task: Any = None
        self.done = 0
        self.total = 0

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if self.ui.quiet or self.ui.json_mode:
            return
        if event == "start":
            self.total = info["total"]
            self.ui.message(f"{info['total']} pair(s): {info['todo']} to run, {info['resumed']} done before (resumed)")
            if sys.stderr.isatty():
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self.bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=self.ui.console,
                    transient=True,
                )
                self.bar.start()
                self.task = self.bar.add_task("zoo", total=self.total)
            return
        self.done += 1
        status = "[green]ok[/green]" if info["status"] == "ok" else "[red]failed[/red]"
        detail = " (done before)" if info.get("resumed") else f" ({info.get('seconds', 0.0):.1f} s)"
        failure = info.get("failure")
        if failure:
            detail += f": {failure['stage']} exit {failure['exit_code']}: {failure['message'][:160]}"
        line = f"[{self.done}/{self.total}] {info['id']} {status}{detail}"
        if self.bar is not None:
            self.bar.console.print(line)
            self.bar.update(self.task, completed=self.done, description=info["id"])
        else:
            self.ui.message(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@command.command("run")
@click.argument("zoo_file", metavar="ZOO.toml")
@click.option(
    "-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Results folder (created; reused to resume)."
)
@click.option("--workers", type=click.IntRange(1, 1024), default=1, show_default=True, help="Worker processes (or Ray CPUs).")
@click.option(
    "--ray",
    "use_ray",
    is_flag=True,
    help="Distribute the pairs over Ray (edgecc[ray]); a local Ray instance unless --ray-address.",
)
@click.option(
    "--ray-address", default=None, help="Address of an existing Ray cluster (the results folder must be shared by its nodes)."
)
@click.option("--force", is_flag=True, help="Redo every pair, even those done with the same inputs.")
@click.option("--retry-failed", is_flag=True, help="Redo pairs that failed before (done pairs are still skipped).")
@click.option(
    "--strict", is_flag=True, help="Exit with the first failed pair's exit code (default: 0 once every pair is recorded)."
)
@common_options
def run(
    zoo_file: str,
    out_dir: str,
    workers: int,
    use_ray: bool,
    ray_address: str | None,
    force: bool,
    retry_failed: bool,
    strict: bool,
    ui: Ui,
) -> None:
    """Convert, optimise, quantise, compile, verify and bench every model x target pair of ZOO.toml.

    Failures are recorded (stage, exit code, message) and the run continues; pairs already done with the same
    inputs are skipped (resume) unless --force. Every pair's result is written atomically to OUT/results/.
    """
    from pathlib import Path

    from edgecc.zoo.config import load_zoo
    from edgecc.zoo.runner import run_zoo
    from edgecc.zoo.workers import make_backend

    config = load_zoo(zoo_file)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    backend = make_backend(
        workers=workers, ray=use_ray, ray_address=ray_address, log_path=str(Path(out_dir).resolve() / "logs" / "worker")
    )
    progress = _Progress(ui)
    try:
        index = run_zoo(config, out_dir, backend, force=force, retry_failed=retry_failed, progress=progress)
    finally:
        progress.close()
    counts = index["counts"]
    ui.message(
        f"{counts['ok']} ok, {counts['failed']} failed, {counts['resumed']} resumed; {index['wall_seconds']:.1f} s on "
        f"{index['workers']} {index['backend']} worker(s); results in {out_dir} (worker logs in {out_dir}/logs)"
    )
    if ui.json_mode:
        ui.emit_json({"ok": True, "command": "zoo run", "output": out_dir, **index})
    if strict and counts["failed"]:
        from edgecc.zoo.runner import load_results

        _, pairs = load_results(out_dir)
        first = next(p for p in pairs.values() if p["status"] != "ok")
        ui.json_emitted = True
        sys.stderr.write(f"edgecc: error: {first['id']}: {first['failure']['stage']}: {first['failure']['message']}\n")
        sys.exit(first["failure"]["exit_code"])


@command.command("report")
@click.argument("results")
@click.option(
    "-o",
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where to write report.md, report.html and charts (default: RESULTS).",
)
@click.option("--no-charts", is_flag=True, help="Skip the PNG charts (matplotlib).")
@common_options
def report(results: str, out_dir: str | None, no_charts: bool, ui: Ui) -> None:
    """Summarise a results folder: Markdown and HTML tables (models x targets) and PNG charts of latency and accuracy."""
    from edgecc.zoo.report import render_report
    from edgecc.zoo.runner import load_results

    index, pairs = load_results(results)
    from edgecc.zoo.report import pair_rows

    written, _ = render_report(index, pairs, out_dir or results, charts=not no_charts)
    keep = [0, 1, 2, 3, 4, 6, 7, 8, 10, 11]  # the terminal gets the narrow columns; the files have them all
    rows = [[row[i] for i in keep] for row in pair_rows(pairs, message_chars=0)]
    ui.table(f"zoo {index['name']}: {index['counts']['ok']} ok, {index['counts']['failed']} failed", rows[0], rows[1:])
    for path in written:
        ui.message(f"[green]wrote[/green] {path}")
    if ui.json_mode:
        ui.emit_json({"ok": True, "command": "zoo report", "files": [str(p) for p in written], "pairs": len(pairs)})


@command.command("compare")
@click.argument("results")
@click.option("--baseline", "baseline", required=True, help="Results folder of the last accepted run.")
@click.option(
    "-o", "--out", "out_path", default=None, type=click.Path(dir_okay=False), help="Write the comparison document (JSON) here."
)
@click.option(
    "--rerun-baseline",
    is_flag=True,
    help="Re-measure every pair's baseline bundle interleaved with the current one (a latency verdict valid on a busy machine).",
)
@click.option(
    "--runs", type=click.IntRange(1, 100_000), default=None, help="--rerun-baseline: timed runs per round (default: the run's)."
)
@click.option(
    "--repeats", type=click.IntRange(1, 1000), default=None, help="--rerun-baseline: A/B rounds (default: the run's repeats)."
)
@click.option(
    "--threads",
    type=click.IntRange(0, 1024),
    default=1,
    show_default=True,
    help="--rerun-baseline: onnxruntime intra-op threads (0: its default).",
)
@threshold_options
@common_options
def compare(
    results: str,
    baseline: str,
    out_path: str | None,
    rerun_baseline: bool,
    runs: int | None,
    repeats: int | None,
    threads: int,
    ui: Ui,
    **thresholds: float,
) -> None:
    """Flag regressions of RESULTS against --baseline: newly failing pairs, accuracy drops, latency
    increases (a statistical test over the repeats of both runs; paired with --rerun-baseline).

    Exit 5 when anything regressed (so that make or CI fails).
    """
    from edgecc.pipeline.documents import stamp, write_document
    from edgecc.pipeline.regression import RegressionFound, Thresholds, compare_entries
    from edgecc.zoo.runner import load_results

    _, base = load_results(baseline)
    index, current = load_results(results)
    remeasured: list[str] = []
    if rerun_baseline:
        from edgecc.pipeline.benchmark import BenchSettings
        from edgecc.zoo.rerun import rerun_baseline as rerun

        run_settings = index.get("settings") or {}
        settings = BenchSettings(
            runs=runs or int(run_settings.get("runs", 5)),
            repeats=repeats or int(run_settings.get("repeats", 30)),
            warmup=int(run_settings.get("warmup", 3)),
            threads=threads,
        )

        def progress(pid: str, done: int, total: int) -> None:
            if not ui.quiet and not ui.json_mode:
                ui.message(f"[{done + 1}/{total}] {pid}: baseline and current bundles measured interleaved")

        with ui.status("re-measuring the baseline interleaved with the current run"):
            base, current, remeasured = rerun(baseline, base, results, current, settings, progress=progress)
    report_ = compare_entries(base, current, Thresholds(**thresholds))
    show_compare(ui, report_, verbose=ui.verbose > 0)
    document = stamp(
        "edgecc.pipeline.regression",
        {"results": results, "baseline": baseline, "rerun_baseline": remeasured if rerun_baseline else None, **report_.to_dict()},
    )
    if out_path:
        write_document(out_path, document)
        ui.message(f"[green]wrote[/green] {out_path}")
    regressions = report_.regressions
    if not regressions:
        how = f" ({len(remeasured)} re-measured interleaved)" if rerun_baseline else ""
        ui.message(f"no regression in {report_.compared} pair(s) against {baseline}{how}")
    if ui.json_mode:
        ui.emit_json({"ok": not regressions, "command": "zoo compare", **document})
    if regressions:
        raise RegressionFound(
            f"{len(regressions)} regression(s) against {baseline}: "
            + "; ".join(f"{f.pair} {f.check}" for f in regressions[:5])
            + (" ..." if len(regressions) > 5 else ""),
            hint="see the table above (or --json) for values and thresholds",
        )
