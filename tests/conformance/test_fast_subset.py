"""The fast subset of the conformance zoo (entries tagged "fast"), as `make test` runs it: built from their sources,
taken through edgecc's command line, judged against the original runtimes, and compared with the accepted result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.entries import load_entries
from conformance.harness import FAST_TARGETS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1500)
def test_fast_subset_runs_and_does_not_regress(tmp_path: Path):
    out = tmp_path / "conformance"
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--fast", "--no-peers", "--workers", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    fast = {e["name"] for e in load_entries() if "fast" in e["tags"]}
    assert set(results["entries"]) == fast
    formats = {results["entries"][name]["format"] for name in fast}
    assert len(formats) >= 4, formats  # a few models per format
    for name in fast:
        assert results["entries"][name]["stages"]["build"]["outcome"] == "match", name
        assert set(results["entries"][name]["compile"]) <= set(FAST_TARGETS)
    assert (out / "report.md").read_text().startswith("# edgecc conformance report")
    assert "<table>" in (out / "report.html").read_text()
