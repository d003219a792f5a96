"""The zoo summary: a Markdown and an HTML table (one row per pair, and a models x targets matrix) and PNG charts
(matplotlib, Agg backend, imported only here) of latency and accuracy per target."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgecc.pipeline.offload import share_cell

__all__ = ["COLUMNS", "pair_rows", "render_report"]

COLUMNS = [
    "model",
    "target",
    "status",
    "precision",
    "on target",
    "cosine",
    "SQNR dB",
    "top-1 agr.",
    "accuracy",
    "measured p50 ms",
    "noise ms",
    "estimated ms",
    "est. speed-up vs CPU",
    "peak RSS MiB",
    "bundle KiB",
]


def _f(value: Any, spec: str, suffix: str = "") -> str:
    if value is None:
        return "-"
    try:
        return format(float(value), spec) + suffix
    except (TypeError, ValueError):
        return str(value)


def pair_rows(pairs: Mapping[str, Mapping[str, Any]], *, message_chars: int = 120) -> list[list[str]]:
    """Header and one row per pair (in id order); failure messages cut at `message_chars`."""
    rows = [list(COLUMNS)]
    for pid in sorted(pairs):
        p = pairs[pid]
        if p["status"] != "ok":
            failure = p["failure"] or {}
            message = f": {failure.get('message', '')[:message_chars]}" if message_chars else ""
            rows.append(
                [p["model"], p["target"], f"FAILED {failure.get('stage', '?')} (exit {failure.get('exit_code', '?')}){message}"]
                + ["-"] * (len(COLUMNS) - 3)
            )
            continue
        r = p["record"]
        acc, m, e = r.get("accuracy") or {}, r["latency"]["measured"], r["latency"].get("estimated") or {}
        task = acc.get("task") or {}
        rows.append(
            [
                p["model"],
                p["target"],
                "ok",
                r.get("precision") or "-",
                share_cell(r.get("offload")),
                _f(acc.get("cosine_min"), ".6f"),
                _f(acc.get("sqnr_db_min"), ".1f"),
                _f(acc.get("top1_agreement"), ".0%") if acc.get("top1_agreement") is not None else "-",
                _f(task.get("value"), ".1%") if task else "-",
                _f(m.get("median_of_repeats_ms"), ".4f"),
                _f(m.get("noise_ms"), ".4f"),
                _f(e.get("latency_ms"), ".4f"),
                _f(e.get("speedup_vs_cpu"), ".2f", "x"),
                _f((r["memory"].get("peak_rss_bytes") or 0) / 2**20, ".0f"),
                _f(r["memory"].get("artifact_bytes", 0) / 1024, ".0f"),
            ]
        )
    return rows


def _matrix(pairs: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    models = sorted({p["model"] for p in pairs.values()})
    targets = sorted({p["target"] for p in pairs.values()})
    by = {(p["model"], p["target"]): p for p in pairs.values()}
    rows = []
    for model in models:
        row = [model]
        for target in targets:
            p = by.get((model, target))
            if p is None:
                row.append("")
            elif p["status"] != "ok":
                row.append(f"FAILED ({p['failure']['stage']}, exit {p['failure']['exit_code']})")
            else:
                acc = p["record"].get("accuracy") or {}
                est = p["record"]["latency"].get("estimated") or {}
                share = share_cell(p["record"].get("offload"))
                row.append(
                    f"ok, cos {_f(acc.get('cosine_min'), '.4f')}, est. {_f(est.get('latency_ms'), '.3f')} ms "
                    f"({_f(est.get('speedup_vs_cpu'), '.2f', 'x')})" + (f", {share} on target" if share != "-" else "")
                )
        rows.append(row)
    return ["model", *targets], rows


_NOTE = (
    "Measured: onnxruntime on this host's CPU (accelerator partitions emulated in their precision), median of the repeats' "
    "medians, noise = 1.4826 x MAD of those medians. Estimated: the target's cost model or its vendor estimator (not measured); "
    "speed-up = estimated all-CPU latency / estimated latency. Accuracy: the bundle against the float model (worst output); "
    "'accuracy' = top-1 accuracy on labelled evaluation data."
)


def _markdown(
    index: Mapping[str, Any], rows: Sequence[Sequence[str]], matrix: tuple[list[str], list[list[str]]], charts: Sequence[Path]
) -> str:
    def table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
        esc = [[c.replace("|", "\\|") for c in row] for row in [header, *body]]
        return ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in esc[1:]]

    machine = index.get("machine", {})
    lines = [
        f"# Zoo report: {index['name']}",
        "",
        f"{index['counts']['ok']} ok, {index['counts']['failed']} failed of {len(index['pairs'])} pairs; "
        f"edgecc {index['edgecc_version']}; "
        f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores); {index['workers']} {index['backend']} worker(s), "
        f"{index['wall_seconds']:.1f} s.",
        "",
        "## Models x targets",
        "",
    ]
    lines += table(*matrix)
    lines += ["", "## Pairs", ""] + table(rows[0], rows[1:]) + ["", _NOTE, ""]
    lines += [f"![{c.stem}]({c.name})" for c in charts]
    return "\n".join(lines) + "\n"


def _html(
    index: Mapping[str, Any], rows: Sequence[Sequence[str]], matrix: tuple[list[str], list[list[str]]], charts: Sequence[Path]
) -> str:
    def table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        cells = "".join(
            "<tr>"
            + "".join(f'<td class="{"bad" if c.startswith("FAILED") else ""}">{html.escape(c)}</td>' for c in row)
            + "</tr>"
            for row in body
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"

    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}td:first-child,td:nth-child(2){text-align:left}.bad{color:#b00;text-align:left}"
    )
    images = "".join(f'<p><img src="{html.escape(c.name)}" alt="{html.escape(c.stem)}"></p>' for c in charts)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Zoo report: {html.escape(index["name"])}</title>'
        f"<style>{style}</style></head><body><h1>Zoo report: {html.escape(index['name'])}</h1>"
        f"<p>{index['counts']['ok']} ok, {index['counts']['failed']} failed; edgecc {html.escape(index['edgecc_version'])}</p>"
        f"<h2>Models x targets</h2>{table(*matrix)}<h2>Pairs</h2>{table(rows[0], rows[1:])}"
        f"<p>{html.escape(_NOTE)}</p>{images}</body></html>\n"
    )


def _charts(pairs: Mapping[str, Mapping[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from edgecc.fileio import atomic_output

    ok = [p for p in pairs.values() if p["status"] == "ok"]
    models = sorted({p["model"] for p in ok})
    targets = sorted({p["target"] for p in ok})
    if not ok:
        return []
    by = {(p["model"], p["target"]): p["record"] for p in ok}
    specs = [
        (
            "latency.png",
            "estimated latency per target (ms, log scale; cost model / vendor estimator)",
            lambda r: (r["latency"].get("estimated") or {}).get("latency_ms"),
            True,
        ),
        (
            "latency_measured.png",
            "measured latency on this host per target (ms, onnxruntime)",
            lambda r: r["latency"]["measured"].get("median_of_repeats_ms"),
            True,
        ),
        (
            "accuracy.png",
            "worst-output SQNR vs the float model per target (dB)",
            lambda r: _finite((r.get("accuracy") or {}).get("sqnr_db_min")),
            False,
        ),
    ]
    written = []
    width = 0.8 / max(1, len(targets))
    for name, title, value, log in specs:
        fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(models) + 2), 4), dpi=100)
        x = np.arange(len(models))
        for i, target in enumerate(targets):
            values = [value(by[(m, target)]) if (m, target) in by else None for m in models]
            ax.bar(x + i * width - 0.4 + width / 2, [v if v is not None else 0.0 for v in values], width, label=target)
        ax.set_xticks(x, models, rotation=20, ha="right")
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / name
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
        plt.close(fig)
        written.append(path)
    return written


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return min(number, 120.0) if number == number else None  # an exact match (inf dB) is drawn at 120 dB


def render_report(
    index: Mapping[str, Any], pairs: Mapping[str, Mapping[str, Any]], out_dir: str | Path, *, charts: bool = True
) -> tuple[list[Path], list[list[str]]]:
    """Write report.md, report.html and the charts into `out_dir`; returns the files and the table rows."""
    from edgecc.fileio import atomic_write_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = pair_rows(pairs)
    matrix = _matrix(pairs)
    images = _charts(pairs, out) if charts else []
    atomic_write_bytes(out / "report.md", _markdown(index, rows, matrix, images).encode())
    atomic_write_bytes(out / "report.html", _html(index, rows, matrix, images).encode())
    return [out / "report.md", out / "report.html", *images], rows
