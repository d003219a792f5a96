"""edgecc.archive: members streamed within a size limit and the compression-ratio bound; corruption is exit 3."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from edgecc.archive import DEFAULT_MAX_COMPRESSION_RATIO, RATIO_FREE_BYTES, copy_member, max_compression_ratio, read_member
from edgecc.errors import InvalidInputError, UsageError
from tests.conftest import REPO
from tests.zips import corrupt_deflate, unknown_compression


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_small_members_may_compress_well_big_ones_not(tmp_path):
    path = _zip(tmp_path / "a.zip", {"small": bytes(RATIO_FREE_BYTES), "big": bytes(2 * RATIO_FREE_BYTES)})
    with zipfile.ZipFile(path) as archive:
        assert read_member(archive, "small", limit=1 << 30, archive=path, what="test archive") == bytes(RATIO_FREE_BYTES)
        with pytest.raises(InvalidInputError, match=r"'big' expands \d+:1, over the 200:1 bound") as info:
            read_member(archive, "big", limit=1 << 30, archive=path, what="test archive")
    assert info.value.exit_code == 3 and "a.zip" in info.value.message


def test_limit_is_counted_while_streaming(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECC_MAX_COMPRESSION_RATIO", "100000")
    data = bytes(3 * RATIO_FREE_BYTES)
    path = _zip(tmp_path / "a.zip", {"m": data})
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("m")
        assert copy_member(archive, info, tmp_path / "out" / "m", limit=len(data), archive=path, what="t") == len(data)
        with pytest.raises(InvalidInputError, match="is 3145728 bytes, over its 100-byte limit"):
            copy_member(archive, info, tmp_path / "out" / "m2", limit=100, archive=path, what="t")
        info.file_size = 10  # a size that lies: never more than the limit is written, and the member is refused
        with pytest.raises(InvalidInputError, match="inflates beyond its 100-byte limit|Bad CRC-32"):
            copy_member(archive, info, tmp_path / "out" / "m3", limit=100, archive=path, what="t")
        assert (tmp_path / "out" / "m3").stat().st_size <= 100


@pytest.mark.parametrize("value", ["0.5", "abc", "inf", "nan"])
def test_ratio_environment_variable_is_checked(monkeypatch, value):
    monkeypatch.setenv("EDGECC_MAX_COMPRESSION_RATIO", value)
    with pytest.raises(UsageError, match="EDGECC_MAX_COMPRESSION_RATIO"):
        max_compression_ratio()


def test_default_ratio():
    assert max_compression_ratio() == DEFAULT_MAX_COMPRESSION_RATIO == 200


@pytest.mark.parametrize("damage", [corrupt_deflate, unknown_compression])
def test_broken_compression_is_invalid_input(tmp_path, damage):
    path = damage(_zip(tmp_path / "a.zip", {"m": b"some text " * 100}), "m")
    with zipfile.ZipFile(path) as archive, pytest.raises(InvalidInputError) as info:
        read_member(archive, "m", limit=1 << 20, archive=path, what="test archive")
    assert info.value.exit_code == 3 and "a.zip" in info.value.message


def test_readme_safety_names_the_limits():
    safety = (REPO / "README.md").read_text().split("## Safety", 1)[1].split("\n## ", 1)[0]
    for text in ("200:1", "EDGECC_MAX_COMPRESSION_RATIO", "EDGECC_MAX_TENSOR_BYTES", "112 GiB", "±1e30", "1..1,000", "8 GiB"):
        assert text in safety, text
