"""The zoo file (TOML): settings, models and targets, read strictly; every error names the file and line (exit 3).

```toml
[zoo]
name = "samples"
targets = ["cpu", "hisilicon-npu"]   # names from `edgecc targets`, or target .toml files
runs = 5                             # bench: timed runs per repeat
repeats = 30                         #        repeats (their medians are the samples compare tests)

[[model]]
name = "resnet20"
files = ["arch.py:resnet20", "weights.th"]   # what `edgecc convert` takes, relative to this file
inputs = ["input:1x3x32x32"]
calibration = "data/calib.npz"               # quantisation/compile samples (as `edgecc quantize --calibration`)
evaluation = "data/eval.npz"                 # arrays per input + int `labels` (top-1 accuracy)
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecc.errors import InvalidInputError

__all__ = ["MODEL_BOUNDS", "ModelSpec", "ZOO_BOUNDS", "ZooConfig", "ZOO_KEYS", "MODEL_KEYS", "load_zoo", "find_line"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

#: [zoo] keys -> (type, meaning)
ZOO_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "name of the zoo (reports)"),
    "targets": (list, "targets every model is compiled for"),
    "runs": (int, "bench: timed runs per repeat"),
    "repeats": (int, "bench: repeats; their medians are the samples compare tests"),
    "warmup": (int, "bench: untimed runs first"),
    "samples": (int, "random samples when a model has no calibration/evaluation data"),
    "seed": (int, "seed of random samples"),
    "level": (int, "optimisation level (0-3) of the optimise stage"),
    "quantize": (bool, "run the whole-model quantise stage with each target's scheme"),
}


def _zoo_bounds() -> dict[str, tuple[int, int]]:
    from edgecc.data.synthetic import MAX_SEED
    from edgecc.pipeline.benchmark import COUNT_BOUNDS

    return {**COUNT_BOUNDS, "seed": (0, MAX_SEED), "level": (0, 3)}


#: inclusive bounds of the [zoo] counts: those of `edgecc bench`, seeds numpy accepts, the optimisation levels
ZOO_BOUNDS: dict[str, tuple[int, int]] = _zoo_bounds()
#: inclusive bounds of [[model]] integers (`opset` is checked by the convert stage against what onnx supports)
MODEL_BOUNDS: dict[str, tuple[int, int]] = {"epoch": (0, 9999), "opset": (1, 1000)}

#: [[model]] keys -> (type, meaning)
MODEL_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "unique model name (result file names)"),
    "files": (list, "model files as `edgecc convert` takes them"),
    "framework": (str, "source framework (default: detected)"),
    "inputs": (list, "input specs NAME:DIMS[:DTYPE]"),
    "outputs": (list, "cut the graph at these tensors"),
    "opset": (int, "target opset"),
    "calibration": (
        (str, list),
        "calibration data, one DATA value or a list of them, as `edgecc quantize --calibration` (paths relative to the zoo file)",
    ),
    "evaluation": (str, ".npz: an array per input (sample axis first) and optional int 'labels'"),
    "label_output": (str, "output compared with the labels (default: the first)"),
    "targets": (list, "targets of this model (default: the zoo's)"),
    "verify": (bool, "verify the conversion against the original framework (default true)"),
    "random_weights": (bool, "Caffe/Caffe2 nets without weights (testing)"),
    "dequantize": (bool, "TFLite: float graph instead of QDQ"),
    "nchw_inputs": (list, "TensorFlow: inputs taken as NCHW"),
    "signature": (str, "TensorFlow SavedModel signature"),
    "epoch": (int, "MXNet epoch"),
}


@dataclass(frozen=True)
class ModelSpec:
    """One model of the zoo, with paths resolved against the zoo file's folder."""

    name: str
    files: tuple[str, ...]
    framework: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    opset: int | None = 17
    calibration: tuple[str, ...] = ()  # DATA values
    evaluation: str | None = None
    label_output: str | None = None
    targets: tuple[str, ...] = ()
    verify: bool = True
    random_weights: bool = False
    dequantize: bool = False
    nchw_inputs: tuple[str, ...] = ()
    signature: str | None = None
    epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ZooConfig:
    """A parsed zoo file."""

    path: Path
    name: str
    models: tuple[ModelSpec, ...]
    targets: tuple[str, ...] = ("cpu",)
    runs: int = 5
    repeats: int = 30
    warmup: int = 3
    samples: int = 8
    seed: int = 0
    level: int = 2
    quantize: bool = True
    target_files: Mapping[str, str] = field(default_factory=dict)  # target label -> resolved .toml path

    def pairs(self) -> list[tuple[ModelSpec, str]]:
        """Every (model, target label) pair, in file order."""
        return [(m, t) for m in self.models for t in (m.targets or self.targets)]


