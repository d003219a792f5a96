"""Bundles: a directory (or `.edgecc` zip) holding `manifest.json`, `partitions/` and `reference/`.

This module is only the file format: the compile driver (`edgecc.pipeline`) decides what goes into a manifest.
The manifest's JSON Schema ships beside this module as `edgecc/manifest.schema.json`; `validate` checks the
subset of JSON Schema it uses (type, required, properties, additionalProperties, items, enum,
const, minimum, minItems, minLength, pattern), so `jsonschema` is not a dependency. Reading a bundle validates the
manifest, the artifact hashes and every path (no absolute paths, no `..`), and extracts archives with
size limits; any problem is exit 3.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from edgecc.errors import InvalidInputError, UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FORMAT",
    "MANIFEST",
    "MAX_ARCHIVE_BYTES",
    "SCHEMA_VERSION",
    "OpenedBundle",
    "npz_bytes",
    "open_bundle",
    "read_reference",
    "schema",
    "staging",
    "validate",
    "write_manifest",
    "write_reference",
]

FORMAT = "edgecc-bundle"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MAX_ARCHIVE_BYTES = 8 * 1024**3  # total uncompressed size of an archive
MAX_ARCHIVE_ENTRIES = 10_000
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def schema() -> dict[str, Any]:
    """The manifest's JSON Schema (shipped in the package)."""
    return json.loads((Path(__file__).with_name("manifest.schema.json")).read_text())


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def validate(value: Any, spec: Mapping[str, Any], where: str = "manifest") -> list[str]:
    """Every violation of `spec` (the JSON Schema subset above) by `value`, as 'path: problem' lines."""
    errors: list[str] = []
    kinds = spec.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_type_ok(value, k) for k in kinds):
            return [f"{where}: expected {' or '.join(kinds)}, got {type(value).__name__}"]
    if "enum" in spec and value not in spec["enum"]:
        errors.append(f"{where}: {value!r} is not one of {spec['enum']}")
    if "const" in spec and value != spec["const"]:
        errors.append(f"{where}: must be {spec['const']!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "minimum" in spec and value < spec["minimum"]:
        errors.append(f"{where}: {value} < {spec['minimum']}")
    if isinstance(value, str) and len(value) < spec.get("minLength", 0):
        errors.append(f"{where}: shorter than {spec['minLength']}")
    if isinstance(value, str) and "pattern" in spec and not re.search(spec["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {spec['pattern']}")
    if isinstance(value, dict):
        for key in spec.get("required", ()):
            if key not in value:
                errors.append(f"{where}: missing '{key}'")
        properties = spec.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors.extend(validate(item, properties[key], f"{where}.{key}"))
            elif spec.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected key '{key}'")
            elif isinstance(spec.get("additionalProperties"), dict):
                errors.extend(validate(item, spec["additionalProperties"], f"{where}.{key}"))
    if isinstance(value, list):
        if "minItems" in spec and len(value) < spec["minItems"]:
            errors.append(f"{where}: needs at least {spec['minItems']} item(s)")
        if "items" in spec:
            for index, item in enumerate(value):
                errors.extend(validate(item, spec["items"], f"{where}[{index}]"))
    return errors


def _sha256(path: Path) -> str:
    from edgecc.fileio import sha256_of

    return sha256_of(path)


@contextlib.contextmanager
def staging(out: Path, *, archive: bool = False) -> Iterator[Path]:
    """A temporary bundle directory beside `out`, renamed (or zipped) onto it on success, deleted on failure."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output directory '{parent}' does not exist", hint="create it first")
    if out.exists() and not archive and not (out.is_dir() and (out / MANIFEST).is_file()):
        raise UsageError(
            f"output '{out}' exists and is not a bundle directory; edgecc will not replace it", hint="choose another -o"
        )
    if out.exists() and archive and out.is_dir():
        raise UsageError(f"output '{out}' is a directory", hint="give a file name for --archive")
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        yield stage
        if archive:
            _zip_dir(stage, out)
            shutil.rmtree(stage)
        else:
            old = None
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
                os.replace(out, old / "bundle")
            os.replace(stage, out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _zip_dir(directory: Path, out: Path) -> None:
    from edgecc.fileio import atomic_output

    files = sorted(p for p in directory.rglob("*") if p.is_file())
    with atomic_output(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in files:
            info = zipfile.ZipInfo(file.relative_to(directory).as_posix(), date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, file.read_bytes())


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A deterministic .npz (fixed timestamps, sorted keys)."""
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data.getvalue())
    return buffer.getvalue()


def write_reference(
    stage: Path,
    inputs: Sequence[Mapping[str, np.ndarray]],
    outputs: Sequence[Mapping[str, np.ndarray]],
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> None:
    """Store sample inputs and their expected outputs under `reference/` (deterministic .npz files)."""
    (stage / "reference").mkdir(exist_ok=True)
    (stage / "reference" / "inputs.npz").write_bytes(
        npz_bytes({f"s{k}_i{j}": f[n] for k, f in enumerate(inputs) for j, n in enumerate(input_names)})
    )
    (stage / "reference" / "outputs.npz").write_bytes(
        npz_bytes({f"s{k}_o{j}": o[n] for k, o in enumerate(outputs) for j, n in enumerate(output_names)})
    )


def read_reference(root: Path, manifest: Mapping[str, Any]) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The stored sample inputs and expected outputs (lists of name -> array)."""
    import numpy as np

    ref = manifest["reference"]
    in_names = [i["name"] for i in manifest["inputs"]]
    out_names = [o["name"] for o in manifest["outputs"]]
    result = []
    for file, names, tag in ((ref["inputs"], in_names, "i"), (ref["outputs"], out_names, "o")):
        path = _inside(root, file)
        try:
            with np.load(path, allow_pickle=False) as data:
                result.append([{n: data[f"s{k}_{tag}{j}"] for j, n in enumerate(names)} for k in range(ref["samples"])])
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
            raise InvalidInputError(f"bundle reference file '{file}' is corrupt: {exc}", path=path) from None
    return result[0], result[1]


def write_manifest(stage: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.json (sorted keys: byte-identical for the same content); sample count from the reference."""
    import numpy as np

    ref = stage / "reference" / "inputs.npz"
    if ref.exists() and manifest["inputs"]:
        with np.load(ref, allow_pickle=False) as data:
            manifest["reference"]["samples"] = len(data.files) // len(manifest["inputs"])
    errors = validate(manifest, schema())
    if errors:  # a bug in edgecc, not in the user's input
        raise AssertionError(f"manifest does not match its schema: {errors[:3]}")
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        bool(name)
        and not name.startswith("/")
        and "\\" not in name
        and ".." not in path.parts
        and not re.match(r"^[A-Za-z]:", name)
    )


def _inside(root: Path, relative: str) -> Path:
    if not _safe_member(relative):
        raise InvalidInputError(f"bundle path '{relative}' is absolute or leaves the bundle", path=root)
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise InvalidInputError(f"bundle path '{relative}' leaves the bundle", path=root)
    return path


def _extract(archive: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ARCHIVE_ENTRIES:
                raise InvalidInputError(
                    f"bundle archive '{archive}' has {len(infos)} entries (limit {MAX_ARCHIVE_ENTRIES})", path=archive
                )
            total = 0
            for info in infos:
                if not _safe_member(info.filename):
                    raise InvalidInputError(f"bundle archive '{archive}' holds an unsafe path '{info.filename}'", path=archive)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise InvalidInputError(f"bundle archive '{archive}' holds a symbolic link '{info.filename}'", path=archive)
                total += info.file_size
                if total > MAX_ARCHIVE_BYTES:
                    raise InvalidInputError(f"bundle archive '{archive}' expands beyond {MAX_ARCHIVE_BYTES} bytes", path=archive)
            for info in infos:
                if info.is_dir():
                    continue
                target = into / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    copied = 0
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        copied += len(chunk)
                        if copied > info.file_size:
                            raise InvalidInputError(
                                f"bundle archive entry '{info.filename}' is larger than it declares", path=archive
                            )
                        dst.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise InvalidInputError(f"bundle archive '{archive}' is corrupt: {exc}", path=archive) from None


class OpenedBundle:
    """A validated bundle on disk (archives extracted into a temporary directory, removed on close)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if not self.path.exists():
            raise UsageError(f"bundle '{path}' does not exist")
        if self.path.is_dir():
            self.root = self.path
        else:
            if not zipfile.is_zipfile(self.path):
                raise InvalidInputError(f"'{path}' is neither a bundle directory nor a .edgecc archive", path=path)
            self._tmp = tempfile.TemporaryDirectory(prefix="edgecc-bundle-")
            self.root = Path(self._tmp.name)
            _extract(self.path, self.root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise InvalidInputError(f"bundle '{path}' has no {MANIFEST}", path=path)
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"bundle '{path}': {MANIFEST} is not valid JSON: {exc}", path=path) from None
        errors = validate(self.manifest, schema())
        if errors:
            raise InvalidInputError(f"bundle '{path}': invalid manifest: {'; '.join(errors[:5])}", path=path)
        self._check_files()

    def _check_files(self) -> None:
        for part in self.manifest["partitions"]:
            paths = {f["path"] for f in part["files"]}
            if part["artifact"] not in paths:
                raise InvalidInputError(
                    f"bundle '{self.path}': partition {part['index']} artifact '{part['artifact']}' is not among its files",
                    path=self.path,
                )
            for file in part["files"]:
                full = _inside(self.root, file["path"])
                if not full.is_file():
                    raise InvalidInputError(
                        f"bundle '{self.path}': artifact '{file['path']}' of partition {part['index']} is missing", path=self.path
                    )
                if _sha256(full) != file["sha256"]:
                    raise InvalidInputError(
                        f"bundle '{self.path}': artifact '{file['path']}' does not match its sha256 in the manifest "
                        "(edited or corrupt)",
                        path=self.path,
                    )
        for ref in (self.manifest["reference"]["inputs"], self.manifest["reference"]["outputs"]):
            _inside(self.root, ref)

    def file(self, relative: str) -> Path:
        """A path inside the bundle, checked."""
        return _inside(self.root, relative)

    def close(self) -> None:
        """Remove the extraction directory of an archive."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def open_bundle(path: str | Path) -> OpenedBundle:
    """Open and validate a bundle (directory or archive); exit 3 on anything wrong."""
    return OpenedBundle(path)
