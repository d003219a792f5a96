"""DATA values: one grammar for `--data` and `--calibration` in every command, one reader per kind of source.

A value is one of
  `random`                 deterministic random samples (the count is the command's setting)
  `module:function`        a Python function (importable from the current directory) yielding dicts of arrays
  `FILE.npz`               arrays keyed by input name
  `FILE.npy`               the array of a single-input model
  `DIR`                    a folder of .npz/.npy files (one sample each) or of images (single-input model)
  `NAME=FILE.npy|.npz|DIR` the same, for input NAME only (an .npz gives its array NAME)
Any array may carry a leading sample axis (rank + 1 of its input), or stack several batches of a static batch
size along the batch axis; it is split into samples. Several values merge into the same samples (one value per
input), a value with one sample being repeated for every sample of the others.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.data.arrays import ARRAY_SUFFIXES, load_array_file, natural_sorted
from edgecc.data.images import IMAGE_SUFFIXES, ImageOptions, image_samples
from edgecc.errors import InvalidInputError, UsageError
from edgecc.inputs import TensorInfo
from edgecc.registry import Registry

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DATA_HELP",
    "DataOptions",
    "DataSource",
    "SampleSet",
    "is_module_value",
    "parse_data_value",
    "parse_data_values",
    "read_samples",
    "split_sample_axis",
]

Feed = dict[str, "np.ndarray"]

#: the one-line help of every --data/--calibration option
DATA_HELP = "NAME=FILE|DIR, FILE.npz, FILE.npy, DIR (arrays or images), module:function, or random (repeatable)"

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DataOptions:
    """How DATA values are read: the option's name (for messages), image preprocessing, limits, random samples."""

    option: str = "--data"
    images: ImageOptions = field(default_factory=ImageOptions)
    max_samples: int | None = None
    random_count: int = 16
    seed: int = 0
    finite: bool = False  # calibration: refuse NaN, infinity and magnitudes over MAX_CALIBRATION_MAGNITUDE (bind)


@dataclass(frozen=True)
class DataSource:
    """One parsed DATA value: its kind, the input it is for (NAME=...), and the path or module:function."""

    text: str
    kind: str  # "random" | "module" | "directory" | "file"
    location: str
    name: str | None = None

    def describe(self, count: int, images: bool = False) -> str:
        """'16 samples in calib.npz' and the like, for reports."""
        if self.kind == "random":
            return f"random ({count} samples)"
        if self.kind == "module":
            return f"{count} samples from {self.location}"
        what = "images" if images else ("files" if self.kind == "directory" else "samples")
        return f"{count} {what} in {self.location}" + (f" (input {self.name})" if self.name else "")


@dataclass
class SampleSet:
    """Samples (dicts of input name -> array), where each came from, and a one-line description of the data."""

    feeds: list[Feed] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    description: str = ""
    random: bool = False

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self) -> Iterator[Feed]:
        return iter(self.feeds)

    def __getitem__(self, index: int) -> Feed:
        return self.feeds[index]


def is_module_value(text: str) -> bool:
    """True when `text` has the form of a `module:function` DATA value."""
    return bool(_MODULE_RE.match(text))


def parse_data_value(text: str, option: str = "--data") -> DataSource:
    """Parse one DATA value; a malformed one or a path that does not exist is a usage error (exit 2)."""
    if text == "random":
        return DataSource(text, "random", "random")
    name, sep, location = text.partition("=")
    if sep:
        if not name.strip() or not location:
            raise UsageError(f"bad {option} '{text}'", hint=f"write {DATA_HELP}")
        name = name.strip()
    else:
        name, location = None, text
    path = Path(location)
    if path.is_dir():
        return DataSource(text, "directory", location, name)
    if path.exists():
        return DataSource(text, "file", location, name)
    if name is None and _MODULE_RE.match(location):
        return DataSource(text, "module", location)
    raise UsageError(f"{option}: data file '{location}' does not exist", hint=f"give {DATA_HELP}")


def parse_data_values(texts: str | Sequence[str], option: str = "--data") -> tuple[DataSource, ...]:
    """Parse every value of a repeatable DATA option (a single string counts as one value)."""
    if isinstance(texts, str):
        texts = (texts,)
    return tuple(parse_data_value(t, option) for t in texts)


Reader = Callable[[DataSource, "Sequence[TensorInfo] | None", DataOptions], "tuple[list[Feed], list[str], bool]"]

#: source kind -> reader returning (samples, their origins, whether they are images)
READERS: Registry[Reader] = Registry("data source kind")


