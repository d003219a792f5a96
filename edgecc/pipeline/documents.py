"""Versioned result documents: every JSON file the bench and the zoo write carries `schema_version` and `kind`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecc.errors import InvalidInputError

__all__ = ["SCHEMA_VERSION", "READABLE_VERSIONS", "KINDS", "stamp", "check_document", "read_document", "write_document"]

#: bump when a field changes meaning or moves; readers refuse versions not in READABLE_VERSIONS (exit 3).
#: 2: measured latency is many short repeats whose medians (`repeat_p50_ms`) the regression test compares, with
#: `timer_resolution_ms` and `interleaved` (the A/B session, or null); comparison thresholds are alpha and floors
SCHEMA_VERSION = 2
#: versions a baseline may have: version 1 documents carry `repeat_p50_ms` too (5 repeats by default: a weak test)
READABLE_VERSIONS = (1, 2)

#: document kinds and what they hold
KINDS: dict[str, str] = {
    "edgecc.bench": "one `edgecc bench` run: a record per target",
    "edgecc.zoo.pair": "one (model, target) pair of a zoo run: status, stages, bench record",
    "edgecc.zoo.model": "the model stages (convert, optimise) of one zoo model",
    "edgecc.zoo.run": "the index of a zoo run: pairs, statuses, wall time, workers",
    "edgecc.pipeline.regression": "regression checks of results against a baseline",
}


def stamp(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with `schema_version` and `kind` first."""
    assert kind in KINDS, kind
    return {"schema_version": SCHEMA_VERSION, "kind": kind, **body}


def check_document(document: Any, path: str | Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """`document` if it is a result document of one of `kinds` in this schema version; exit 3 otherwise."""
    if not isinstance(document, dict) or "schema_version" not in document or "kind" not in document:
        raise InvalidInputError(
            f"{path} is not an edgecc result document (no schema_version/kind)",
            path=path,
            hint="give a file written by `edgecc bench --json`/`-o` or a `edgecc zoo run` results directory",
        )
    version = document["schema_version"]
    if version not in READABLE_VERSIONS:
        raise InvalidInputError(
            f"{path} has result schema version {version}, this edgecc reads version(s) "
            + ", ".join(map(str, READABLE_VERSIONS)),
            path=path,
            hint="re-create the baseline with this edgecc version",
        )
    if document["kind"] not in kinds:
        raise InvalidInputError(
            f"{path} is a '{document['kind']}' document, expected {' or '.join(repr(k) for k in kinds)}", path=path
        )
    return document


def read_document(path: str | Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Read and check one result document."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"result file '{path}' does not exist", path=path)
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path} is not valid JSON: {exc}", path=path) from None
    return check_document(document, path, kinds)


def write_document(path: str | Path, document: dict[str, Any]) -> None:
    """Write a result document atomically (sorted keys keep files comparable); no fsync: a crash
    leaves the old file or the new one."""
    from edgecc.fileio import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_bytes((json.dumps(document, indent=2, sort_keys=True, default=_default) + "\n").encode())


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)
