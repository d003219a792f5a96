"""The entry files: every entry of the zoo is well formed, and a bad one is refused with its file and name."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.builders import SOURCES
from conformance.entries import FORMATS, load_entries
from conformance.harness import TARGETS


def test_the_zoo_entries_load_and_name_known_sources_formats_and_targets():
    entries = load_entries()
    assert len(entries) >= 40
    for entry in entries:
        assert entry["source"] in SOURCES, entry["name"]
        assert entry["format"] in FORMATS
        assert set(entry.get("targets", TARGETS)) <= set(TARGETS), entry["name"]
    assert any("fast" in e["tags"] for e in entries)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[entry]]\nname = "a"\nfamily = "x"\nsource = "torch"\nformat = "zip"\n', "format must be one of"),
        ('[[entry]]\nname = "a"\nfamily = "x"\nsource = "torch"\n', "no 'format'"),
        ('[[entry]]\nname = "a"\nfamily = "x"\nsource = "torch"\nformat = "onnx"\ncolour = 1\n', "unknown key 'colour'"),
        ('[[entry]]\nname = "a"\nfamily = "x"\nsource = "torch"\nformat = "onnx"\nexpect = "refuse"\n', "needs expect_exit"),
        ('[[model]]\nname = "a"\n', "unknown table"),
    ],
)
def test_a_bad_entry_is_refused_with_where(tmp_path: Path, text: str, message: str):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_entries(tmp_path)
    assert "bad.toml" in str(info.value)


def test_a_duplicate_name_is_refused(tmp_path: Path):
    one = '[[entry]]\nname = "a"\nfamily = "x"\nsource = "torch"\nformat = "onnx"\n'
    (tmp_path / "a.toml").write_text(one + one)
    with pytest.raises(ValueError, match="duplicate"):
        load_entries(tmp_path)
