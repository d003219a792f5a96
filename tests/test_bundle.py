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
from tests.targets.helpers import mixed_model, run_cmd


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
