"""Bundles: a directory (or `.edgecc` zip) holding `manifest.json`, `partitions/` and `reference/`.

This module is only the file format: the compile driver (`edgecc.pipeline`) decides what goes into a manifest.
The manifest's JSON Schema ships beside this module as `edgecc/manifest.schema.json`; `validate` checks the
subset of JSON Schema it uses (type, required, properties, additionalProperties, items, enum,
const, minimum, minItems, minLength, pattern), so `jsonschema` is not a dependency. Reading a bundle validates the
manifest, the artifact hashes and every path (no absolute paths, no `..`, no link out of the bundle, regular files
only). An archive is read manifest first (at most MAX_MANIFEST_BYTES); then only the members the manifest names are
extracted, each capped by its declared `bytes` (reference samples by the size their declared shapes give), the
total by the sum of those caps and MAX_ARCHIVE_BYTES, every member by the compression-ratio bound of
`edgecc.archive`, all counted while streaming. Any problem is exit 3.
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
MAX_MANIFEST_BYTES = 64 * 1024**2
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
    """A file the manifest names: inside the bundle after resolving links, a regular file when it exists."""
    from edgecc.fileio import resolve_named_path

    return resolve_named_path(root, relative, named_in=root / MANIFEST, what="bundle path")


def _reference_limit(manifest: Mapping[str, Any]) -> int:
    """The most bytes one reference .npz may hold: the samples' tensors as the manifest declares them, with slack.

    A tensor with a dimension the manifest does not fix gets no bound of its own (MAX_ARCHIVE_BYTES still holds).
    """
    import numpy as np

    per_sample = 0
    for tensor in (*manifest["inputs"], *manifest["outputs"]):
        shape = tensor.get("shape")
        try:
            itemsize = np.dtype(tensor["dtype"]).itemsize
        except TypeError:
            itemsize = 8
        if shape is None or not all(isinstance(d, int) and d >= 0 for d in shape):
            return MAX_ARCHIVE_BYTES
        per_sample += itemsize * int(np.prod(shape, dtype=object))
    samples = int(manifest["reference"].get("samples", 0)) or 1
    headers = 4096 * samples * len(manifest["inputs"] + manifest["outputs"])  # .npy headers and zip entries
    return min(MAX_ARCHIVE_BYTES, samples * per_sample * 11 // 10 + headers + (1 << 16))


def _declared_members(manifest: Mapping[str, Any]) -> dict[str, int]:
    """Member name -> the most bytes it may inflate to: its declared size for artifacts, `_reference_limit` for samples."""
    members = {MANIFEST: MAX_MANIFEST_BYTES}
    for part in manifest["partitions"]:
        for file in part["files"]:
            members[PurePosixPath(file["path"]).as_posix()] = int(file["bytes"])
    reference = _reference_limit(manifest)
    for key in ("inputs", "outputs"):
        members[PurePosixPath(manifest["reference"][key]).as_posix()] = reference
    return members


def _open_archive(archive: Path) -> zipfile.ZipFile:
    from edgecc.archive import zip_errors

    with zip_errors(archive, "bundle archive"):
        zf = zipfile.ZipFile(archive)
    infos = zf.infolist()
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        zf.close()
        raise InvalidInputError(
            f"bundle archive '{archive}' has {len(infos)} entries (limit {MAX_ARCHIVE_ENTRIES})", path=archive
        )
    seen: set[str] = set()
    for info in infos:
        if info.filename in seen:
            zf.close()
            raise InvalidInputError(f"bundle archive '{archive}' holds '{info.filename}' twice", path=archive)
        seen.add(info.filename)
        if not _safe_member(info.filename):
            zf.close()
            raise InvalidInputError(f"bundle archive '{archive}' holds an unsafe path '{info.filename}'", path=archive)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            zf.close()
            raise InvalidInputError(f"bundle archive '{archive}' holds a symbolic link '{info.filename}'", path=archive)
    return zf


def _read_archive_manifest(zf: zipfile.ZipFile, archive: Path) -> bytes:
    from edgecc.archive import read_member

    if MANIFEST not in zf.namelist():
        raise InvalidInputError(f"bundle '{archive}' has no {MANIFEST}", path=archive)
    return read_member(zf, MANIFEST, limit=MAX_MANIFEST_BYTES, archive=archive, what="bundle archive")


def _extract_declared(zf: zipfile.ZipFile, manifest: Mapping[str, Any], archive: Path, into: Path) -> None:
    """Extract only the members the manifest names, each within its declared size, the total within their sum."""
    from edgecc.archive import copy_member

    limits = _declared_members(manifest)
    budget = min(MAX_ARCHIVE_BYTES, sum(limits.values()))
    total = 0
    for info in zf.infolist():
        name = PurePosixPath(info.filename).as_posix()
        if info.is_dir() or name not in limits or name == MANIFEST:
            continue  # a member the manifest does not name is never written
        total += copy_member(
            zf, info, into / name, limit=min(limits[name], budget - total), archive=archive, what="bundle archive"
        )


class OpenedBundle:
    """A validated bundle on disk (archives extracted into a temporary directory, removed on close)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if not self.path.exists():
            raise UsageError(f"bundle '{path}' does not exist")
        try:
            if self.path.is_dir():
                self.root = self.path
                self.manifest = self._parse(self._read_manifest_file())
            else:
                self._open_archive()
            self._check_files()
        except BaseException:
            self.close()
            raise

    def _read_manifest_file(self) -> bytes:
        from edgecc.fileio import check_input_file

        manifest_path = _inside(self.root, MANIFEST)
        if not manifest_path.is_file():
            raise InvalidInputError(f"bundle '{self.path}' has no {MANIFEST}", path=self.path)
        return check_input_file(manifest_path, what="bundle manifest").read_bytes()

    def _open_archive(self) -> None:
        from edgecc.fileio import check_input_file

        check_input_file(self.path, what="bundle archive")
        if not zipfile.is_zipfile(self.path):
            raise InvalidInputError(f"'{self.path}' is neither a bundle directory nor a .edgecc archive", path=self.path)
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecc-bundle-")
        self.root = Path(self._tmp.name)
        with _open_archive(self.path) as zf:
            raw = _read_archive_manifest(zf, self.path)
            self.manifest = self._parse(raw)
            (self.root / MANIFEST).write_bytes(raw)
            _extract_declared(zf, self.manifest, self.path, self.root)

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"bundle '{self.path}': {MANIFEST} is not valid JSON: {exc}", path=self.path) from None
        errors = validate(manifest, schema())
        if errors:
            raise InvalidInputError(f"bundle '{self.path}': invalid manifest: {'; '.join(errors[:5])}", path=self.path)
        return manifest

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