def _keyed(source: DataSource, path: Path, loaded: "np.ndarray | dict[str, np.ndarray]") -> Feed:
    """The arrays of one file as a sample: an .npz by its keys (only NAME's for NAME=FILE), an .npy under NAME or ''."""
    if isinstance(loaded, dict):
        if source.name is None:
            return dict(loaded)
        if source.name not in loaded:
            raise InvalidInputError(
                f"data file '{path}' has no array '{source.name}' (it has: {', '.join(loaded) or 'none'})", path=path
            )
        return {source.name: loaded[source.name]}
    return {source.name or "": loaded}


@READERS.register("file")
def _read_file(
    source: DataSource, inputs: Sequence[TensorInfo] | None, options: DataOptions
) -> tuple[list[Feed], list[str], bool]:
    """An .npy or .npz file."""
    path = Path(source.location)
    return [_keyed(source, path, load_array_file(path))], [f"'{path}'"], False


def _image_input(source: DataSource, inputs: Sequence[TensorInfo] | None, folder: Path, option: str) -> TensorInfo:
    if inputs is None:
        raise InvalidInputError(f"{option}: images in '{folder}' need the model's input shape", path=folder)
    if source.name is not None:
        info = next((i for i in inputs if i.name == source.name), None)
        if info is None:
            raise InvalidInputError(
                f"{option} '{source.text}': '{source.name}' is not a model input (inputs: {', '.join(i.name for i in inputs)})",
                path=folder,
            )
        return info
    if len(inputs) != 1:
        raise InvalidInputError(
            f"{option}: images in '{folder}' need a single-input model, this one takes {', '.join(i.name for i in inputs)}",
            path=folder,
            hint="write NAME=DIR for the image input and give the others their own values",
        )
    return inputs[0]


@READERS.register("directory")
def _read_directory(
    source: DataSource, inputs: Sequence[TensorInfo] | None, options: DataOptions
) -> tuple[list[Feed], list[str], bool]:
    """A folder of .npz/.npy files (one sample each, in natural order) or of images."""
    folder = Path(source.location)
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    images = natural_sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)
    arrays = natural_sorted(p for p in files if p.suffix.lower() in ARRAY_SUFFIXES)
    if not images and not arrays:
        raise InvalidInputError(
            f"{options.option}: directory '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}) and no .npz/.npy files",
            path=folder,
        )
    if images and arrays:
        raise InvalidInputError(f"{options.option}: directory '{folder}' mixes images and .npz/.npy files", path=folder)
    if options.max_samples is not None:
        images, arrays = images[: options.max_samples], arrays[: options.max_samples]
    if images:
        info = _image_input(source, inputs, folder, options.option)
        return image_samples(images, info, options.images, folder), [f"'{f}'" for f in images], True
    return [_keyed(source, file, load_array_file(file)) for file in arrays], [f"'{f}'" for f in arrays], False


