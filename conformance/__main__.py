"""`python -m conformance [--fast] [--only A,B] [--family F] [--workers N] [--out DIR] [--accept]`.

Builds and runs the zoo, writes results.json, report.md and report.html, prints the totals and compares them
with conformance/accepted.json: a result that was ok there and is not now fails the run with exit 5.
`--accept` records this run as the accepted result instead (after a fix, or when entries are added).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from conformance.entries import load_entries
from conformance.harness import FAST_TARGETS, TARGETS, Settings, run_entries
from conformance.report import accepted_document, causes_of, totals, totals_markdown, write_reports

ROOT = Path(__file__).resolve().parent
EXIT_REGRESSION = 5


def _select(entries: list[dict], args: argparse.Namespace) -> list[dict]:
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {e["name"] for e in entries}
        if unknown:
            raise SystemExit(f"error: no entries named {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e["name"] in wanted]
    if args.fast:
        entries = [e for e in entries if "fast" in e["tags"]]
    if args.family:
        entries = [e for e in entries if e["family"] in args.family.split(",")]
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help=f"only entries tagged 'fast', compiled for {', '.join(FAST_TARGETS)}")
    parser.add_argument("--only", help="comma-separated entry names")
    parser.add_argument("--family", help="comma-separated families")
    parser.add_argument("--targets", help=f"comma-separated targets (default: {', '.join(TARGETS)})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="build/conformance")
    parser.add_argument("--accepted", default=str(ROOT / "accepted.json"))
    parser.add_argument("--accept", action="store_true", help="write this run's outcomes as the accepted result")
    parser.add_argument(
        "--budget", type=float, help="seconds; work not started by then is reported as not run and not judged (CI's time guard)"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the onnxsim/onnxslim node counts")
    args = parser.parse_args(argv)
    entries = _select(load_entries(ROOT / "entries"), args)
    targets = tuple(args.targets.split(",")) if args.targets else (FAST_TARGETS if args.fast else TARGETS)
    out = Path(args.out)
    start = time.perf_counter()

    def progress(line: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {line}", flush=True)

    from edgecc.ortint8 import host_int8_mode

    # compile's int8 checks depend on it (README, Verification): a result that differs between hosts starts here
    progress(f"onnxruntime int8 kernels on this host: {host_int8_mode()} (EDGECC_ORT_INT8 overrides)")

    settings = Settings(
        out=out, workers=args.workers, targets=targets, peers=not args.no_peers, budget=args.budget, progress=progress
    )
    results = run_entries(entries, settings)
    accepted_path = Path(args.accepted)
    accepted = json.loads(accepted_path.read_text()) if accepted_path.is_file() else None
    comparison = write_reports(results, out, accepted)
    print()
    print(totals_markdown(totals(results)))
    print(f"\nreport: {out / 'report.md'} (and report.html, results.json)")
    if args.accept:
        if args.fast or args.only or args.family or args.targets:
            print("error: --accept records a whole run; run it without --fast/--only/--family/--targets", file=sys.stderr)
            return 2
        accepted_path.write_text(json.dumps(accepted_document(results), indent=1) + "\n")
        print(f"accepted: {accepted_path}")
        return 0
    for key in comparison["improvements"]:
        print(f"improved: {key} (run with --accept to record it)")
    why = {f["key"]: f for f in causes_of(results)}
    for key in comparison["regressions"]:
        failure = why.get(key)
        detail = f" ({failure['outcome']}: {failure['message'][:300]})" if failure else " (not run)"
        print(f"REGRESSION: {key} was ok in {accepted_path.name} and is not now{detail}", file=sys.stderr)
    if comparison["regressions"]:  # the end of the log is what CI keeps: say how this host ran int8 there too
        print(f"onnxruntime int8 kernels on this host: {host_int8_mode()}", file=sys.stderr)
    return EXIT_REGRESSION if comparison["regressions"] else 0


if __name__ == "__main__":
    sys.exit(main())
