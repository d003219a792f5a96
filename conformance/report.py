"""Totals, failure causes, the comparison with the accepted result, and the Markdown/HTML/JSON reports."""

from __future__ import annotations

import html
import json
import os
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from conformance.harness import OUTCOMES, stage_ok

__all__ = ["outcomes", "totals", "causes_of", "compare_accepted", "write_reports", "totals_markdown", "accepted_document"]

ROOT = Path(__file__).resolve().parent
STAGES = ("build", "convert", "optimize", "quantize")


def outcomes(results: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Every judged result as key -> (outcome, ok); keys are `entry:stage` and `entry:compile@target`."""
    table: dict[str, tuple[str, bool]] = {}
    for name, result in results["entries"].items():
        entry = {"expect": result.get("expect"), **result.get("expect_detail", {})}
        not_run = result.get("not_run", [])
        if "entry" in not_run:
            continue  # the run's time budget ended first: not judged
        for stage in STAGES:
            record = result["stages"].get(stage)
            if result.get("expect") == "refuse" and stage not in ("build", "convert"):
                continue  # a model that must be refused has no later stages
            if stage in not_run:
                continue
            outcome = record["outcome"] if record else "skipped"
            table[f"{name}:{stage}"] = (outcome, stage_ok(entry, stage, record))
        if result.get("expect") == "refuse":
            continue
        for target in results["targets"]:
            if target not in result.get("targets", results["targets"]):
                continue
            if f"compile@{target}" in not_run:
                continue
            record = result["compile"].get(target)
            outcome = record["outcome"] if record else "skipped"
            table[f"{name}:compile@{target}"] = (outcome, stage_ok(entry, "compile", record))
    return table


def totals(results: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per stage and per target: entries judged, ok, and a count per outcome."""
    rows: dict[str, Counter] = {}
    for key, (outcome, ok) in outcomes(results).items():
        column = key.split(":", 1)[1]
        counter = rows.setdefault(column, Counter())
        counter["total"] += 1
        counter["ok"] += int(ok)
        counter[outcome] += 1
    order = [*STAGES] + [f"compile@{t}" for t in results["targets"]]
    return {k: dict(rows[k]) for k in order if k in rows}


def _load_causes(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or ROOT / "causes.toml"
    return tomllib.loads(path.read_text()).get("cause", []) if path.is_file() else []


def causes_of(results: dict[str, Any], causes: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every failed result with its first line and its classified root cause (or 'unclassified')."""
    causes = _load_causes() if causes is None else causes
    failures = []
    for key, (outcome, ok) in outcomes(results).items():
        if ok or outcome == "skipped":
            continue
        name, column = key.split(":", 1)
        result = results["entries"][name]
        record = result["compile"][column.split("@", 1)[1]] if column.startswith("compile@") else result["stages"][column]
        message = record.get("message") or ""
        cause = next(
            (
                c
                for c in causes
                if re.search(c["match"], message)
                and (not c.get("stage") or column.split("@")[0] == c["stage"])
                and (not c.get("family") or result["family"] == c["family"])
                and (not c.get("entry") or re.fullmatch(c["entry"], name))
            ),
            None,
        )
        failures.append(
            {
                "key": key,
                "entry": name,
                "family": result["family"],
                "format": result["format"],
                "stage": column,
                "outcome": outcome,
                "exit": record.get("exit"),
                "message": message,
                "cause": cause["cause"] if cause else "unclassified",
                "issue": cause.get("issue") if cause else None,
            }
        )
    return failures


def accepted_document(results: dict[str, Any]) -> dict[str, Any]:
    """The compact record that `--accept` writes: every key's outcome, and the totals."""
    return {
        "kind": "edgecc.conformance.accepted",
        "targets": results["targets"],
        "outcomes": {k: o for k, (o, _) in sorted(outcomes(results).items())},
        "ok": sorted(k for k, (_, ok) in outcomes(results).items() if ok),
        "totals": totals(results),
    }


def compare_accepted(results: dict[str, Any], accepted: dict[str, Any] | None) -> dict[str, list[str]]:
    """Regressions (ok when accepted, not ok now) and improvements (the reverse), over the keys judged now."""
    if not accepted:
        return {"regressions": [], "improvements": [], "new": sorted(outcomes(results))}
    was_ok = set(accepted.get("ok", []))
    known = set(accepted.get("outcomes", {}))
    now = outcomes(results)
    return {
        "regressions": sorted(k for k, (_, ok) in now.items() if k in was_ok and not ok),
        "improvements": sorted(k for k, (_, ok) in now.items() if ok and k in known and k not in was_ok),
        "new": sorted(k for k in now if k not in known),
    }


def totals_markdown(table: dict[str, dict[str, int]]) -> str:
    """The totals as a Markdown table (the README shows this one)."""
    lines = [
        "| stage | ok | of | " + " | ".join(o for o in OUTCOMES) + " |",
        "|---|--:|--:|" + "--:|" * len(OUTCOMES),
    ]
    for column, counts in table.items():
        lines.append(
            f"| {column} | {counts.get('ok', 0)} | {counts.get('total', 0)} | "
            + " | ".join(str(counts.get(o, 0)) for o in OUTCOMES)
            + " |"
        )
    return "\n".join(lines)


def _not_run(results: dict[str, Any]) -> int:
    return sum(len(r.get("not_run", [])) for r in results["entries"].values())


def _node_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, result in results["entries"].items():
        optimize = result["stages"].get("optimize") or {}
        peers = result["stages"].get("peers") or {}
        nodes = optimize.get("nodes") or {}
        if not nodes:
            continue
        best = min([n for n in (peers.get("onnxsim"), peers.get("onnxslim")) if n is not None], default=None)
        verdict = (
            "-" if best is None else ("more" if nodes["edgecc"] > best else ("fewer" if nodes["edgecc"] < best else "equal"))
        )
        rows.append(
            [
                name,
                str(nodes["converted"]),
                str(nodes["edgecc"]),
                str(peers.get("onnxsim", "-")),
                str(peers.get("onnxslim", "-")),
                verdict,
            ]
        )
    return rows


def _offload_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for target in results["targets"]:
        shares, zero, int8 = [], 0, 0
        for result in results["entries"].values():
            record = result["compile"].get(target)
            if not record or record.get("outcome") != "match" or "offload" not in record:
                continue
            share = record["offload"]["share"]
            shares.append(share)
            zero += int(share == 0)
            int8 += int(any(p in ("int8", "int16") for p in record["offload"]["target_precisions"]))
        mean = f"{100 * sum(shares) / len(shares):.1f}%" if shares else "-"
        rows.append([target, str(len(shares)), mean, str(zero), str(int8)])
    return rows


def _markdown(results: dict[str, Any], comparison: dict[str, list[str]], failures: list[dict[str, Any]]) -> str:
    table = totals(results)
    entries = results["entries"]
    families = Counter(r["family"] for r in entries.values())
    parts = [
        "# edgecc conformance report",
        "",
        f"{len(entries)} entries ({', '.join(f'{k} {v}' for k, v in sorted(families.items()))}); "
        f"targets {', '.join(results['targets'])}; {results['seconds']} s on {results['workers']} worker(s)."
        + (f" Not run (time budget): {_not_run(results)} stage(s), not judged." if _not_run(results) else ""),
        "",
        "## Totals",
        "",
        totals_markdown(table),
        "",
        "## Against the accepted result",
        "",
        f"- regressions (ok when accepted, not now): {len(comparison['regressions'])}"
        + "".join(f"\n  - `{k}`" for k in comparison["regressions"]),
        f"- improvements (now ok): {len(comparison['improvements'])}"
        + "".join(f"\n  - `{k}`" for k in comparison["improvements"]),
        f"- not in the accepted result: {len(comparison['new'])}",
        "",
        "## Node counts after `optimize -O3` vs onnxsim and onnxslim (on the converted model)",
        "",
        "| entry | converted | edgecc -O3 | onnxsim | onnxslim | edgecc vs best |",
        "|---|--:|--:|--:|--:|---|",
        *("| " + " | ".join(r) + " |" for r in _node_rows(results)),
        "",
        "## Offload per target (compiled bundles that match)",
        "",
        "| target | bundles | mean share of nodes on the target | on the CPU entirely | with int8/int16 on the target |",
        "|---|--:|--:|--:|--:|",
        *("| " + " | ".join(r) + " |" for r in _offload_rows(results)),
        "",
        "## Failures and their causes",
        "",
    ]
    by_cause = Counter(f["cause"] for f in failures)
    parts += [f"- {count} × {cause}" for cause, count in by_cause.most_common()]
    parts += ["", "| entry | stage | outcome | exit | first line | cause |", "|---|---|---|--:|---|---|"]
    for f in failures:
        message = f["message"].replace("|", "\\|")[:300]
        issue = f" (issue {f['issue']})" if f["issue"] else ""
        code = f["exit"] if f["exit"] is not None else "-"
        parts.append(f"| {f['entry']} | {f['stage']} | {f['outcome']} | {code} | {message} | {f['cause']}{issue} |")
    parts += ["", "## Entries", "", "| entry | family | format | origin | reference |", "|---|---|---|---|---|"]
    for name, result in entries.items():
        origin, runtime = result.get("origin") or "-", result.get("runtime") or "-"
        parts.append(f"| {name} | {result['family']} | {result['format']} | {origin} | {runtime} |")
    return "\n".join(parts) + "\n"


def _html(markdown: str) -> str:
    """A self-contained HTML page of the Markdown report (tables, headings, lists; nothing fetched)."""
    body, in_table = [], False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if all(re.fullmatch(r"-*:?-+:?", c) for c in cells):
                continue
            if not in_table:
                body.append("<table>")
                in_table, tag = True, "th"
            else:
                tag = "td"
            body.append("<tr>" + "".join(f"<{tag}>{html.escape(c.replace(chr(92) + '|', '|'))}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip().startswith("- "):
            body.append(f"<p>&bull; {html.escape(line.strip()[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 6px}"
    return (
        f"<!doctype html><meta charset=utf-8><title>edgecc conformance</title><style>{style}</style>\n" + "\n".join(body) + "\n"
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_reports(results: dict[str, Any], out: Path, accepted: dict[str, Any] | None) -> dict[str, Any]:
    """Write results.json, report.md and report.html into `out`; the comparison with the accepted result."""
    comparison = compare_accepted(results, accepted)
    failures = causes_of(results)
    document = {**results, "totals": totals(results), "comparison": comparison, "failures": failures}
    _write(out / "results.json", json.dumps(document, indent=1, default=str))
    markdown = _markdown(results, comparison, failures)
    _write(out / "report.md", markdown)
    _write(out / "report.html", _html(markdown))
    return comparison