def find_line(text: str, table: str | None, index: int, key: str | None) -> int | None:
    """1-based line of `key` in the `index`-th `[table]`/`[[table]]` (None: before any table); of the header when key is None."""
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    key_re = re.compile(rf"^\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*=") if key else None
    current, seen = None, -1
    for number, line in enumerate(text.splitlines(), 1):
        match = header.match(line)
        if match:
            current = match.group(1)
            if current == table:
                seen += 1
                if key is None and seen == index:
                    return number
            continue
        in_place = (table is None and current is None) or (current == table and seen == index)
        if key_re is not None and in_place and key_re.match(line):
            return number
    return None


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text

    def fail(self, message: str, table: str | None, index: int, key: str | None, hint: str | None = None) -> InvalidInputError:
        line = find_line(self.text, table, index, key)
        if line is None and table:
            line = find_line(self.text, table, index, None)
        if line is None and table is None and key:
            line = find_line(self.text, key, 0, None)  # an unknown [table]
        where = f"{self.path}:{line}" if line else str(self.path)
        return InvalidInputError(f"{where}: {message}", path=self.path, hint=hint)

    def check_keys(self, data: Mapping[str, Any], known: Mapping[str, tuple[Any, str]], table: str, index: int) -> None:
        for key, value in data.items():
            if key not in known:
                raise self.fail(
                    f"unknown key '{key}' in [{table}]" + (f" #{index + 1}" if table == "model" else ""),
                    table,
                    index,
                    key,
                    hint=f"known keys: {', '.join(known)}",
                )
            kind = known[key][0]
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if ok and isinstance(value, list):
                ok = all(isinstance(v, str) for v in value)
            if not ok:
                names = {list: "a list of strings", int: "an integer", str: "a string", bool: "true or false"}
                wanted = " or ".join(names[k] for k in (kind if isinstance(kind, tuple) else (kind,)))
                raise self.fail(f"'{key}' must be {wanted}, got {value!r}", table, index, key)

    def data(self, value: str, table: str, index: int, key: str) -> str:
        """A DATA value (edgecc.data grammar) with its path made relative to the zoo file; a missing path is exit 3."""
        from edgecc.data.sources import is_module_value

        if value == "random" or (is_module_value(value) and not (self.path.parent / value).exists()):
            return value
        name, sep, location = value.partition("=")
        if not sep:
            return self.file(value, table, index, key)
        return f"{name}={self.file(location, table, index, key)}"

    def file(self, value: str, table: str, index: int, key: str) -> str:
        local = value.split(".py:")[0] + ".py" if ".py:" in value else value
        path = self.path.parent / local
        if not path.exists():
            raise self.fail(
                f"{key} file '{value}' does not exist (looked for {path})",
                table,
                index,
                key,
                hint="paths are relative to the zoo file",
            )
        return str(self.path.parent / value)


def _targets(
    reader: _Reader, values: Sequence[str], table: str, index: int, known: Sequence[str], files: dict[str, str]
) -> tuple[str, ...]:
    labels = []
    for value in values:
        if value.endswith(".toml"):
            path = reader.path.parent / value
            if not path.is_file():
                raise reader.fail(
                    f"target description file '{value}' does not exist (looked for {path})", table, index, "targets"
                )
            label = Path(value).stem
            files[label] = str(path)
        elif value in known:
            label = value
        else:
            raise reader.fail(
                f"unknown target '{value}'", table, index, "targets", hint=f"known targets: {', '.join(known)} (or a .toml file)"
            )
        if label in labels:
            raise reader.fail(f"target '{value}' is listed twice", table, index, "targets")
        labels.append(label)
    if not labels:
        raise reader.fail("'targets' is empty", table, index, "targets")
    return tuple(labels)


