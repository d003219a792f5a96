"""Run zoo entries through edgecc's command line, stage by stage, and judge every result independently.

Per entry: build (its builder, in its own process; cached by fingerprint) -> convert (with edgecc's own
verification, as users run it) -> then, from the converted model: optimize -O3, quantize (static int8 with the
entry's samples), onnxsim/onnxslim node counts, and compile + run for every target. Each stage is one `edgecc`
process, as in a user's Makefile; its exit code and first error line are recorded, and every model or bundle it
writes is executed by the harness (onnxruntime, or `edgecc run` for bundles) on the entry's samples and compared
with the original runtime's reference by `conformance.compare`.

Outcomes: match · wrong (numbers differ, or the file does not load) · refused (exit 2-6, a clean error) ·
crashed (exit 1, a traceback or a signal) · timeout · skipped (an earlier stage failed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conformance.compare import compare
from conformance.entries import default_cache

__all__ = ["TARGETS", "FAST_TARGETS", "Settings", "run_entries", "stage_ok"]

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
#: one target per family of built-in targets (the Ethos-U and Arm NN variants differ only in size and backend)
TARGETS = ("cpu", "mali-gpu", "qnn-htp", "hisilicon-npu", "ethos-u55-128", "edgetpu", "armnn")
#: the fast subset (`make test`) compiles for these
FAST_TARGETS = ("cpu", "ethos-u55-128")
TIMEOUTS = {"build": 900, "convert": 900, "optimize": 600, "quantize": 900, "compile": 900, "run": 600, "peers": 300}
OUTCOMES = ("match", "wrong", "refused", "crashed", "timeout", "skipped")


@dataclass
class Settings:
    """Where and how a conformance run works."""

    out: Path
    workers: int = 2
    targets: tuple[str, ...] = TARGETS
    peers: bool = True
    budget: float | None = None  # seconds: work not started by then is recorded as not run (not judged)
    progress: Callable[[str], None] = field(default=lambda line: None)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "site"), str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "EDGECC_ORT_THREADS"):
        env.setdefault(name, "1")
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    env.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    return env


def _edgecc() -> list[str]:
    script = Path(sys.executable).with_name("edgecc")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edgecc"]


def _first_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith("error") or line.startswith("edgecc: error"):
            return line[:500]
    return (lines[-1] if lines else "")[:500]


def _call(args: list[str], stage: str, log: Path) -> dict[str, Any]:
    """Run one process; its outcome so far (exit 0 -> None, to be judged by the caller)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=TIMEOUTS[stage], cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout", "exit": None, "message": f"no result in {TIMEOUTS[stage]} s", "seconds": TIMEOUTS[stage]}
    seconds = round(time.perf_counter() - start, 2)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(args)}\n[exit {proc.returncode}, {seconds} s]\n{proc.stdout[-4000:]}{proc.stderr[-20000:]}\n")
    record: dict[str, Any] = {"exit": proc.returncode, "seconds": seconds}
    if proc.returncode == 0:
        record["outcome"] = None
        return record
    crashed = proc.returncode == 1 or proc.returncode < 0 or "Traceback (most recent call last)" in proc.stderr
    record["outcome"] = "crashed" if crashed else "refused"
    record["message"] = _first_error_line(proc.stderr) or f"exit {proc.returncode}"
    if proc.returncode < 0:
        record["message"] = f"killed by signal {-proc.returncode}: " + record["message"]
    return record


# -- builds ------------------------------------------------------------------------------------------------------


def _fingerprint(entry: dict[str, Any]) -> str:
    from conformance.builders import SOURCES

    built_by = {k: entry.get(k) for k in ("name", "source", "format", "build")}  # what the builder reads
    digest = hashlib.sha256(json.dumps(built_by, sort_keys=True).encode())
    for path in (ROOT / "builders" / f"{SOURCES.get(entry['source'], '?')}.py", ROOT / "build.py", REPO / "requirements.lock"):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _build(entry: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], dict[str, Any] | None]:
    models = settings.out / "models"
    folder = models / entry["name"]
    stamp = folder / "fingerprint"
    fingerprint = _fingerprint(entry)
    if (folder / "built.json").is_file() and stamp.is_file() and stamp.read_text() == fingerprint:
        return {"outcome": "match", "seconds": 0.0, "cached": True}, json.loads((folder / "built.json").read_text())
    kept = default_cache() / "builds" / f"{entry['name']}-{fingerprint[:20]}"
    if (kept / "built.json").is_file():  # built by an earlier run (CI keeps the cache between runs)
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(kept, folder)
        stamp.write_text(fingerprint)
        return {"outcome": "match", "seconds": 0.0, "cached": True}, json.loads((folder / "built.json").read_text())
    args = [sys.executable, "-m", "conformance.build", entry["name"], "--out", str(models)]
    if entry.get("entries_dir"):
        args += ["--entries", entry["entries_dir"]]
    record = _call(args, "build", settings.out / "logs" / f"{entry['name']}.log")
    if record["outcome"] is not None:
        record["outcome"] = "crashed" if record["outcome"] != "timeout" else "timeout"
        return record, None
    stamp.write_text(fingerprint)
    _keep(folder, kept)
    record["outcome"] = "match"
    return record, json.loads((folder / "built.json").read_text())