@READERS.register("module")
def _read_module(
    source: DataSource, inputs: Sequence[TensorInfo] | None, options: DataOptions
) -> tuple[list[Feed], list[str], bool]:
    """`module:function`: a function (importable from the current directory) yielding dicts of arrays."""
    import numpy as np

    spec = source.location
    module_name, _, function_name = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(f"{options.option}: data module '{module_name}' cannot be imported: {exc}") from None
    except Exception as exc:  # noqa: BLE001 -- user code
        raise InvalidInputError(
            f"{options.option}: data module '{module_name}' failed on import: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InvalidInputError(f"{options.option}: data module '{module_name}' has no function '{function_name}'")
    samples: list[Feed] = []
    try:
        for index, item in enumerate(function()):
            if not isinstance(item, Mapping):
                raise InvalidInputError(
                    f"{options.option}: data function '{spec}' yielded {type(item).__name__} at item {index}, "
                    "expected a dict of arrays"
                )
            samples.append({str(k): np.asarray(v) for k, v in item.items()})
            if options.max_samples is not None and len(samples) >= options.max_samples:
                break
    except InvalidInputError:
        raise
    except Exception as exc:  # noqa: BLE001 -- user code
        raise InvalidInputError(f"{options.option}: data function '{spec}' failed: {type(exc).__name__}: {exc}") from None
    if not samples:
        raise InvalidInputError(f"{options.option}: data function '{spec}' yielded no samples")
    return samples, [f"'{spec}' item {i}" for i in range(len(samples))], False


@READERS.register("random")
def _read_random(
    source: DataSource, inputs: Sequence[TensorInfo] | None, options: DataOptions
) -> tuple[list[Feed], list[str], bool]:
    """Deterministic random samples shaped like the model's inputs (dynamic dimensions 1)."""
    from edgecc.data.synthetic import random_feeds

    if inputs is None:
        raise UsageError(f"{options.option} random needs the model's inputs")
    feeds = random_feeds(inputs, seed=options.seed, count=options.random_count)
    return feeds, [f"random sample {i}" for i in range(len(feeds))], False


def _sample_count(array: "np.ndarray", info: TensorInfo) -> tuple[int, int]:
    """(samples, rows per sample) held by `array` for input `info`: a leading sample axis, or stacked static batches."""
    if info.shape is None or array.ndim == 0:
        return 1, 0
    if array.ndim == len(info.shape) + 1:
        return int(array.shape[0]), 0
    batch = info.shape[0] if info.shape else None
    if (
        array.ndim == len(info.shape)
        and isinstance(batch, int)
        and batch > 0
        and array.shape[0] != batch
        and array.shape[0] % batch == 0
    ):
        return int(array.shape[0]) // batch, batch
    return 1, 0


def split_sample_axis(sample: Feed, origin: str, inputs: Sequence[TensorInfo], option: str) -> tuple[list[Feed], list[str]]:
    """One read sample whose arrays carry a sample axis (or stacked batches) -> one sample per entry."""
    by_name = {i.name: i for i in inputs}
    if "" in sample and len(inputs) == 1:
        by_name[""] = inputs[0]
    splits: dict[str, tuple[int, int]] = {}
    for key, array in sample.items():
        info = by_name.get(key)
        if info is not None:
            splits[key] = _sample_count(array, info)
    counts = {count for count, _ in splits.values() if count != 1}
    if not counts:
        return [sample], [origin]
    if len(counts) > 1:
        raise InvalidInputError(
            f"{option} {origin}: arrays hold different numbers of samples "
            f"({', '.join(f'{k or inputs[0].name}: {c}' for k, (c, _) in splits.items())})"
        )
    count = counts.pop()
    samples = []
    for index in range(count):
        item: Feed = {}
        for key, array in sample.items():
            samples_in, rows = splits.get(key, (1, 0))
            if samples_in == 1:
                item[key] = array
            elif rows:
                item[key] = array[index * rows : (index + 1) * rows]
            else:
                item[key] = array[index]
        samples.append(item)
    return samples, [f"{origin} sample {i}" for i in range(count)]


def read_samples(
    values: str | Sequence[str] | Sequence[DataSource],
    inputs: Sequence[TensorInfo] | None = None,
    options: DataOptions | None = None,
) -> SampleSet:
    """Read DATA values into samples (not yet checked against the model: see `edgecc.data.bind`).

    With the model's `inputs`, arrays with a sample axis are split, and images and `random` can be read.
    """
    options = options or DataOptions()
    if isinstance(values, str):
        values = (values,)
    sources = [v if isinstance(v, DataSource) else parse_data_value(v, options.option) for v in values]
    per_value: list[tuple[list[Feed], list[str]]] = []
    descriptions: list[str] = []
    for source in sources:
        samples, origins, images = READERS.get(source.kind)(source, inputs, options)
        if inputs is not None:
            split: list[Feed] = []
            split_origins: list[str] = []
            for sample, origin in zip(samples, origins):
                more, more_origins = split_sample_axis(sample, origin, inputs, options.option)
                split.extend(more)
                split_origins.extend(more_origins)
            samples, origins = split, split_origins
        per_value.append((samples, origins))
        descriptions.append(source.describe(len(samples), images))
    if not per_value:
        return SampleSet()
    count = max(len(samples) for samples, _ in per_value)
    if any(len(samples) not in (1, count) for samples, _ in per_value):
        raise InvalidInputError(
            f"{options.option} values hold different numbers of samples "
            f"({', '.join(f'{s.text}: {len(v[0])}' for s, v in zip(sources, per_value))})",
            hint="give one value per input, each with the same number of samples",
        )
    feeds: list[Feed] = [{} for _ in range(count)]
    origins: list[list[str]] = [[] for _ in range(count)]
    for samples, where in per_value:
        for index in range(count):
            pick = index if len(samples) == count else 0
            feeds[index].update(samples[pick])
            origins[index].append(where[pick])
    if options.max_samples is not None:
        feeds, origins = feeds[: options.max_samples], origins[: options.max_samples]
    return SampleSet(
        feeds, [" + ".join(o) for o in origins], "; ".join(descriptions), random=all(s.kind == "random" for s in sources)
    )