def load_zoo(path: str | Path) -> ZooConfig:
    """Parse and check a zoo file: unknown keys, wrong types, missing files and unknown targets are exit 3 with the line."""
    import tomllib

    from edgecc.targets import load_targets

    path = Path(path)
    if not path.is_file():
        from edgecc.errors import UsageError

        raise UsageError(f"zoo file '{path}' does not exist", hint="check the path")
    text = path.read_text(errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{path}: TOML syntax error: {exc}", path=path) from None
    reader = _Reader(path, text)
    for key in data:
        if key not in ("zoo", "model"):
            raise reader.fail(
                f"unknown table or key '{key}'", None, 0, key, hint="a zoo file has a [zoo] table and [[model]] tables"
            )
    zoo = data.get("zoo", {})
    if not isinstance(zoo, dict):
        raise reader.fail("'zoo' must be a table [zoo]", None, 0, "zoo")
    reader.check_keys(zoo, ZOO_KEYS, "zoo", 0)
    models_data = data.get("model", [])
    if not isinstance(models_data, list) or not models_data:
        raise reader.fail("no models: add [[model]] tables", "model" if models_data else None, 0, None)
    known = load_targets().names()
    target_files: dict[str, str] = {}
    targets = _targets(reader, zoo["targets"], "zoo", 0, known, target_files) if "targets" in zoo else ("cpu",)
    for key, (low, high) in ZOO_BOUNDS.items():
        if key in zoo and not low <= zoo[key] <= high:
            raise reader.fail(f"'{key}' must be {low}..{high}, got {zoo[key]}", "zoo", 0, key)
    models: list[ModelSpec] = []
    names: set[str] = set()
    for index, entry in enumerate(models_data):
        reader.check_keys(entry, MODEL_KEYS, "model", index)
        for key, (low, high) in MODEL_BOUNDS.items():
            if key in entry and not low <= entry[key] <= high:
                raise reader.fail(f"'{key}' must be {low}..{high}, got {entry[key]}", "model", index, key)
        for required in ("name", "files"):
            if required not in entry:
                raise reader.fail(f"[[model]] #{index + 1} has no '{required}'", "model", index, None)
        name = entry["name"]
        if not _NAME.match(name) or name in names:
            raise reader.fail(
                f"model name '{name}' is " + ("used twice" if name in names else "not a plain name (letters, digits, _ . + -)"),
                "model",
                index,
                "name",
            )
        names.add(name)
        if not entry["files"]:
            raise reader.fail(f"model '{name}': 'files' is empty", "model", index, "files")
        files = tuple(reader.file(f, "model", index, "files") for f in entry["files"])
        extra: dict[str, Any] = {}
        if "calibration" in entry:
            values = [entry["calibration"]] if isinstance(entry["calibration"], str) else entry["calibration"]
            extra["calibration"] = tuple(reader.data(v, "model", index, "calibration") for v in values)
        if "evaluation" in entry:
            extra["evaluation"] = reader.file(entry["evaluation"], "model", index, "evaluation")
        model_targets = _targets(reader, entry["targets"], "model", index, known, target_files) if "targets" in entry else ()
        simple = {
            k: entry[k]
            for k in ("framework", "opset", "label_output", "verify", "random_weights", "dequantize", "signature", "epoch")
            if k in entry
        }
        models.append(
            ModelSpec(
                name=name,
                files=files,
                inputs=tuple(entry.get("inputs", ())),
                outputs=tuple(entry.get("outputs", ())),
                targets=model_targets,
                nchw_inputs=tuple(entry.get("nchw_inputs", ())),
                **extra,
                **simple,
            )
        )
    settings = {k: zoo[k] for k in ("runs", "repeats", "warmup", "samples", "seed", "level", "quantize") if k in zoo}
    return ZooConfig(
        path=path, name=zoo.get("name", path.stem), models=tuple(models), targets=targets, target_files=target_files, **settings
    )