def _keep(folder: Path, kept: Path) -> None:
    """Copy a fresh build into the cache (atomically: a half-copied folder is never taken for a build)."""
    tmp = kept.with_name(kept.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    shutil.rmtree(kept, ignore_errors=True)
    os.replace(tmp, kept)


# -- executing what edgecc wrote -----------------------------------------------------------------------------------


def _bind(samples: dict[str, np.ndarray], order: list[str], names: list[str]) -> dict[str, np.ndarray]:
    """Samples keyed by original names -> keyed by the converted model's input names (by name, else by order)."""
    if set(names) <= set(samples):
        return {n: samples[n] for n in names}
    if len(names) != len(order):
        raise ValueError(f"the converted model has {len(names)} input(s) {names}, the original has {len(order)} {order}")
    return {n: samples[o] for n, o in zip(names, order)}


def _execute_onnx(path: Path, samples: dict[str, np.ndarray], order: list[str]) -> list[np.ndarray]:
    """Outputs (each with the sample axis) of an ONNX file under onnxruntime, one sample at a time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    # int8 models are judged by their QDQ semantics: onnxruntime's fused u8s8 kernels saturate on x86 without VNNI
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = _bind(samples, order, names)
    count = len(next(iter(feeds.values())))
    results = [session.run(None, {n: feeds[n][i] for n in names}) for i in range(count)]
    return [np.stack([r[k] for r in results]) for k in range(len(results[0]))]


def _judge(
    record: dict[str, Any],
    references: list[np.ndarray],
    get_outputs: Callable[[], list[np.ndarray]],
    precision: str,
    spread: list[float] | None = None,
):
    try:
        outputs = get_outputs()
    except Exception as exc:  # noqa: BLE001 -- any failure to execute what edgecc wrote is a wrong result
        record.update(
            outcome="wrong", message=f"the written model does not run: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        )
        return record
    verdict = compare(references, outputs, precision, spread=spread)
    record.update(outcome="match" if verdict["match"] else "wrong", cosine=verdict.get("cosine"), max_rel=verdict.get("max_rel"))
    if not verdict["match"]:
        record["message"] = verdict["why"]
    return record


def _judge_onnx(record: dict[str, Any], item: _Entry, path: Path, precision: str | None = None) -> dict[str, Any]:
    """Run an ONNX file a stage wrote on the entry's samples and judge it (default precision: the source model's)."""
    precision = precision or ("int8" if item.entry["format"] == "tflite-int8" else "fp32")

    def run() -> list[np.ndarray]:
        return _execute_onnx(path, item.samples, item.built["inputs"])

    return _judge(record, item.references, run, precision, item.built.get("reference_spread"))


# -- stages ----------------------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    entry: dict[str, Any]
    built: dict[str, Any]
    folder: Path
    work: Path
    samples: dict[str, np.ndarray]
    references: list[np.ndarray]
    result: dict[str, Any]

    @property
    def log(self) -> Path:
        return self.work / "edgecc.log"


def _load_entry(entry: dict[str, Any], built: dict[str, Any], settings: Settings, result: dict[str, Any]) -> _Entry:
    folder = settings.out / "models" / entry["name"]
    with np.load(folder / "samples.npz", allow_pickle=False) as data:
        samples = {k: data[k] for k in data.files}
    with np.load(folder / "reference.npz", allow_pickle=False) as data:
        references = [data[str(i)] for i in range(len(built["outputs"]))]
    work = settings.out / "work" / entry["name"]
    work.mkdir(parents=True, exist_ok=True)
    return _Entry(entry, built, folder, work, samples, references, result)


def _write_feeds(item: _Entry, model: Path) -> Path:
    """Write the samples keyed by the converted model's input names (for edgecc's --calibration/--data), once per entry
    before its later stages run in parallel."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in initializers]
    path = item.work / "samples_onnx.npz"
    tmp = item.work / "samples_onnx.tmp.npz"
    np.savez(tmp, **_bind(item.samples, item.built["inputs"], names))
    os.replace(tmp, path)
    return path


