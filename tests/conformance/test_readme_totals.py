"""The README's conformance totals are the accepted result's."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conformance.report import totals_markdown

REPO = Path(__file__).resolve().parents[2]


def test_readme_totals_table_is_the_accepted_results():
    accepted = json.loads((REPO / "conformance" / "accepted.json").read_text())
    readme = (REPO / "README.md").read_text()
    table = re.search(r"<!-- conformance-totals -->\n(.*?)\n<!-- /conformance-totals -->", readme, re.S)
    assert table, "README.md has no conformance totals block"
    assert table.group(1).strip() == totals_markdown(accepted["totals"]).strip()
