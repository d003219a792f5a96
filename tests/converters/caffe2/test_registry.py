"""Every registered Caffe2 converter and fill has a docstring and a numeric test in this folder."""

from __future__ import annotations

import re
from pathlib import Path

from edgecc.converters.caffe2 import supported_ops
from edgecc.converters.caffe2.graph import OPS
from edgecc.converters.caffe2.ops_fill import FILLS

HERE = Path(__file__).parent


def _quoted_names() -> set[str]:
    text = "\n".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != Path(__file__).name)
    return set(re.findall(r'"([A-Za-z0-9_]+)"', text))


def test_every_op_and_fill_is_tested_and_documented() -> None:
    tested = _quoted_names()
    assert supported_ops() == sorted(OPS.names())
    untested = [name for name in list(OPS.names()) + list(FILLS.names()) if name not in tested]
    assert not untested, f"no test mentions {untested}"
    undocumented = [name for name, fn in OPS.items() + FILLS.items() if not (fn.__doc__ or "").strip()]
    assert not undocumented, undocumented