def _convert(item: _Entry) -> dict[str, Any]:
    out = item.work / "converted.onnx"
    out.unlink(missing_ok=True)
    files = [str(item.folder / f) for f in item.built["files"]]
    record = _call(_edgecc() + ["convert", *files, *item.built["convert_args"], "-o", str(out)], "convert", item.log)
    if record["outcome"] is not None:
        return record
    return _judge_onnx(record, item, out)


def _nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def _optimize(item: _Entry) -> dict[str, Any]:
    src, out = item.work / "converted.onnx", item.work / "optimized.onnx"
    out.unlink(missing_ok=True)
    record = _call(_edgecc() + ["optimize", str(src), "-O3", "-o", str(out)], "optimize", item.log)
    if record["outcome"] is not None:
        return record
    record["nodes"] = {"converted": _nodes(src), "edgecc": _nodes(out)}
    return _judge_onnx(record, item, out)


def _peers(item: _Entry) -> dict[str, Any]:
    """Node counts of onnxsim and onnxslim on the converted model (each in its own process)."""
    counts: dict[str, Any] = {}
    src = item.work / "converted.onnx"
    for tool in ("onnxsim", "onnxslim"):
        out = item.work / f"{tool}.onnx"
        out.unlink(missing_ok=True)
        record = _call([sys.executable, "-m", "conformance.peers", tool, str(src), str(out)], "peers", item.log)
        counts[tool] = _nodes(out) if record["outcome"] is None and out.is_file() else None
    return {"outcome": "match", **counts}


def _quantize(item: _Entry) -> dict[str, Any]:
    src, out = item.work / "converted.onnx", item.work / "quantized.onnx"
    out.unlink(missing_ok=True)
    calibration = item.work / "samples_onnx.npz"
    record = _call(_edgecc() + ["quantize", str(src), "--calibration", str(calibration), "-o", str(out)], "quantize", item.log)
    if record["outcome"] is not None:
        return record
    return _judge_onnx(record, item, out, "int8")


def _manifest(bundle: Path) -> dict[str, Any]:
    with zipfile.ZipFile(bundle) as archive:
        return json.loads(archive.read("manifest.json"))


def _offload(manifest: dict[str, Any]) -> dict[str, Any]:
    """Share of the model's nodes the target itself runs (not the CPU, not a vendor fallback), and their precisions."""
    target = manifest["target"]["name"]
    placement = manifest.get("placement", [])
    on_target = [p for p in placement if p["device"] == target and not p.get("vendor_fallback")]
    precisions = sorted({p["precision"] for p in manifest["partitions"] if p["device"] == target})
    return {
        "nodes": len(placement),
        "on_target": len(on_target),
        "share": round(len(on_target) / len(placement), 4) if placement else 0.0,
        "partitions": len(manifest["partitions"]),
        "target_precisions": precisions,
    }


def _static_inputs(model: Path, feeds: Path, target: str) -> list[str]:
    """`--input NAME:SHAPE` for each dynamic input of `model`, from the shape of its samples, when `target` needs static
    shapes: what edgecc's refusal tells a user to give (a Keras model's symbolic batch, for instance)."""
    import onnx

    from edgecc.targets import get_target

    if not get_target(target).static_shapes:
        return []
    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    args: list[str] = []
    with np.load(feeds, allow_pickle=False) as samples:
        for value in graph.input:
            dims = value.type.tensor_type.shape.dim
            if value.name in initializers or value.name not in samples or all(d.dim_value > 0 for d in dims):
                continue
            args += ["--input", f"{value.name}:{'x'.join(str(d) for d in samples[value.name].shape[1:])}"]
    return args


def _compile(item: _Entry, target: str) -> dict[str, Any]:
    src = item.work / "converted.onnx"
    bundle = item.work / f"{target}.edgecc"
    outputs = item.work / f"{target}.outputs.npz"
    for path in (bundle, outputs):
        path.unlink(missing_ok=True)
    feeds = item.work / "samples_onnx.npz"
    args = _edgecc() + ["compile", str(src), "--target", target, *_static_inputs(src, feeds, target)]
    args += ["--calibration", str(feeds), "--archive", "-o", str(bundle)]
    record = _call(args, "compile", item.log)
    if record["outcome"] is not None:
        return record
    try:
        manifest = _manifest(bundle)
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        record.update(outcome="wrong", message=f"the bundle does not open: {exc}")
        return record
    record["precision"] = manifest["target"]["precision"]
    record["offload"] = _offload(manifest)

    def run_bundle() -> list[np.ndarray]:
        run = _call(_edgecc() + ["run", str(bundle), "--data", str(feeds), "-o", str(outputs)], "run", item.log)
        if run["outcome"] is not None:
            raise RuntimeError(f"edgecc run: exit {run['exit']}: {run.get('message')}")
        names = [o["name"] for o in manifest["outputs"]]
        with np.load(outputs, allow_pickle=False) as data:
            return [data[n] for n in names]

    return _judge(record, item.references, run_bundle, record["precision"], item.built.get("reference_spread"))


