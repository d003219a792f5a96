"""Bundles: manifest schema validation, integrity checks and safe archive extraction (exit 3 on anything wrong)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgecc.bundle import open_bundle, schema, validate
from edgecc.errors import InvalidInputError
from tests.conftest import Scratch, assert_clean_failure
from tests.targets.helpers import mixed_model, run_cmd
from tests.zips import corrupt_deflate, unknown_compression


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    model = mixed_model(root / "mixed.onnx")
    result = run_cmd("compile", model, "--target", "hisilicon-npu", "-o", root / "mixed.edgecc")
    assert result.returncode == 0, result.stderr
    return root / "mixed.edgecc"


def _copy(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "b.edgecc"
    shutil.copytree(bundle, copy)
    return copy


def _edit(path: Path, change) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_a_compiled_manifest_validates_and_opens(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert validate(manifest, schema()) == []
    opened = open_bundle(bundle)
    assert opened.manifest["format"] == "edgecc-bundle" and len(opened.manifest["partitions"]) >= 3
    assert opened.manifest["verification"]["passed"] is True


def test_validator_reports_every_violation(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["target"]
    manifest["partitions"][0]["nodes"] = "three"
    manifest["partitions"][1]["artifact"] = "../../etc/passwd"
    manifest["extra"] = 1
    errors = validate(manifest, schema())
    text = "\n".join(errors)
    assert "missing 'target'" in text and "partitions[0].nodes: expected integer" in text
    assert "partitions[1].artifact" in text and "unexpected key 'extra'" in text


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["partitions"][0].__setitem__("precision", "int3"), "invalid manifest"),
        (lambda m: m.pop("partitions"), "missing 'partitions'"),
        (lambda m: m["partitions"][0].__setitem__("artifact", "../mixed.onnx"), "invalid manifest"),
        (lambda m: m["partitions"][0]["files"][0].__setitem__("sha256", "0" * 64), "does not match its sha256"),
    ],
)
def test_edited_manifest_is_rejected(bundle: Path, tmp_path: Path, edit, message: str) -> None:
    copy = _copy(bundle, tmp_path)
    _edit(copy, edit)
    result = run_cmd("run", copy)
    assert result.returncode == 3, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_or_tampered_artifact_is_rejected(bundle: Path, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    artifact = json.loads((copy / "manifest.json").read_text())["partitions"][1]["artifact"]
    (copy / artifact).unlink()
    missing = run_cmd("run", copy)
    assert missing.returncode == 3 and "is missing" in missing.stderr
    copy2 = tmp_path / "c.edgecc"
    shutil.copytree(bundle, copy2)
    with open(copy2 / artifact, "ab") as handle:
        handle.write(b"\0")
    tampered = run_cmd("run", copy2)
    assert tampered.returncode == 3 and "sha256" in tampered.stderr


def _rezip(bundle: Path, out: Path, extra: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for file in sorted(bundle.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(bundle).as_posix())
        for name, data in extra.items():
            zf.writestr(name, data)
    return out


@pytest.mark.parametrize("entry", ["../evil.txt", "/tmp/edgecc-evil.txt", "partitions/../../evil.txt"])
def test_archive_with_path_traversal_entry_is_rejected(bundle: Path, tmp_path: Path, entry: str) -> None:
    archive = _rezip(bundle, tmp_path / "bad.edgecc", {entry: b"owned"})
    result = run_cmd("run", archive)
    assert result.returncode == 3, result.stderr
    assert "unsafe path" in result.stderr
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/edgecc-evil.txt").exists()


def test_archive_round_trip_and_garbage(bundle: Path, tmp_path: Path) -> None:
    archive = _rezip(bundle, tmp_path / "good.edgecc", {})
    opened = open_bundle(archive)
    root = opened.root
    assert (root / "manifest.json").is_file()
    opened.close()
    assert not root.exists()
    garbage = tmp_path / "garbage.edgecc"
    garbage.write_bytes(b"PK\x03\x04 not really a zip" + bytes(64))
    with pytest.raises(InvalidInputError):
        open_bundle(garbage)
    result = run_cmd("run", garbage)
    assert result.returncode == 3 and "Traceback" not in result.stderr


def test_reference_data_is_stored(bundle: Path) -> None:
    with np.load(bundle / "reference" / "inputs.npz") as inputs, np.load(bundle / "reference" / "outputs.npz") as outputs:
        assert inputs["s0_i0"].shape == (1, 3, 96, 96) and outputs["s0_o0"].shape == (1, 10)


# --- archives: only declared members, within declared sizes and the compression-ratio bound --------------------

ZEROS = 4 * 1024**2  # 4 MiB of zeros deflate to ~4 KB: ratio ~1000:1, over the default 200:1, cheap to build


def _archive_with(bundle: Path, out: Path, *, declared: dict[str, bytes], stored: dict[str, bytes] | None = None) -> Path:
    """The bundle zipped (deflated) with `declared` members added to partition 0's files in the manifest and the
    archive, and `stored` members added to the archive only; partitions' declared sizes may be overridden by
    `stored` holding different content under a declared name."""
    import hashlib

    manifest = json.loads((bundle / "manifest.json").read_text())
    for name, data in declared.items():
        manifest["partitions"][0]["files"].append({"path": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    members = {
        file.relative_to(bundle).as_posix(): file.read_bytes()
        for file in sorted(bundle.rglob("*"))
        if file.is_file() and file.name != "manifest.json"
    }
    members.update(declared)
    members.update(stored or {})
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def test_archive_member_over_the_compression_ratio_is_refused(bundle: Path, scratch: Scratch) -> None:
    archive = _archive_with(bundle, scratch.files / "bomb.edgecc", declared={"partitions/bomb.bin": bytes(ZEROS)})
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("partitions/bomb.bin").compress_size < ZEROS // 500
    before = scratch.snapshot()
    line = assert_clean_failure(scratch.run("run", archive, "-o", scratch.files / "out.npz"), 3, "bomb.edgecc", "bomb.bin")
    assert "200:1" in line
    assert scratch.snapshot() == before  # no output file
    scratch.assert_nothing_left()  # the extraction folder is gone, nothing written outside the scratch folder


def test_compression_ratio_bound_is_an_environment_variable(bundle: Path, tmp_path: Path) -> None:
    import os

    archive = _archive_with(bundle, tmp_path / "zeros.edgecc", declared={"partitions/zeros.bin": bytes(ZEROS)})
    os.environ["EDGECC_MAX_COMPRESSION_RATIO"] = "5000"
    try:
        opened = open_bundle(archive)
        assert (opened.root / "partitions" / "zeros.bin").stat().st_size == ZEROS
        opened.close()
    finally:
        del os.environ["EDGECC_MAX_COMPRESSION_RATIO"]
    with pytest.raises(InvalidInputError, match="compression-ratio|200:1"):
        open_bundle(archive)


def test_archive_member_the_manifest_does_not_name_is_not_extracted(bundle: Path, tmp_path: Path) -> None:
    archive = _archive_with(bundle, tmp_path / "extra.edgecc", declared={}, stored={"partitions/extra.bin": bytes(ZEROS)})
    opened = open_bundle(archive)
    try:
        assert not (opened.root / "partitions" / "extra.bin").exists()
        assert (opened.root / "manifest.json").is_file()
    finally:
        opened.close()


def test_archive_member_larger_than_declared_is_refused(bundle: Path, scratch: Scratch) -> None:
    artifact = json.loads((bundle / "manifest.json").read_text())["partitions"][0]["artifact"]
    grown = (bundle / artifact).read_bytes() + np.random.default_rng(0).bytes(4096)
    archive = _archive_with(bundle, scratch.files / "grown.edgecc", declared={}, stored={artifact: grown})
    line = assert_clean_failure(scratch.run("run", archive), 3, "grown.edgecc", artifact)
    assert "limit" in line
    scratch.assert_nothing_left()


@pytest.mark.parametrize("damage", ["corrupt-deflate", "unknown-compression"])
def test_archive_with_broken_compression_is_invalid_input(bundle: Path, scratch: Scratch, damage: str) -> None:
    artifact = json.loads((bundle / "manifest.json").read_text())["partitions"][0]["artifact"]
    archive = _archive_with(bundle, scratch.files / "broken.edgecc", declared={})
    (corrupt_deflate if damage == "corrupt-deflate" else unknown_compression)(archive, artifact)
    line = assert_clean_failure(scratch.run("run", archive), 3, "broken.edgecc")
    assert ("corrupt" if damage == "corrupt-deflate" else "unsupported compression") in line
    scratch.assert_nothing_left()


@pytest.mark.parametrize("link", ["loop", "outside", "device"])
def test_bundle_folder_with_a_bad_link_is_invalid_input(bundle: Path, scratch: Scratch, link: str) -> None:
    copy = shutil.copytree(bundle, scratch.files / "b.edgecc")
    artifact = json.loads((copy / "manifest.json").read_text())["partitions"][1]["artifact"]
    target = copy / artifact
    target.unlink()
    if link == "loop":
        target.symlink_to(target.name + ".other")
        target.with_name(target.name + ".other").symlink_to(target.name)
    elif link == "outside":
        (scratch.root / "secret.bin").write_bytes(b"secret")
        target.symlink_to(scratch.root / "secret.bin")
    else:
        target.symlink_to("/dev/zero")
    line = assert_clean_failure(scratch.run("run", copy), 3, artifact)
    assert {"loop": "loop of symbolic links", "outside": "outside the folder", "device": "outside the folder"}[link] in line
    scratch.assert_nothing_left()


def test_archive_member_twice_or_a_file_under_a_file_is_invalid_input(bundle: Path, scratch: Scratch) -> None:
    clash = _archive_with(bundle, scratch.files / "clash.edgecc", declared={"partitions/a.bin": b"a", "partitions/a.bin/b": b"b"})
    assert_clean_failure(scratch.run("run", clash), 3, "clash.edgecc")
    twice = _archive_with(bundle, scratch.files / "twice.edgecc", declared={})
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(twice, "a") as zf:
        zf.writestr("manifest.json", "{}")
    line = assert_clean_failure(scratch.run("run", twice), 3, "twice.edgecc")
    assert "manifest.json' twice" in line
    scratch.assert_nothing_left()
