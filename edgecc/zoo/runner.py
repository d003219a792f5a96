"""Run a zoo: schedule model jobs then their pair jobs on a backend, write one result document per pair
atomically as it finishes, skip pairs already done with the same fingerprint (resume), and index the run.

Layout of the results folder:
  run.json                        index (kind edgecc.zoo.run): pairs and statuses, wall time, workers, machine
  results/<model>@<target>.json   one document per pair (kind edgecc.zoo.pair)
  models/<model>/model.onnx|.json the converted, optimised float model and its stages (kind edgecc.zoo.model)
  pairs/<model>@<target>/         bundle.edgecc, quantized.onnx
  logs/                           worker output
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecc.errors import InvalidInputError, UsageError
from edgecc.pipeline.documents import SCHEMA_VERSION, read_document, stamp, write_document
from edgecc.zoo.config import ModelSpec, ZooConfig

__all__ = ["run_zoo", "pair_id", "result_path", "load_results", "fingerprints"]

Progress = Callable[[str, dict[str, Any]], None]


def pair_id(model: str, target: str) -> str:
    """The id of a pair: `model@target`."""
    return f"{model}@{target}"


def result_path(out_dir: str | Path, pid: str) -> Path:
    """The result document of a pair."""
    return Path(out_dir) / "results" / f"{pid}.json"


def _hash_path(path: str, digest: Any) -> None:
    from edgecc.fileio import sha256_of

    local = Path(path.split(".py:")[0] + ".py" if ".py:" in path else path)
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for file in files:
        digest.update(f"{file.name}:{sha256_of(file)};".encode())


def fingerprints(config: ZooConfig) -> tuple[dict[str, str], dict[str, str]]:
    """Model and pair fingerprints: hashes of the input files, the settings and the edgecc version (resume keys)."""
    from edgecc import __version__

    models: dict[str, str] = {}
    for spec in config.models:
        digest = hashlib.sha256(
            json.dumps(
                {
                    "spec": {
                        **spec.to_dict(),
                        "files": [Path(f).name for f in spec.files],
                        "targets": None,
                        "calibration": None,
                        "evaluation": None,
                    },
                    "level": config.level,
                    "seed": config.seed,
                    "edgecc": __version__,
                },
                sort_keys=True,
            ).encode()
        )
        for file in spec.files:
            _hash_path(file, digest)
        models[spec.name] = digest.hexdigest()
    pairs: dict[str, str] = {}
    settings = {k: getattr(config, k) for k in ("runs", "repeats", "warmup", "samples", "seed", "quantize")}
    for spec, target in config.pairs():
        digest = hashlib.sha256(
            json.dumps(
                {"model": models[spec.name], "target": target, "settings": settings, "label_output": spec.label_output},
                sort_keys=True,
            ).encode()
        )
        for value in spec.calibration:  # DATA values: the files they name by content, `random` / module:function as written
            name, _, location = value.partition("=") if "=" in value else ("", "", value)
            digest.update(f"{name}=".encode())
            if Path(location).exists():
                _hash_path(location, digest)
            else:
                digest.update(location.encode())
        for extra in (spec.evaluation, config.target_files.get(target)):
            if extra:
                _hash_path(extra, digest)
        pairs[pair_id(spec.name, target)] = digest.hexdigest()
    return models, pairs


def _existing(path: Path, kind: str, fingerprint: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        document = read_document(path, (kind,))
    except InvalidInputError:
        return None  # another schema version or a damaged file: redo it
    if document["schema_version"] != SCHEMA_VERSION:
        return None  # an older (still readable) version: redo it in the current format
    return document if document.get("fingerprint") == fingerprint else None


def _crash(kind: str, stage: str, message: str) -> dict[str, Any]:
    return {
        "status": "failed",
        "failure": {"stage": stage, "exit_code": 1, "kind": "crash", "message": message},
        "stages": [],
        "record": None,
        "info": {},
        "job_seconds": 0.0,
        "kind": kind,
    }


def _pair_document(
    config: ZooConfig,
    spec: ModelSpec,
    target: str,
    fingerprint: str,
    model_doc: dict[str, Any],
    result: dict[str, Any] | None,
    out: Path,
) -> dict[str, Any]:
    from edgecc import __version__
    from edgecc.zoo.stages import model_file, pair_dir

    stages = [{**s, "cached": model_doc.get("cached", False)} for s in model_doc["stages"]]
    if result is not None:
        stages += result["stages"]
        status, failure, record = result["status"], result["failure"], result["record"]
    else:
        status, failure, record = "failed", model_doc["failure"], None
    folder = pair_dir(out, spec.name, target)
    files = {
        "model": model_file(out, spec.name).relative_to(out).as_posix() if model_doc["status"] == "ok" else None,
        "bundle": (folder / "bundle.edgecc").relative_to(out).as_posix() if status == "ok" else None,
        "quantized": (folder / "quantized.onnx").relative_to(out).as_posix()
        if any(s["stage"] == "quantize" and s["status"] == "ok" for s in stages)
        else None,
    }
    return stamp(
        "edgecc.zoo.pair",
        {
            "id": pair_id(spec.name, target),
            "model": spec.name,
            "target": target,
            "fingerprint": fingerprint,
            "edgecc_version": __version__,
            "status": status,
            "failure": failure,
            "stages": stages,
            "record": record,
            "model_info": model_doc.get("info", {}),
            "files": files,
        },
    )


def run_zoo(
    config: ZooConfig,
    out_dir: str | Path,
    backend: Any,
    *,
    force: bool = False,
    retry_failed: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every pair not already done; returns the run index document (also written to `run.json`)."""
    from edgecc import __version__
    from edgecc.pipeline.benchmark import machine_info, package_versions
    from edgecc.zoo.stages import model_file, model_job, pair_job

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"results folder '{out}' is a file", hint="give a directory with -o")
    for sub in ("results", "models", "pairs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model_fp, pair_fp = fingerprints(config)
    specs = {m.name: m for m in config.models}
    todo: dict[str, list[str]] = {}
    statuses: dict[str, dict[str, Any]] = {}
    for spec, target in config.pairs():
        pid = pair_id(spec.name, target)
        done = None if force else _existing(result_path(out, pid), "edgecc.zoo.pair", pair_fp[pid])
        if done is not None and (done["status"] == "ok" or not retry_failed):
            statuses[pid] = {"id": pid, "model": spec.name, "target": target, "status": done["status"], "resumed": True}
            continue
        todo.setdefault(spec.name, []).append(target)
    total = len(config.pairs())
    if progress:
        progress("start", {"total": total, "todo": sum(len(v) for v in todo.values()), "resumed": len(statuses)})
        for entry in statuses.values():
            progress("pair", entry)
    settings = {k: getattr(config, k) for k in ("runs", "repeats", "warmup", "samples", "seed", "quantize")}
    handles: dict[Any, tuple[str, str, str | None]] = {}
    model_docs: dict[str, dict[str, Any]] = {}
    stage_seconds = 0.0
    job_seconds = 0.0

    def submit_pairs(name: str) -> None:
        for target in todo[name]:
            ref = config.target_files.get(target, target)
            handles[backend.submit(pair_job, specs[name], target, ref, str(out), settings)] = ("pair", name, target)

    def finish_pair(name: str, target: str, result: dict[str, Any] | None) -> None:
        pid = pair_id(name, target)
        document = _pair_document(config, specs[name], target, pair_fp[pid], model_docs[name], result, out)
        write_document(result_path(out, pid), document)
        statuses[pid] = {"id": pid, "model": name, "target": target, "status": document["status"], "resumed": False}
        if progress:
            progress(
                "pair", {**statuses[pid], "failure": document["failure"], "seconds": result["job_seconds"] if result else 0.0}
            )

    for name in todo:
        meta = out / "models" / name / "model.json"
        cached = None if force else _existing(meta, "edgecc.zoo.model", model_fp[name])
        if cached is not None and cached["status"] == "ok" and model_file(out, name).is_file():
            model_docs[name] = {**cached, "cached": True}
            submit_pairs(name)
        else:
            handles[backend.submit(model_job, specs[name], str(out), config.level, config.seed)] = ("model", name, None)
    try:
        while handles:
            for handle in backend.wait(list(handles)):
                kind, name, target = handles.pop(handle)
                try:
                    result = backend.result(handle)
                except Exception as exc:  # noqa: BLE001 -- JobCrashed or a backend error: recorded, the run goes on
                    result = _crash(kind, "prepare" if kind == "pair" else "convert", f"{type(exc).__name__}: {exc}")
                stage_seconds += sum(s["seconds"] for s in result["stages"])
                job_seconds += result["job_seconds"]
                if kind == "model":
                    document = stamp(
                        "edgecc.zoo.model",
                        {
                            "model": name,
                            "fingerprint": model_fp[name],
                            "edgecc_version": __version__,
                            "status": result["status"],
                            "failure": result["failure"],
                            "stages": result["stages"],
                            "info": result["info"],
                        },
                    )
                    (out / "models" / name).mkdir(parents=True, exist_ok=True)
                    write_document(out / "models" / name / "model.json", document)
                    model_docs[name] = {**document, "cached": False}
                    if result["status"] == "ok":
                        submit_pairs(name)
                    else:
                        for pending in todo[name]:
                            finish_pair(name, pending, None)
                else:
                    finish_pair(name, target or "", result)
    finally:
        backend.close()
    wall = time.perf_counter() - start
    pairs = [statuses[pair_id(m.name, t)] for m, t in config.pairs()]
    index = stamp(
        "edgecc.zoo.run",
        {
            "zoo": str(config.path),
            "name": config.name,
            "edgecc_version": __version__,
            "machine": machine_info(),
            "packages": package_versions(),
            "backend": backend.name,
            "workers": backend.workers,
            "settings": settings,
            "level": config.level,
            "wall_seconds": round(wall, 4),
            "stage_seconds": round(stage_seconds, 4),
            "job_seconds": round(job_seconds, 4),
            "pairs": pairs,
            "counts": {
                "ok": sum(p["status"] == "ok" for p in pairs),
                "failed": sum(p["status"] != "ok" for p in pairs),
                "resumed": sum(p["resumed"] for p in pairs),
            },
        },
    )
    write_document(out / "run.json", index)
    return index


def load_results(out_dir: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A results folder's run index and its pair documents by id (exit 3 when missing or of another schema version)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise UsageError(f"results folder '{out}' does not exist", hint="run `edgecc zoo run ZOO.toml -o FOLDER` first")
    index = read_document(out / "run.json", ("edgecc.zoo.run",))
    pairs = {}
    for entry in index["pairs"]:
        pairs[entry["id"]] = read_document(result_path(out, entry["id"]), ("edgecc.zoo.pair",))
    return index, pairs