def stage_ok(entry: dict[str, Any], stage: str, record: dict[str, Any] | None) -> bool:
    """Whether a stage's record is what the entry expects (a match, or the refusal it names)."""
    if record is None:
        return False
    if entry.get("expect") == "refuse" and stage == "convert":
        message = record.get("message") or ""
        return (
            record.get("outcome") == "refused"
            and record.get("exit") == entry.get("expect_exit")
            and all(name in message for name in entry.get("expect_names", []))
        )
    return record.get("outcome") == "match"


# -- scheduling ------------------------------------------------------------------------------------------------------


def _entry_tasks(entry: dict[str, Any], settings: Settings, result: dict[str, Any]) -> list[tuple[str, Callable[[], Any]]]:
    """Build + convert; returns the follow-up tasks of the entry (empty when it stops here)."""
    result["stages"]["build"], built = _build(entry, settings)
    settings.progress(f"{entry['name']}: build {result['stages']['build']['outcome']}")
    if built is None:
        return []
    result["origin"], result["runtime"] = built.get("origin"), built.get("runtime")
    item = _load_entry(entry, built, settings, result)
    convert = _convert(item)
    result["stages"]["convert"] = convert
    settings.progress(f"{entry['name']}: convert {convert['outcome']}")
    if convert["outcome"] not in ("match", "wrong") or entry.get("expect") == "refuse":
        return []
    if not (item.work / "converted.onnx").is_file():
        return []
    try:
        _write_feeds(item, item.work / "converted.onnx")
    except (ValueError, OSError) as exc:  # e.g. the converted model's inputs do not correspond to the original's
        convert.update(outcome="wrong", message=f"the converted model's inputs: {exc}")
        return []

    def stage(name: str, func: Callable[[], dict[str, Any]]) -> Callable[[], None]:
        def task() -> None:
            result["stages"][name] = func()
            settings.progress(f"{entry['name']}: {name} {result['stages'][name]['outcome']}")

        return task

    def target_task(target: str) -> Callable[[], None]:
        def task() -> None:
            record = _compile(item, target)
            result["compile"][target] = record
            settings.progress(f"{entry['name']}@{target}: compile {record['outcome']}")

        return task

    tasks = [("optimize", stage("optimize", lambda: _optimize(item))), ("quantize", stage("quantize", lambda: _quantize(item)))]
    if settings.peers:
        tasks.append(("peers", stage("peers", lambda: _peers(item))))
    targets = [t for t in settings.targets if t in entry.get("targets", settings.targets)]
    return tasks + [(f"compile@{t}", target_task(t)) for t in targets]


def run_entries(entries: Iterable[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Run every entry; the results document (JSON-ready), keyed by entry name."""
    settings.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    deadline = None if settings.budget is None else start + settings.budget

    def guarded(result: dict[str, Any], label: str, func: Callable[[], Any]) -> Callable[[], Any]:
        def task() -> Any:
            if deadline is not None and time.perf_counter() > deadline:
                result.setdefault("not_run", []).append(label)
                return None
            return func()

        return task

    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        pending: dict[Future, dict[str, Any]] = {}
        for entry in entries:
            result = {
                "family": entry["family"],
                "format": entry["format"],
                "source": entry["source"],
                "expect": entry.get("expect", "match"),
                "expect_detail": {k: entry[k] for k in ("expect_exit", "expect_names") if k in entry},
                "targets": [t for t in settings.targets if t in entry.get("targets", settings.targets)],
                "stages": {},
                "compile": {},
            }
            results[entry["name"]] = result
            pending[pool.submit(guarded(result, "entry", lambda e=entry, r=result: _entry_tasks(e, settings, r)))] = result
        while pending:
            done, _ = wait(set(pending), return_when=FIRST_COMPLETED)
            for future in done:
                result = pending.pop(future)
                follow = future.result()
                for label, task in follow or []:
                    pending[pool.submit(guarded(result, label, task))] = result
    return {
        "kind": "edgecc.conformance.results",
        "targets": list(settings.targets),
        "seconds": round(time.perf_counter() - start, 1),
        "workers": settings.workers,
        "entries": results,
    }
